import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.golden import GoldenModel
from lava_matmulfree.processes.final_norm.process import FinalNorm

I32 = np.int32


@implements(proc=FinalNorm, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFinalNormFixed(PyLoihiProcessModel):
    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    x: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net = proc_params["net"]
        self.q, self.arith = net.head, GoldenModel(net)
        d = net.cfg.hidden_size
        self.x_hist = pl.History(pl.AGGREGATOR_ROUND_TRIP + 1, (d,))
        self.sq = np.zeros(d, dtype=I32)
        self.a = np.zeros(d, dtype=I32)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        s, g = self.time_step, self.arith
        x = self.x_in.recv().astype(np.int64)
        r = self.r_in.recv().astype(np.int64)
        self.x[:] = x
        self.x_hist.put(s, x)
        self.sq = g.norm_squares(self.q, x, "head").astype(I32)
        x_old = self.x_hist.get(s - pl.AGGREGATOR_ROUND_TRIP)
        self.a = g.spikes_from_inv_rms(self.q, x_old, r, "head")["lm_head"].astype(I32)
