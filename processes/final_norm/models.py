import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.model.float_model import act_quant_q8
from lava_matmulfree.processes import float_model_of
from lava_matmulfree.processes.neuron import PyFloatNeuronModel, PyMicrocodedFixedModel, lava_types
from lava_matmulfree.processes.final_norm.process import FinalNorm


@implements(proc=FinalNorm, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@lava_types(FinalNorm)
class PyFinalNormFixed(PyMicrocodedFixedModel):
    """Runs microcode/final_norm.ucode over the neurons (bit for bit the golden model)."""


@implements(proc=FinalNorm, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@lava_types(FinalNorm, dtype=float)
class PyFinalNormFloat(PyFloatNeuronModel):
    """The folded head norm of the float reference (float_model.fold_head)."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.fold = float_model_of(proc_params, "final norm").fold_head
        self.x_line = self.round_trip_line()

    def dynamics(self, m):
        out = {}
        x, present = m["x_in"]
        if present:
            self.x[:] = x
            out["sq_out"] = self.fold.squares(x)
        else:
            x = np.zeros(self.n)
        x_r = self.x_line.push(x)
        r, present = m["r_in"]
        if present:
            out["a_out"] = act_quant_q8(self.fold.gain * x_r * r)
        return out
