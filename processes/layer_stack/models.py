import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.golden_fast import FastGoldenModel
from lava_matmulfree.processes.layer_stack.process import MMFreeStack

I32 = np.int32


@implements(proc=MMFreeStack, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyFusedStackFixed(PyLoihiProcessModel):
    x_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    x: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    r: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    h: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.net, self.schedule = proc_params["net"], proc_params["schedule"]
        self.arith = FastGoldenModel(self.net)
        self.offset = self.schedule.block_offset(0)
        self.out = np.zeros(self.net.cfg.hidden_size, dtype=I32)

    def run_spk(self):
        self.x_out.send(self.out)
        x = self.x_in.recv().astype(np.int64)[None]
        if self.schedule.token_at(self.time_step, self.offset) < 0:
            self.out = np.zeros_like(self.out)
            return
        g = self.arith
        g.probes = {}
        for l, q in enumerate(self.net.layers):
            self.x[l] = x[0]
            x, h = g.layer(q, x, self.h[l].astype(np.int64), l)
            self.h[l] = h
            self.r[l] = g.probes[f"l{l}.r"][0][0]
        self.out = x[0].astype(I32)
