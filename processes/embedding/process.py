"""Embedding source: the host-side entry of the graph (the embedding is not on chip)."""
from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class EmbeddingSource(AbstractProcess):
    """Streams a prompt into the graph, one token per step, then the tokens the sink feeds back (decode is a
    closed loop inside the graph). Host/chip boundary: on Loihi 2 this runs on the host (docs/graph.md).

    Dynamics, each step (receives, then sends in the same step)::

        k = count (tokens sent so far)
        if k < prompt_len:                                  token = prompt[k]          (prefill, back to back)
        elif token_in carries a token and k < prompt_len + max_new_tokens - 1:
                                                            token = token_in           (the sink's choice)
        else:                                               nothing is sent
        x_out = embed[token] with the token lane set ; count += 1

    The prompt enters through Vars, so one compiled graph serves many prompts: set ``prompt``, ``prompt_len``,
    ``max_new_tokens`` and ``count = 0`` (``graph.LavaGraph.start``) and run again.

    Parameters
    ----------
    embed : array [V, d]
        Embedding rows: int24, Q(x_frac), or the float rows (floating_pt).
    capacity : int
        Most tokens one request may hold (prompt + new tokens).
    """

    def __init__(self, *, embed, capacity: int, name: str | None = None, **kwargs):
        embed = np.asarray(embed)
        super().__init__(capacity=capacity, name=name, **kwargs)
        V, d = embed.shape
        self.token_in = InPort(shape=(2,))  # [token, lane]
        self.x_out = OutPort(shape=(d + 1,))
        self.embed = Var(shape=(V, d), init=embed)
        self.prompt = Var(shape=(capacity,), init=0)
        self.prompt_len = Var(shape=(1,), init=0)
        self.max_new_tokens = Var(shape=(1,), init=0)
        self.count = Var(shape=(1,), init=0)
        self.token = Var(shape=(1,), init=-1)  # the token that entered last
