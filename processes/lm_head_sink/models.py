import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.processes.lm_head_sink.process import LmHeadSink
from lava_matmulfree.model.sampling import Sampler

I32 = np.int32


class AbstractPyLmHeadSink(PyLoihiProcessModel):
    """Records logits and samples the next token (undecorated base; see embedding/models.py)."""

    logits_in = None
    token_out = None
    logits = None
    DTYPE = None
    prompt_len: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    max_new_tokens: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    seen: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    generated: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    tokens: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)

    def run_spk(self):
        p = self.proc_params
        logits, present = events.split(self.logits_in.recv())
        k = int(self.seen[0])
        if not present:
            self.token_out.send(events.silence(1, dtype=self.DTYPE))
            return
        bits = p["accumulator_bits"]
        if bits:
            logits = np.clip(logits, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        if k == 0:  # a new request: the sampler restarts from its seed
            self.sampler = Sampler(p["temperature"], p["top_k"], p["seed"])
        if p["record_logits"]:
            self.logits[k] = logits
        self.seen[0] = k + 1
        n = int(self.generated[0])
        if k >= int(self.prompt_len[0]) - 1 and n < int(self.max_new_tokens[0]):
            # greedy on the integers; sampling on the real-valued logits (host-side arithmetic)
            tok = self.sampler(logits.astype(np.float64) * p["logit_scale"])
            self.tokens[n], self.generated[0] = tok, n + 1
            self.token_out.send(events.message(np.array([tok]), True, dtype=self.DTYPE))
        else:
            self.token_out.send(events.silence(1, dtype=self.DTYPE))


@implements(proc=LmHeadSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyLmHeadSinkFixed(AbstractPyLmHeadSink):
    logits_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, I32, precision=24)
    token_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, I32, precision=24)
    logits: np.ndarray = LavaPyType(np.ndarray, I32, precision=24)
    DTYPE = I32


@implements(proc=LmHeadSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyLmHeadSinkFloat(AbstractPyLmHeadSink):
    """Float logits from the float graph; the same sampler on them."""

    logits_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    token_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    logits: np.ndarray = LavaPyType(np.ndarray, float)
    DTYPE = float
