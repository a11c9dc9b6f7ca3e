import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

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
