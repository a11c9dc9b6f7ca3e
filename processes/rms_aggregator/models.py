import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.processes.neuron import PyFloatNeuronModel, PyMicrocodedFixedModel, lava_types
from lava_matmulfree.processes.rms_aggregator.process import RmsAggregator


@implements(proc=RmsAggregator, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
@lava_types(RmsAggregator)
class PyRmsAggregatorFixed(PyMicrocodedFixedModel):
    """Runs microcode/rms_aggregator.ucode over the neurons (bit for bit the golden model)."""


@implements(proc=RmsAggregator, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@lava_types(RmsAggregator, dtype=float)
class PyRmsAggregatorFloat(PyFloatNeuronModel):
    """inv_rms = 1 / sqrt(sum_sq / n + eps_const), in the step the squares arrive."""

    def run_spk(self):
        s, present = self.receive()["sq_in"]
        if present:
            self.sum_sq[:] = s
            self.inv_rms[:] = 1.0 / np.sqrt(s / self.proc_params["n"] + self.proc_params["eps_const"])
            self.emit({"r_out": self.inv_rms.copy()}, 1)
        else:
            self.emit({}, 1)
