import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.golden import GoldenModel
from lava_matmulfree.processes.glu.process import Glu

I32 = np.int32


@implements(proc=Glu, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGluFixed(PyLoihiProcessModel):
    acc_uv: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    y: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net, self.l = proc_params["net"], proc_params["layer"]
        self.q, self.arith = net.layers[self.l], GoldenModel(net)
        n = net.cfg.intermediate_size
        self.y_hist = pl.History(pl.AGGREGATOR_ROUND_TRIP + 1, (n,))
        self.sq = np.zeros(n, dtype=I32)
        self.a = np.zeros(n, dtype=I32)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        s, q, g, l = self.time_step, self.q, self.arith, self.l
        y = g.glu(q, self.acc_uv.recv().astype(np.int64), l)
        r = self.r_in.recv().astype(np.int64)
        self.y[:] = y
        self.y_hist.put(s, y)
        self.sq = g.norm_squares(q.down_norm, y, f"l{l}.down").astype(I32)
        y_old = self.y_hist.get(s - pl.AGGREGATOR_ROUND_TRIP)
        self.a = g.spikes_from_inv_rms(q.down_norm, y_old, r, f"l{l}.down")["down"].astype(I32)
