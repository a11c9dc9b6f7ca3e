"""LM-head sink: the host-side exit of the graph; chooses the next token and feeds it back to the source."""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class LmHeadSink(AbstractProcess):
    """Receives the ternary LM head's logits (through its connection) and chooses tokens. Host/chip boundary: on
    Loihi 2 this runs on the host (docs/graph.md).

    Dynamics, in a step whose logits carry a token (sent in the same step)::

        logits = sat(logits_in)     the LM head neurons' dendrites: accumulator_bits wide, saturating (golden.dendrite)
        k = seen ; logits[k] = logits (when recorded) ; seen += 1
        if k >= prompt_len - 1 and generated < max_new_tokens:
            token = argmax(logits_in)  or a seeded sample of softmax(logit_scale * logits_in / T)
            tokens[generated] = token ; generated += 1 ; token_out = [token, lane 1]

    Parameters
    ----------
    vocab_size : int
    capacity : int
        Most tokens one request may hold.
    logit_scale : float
        Real value of one unit of the integer logits (1.0 for float logits).
    temperature, top_k, seed :
        Sampling (temperature 0: greedy). The sampler restarts from ``seed`` with every request.
    record_logits : bool
        Keep every token's logits in the Var ``logits``.
    accumulator_bits : int
        Width of the LM head neurons' dendritic accumulators (the fixed point's state_bits; 0: none, float logits).
    """

    def __init__(self, *, vocab_size: int, capacity: int, logit_scale: float = 1.0, temperature: float = 0.0,
                 top_k: int = 0, seed: int = 0, record_logits: bool = True, accumulator_bits: int = 0,
                 name: str | None = None, **kwargs):
        super().__init__(vocab_size=vocab_size, capacity=capacity, logit_scale=logit_scale, temperature=temperature,
                         top_k=top_k, seed=seed, record_logits=record_logits, accumulator_bits=accumulator_bits,
                         name=name, **kwargs)
        self.logits_in = InPort(shape=(vocab_size + 1,))
        self.token_out = OutPort(shape=(2,))  # [token, lane]
        self.prompt_len = Var(shape=(1,), init=0)
        self.max_new_tokens = Var(shape=(1,), init=0)
        self.seen = Var(shape=(1,), init=0)
        self.generated = Var(shape=(1,), init=0)
        self.tokens = Var(shape=(capacity,), init=-1)  # the generated tokens
        self.logits = Var(shape=(capacity if record_logits else 1, vocab_size), init=0)
