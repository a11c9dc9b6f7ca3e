"""Embedding source: streams the prompt's tokens (one per step) and then the tokens the sink feeds back.

Dynamics: at the step a token k enters (pipeline.Schedule.entry):

    token = prompt[k]   if k < len(prompt)   else token_in      (the sink's choice, autoregressive decode)
    x_out = embed[token]                                        (int24 rows, Q(x_frac)), sent one step later
                                                                (floating_pt: the float embedding row)
"""
from __future__ import annotations

from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class EmbeddingSource(AbstractProcess):
    def __init__(self, *, net, prompt, schedule, float_model=None, name: str | None = None, **kwargs):
        super().__init__(net=net, prompt=list(prompt), schedule=schedule, float_model=float_model, name=name,
                         **kwargs)
        self.token_in = InPort(shape=(1,))
        self.x_out = OutPort(shape=(net.cfg.hidden_size,))
        self.token = Var(shape=(1,), init=-1)  # the token that entered last
