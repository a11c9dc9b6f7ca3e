import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.processes.embedding.process import EmbeddingSource

I32 = np.int32


class AbstractPyEmbeddingSource(PyLoihiProcessModel):
    """Streams the prompt, then the fed-back tokens (lava's tags add up over inheritance: this base is undecorated
    and each precision a decorated subclass, as in lava's own Dense)."""

    token_in = None
    x_out = None
    embed = None
    DTYPE = None
    prompt: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    prompt_len: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    max_new_tokens: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    count: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    token: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def run_spk(self):
        fed, present = events.split(self.token_in.recv())
        k, P = int(self.count[0]), int(self.prompt_len[0])
        if k < P:
            tok = int(self.prompt[k])
        elif present and k < P + int(self.max_new_tokens[0]) - 1:
            tok = int(round(float(fed[0])))
        else:
            self.x_out.send(events.silence(self.embed.shape[1], dtype=self.DTYPE))
            return
        self.token[0], self.count[0] = tok, k + 1
        self.x_out.send(events.message(self.embed[tok], True, dtype=self.DTYPE))


@implements(proc=EmbeddingSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyEmbeddingSourceFixed(AbstractPyEmbeddingSource):
    """int24 rows of the compiled network, Q(x_frac)."""

    token_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    embed: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    DTYPE = I32


@implements(proc=EmbeddingSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyEmbeddingSourceFloat(AbstractPyEmbeddingSource):
    """The float embedding rows of the float reference."""

    token_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    x_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    embed: np.ndarray = LavaPyType(np.ndarray, float)
    DTYPE = float
