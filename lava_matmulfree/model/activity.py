"""Activity counters: what the network sends and computes per token, counted from the golden model's integers.

An ``ActivityRecorder`` attached to a ``GoldenModel`` (``model.activity = ActivityRecorder()``; off, ``None``, by
default) adds up, over every call:

* per connection (a ternary projection, a norm's fan-in or broadcast): ``messages`` (input channels x tokens:
  the graded messages the sender's neurons could send), ``spikes`` (those that are non-zero: a graded spike is
  sent only then), ``bits`` (spikes x the message's payload bits: ``act_bits`` into a ternary matrix,
  ``state_bits`` for a norm's u^2 and inverse RMS) and ``synops`` (synaptic events: each non-zero input spike
  times the non-zero weights of its column). The token lane (docs/graph.md, "Tokens are events") is not counted.
* per neuron group (``residual``, ``mlgru``, ``glu``, ``rms_aggregator``; ``final_norm`` in the head):
  ``updates`` (neurons x the phases in which a token's input arrives: the residual neurons act on x, the attn
  norm's r, o, the mlp norm's r and down, five phases per token; the MLGRU on i/f/g together and r; the GLU on
  u/v together and r; an aggregator once per round) and ``rounds`` (aggregator rounds the group takes part in).

Names: connections ``l<k>.<p>`` for p in i, f, g, o, gate, down (the golden model's projection names) and
``l<k>.<stage>.fan_in`` / ``.broadcast`` for stage in attn, gate, mlp, down; the head ``head.lm_head``,
``head.fan_in``, ``head.broadcast``; groups ``l<k>.<group>``, ``head.final_norm``, ``head.rms_aggregator``.
The Lava process models count the same quantities from the messages they exchange (processes/activity.py) and
a test says the counts are equal (tests/test_activity.py).
"""
from __future__ import annotations

import numpy as np

#: Counters of a connection, and of a neuron group, in the order a flat vector holds them.
CONNECTION_FIELDS = ("messages", "spikes", "bits", "synops")
NEURON_FIELDS = ("updates", "rounds")
#: The ternary projections of a layer (golden names) and the norm stages of a layer.
PROJECTIONS = ("i", "f", "g", "o", "gate", "down")
NORM_STAGES = ("attn", "gate", "mlp", "down")
LAYER_GROUPS = ("residual", "mlgru", "glu", "rms_aggregator")
HEAD_GROUPS = ("final_norm", "rms_aggregator")
#: Which neuron group runs the channel side of each norm (docs/architecture.md, "One token through the graph").
NORM_GROUP = {"attn": "residual", "gate": "mlgru", "mlp": "residual", "down": "glu", "head": "final_norm"}


def layer_connections(l: int) -> list[str]:
    return [f"l{l}.{p}" for p in PROJECTIONS] + [f"l{l}.{s}.{e}" for s in NORM_STAGES for e in ("fan_in", "broadcast")]


def layer_groups(l: int) -> list[str]:
    return [f"l{l}.{g}" for g in LAYER_GROUPS]


def column_nonzeros(w: np.ndarray) -> np.ndarray:
    """Non-zero weights of each input column of ``w`` [n_out, n_in]: the synapses one input spike drives."""
    return np.count_nonzero(np.asarray(w), axis=0).astype(np.int64)


class ActivityRecorder:
    """Counts of one run (see the module docstring); ``connections`` and ``neurons`` map a name to a dict of
    integer counters; ``weights`` a connection to (its weights, of them non-zero)."""

    def __init__(self):
        self.connections: dict[str, dict[str, int]] = {}
        self.neurons: dict[str, dict[str, int]] = {}
        self.weights: dict[str, tuple[int, int]] = {}
        self.inputs: dict[str, int] = {}
        self._columns: dict[int, tuple] = {}  # id(weights) -> (weights, non-zeros per column, size)

    def connection(self, name: str, a: np.ndarray, w: np.ndarray, message_bits: int) -> None:
        """Messages ``a`` [..., n_in] into a connection of weights ``w`` [n_out, n_in]."""
        a = np.asarray(a)
        nz = (a != 0).reshape(-1, a.shape[-1])
        spikes = int(nz.sum())
        c = self.connections.setdefault(name, dict.fromkeys(CONNECTION_FIELDS, 0))
        c["messages"] += nz.size
        c["spikes"] += spikes
        c["bits"] += spikes * int(message_bits)
        cached = self._columns.get(id(w))
        if cached is None or cached[0] is not w:  # once per matrix (a packed one is unpacked to count)
            cached = self._columns[id(w)] = (w, column_nonzeros(w), int(np.prod(np.shape(w))))
        col = cached[1]
        c["synops"] += int(nz.sum(axis=0).astype(np.int64) @ col)
        self.weights[name] = (cached[2], int(col.sum()))
        self.inputs[name] = int(a.shape[-1])

    def neuron(self, name: str, neurons: int, tokens: int, rounds: int = 0) -> None:
        """One phase of ``neurons`` neurons for ``tokens`` tokens (and ``rounds`` aggregator rounds each)."""
        g = self.neurons.setdefault(name, dict.fromkeys(NEURON_FIELDS, 0))
        g["updates"] += int(neurons) * int(tokens)
        g["rounds"] += int(rounds) * int(tokens)

    # ------------------------------------------------------------------ flat vectors (a Lava Var per block)
    def vector(self, connections, groups) -> np.ndarray:
        """The counters of ``connections`` then ``groups``, in field order, as one int64 vector (zeros where
        nothing was counted)."""
        out = [self.connections.get(n, {}).get(f, 0) for n in connections for f in CONNECTION_FIELDS]
        out += [self.neurons.get(n, {}).get(f, 0) for n in groups for f in NEURON_FIELDS]
        return np.asarray(out, dtype=np.int64)

    def add_vector(self, v, connections, groups) -> None:
        """Add a vector laid out as ``vector`` (what a Lava model counted) to these counts."""
        v = [int(x) for x in np.asarray(v).reshape(-1)]
        k = len(CONNECTION_FIELDS)
        for i, n in enumerate(connections):
            c = self.connections.setdefault(n, dict.fromkeys(CONNECTION_FIELDS, 0))
            for j, f in enumerate(CONNECTION_FIELDS):
                c[f] += v[i * k + j]
        base = len(connections) * k
        for i, n in enumerate(groups):
            g = self.neurons.setdefault(n, dict.fromkeys(NEURON_FIELDS, 0))
            for j, f in enumerate(NEURON_FIELDS):
                g[f] += v[base + i * len(NEURON_FIELDS) + j]

    def counts(self) -> dict:
        """{"connections": {...}, "neurons": {...}}: plain dicts of the non-zero-named counters (for comparing)."""
        return {"connections": {k: dict(v) for k, v in sorted(self.connections.items())},
                "neurons": {k: dict(v) for k, v in sorted(self.neurons.items())}}


# ---------------------------------------------------------------------- the profile (`lava-matmulfree profile`)
PROFILE_FORMAT = "lava-matmulfree activity profile 1"
#: The projections under the names of the cost model's mapping (i, f and g share one input).
PROFILE_NAMES = {"i": "i_proj", "f": "f_proj", "g": "g_proj", "o": "o_proj", "gate": "gate_proj", "down": "down_proj"}


def _connection_entry(rec: ActivityRecorder, name: str, tokens: int) -> dict:
    c = rec.connections[name]
    size, nonzero = rec.weights[name]
    return {"density": c["spikes"] / c["messages"] if c["messages"] else 0.0,
            "spikes_per_token": c["spikes"] / tokens, "bits_per_token": c["bits"] / tokens,
            "synops_per_token": c["synops"] / tokens, "inputs": rec.inputs[name],
            "weight_nonzero_fraction": nonzero / size if size else 0.0}


def _neuron_entry(rec: ActivityRecorder, name: str, tokens: int) -> dict:
    g = rec.neurons[name]
    return {"updates_per_token": g["updates"] / tokens, "rounds_per_token": g["rounds"] / tokens}


def profile(rec: ActivityRecorder, tokens: int, num_layers: int, act_bits: int, model: str, source: str) -> dict:
    """The activity profile of ``tokens`` tokens counted in ``rec`` (docs/graph.md, "Activity counters"): per
    layer and projection, the fraction of input messages that are non-zero graded spikes (``density``), spikes,
    bits and synaptic events per token; per neuron group, updates and aggregator rounds per token; ``connections``
    averages each projection's figures over the layers."""
    if tokens < 1:
        raise ValueError("an activity profile needs at least one token")
    layers = []
    for l in range(num_layers):
        layers.append({"layer": l,
                       "connections": {n: _connection_entry(rec, f"l{l}.{p}", tokens) for p, n in PROFILE_NAMES.items()},
                       "neurons": {g: _neuron_entry(rec, f"l{l}.{g}", tokens) for g in LAYER_GROUPS}})
    mean = {}
    for n in PROFILE_NAMES.values():
        entries = [layer["connections"][n] for layer in layers]
        mean[n] = {k: float(np.mean([e[k] for e in entries])) for k in entries[0]}
        mean[n]["inputs"] = int(entries[0]["inputs"])
    head = {"connections": {"lm_head": _connection_entry(rec, "head.lm_head", tokens)},
            "neurons": {g: _neuron_entry(rec, f"head.{g}", tokens) for g in HEAD_GROUPS}}
    return {"format": PROFILE_FORMAT, "model": model, "source": source, "tokens": int(tokens),
            "act_bits": int(act_bits), "connections": mean, "layers": layers, "head": head}


def synops_by_part(rec: ActivityRecorder, tokens: int, num_layers: int) -> dict[str, list[float]]:
    """SynOps per token of each layer split by layer part: the token mixer's input (i, f, g) and output (o)
    projections, the channel mixer's gate and down projections, the norms' fan-in and broadcast."""
    parts = {"i, f, g": ("i", "f", "g"), "o": ("o",), "gate": ("gate",), "down": ("down",),
             "norms": tuple(f"{s}.{e}" for s in NORM_STAGES for e in ("fan_in", "broadcast"))}
    return {part: [sum(rec.connections[f"l{l}.{n}"]["synops"] for n in names) / tokens for l in range(num_layers)]
            for part, names in parts.items()}
