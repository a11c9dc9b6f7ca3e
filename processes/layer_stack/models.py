import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.model.golden_fast import FastGoldenModel
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
        self.net = proc_params["net"]
        self.arith = FastGoldenModel(self.net)

    def run_spk(self):
        x, present = events.split(self.x_in.recv())
        if not present:
            self.x_out.send(events.silence(len(x)))
            return
        g, x = self.arith, x.astype(np.int64)[None]
        g.probes = {}
        for l, q in enumerate(self.net.layers):
            self.x[l] = x[0]
            x, h = g.layer(q, x, self.h[l].astype(np.int64), l)
            self.h[l] = h
            self.r[l] = g.probes[f"l{l}.r"][0][0]
        self.x_out.send(events.message(x[0], True))
