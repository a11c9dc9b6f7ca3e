import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.golden import GoldenModel
from lava_matmulfree.processes.residual.process import Residual

I32 = np.int32


@implements(proc=Residual, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyResidualFixed(PyLoihiProcessModel):
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
        net, self.l = proc_params["net"], proc_params["layer"]
        self.q = net.layers[self.l]
        self.arith = GoldenModel(net)
        d = net.cfg.hidden_size
        self.out = {k: np.zeros(d, dtype=I32) for k in self.OUTS}
        self.x_hist = pl.History(pl.RESIDUAL_O + 1, (d,))  # x waits for o_proj's output
        self.r_hist = pl.History(pl.RESIDUAL_DOWN - pl.RESIDUAL_O + 1, (d,))  # r waits for down_proj's

    def run_spk(self):
        for k in self.OUTS:
            getattr(self, k).send(self.out[k])
        s, q, g, l = self.time_step, self.q, self.arith, self.l
        x = self.x_in.recv().astype(np.int64)
        r_attn, o = self.r_attn.recv().astype(np.int64), self.o_in.recv().astype(np.int64)
        r_mlp, down = self.r_mlp.recv().astype(np.int64), self.down_in.recv().astype(np.int64)
        # a token entering: send u^2 to the attn aggregator
        self.x_hist.put(s, x)
        self.x[:] = x
        self.out["sq_attn"] = g.norm_squares(q.attn, x, f"l{l}.attn").astype(I32)
        # the attn aggregator answers for the token that entered RESIDUAL_ATTN_R steps ago
        a = g.spikes_from_inv_rms(q.attn, self.x_hist.get(s - pl.RESIDUAL_ATTN_R), r_attn, f"l{l}.attn")
        for p in ("i", "f", "g"):
            self.out[f"a_{p}"] = a[p].astype(I32)
        # o_proj's output arrives: residual add, then the mlp norm's u^2
        r = g.residual(self.x_hist.get(s - pl.RESIDUAL_O), o, q.o, f"l{l}.resid")
        self.r_hist.put(s, r)
        self.r[:] = r
        self.out["sq_mlp"] = g.norm_squares(q.mlp, r, f"l{l}.mlp").astype(I32)
        back = pl.RESIDUAL_MLP_R - pl.RESIDUAL_O
        self.out["a_gate"] = g.spikes_from_inv_rms(q.mlp, self.r_hist.get(s - back), r_mlp,
                                                   f"l{l}.mlp")["gate"].astype(I32)
        back = pl.RESIDUAL_DOWN - pl.RESIDUAL_O
        self.out["x_out"] = g.residual(self.r_hist.get(s - back), down, q.down, f"l{l}.resid").astype(I32)
