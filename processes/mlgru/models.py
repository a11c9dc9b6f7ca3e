import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

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
