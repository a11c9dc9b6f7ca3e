import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree.processes.embedding.process import EmbeddingSource

I32 = np.int32


class AbstractPyEmbeddingSource(PyLoihiProcessModel):
    """Streams the prompt, then the fed-back tokens (lava's tags add up over inheritance: this base is
    undecorated and each precision a decorated subclass, as in lava's own Dense)."""

    token_in = None
    x_out = None
    token = None
    DTYPE = None

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.embed = self.table(proc_params)
        self.prompt, self.schedule = proc_params["prompt"], proc_params["schedule"]
        self.x = np.zeros(self.embed.shape[1], dtype=self.DTYPE)

    @staticmethod
    def table(proc_params):
        raise NotImplementedError

    def run_spk(self):
        self.x_out.send(self.x)
        fed_back = int(self.token_in.recv()[0])
        k = self.schedule.token_at(self.time_step, 0)
        if k < 0:
            self.x = np.zeros_like(self.x)
            return
        tok = self.prompt[k] if k < len(self.prompt) else fed_back
        self.token[:] = tok
        self.x = self.embed[tok].astype(self.DTYPE)


@implements(proc=EmbeddingSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyEmbeddingSourceFixed(AbstractPyEmbeddingSource):
    """int24 rows of the compiled network, Q(x_frac)."""

    token_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    token: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    DTYPE = I32

    @staticmethod
    def table(proc_params):
        return proc_params["net"].embed


@implements(proc=EmbeddingSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyEmbeddingSourceFloat(AbstractPyEmbeddingSource):
    """The float embedding rows of the float reference (needs the graph built with ``float_model``)."""

    token_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    token: np.ndarray = LavaPyType(np.ndarray, float)
    DTYPE = float

    @staticmethod
    def table(proc_params):
        return proc_params["float_model"].embeddings
