"""Embedding source: the host-side entry of the graph (the embedding is not on chip)."""
from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


def request_values(prompt, max_new_tokens: int, capacity: int, vocab_size: int, who: str) -> list[int]:
    """A request's prompt as token ids, checked against a process's capacity and vocabulary (one clear error).
    An empty prompt with no new tokens is "no request yet"."""
    ids = [int(t) for t in np.asarray(prompt, dtype=np.int64).reshape(-1)] if len(prompt) else []
    if isinstance(max_new_tokens, bool) or int(max_new_tokens) != max_new_tokens or max_new_tokens < 0:
        raise ValueError(f"{who}: max_new_tokens must be a whole number >= 0, got {max_new_tokens!r}")
    if max_new_tokens and not ids:
        raise ValueError(f"{who}: a request needs at least one prompt token")
    if len(ids) + max_new_tokens > capacity:
        raise ValueError(f"{who}: prompt ({len(ids)}) + new tokens ({max_new_tokens}) exceed the capacity of "
                         f"{capacity} tokens")
    bad = [t for t in ids if not 0 <= t < vocab_size]
    if bad:
        raise ValueError(f"{who}: token id {bad[0]} lies outside the vocabulary [0, {vocab_size})")
    return ids


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

    The request is the constructor's ``prompt`` and ``max_new_tokens`` (the sink takes the same); a graph sets a
    new one on the source and the sink at once (``graph.builder.LavaGraph.set_request``), so one compiled graph
    serves many requests.

    The table is no Lava Var: it reaches the model as a process parameter (``proc_params["embed"]``), so the
    worker Lava forks reads the building process's array copy-on-write instead of a private copy that Lava's
    builder would make of a Var (docs/graph.md, "Memory"). The model converts each row as it sends it; don't write
    to the array while a runtime runs.

    Parameters
    ----------
    embed : array [V, d]
        Embedding rows: int24, Q(x_frac), or the float rows (floating_pt); held by reference, not copied.
    capacity : int
        Most tokens one request may hold (prompt + new tokens).
    prompt : sequence of int, optional
        The request's prompt (token ids); none by default (the graph then sends nothing until a request is set).
    max_new_tokens : int, optional
        Tokens to generate after the prompt.
    """

    def __init__(self, *, embed, capacity: int, prompt=(), max_new_tokens: int = 0, name: str | None = None,
                 **kwargs):
        embed = np.asarray(embed)
        # first: a refused process is whole for Lava's __del__
        super().__init__(embed=embed, capacity=capacity, name=name, **kwargs)
        if embed.ndim != 2:
            raise ValueError(f"{name or 'EmbeddingSource'}: the embedding table must be 2-D [V, d], got shape "
                             f"{embed.shape}")
        V, d = embed.shape
        ids = request_values(prompt, max_new_tokens, capacity, V, name or "EmbeddingSource")
        padded = np.zeros(capacity, dtype=np.int64)
        padded[:len(ids)] = ids
        self.token_in = InPort(shape=(2,))  # [token, lane]
        self.x_out = OutPort(shape=(d + 1,))
        self.prompt = Var(shape=(capacity,), init=padded)
        self.prompt_len = Var(shape=(1,), init=len(ids))
        self.max_new_tokens = Var(shape=(1,), init=int(max_new_tokens))
        self.count = Var(shape=(1,), init=0)
        self.token = Var(shape=(1,), init=-1)  # the token that entered last
