"""Activity counters of a Lava graph (docs/graph.md, "Activity counters"), named as the golden model names them.

    graph = build_graph(net, "fused", capacity)
    count_activity(graph)                                   # before the run: the activity Vars
    runner = GraphRunner(graph, lava_run_config("sim-fused"))   # selects the counting models (counting_run_config)
    runner.generate(prompt, n)
    counts = read_activity(graph)                           # an ActivityRecorder, as golden.py's

Counted on the fixed-point graphs of every CPU kind: fused blocks (``sim-fused``), decomposed ones (``sim``), fused
mixers in decomposed blocks (``sim-mixers``) and the layer stack (``sim-stack``). A fused block, mixer or stack
counts its part as the golden model does, the decomposed leaves count the messages they exchange; the head (final
norm, head norm, LM head) likewise: the fused head (``sim-fused``, ``sim-stack``) in one Var, else its leaves. Every counter is a Lava Var named
``activity`` (processes/activity.py); ``read_activity`` gets them and maps the processes' names to the golden
model's (lava_matmulfree/model/activity.py).
"""
from __future__ import annotations

import re

import numpy as np

from lava_matmulfree.errors import BackendError
from lava_matmulfree.model.activity import ActivityRecorder, layer_connections, layer_groups
from lava_matmulfree.processes import activity
from lava_matmulfree.processes.activity import counting_run_config  # noqa: F401  (re-exported)

COUNTED_KINDS = ("fused", "decomposed", "mixers", "stack")


def _head_processes(graph) -> list:
    """The LmHead, or the leaves of a head wired from them."""
    if graph.head is not None:
        return [graph.head]
    fan, agg, bc = graph.head_norm
    return [graph.final_norm, fan, agg, bc, graph.lm_head]


def count_activity(graph) -> None:
    """Give every counted process of ``graph`` (built, not yet run) its ``activity`` Var."""
    if graph.kind not in COUNTED_KINDS or graph.floating:
        raise BackendError(f"activity is counted on the fixed-point graphs (sim-fused, sim, sim-mixers, sim-stack), "
                           f"not on a {'float ' if graph.floating else ''}{graph.kind} graph")
    stack = [] if graph.stack is None else [graph.stack]
    for p in list(graph.blocks) + stack + _head_processes(graph):
        activity.enable(p)
    graph.counts_activity = True  # a GraphRunner of this graph selects the counting models (counting_run_config)


def golden_name(process_name: str) -> tuple[str, str]:
    """(golden name, "connection" or "neuron") of a counting leaf process named ``process_name``."""
    m = re.fullmatch(r"(l\d+)\.(i|f|g|o|gate|down)_proj(\.[uv])?", process_name)
    if m:
        return f"{m.group(1)}.{m.group(2)}", "connection"
    m = re.fullmatch(r"(l\d+|head)[._](attn|gate|mlp|down)?_?(fan_in|broadcast|aggregator)", process_name)
    if m:
        where, stage, what = m.groups()
        if what == "aggregator":
            return f"{where}.rms_aggregator", "neuron"
        return (f"{where}.{stage}.{what}" if stage else f"{where}.{what}"), "connection"
    if process_name == "lm_head":
        return "head.lm_head", "connection"
    if process_name == "final_norm":
        return "head.final_norm", "neuron"
    if re.fullmatch(r"l\d+\.(residual|mlgru|glu)", process_name):
        return process_name, "neuron"
    raise ValueError(f"{process_name}: not a process of the model's graph")


def _leaves(process):
    subs = list(process.procs) if hasattr(process, "procs") else []
    if not subs:
        yield process
    for s in subs:
        yield from _leaves(s)


def _add_leaf(rec: ActivityRecorder, process) -> None:
    if not hasattr(process, activity.VAR):
        return
    v = np.asarray(process.activity.get(), dtype=np.int64)
    lay = activity.layout(process)
    if lay is not None:  # a fused mixer or head (its Var holds several counters)
        rec.add_vector(v, *lay)
        return
    name, kind = golden_name(process.name)
    if kind == "neuron":
        rec.add_vector(v, [], [name])
    elif process.name.endswith(".v"):  # gate_proj's v half: the same spikes as u, its own synapses
        rec.add_vector(np.array([0, 0, 0, v[3]]), [name], [])
    else:
        rec.add_vector(v, [name], [])


def read_activity(graph) -> ActivityRecorder:
    """The counts of every run of ``graph`` so far (its runtime must still be up), in the golden model's names."""
    rec = ActivityRecorder()
    if graph.stack is not None:  # every layer's counters in the stack's one Var
        rec.add_vector(graph.stack.activity.get(), *activity.layout(graph.stack))
    for l, block in enumerate(graph.blocks):
        leaves = list(_leaves(block))
        if leaves == [block]:  # a fused block: its layer's counters in one Var
            rec.add_vector(block.activity.get(), layer_connections(l), layer_groups(l))
        else:
            for leaf in leaves:
                _add_leaf(rec, leaf)
    for p in _head_processes(graph):
        for leaf in _leaves(p):  # the fused head itself, or the leaves of its decomposition
            _add_leaf(rec, leaf)
    return rec


def difference(after: ActivityRecorder, before: ActivityRecorder | None) -> ActivityRecorder:
    """The counts of ``after`` less those of ``before`` (both read_activity of one graph): one request's counts."""
    out = ActivityRecorder()
    for name, c in after.connections.items():
        b = {} if before is None else before.connections.get(name, {})
        out.connections[name] = {f: v - b.get(f, 0) for f, v in c.items()}
    for name, g in after.neurons.items():
        b = {} if before is None else before.neurons.get(name, {})
        out.neurons[name] = {f: v - b.get(f, 0) for f, v in g.items()}
    out.weights, out.inputs = dict(after.weights), dict(after.inputs)
    return out
