import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.processes import float_model_of
from lava_matmulfree.float_model import act_quant_q8, sigmoid, silu
from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.mlgru.process import Mlgru

I32 = np.int32
I64 = np.int64


@implements(proc=Mlgru, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyMlgruFixed(PyLoihiProcessModel):
    """Runs microcode/mlgru.ucode over the d channel neurons. h is the program's persistent state register,
    mirrored in the Var h (read before and written after every step, so Var.set() takes effect); gz waits for
    the gate-norm's r in the program's delay line. The token-present flag comes from the schedule."""

    acc_i: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    acc_f: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    acc_g: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    h: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net = proc_params["net"]
        self.machine = bindings.mlgru(net, proc_params["layer"]).machine()
        self.schedule, self.offset = proc_params["schedule"], proc_params["offset"]
        d = net.cfg.hidden_size
        self.sq = np.zeros(d, dtype=I32)
        self.a = np.zeros(d, dtype=I32)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        present = self.schedule.token_at(self.time_step, self.offset) >= 0
        inputs = {"acc_i": self.acc_i.recv(), "acc_f": self.acc_f.recv(), "acc_g": self.acc_g.recv(),
                  "r_in": self.r_in.recv()[0], "tok_in": I64(present)}
        self.machine.state["h"] = self.h.astype(I64)
        res = self.machine.step(inputs)
        self.h[:] = res.state["h"]
        self.sq = res.outputs["sq_out"].astype(I32)
        self.a = res.outputs["a_out"].astype(I32)


@implements(proc=Mlgru, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyMlgruFloat(PyLoihiProcessModel):
    """The MLGRU neurons of the float reference (float_model.token_mixer, folded gate norm, exact eps), with
    the fixed model's timing. acc_i, acc_f, acc_g are the BitLinear outputs (the synapses apply 1/s):

        on acc_*:    f = lb + (1 - lb) sigmoid(acc_f) ;  i = SiLU(acc_i) (1 - f)
                     h = f h + i                          only when a token is present (the schedule)
                     gz = acc_g SiLU(h) ;  sq_out = (w_gn gz)^2 + eps_o acc_g^2   (the aggregator adds eps_gn eps_o)
        on r_in:     a_out = Q8(w_gn w_o gz r_in)         (gz from MLGRU_R - MLGRU_IN steps ago)
    """

    acc_i: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    acc_f: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    acc_g: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    h: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "MLGRU")
        lw = fm.layers[proc_params["layer"]]
        self.lb, self.fold = lw.lower_bound, lw.fold_o
        self.schedule, self.offset = proc_params["schedule"], proc_params["offset"]
        d = fm.cfg.hidden_size
        self.gz_hist = pl.History(pl.MLGRU_R - pl.MLGRU_IN + 1, (d,), dtype=float)
        self.sq = np.zeros(d)
        self.a = np.zeros(d)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        s, fold = self.time_step, self.fold
        acc_i, acc_f, g = self.acc_i.recv(), self.acc_f.recv(), self.acc_g.recv()
        r = self.r_in.recv()[0]
        if self.schedule.token_at(s, self.offset) >= 0:
            f = self.lb + (1.0 - self.lb) * sigmoid(acc_f)
            i = silu(acc_i) * (1.0 - f)
            self.h[:] = f * self.h + i
            gz = g * silu(self.h)
        else:  # no token: h keeps its value, nothing goes out
            g = gz = np.zeros_like(g)
        self.gz_hist.put(s, gz)
        self.sq = fold.squares(g, gz)
        self.a = act_quant_q8(fold.gain * self.gz_hist.get(s - (pl.MLGRU_R - pl.MLGRU_IN)) * r)
