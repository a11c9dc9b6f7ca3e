import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.golden import GoldenModel
from lava_matmulfree.processes.mlgru.process import Mlgru

I32 = np.int32


@implements(proc=Mlgru, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMlgruFixed(PyLoihiProcessModel):
    acc_i: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    acc_f: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    acc_g: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    h: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net, self.l = proc_params["net"], proc_params["layer"]
        self.q, self.arith = net.layers[self.l], GoldenModel(net)
        self.schedule, self.offset = proc_params["schedule"], proc_params["offset"]
        d = net.cfg.hidden_size
        self.gz_hist = pl.History(pl.AGGREGATOR_ROUND_TRIP + 1, (d,))
        self.sq = np.zeros(d, dtype=I32)
        self.a = np.zeros(d, dtype=I32)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        s, q, g, l = self.time_step, self.q, self.arith, self.l
        acc = [p.recv().astype(np.int64)[None] for p in (self.acc_i, self.acc_f, self.acc_g)]
        r = self.r_in.recv().astype(np.int64)
        if self.schedule.token_at(s, self.offset) >= 0:  # no spikes, no update: h persists
            gz, h = g.mlgru(q, *acc, self.h.astype(np.int64), l)
            self.h[:] = h
            gz = gz[0]
        else:
            gz = np.zeros_like(acc[0][0])
        self.gz_hist.put(s, gz)
        self.sq = g.norm_squares(q.gate, gz, f"l{l}.gate").astype(I32)
        gz_old = self.gz_hist.get(s - pl.AGGREGATOR_ROUND_TRIP)
        self.a = g.spikes_from_inv_rms(q.gate, gz_old, r, f"l{l}.gate")["o"].astype(I32)
