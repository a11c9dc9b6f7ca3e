"""How a token travels through the process graph as events (docs/graph.md).

Every message between the model's processes is a vector of ``n + 1`` integers: ``n`` channel payloads and, last,
the **token lane**: 1 when the message carries a token (the sender's neurons spiked for it), 0 when nothing was
sent. On Loihi 2 the lane is one 1-bit axon next to the ``n`` graded ones; through a connection it is one more
synapse of weight 1 (``connections.py``), so a token's presence always travels with its data and arrives in the
same step. A neuron acts only on inputs whose lane is set; with nothing arriving it keeps its state and sends
nothing. No process knows a schedule or the global time step.

Latencies are those of Lava's conventions: a connection (``lava.proc.dense.process.Dense``) delivers what it
received one step later, a neuron receives, computes and sends in one step. The only fixed latencies a neuron
relies on are structural ones of its own wiring: an aggregator's answer comes back after the two connections of
a round trip. Everything else (how long a mixer takes) is absorbed by first-in-first-out queues.
"""
from __future__ import annotations

import numpy as np

#: Index of the token lane in every message vector (the last element).
LANE = -1
#: Steps from a channel neuron sending u^2 to it receiving the inverse RMS: fan-in connection, aggregator
#: (same step), broadcast connection.
AGGREGATOR_ROUND_TRIP = 2
#: Tokens that may wait in a residual neuron for a mixer's output (microcode/residual.ucode, FIFO_DEPTH). The
#: decomposed token mixer holds at most 4 + 2 tokens in flight (prefill streams one token per step).
MIXER_QUEUE_DEPTH = 8


def message(data, present: bool, dtype=np.int32) -> np.ndarray:
    """One message: ``data`` (n channels) and the token lane."""
    out = np.zeros(np.shape(data)[-1] + 1, dtype=dtype)
    if present:
        out[:LANE] = data
        out[LANE] = 1
    return out


def silence(n: int, dtype=np.int32) -> np.ndarray:
    """The message of a step without a token: n zero channels, lane 0."""
    return np.zeros(n + 1, dtype=dtype)


def split(msg) -> tuple[np.ndarray, bool]:
    """(channel payloads, token present) of a received message."""
    msg = np.asarray(msg)
    return msg[:LANE], bool(msg[LANE] != 0)
