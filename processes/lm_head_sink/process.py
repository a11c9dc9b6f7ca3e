"""LM-head sink: receives the ternary LM head's integer logits and chooses the next token.

Dynamics, at the step token k's logits arrive (pipeline.Schedule, offset ``sink_offset``):

    logits[k] = logits_in                                   (recorded when ``record_logits``; float in floating_pt)
    if k >= len(prompt) - 1:   token = argmax(logits_in)  or a seeded sample of softmax(logit_scale * logits_in / T)
                               token_out = token           (fed back to the embedding source one step later)
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class LmHeadSink(AbstractProcess):
    def __init__(self, *, net, schedule, temperature: float = 0.0, top_k: int = 0, seed: int = 0,
                 record_logits: bool = True, name: str | None = None, **kwargs):
        V = net.cfg.vocab_size
        super().__init__(net=net, schedule=schedule, temperature=temperature, top_k=top_k, seed=seed,
                         record_logits=record_logits, name=name, **kwargs)
        self.logits_in = InPort(shape=(V,))
        self.token_out = OutPort(shape=(1,))
        self.tokens = Var(shape=(schedule.max_new_tokens,), init=-1)  # the generated tokens
        n = schedule.num_tokens if record_logits else 1
        self.logits = Var(shape=(n, V), init=0)  # integer logits per token, units of logit_scale
