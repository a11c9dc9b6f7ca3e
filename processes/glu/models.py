import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.model.float_model import act_quant_q8, silu
from lava_matmulfree.processes.neuron import PyFloatNeuronModel, PyMicrocodedFixedModel, lava_types
from lava_matmulfree.processes.glu.process import Glu


@implements(proc=Glu, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@lava_types(Glu)
class PyGluFixed(PyMicrocodedFixedModel):
    """Runs microcode/glu.ucode over the neurons (bit for bit the golden model)."""


@implements(proc=Glu, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@lava_types(Glu, dtype=float)
class PyGluFloat(PyFloatNeuronModel):
    """The GLU neurons of the float reference (float_model.channel_mixer). u_in, v_in are gate_proj's BitLinear
    halves (the connections apply 1/s); the down norm is down_proj's own RMSNorm alone:

        on u_in, v_in:  y = SiLU(u) v ;  sq_out = y^2           (the aggregator adds down_proj's eps)
        on r_in:        a_out = Q8(w_down y' r_in)              (y' of 2 steps ago)
    """

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.norm_w = self.float_layer("GLU").down_proj.norm_w
        self.y_line = self.round_trip_line()

    def dynamics(self, m):
        out, y = {}, np.zeros(self.n)
        u, present = m["u_in"]
        if present:
            y = silu(u) * m["v_in"][0]
            self.y[:] = y
            out["sq_out"] = y * y
        y_r = self.y_line.push(y)
        r, present = m["r_in"]
        if present:
            out["a_out"] = act_quant_q8(self.norm_w * y_r * r)
        return out
