import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import pipeline as pl
from lava_matmulfree.processes import float_model_of
from lava_matmulfree.float_model import act_quant_q8, silu
from lava_matmulfree.microcode import bindings
from lava_matmulfree.processes.glu.process import Glu

I32 = np.int32


@implements(proc=Glu, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGluFixed(PyLoihiProcessModel):
    """Runs microcode/glu.ucode over the intermediate channels: neuron j receives gate_proj's rows j (u) and
    I + j (v) on two dendrites; y waits for the down-norm's r in the program's delay line."""

    acc_uv: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=8)
    y: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        net = proc_params["net"]
        self.machine = bindings.glu(net, proc_params["layer"]).machine()
        self.n = n = net.cfg.intermediate_size
        self.sq = np.zeros(n, dtype=I32)
        self.a = np.zeros(n, dtype=I32)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        acc = self.acc_uv.recv()
        r = self.r_in.recv()[0]  # the aggregator's broadcast
        res = self.machine.step({"u_in": acc[:self.n], "v_in": acc[self.n:], "r_in": r})
        self.y[:] = res.scratch["y"]
        self.sq = res.outputs["sq_out"].astype(I32)
        self.a = res.outputs["a_out"].astype(I32)


@implements(proc=Glu, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGluFloat(PyLoihiProcessModel):
    """The GLU neurons of the float reference (float_model.channel_mixer), with the fixed model's timing.
    acc_uv is gate_proj's BitLinear output (the synapses apply 1/s); the down norm is down_proj's own
    RMSNorm alone (no block norm to fold):

        on acc_uv:   y = SiLU(u) v ;  sq_out = y^2           (the aggregator adds down_proj's eps)
        on r_in:     a_out = Q8(w_down y r_in)               (y from GLU_R - GLU_IN steps ago)
    """

    acc_uv: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    r_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    sq_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    y: np.ndarray = LavaPyType(np.ndarray, float)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        fm = float_model_of(proc_params, "GLU")
        self.norm_w = fm.layers[proc_params["layer"]].down_proj.norm_w
        self.n = n = fm.cfg.intermediate_size
        self.y_hist = pl.History(pl.GLU_R - pl.GLU_IN + 1, (n,), dtype=float)
        self.sq = np.zeros(n)
        self.a = np.zeros(n)

    def run_spk(self):
        self.sq_out.send(self.sq)
        self.a_out.send(self.a)
        s = self.time_step
        acc = self.acc_uv.recv()
        r = self.r_in.recv()[0]
        y = silu(acc[:self.n]) * acc[self.n:]
        self.y[:] = y
        self.y_hist.put(s, y)
        self.sq = y * y
        self.a = act_quant_q8(self.norm_w * self.y_hist.get(s - (pl.GLU_R - pl.GLU_IN)) * r)
