import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.float_model import act_quant_q8
from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.final_norm.process import FinalNorm

I32 = np.int32


@implements(proc=FinalNorm, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFinalNormFixed(PyLoihiProcessModel):
    """Runs microcode/final_norm.ucode over the d channel neurons (x waits for r in the program's delay line)."""

    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    x: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.machine = bindings.final_norm(proc_params["net"]).machine()
        d = proc_params["net"].cfg.hidden_size
        self.sq = np.zeros(d, dtype=I32)
        self.a = np.zeros(d, dtype=I32)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        x = self.x_in.recv()
        r = self.r_in.recv()[0]  # the aggregator's broadcast
        res = self.machine.step({"x_in": x, "r_in": r})
        self.x[:] = res.scratch["x"]
        self.sq = res.outputs["sq_out"].astype(I32)
        self.a = res.outputs["a_out"].astype(I32)


@implements(proc=FinalNorm, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyFinalNormFloat(PyLoihiProcessModel):
    """The folded head norm of the float reference (needs the graph built with a folded ``float_model``)."""

    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    x: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.fold = proc_params["float_model"].fold_head
        d = self.fold.gain.shape[0]
        self.x_hist = pl.History(pl.AGGREGATOR_ROUND_TRIP + 1, (d,), dtype=float)
        self.sq = np.zeros(d)
        self.a = np.zeros(d)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        s, f = self.time_step, self.fold
        x, r = self.x_in.recv(), self.r_in.recv()
        self.x[:] = x
        self.x_hist.put(s, x)
        self.sq = f.squares(x)
        self.a = act_quant_q8(f.gain * self.x_hist.get(s - pl.AGGREGATOR_ROUND_TRIP) * r[0])
