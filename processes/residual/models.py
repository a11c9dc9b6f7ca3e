import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.processes import float_model_of
from lava_matmulfree.float_model import act_quant_q8
from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.residual.process import Residual

I32 = np.int32


@implements(proc=Residual, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyResidualFixed(PyLoihiProcessModel):
    """Runs microcode/residual.ucode over the d channel neurons: every step serves the five phases of the
    tokens in flight (x and r wait in the program's delay lines, see pipeline.py for the offsets)."""

    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_attn: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    o_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_mlp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    down_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    sq_attn: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_i: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    a_f: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    a_g: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    sq_mlp: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_gate: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    x: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    r: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    OUTS = ("sq_attn", "a_i", "a_f", "a_g", "sq_mlp", "a_gate", "x_out")

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net = proc_params["net"]
        self.machine = bindings.residual(net, proc_params["layer"]).machine()
        d = net.cfg.hidden_size
        self.out = {k: np.zeros(d, dtype=I32) for k in self.OUTS}

    def run_spk(self):
        for k in self.OUTS:
            getattr(self, k).send(self.out[k])
        res = self.machine.step({"x_in": self.x_in.recv(), "r_attn": self.r_attn.recv()[0], "o_in": self.o_in.recv(),
                                 "r_mlp": self.r_mlp.recv()[0], "down_in": self.down_in.recv()})
        self.x[:] = res.scratch["x"]
        self.r[:] = res.scratch["r"]
        self.out = {k: res.outputs[k].astype(I32) for k in self.OUTS}


@implements(proc=Residual, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyResidualFloat(PyLoihiProcessModel):
    """The residual neurons of the float reference (folded norms, exact eps; float_model.DualRMSNorm), with
    the fixed model's timing. Every step serves the phases of the tokens in flight:

        on x_in:      sq_attn = (w_attn x)^2 + eps_b x^2     (the aggregator adds eps_attn * eps_b)
        on r_attn:    a_p = Q8(w_attn w_p x r_attn)          for p in i, f, g (x from RESIDUAL_ATTN_R steps ago)
        on o_in:      r = x + o ;  sq_mlp = (w_mlp r)^2 + eps_b r^2
        on r_mlp:     a_gate = Q8(w_mlp w_gate r r_mlp)
        on down_in:   x_out = r + down
    """

    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_attn: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    o_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_mlp: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    down_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    sq_attn: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_i: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_f: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_g: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    sq_mlp: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_gate: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    x: np.ndarray = LavaPyType(np.ndarray, float)
    r: np.ndarray = LavaPyType(np.ndarray, float)

    OUTS = PyResidualFixed.OUTS

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "residual")
        lw = fm.layers[proc_params["layer"]]
        self.fold_attn = {"a_i": lw.fold_i, "a_f": lw.fold_f, "a_g": lw.fold_g}
        self.fold_mlp = lw.fold_gate
        d = fm.cfg.hidden_size
        # x waits for the attn norm's r and the token mixer's o; r for the mlp norm's r and the down output
        self.x_hist = pl.History(pl.RESIDUAL_O + 1, (d,), dtype=float)
        self.r_hist = pl.History(pl.RESIDUAL_DOWN - pl.RESIDUAL_O + 1, (d,), dtype=float)
        self.out = {k: np.zeros(d) for k in self.OUTS}

    def run_spk(self):
        for k in self.OUTS:
            getattr(self, k).send(self.out[k])
        s, out = self.time_step, {}
        x = self.x_in.recv()
        r_attn, r_mlp = self.r_attn.recv()[0], self.r_mlp.recv()[0]
        o, down = self.o_in.recv(), self.down_in.recv()
        self.x_hist.put(s, x)
        fa = self.fold_attn["a_i"]  # i, f, g share the block norm (inner_w) and the bitlinear eps (eps_outer)
        out["sq_attn"] = fa.squares(x)
        x_a = self.x_hist.get(s - pl.RESIDUAL_ATTN_R)
        for k, fold in self.fold_attn.items():
            out[k] = act_quant_q8(fold.gain * x_a * r_attn)
        r = self.x_hist.get(s - pl.RESIDUAL_O) + o
        self.r_hist.put(s, r)
        fm = self.fold_mlp
        out["sq_mlp"] = fm.squares(r)
        out["a_gate"] = act_quant_q8(fm.gain * self.r_hist.get(s - (pl.RESIDUAL_MLP_R - pl.RESIDUAL_O)) * r_mlp)
        out["x_out"] = self.r_hist.get(s - (pl.RESIDUAL_DOWN - pl.RESIDUAL_O)) + down
        self.x[:], self.r[:] = x, r
        self.out = out
