import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.processes.embedding.process import EmbeddingSource
from lava_matmulfree.processes.precision import FIXED_BITS, I32, py_types


class AbstractPyEmbeddingSource(PyLoihiProcessModel):
    """Streams the prompt, then the fed-back tokens (undecorated; each precision a decorated subclass, see
    processes/precision.py). The request's counters are integers at both precisions."""

    IN_PORTS, OUT_PORTS, VARS = ("token_in",), ("x_out",), ()
    prompt: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    prompt_len: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    max_new_tokens: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    count: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    token: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        # the building process's table, read copy-on-write (a process parameter, not a Var: process.py)
        self.embed = proc_params["embed"]

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
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(I32, precision=FIXED_BITS)
class PyEmbeddingSourceFixed(AbstractPyEmbeddingSource):
    """int24 rows of the compiled network, Q(x_frac)."""


@implements(proc=EmbeddingSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@py_types(float)
class PyEmbeddingSourceFloat(AbstractPyEmbeddingSource):
    """The float embedding rows of the float reference."""
