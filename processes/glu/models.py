import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

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
