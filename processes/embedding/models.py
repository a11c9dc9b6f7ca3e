import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.processes.embedding.process import EmbeddingSource

I32 = np.int32


@implements(proc=EmbeddingSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyEmbeddingSourceFixed(PyLoihiProcessModel):
    token_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    token: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.embed = proc_params["net"].embed
        self.prompt, self.schedule = proc_params["prompt"], proc_params["schedule"]
        self.x = np.zeros(self.embed.shape[1], dtype=I32)

    def run_spk(self):
        self.x_out.send(self.x)
        fed_back = int(self.token_in.recv()[0])
        k = self.schedule.token_at(self.time_step, 0)
        if k < 0:
            self.x = np.zeros_like(self.x)
            return
        tok = self.prompt[k] if k < len(self.prompt) else fed_back
        self.token[:] = tok
        self.x = self.embed[tok].astype(I32)
