import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from lava_matmulfree import events
from lava_matmulfree.model.sampling import Sampler
from lava_matmulfree.processes.lm_head_sink.process import LmHeadSink
from lava_matmulfree.processes.precision import FIXED_BITS, I32, py_types


class AbstractPyLmHeadSink(PyLoihiProcessModel):
    """Records logits and samples the next token (undecorated; see processes/precision.py). The request's
    counters and tokens are integers at both precisions."""

    IN_PORTS, OUT_PORTS, VARS = ("logits_in",), ("token_out",), ("logits",)
    prompt_len: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    max_new_tokens: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    seen: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    generated: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    tokens: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    logit_scale: np.ndarray = LavaPyType(np.ndarray, float)
    accumulator_bits: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    temperature: np.ndarray = LavaPyType(np.ndarray, float)
    top_k: np.ndarray = LavaPyType(np.ndarray, I32, precision=FIXED_BITS)
    seed: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def run_spk(self):
        logits, present = events.split(self.logits_in.recv())
        k = int(self.seen[0])
        if not present:
            self.token_out.send(events.silence(1, dtype=self.DTYPE))
            return
        bits = int(self.accumulator_bits[0])
        if bits:
            logits = np.clip(logits, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        if k == 0:  # a new request: the sampler restarts from its seed, and no token of the last one stays
            self.sampler = Sampler(float(self.temperature[0]), int(self.top_k[0]), int(self.seed[0]))
            self.tokens[:] = -1
        if self.proc_params["record_logits"]:
            self.logits[k] = logits
        self.seen[0] = k + 1
        n = int(self.generated[0])
        if k >= int(self.prompt_len[0]) - 1 and n < int(self.max_new_tokens[0]):
            # greedy on the integers; sampling on the real-valued logits (host-side arithmetic)
            tok = self.sampler(logits.astype(np.float64) * float(self.logit_scale[0]))
            self.tokens[n], self.generated[0] = tok, n + 1
            self.token_out.send(events.message(np.array([tok]), True, dtype=self.DTYPE))
        else:
            self.token_out.send(events.silence(1, dtype=self.DTYPE))


@implements(proc=LmHeadSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt", "bit_accurate_loihi")
@py_types(I32, precision=FIXED_BITS)
class PyLmHeadSinkFixed(AbstractPyLmHeadSink):
    """Integer logits of the ternary LM head's dendrites."""


@implements(proc=LmHeadSink, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
@py_types(float)
class PyLmHeadSinkFloat(AbstractPyLmHeadSink):
    """Float logits from the float graph; the same sampler on them."""
