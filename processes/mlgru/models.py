import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.model.float_model import act_quant_q8, sigmoid, silu
from lava_matmulfree.processes.neuron import PyFloatNeuronModel, PyMicrocodedFixedModel, lava_types
from lava_matmulfree.processes.mlgru.process import Mlgru


@implements(proc=Mlgru, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@lava_types(Mlgru)
class PyMlgruFixed(PyMicrocodedFixedModel):
    """Runs microcode/mlgru.ucode over the neurons (bit for bit the golden model)."""


@implements(proc=Mlgru, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@lava_types(Mlgru, dtype=float)
class PyMlgruFloat(PyFloatNeuronModel):
    """The MLGRU neurons of the float reference (float_model.token_mixer, folded gate norm, exact eps). acc_* are
    the BitLinear outputs (the connections apply 1/s):

        on acc_*:    f = lb + (1 - lb) sigmoid(acc_f) ;  i = SiLU(acc_i) (1 - f) ;  h = f h + i
                     gz = acc_g SiLU(h) ;  sq_out = (w_gn gz)^2 + eps_o acc_g^2   (the aggregator adds eps_gn eps_o)
        on r_in:     a_out = Q8(w_gn w_o gz' r_in)         (gz' of 2 steps ago)
    """

    def __init__(self, proc_params):
        super().__init__(proc_params)
        lw = self.float_layer("MLGRU")
        self.lower_bound, self.fold = lw.lower_bound, lw.fold_o  # not self.lb: that is the program's Var
        self.gz_line = self.round_trip_line()

    def dynamics(self, m):
        out, gz = {}, np.zeros(self.n)
        acc_f, present = m["acc_f"]
        if present:
            acc_i, acc_g = m["acc_i"][0], m["acc_g"][0]
            f = self.lower_bound + (1.0 - self.lower_bound) * sigmoid(acc_f)
            self.h[:] = f * self.h + silu(acc_i) * (1.0 - f)
            gz = acc_g * silu(self.h)
            out["sq_out"] = self.fold.squares(acc_g, gz)
        gz_r = self.gz_line.push(gz)
        r, present = m["r_in"]
        if present:
            out["a_out"] = act_quant_q8(self.fold.gain * gz_r * r)
        return out
