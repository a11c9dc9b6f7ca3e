import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.processes.neuron import PyFloatNeuronModel, PyMicrocodedFixedModel, lava_types
from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator


@implements(proc=RmsAggregator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@lava_types(RmsAggregator)
class PyRmsAggregatorFixed(PyMicrocodedFixedModel):
    """Runs microcode/rms_aggregator.ucode over the neurons (bit for bit the golden model)."""


@implements(proc=RmsAggregator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@lava_types(RmsAggregator, dtype=float)
class PyRmsAggregatorFloat(PyFloatNeuronModel):
    """inv_rms = 1 / sqrt(sum_sq / n + eps_const), in the step the squares arrive."""

    def dynamics(self, m):
        s, present = m["sq_in"]
        if not present:
            return {}
        self.sum_sq[:] = s
        self.inv_rms[:] = 1.0 / np.sqrt(s / self.proc_params["n"] + self.proc_params["eps_const"])
        return {"r_out": self.inv_rms.copy()}
