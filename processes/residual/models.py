import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.model.float_model import act_quant_q8
from lava_matmulfree.processes.neuron import PyFloatNeuronModel, PyMicrocodedFixedModel, lava_types
from lava_matmulfree.processes.residual.process import Residual


@implements(proc=Residual, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@lava_types(Residual)
class PyResidualFixed(PyMicrocodedFixedModel):
    """Runs microcode/residual.ucode over the neurons (bit for bit the golden model)."""


@implements(proc=Residual, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@lava_types(Residual, dtype=float)
class PyResidualFloat(PyFloatNeuronModel):
    """The residual neurons of the float reference (folded norms, exact eps; float_model.DualRMSNorm), with the
    fixed-point program's events: x waits 2 steps for the attn norm's r and, in a queue, for o; r likewise.

        on x_in:      sq_attn = (w_attn x)^2 + eps_b x^2     (the aggregator adds eps_attn * eps_b)
        on r_attn:    a_p = Q8(w_attn w_p x' r_attn)          for p in i, f, g
        on o_in:      r = x'' + o ;  sq_mlp = (w_mlp r)^2 + eps_b r^2
        on r_mlp:     a_gate = Q8(w_mlp w_gate r' r_mlp)
        on down_in:   x_out = r'' + down
    """

    def __init__(self, proc_params):
        super().__init__(proc_params)
        lw = self.float_layer("residual")
        self.fold_attn = {"a_i": lw.fold_i, "a_f": lw.fold_f, "a_g": lw.fold_g}
        self.fold_mlp = lw.fold_gate
        self.x_line, self.r_line = self.round_trip_line(), self.round_trip_line()
        self.x_queue, self.r_queue = [], []

    def dynamics(self, m):
        out = {}
        x = r = np.zeros(self.n)
        down, present = m["down_in"]
        if present:
            out["x_out"] = self.r_queue.pop(0) + down
        o, present = m["o_in"]
        if present:
            r = self.x_queue.pop(0) + o
            out["sq_mlp"] = self.fold_mlp.squares(r)
            self.r_queue.append(r)
            self.r[:] = r
        xin, present = m["x_in"]
        if present:
            x = xin
            out["sq_attn"] = self.fold_attn["a_i"].squares(x)  # i, f, g share the block norm and the eps
            self.x_queue.append(x)
            self.x[:] = x
        x_a, r_m = self.x_line.push(x), self.r_line.push(r)
        q, present = m["r_attn"]
        if present:
            for k, fold in self.fold_attn.items():
                out[k] = act_quant_q8(fold.gain * x_a * q)
        q, present = m["r_mlp"]
        if present:
            out["a_gate"] = act_quant_q8(self.fold_mlp.gain * r_m * q)
        return out
