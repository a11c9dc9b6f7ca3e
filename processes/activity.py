"""Activity counters of the Lava process models (docs/graph.md, "Activity counters"): the golden model's counts
(lava_matmulfree/model/activity.py), counted from the messages the processes exchange.

Off by default. ``enable(process)`` gives a process an ``activity`` Var (int64 counters a user reads with
``.get()``, as any Lava Var) and, for a hierarchical process, asks its sub-process model to enable its leaves;
``counting_run_config(run_cfg)`` makes a run config select, for every process holding that Var, the counting twin
of the model it would select (the same model with the Var's type and ``COUNTS`` set). Processes without the Var
get their usual models, which count nothing and cost nothing more.

What each model counts (the token lane itself is not counted):

* a connection (Lava's ``Dense``, through ``connections.PyTernaryDenseModel``): per message whose lane is set,
  ``CONNECTION_FIELDS`` = messages (its input channels), spikes (the non-zero ones), bits (spikes x
  ``num_message_bits``), synops (each non-zero input times the non-zero weights of its column);
* a microcoded neuron population (``neuron.PyMicrocodedFixedModel``): ``NEURON_FIELDS`` = updates (its neurons x
  the phases whose input lane is set in the step: ``PHASES``) and rounds (aggregator rounds: arrivals on
  ``ROUND_PORTS``);
* a fused block (``block.models.PyFusedBlockFixed``): its layer's counters laid out as
  ``ActivityRecorder.vector(layer_connections(l), layer_groups(l))``, counted by the golden model it runs;
* a fused mixer (``PyFusedTokenMixerFixed``, ``PyFusedChannelMixerFixed``), the layer stack
  (``PyFusedStackFixed``) and the fused head (``PyLmHeadFixed``) the same way, laid out as ``layout(process)`` says
  (a mixer: its projections, its norm's fan-in and broadcast, its neuron group and its aggregator round; the stack:
  every layer's vector in turn; the head: ``head_layout``).
"""
from __future__ import annotations

import numpy as np
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.process.variable import Var

from lava_matmulfree.model.activity import (CONNECTION_FIELDS, NEURON_FIELDS, layer_connections,  # noqa: F401
                                            layer_groups)

VAR = "activity"
FLAG = "activity"  # the proc_params key that asks a sub-process model to enable its leaves
#: Input phases of each neuron process: ports whose lanes arrive together form one phase (one update per neuron).
PHASES = {"Residual": (("x_in",), ("r_attn",), ("o_in",), ("r_mlp",), ("down_in",)),
          "Mlgru": (("acc_i", "acc_f", "acc_g"), ("r_in",)),
          "Glu": (("u_in", "v_in"), ("r_in",)),
          "FinalNorm": (("x_in",), ("r_in",)),
          "RmsAggregator": (("sq_in",),)}
#: The ports on which an aggregator round arrives (the inverse RMS; the aggregator's own u^2 sums).
ROUND_PORTS = {"Residual": ("r_attn", "r_mlp"), "Mlgru": ("r_in",), "Glu": ("r_in",), "FinalNorm": ("r_in",),
               "RmsAggregator": ("sq_in",)}


def mixer_layout(kind: str, l: int) -> tuple[list, list]:
    """(connections, groups) a fused mixer of layer ``l`` counts (``kind``: TokenMixer or ChannelMixer)."""
    if kind == "TokenMixer":
        return ([f"l{l}.{p}" for p in "ifgo"] + [f"l{l}.gate.fan_in", f"l{l}.gate.broadcast"],
                [f"l{l}.mlgru", f"l{l}.rms_aggregator"])
    return ([f"l{l}.gate", f"l{l}.down", f"l{l}.down.fan_in", f"l{l}.down.broadcast"],
            [f"l{l}.glu", f"l{l}.rms_aggregator"])


def stack_layout(num_layers: int) -> tuple[list, list]:
    """(connections, groups) of the layer stack: every layer's, layer by layer."""
    return ([n for l in range(num_layers) for n in layer_connections(l)],
            [n for l in range(num_layers) for n in layer_groups(l)])


def head_layout() -> tuple[list, list]:
    """(connections, groups) of the fused head: the head norm's fan-in and broadcast, the LM head; the final norm
    and the head aggregator."""
    return ["head.fan_in", "head.broadcast", "head.lm_head"], ["head.final_norm", "head.rms_aggregator"]


def layout(process) -> tuple[list, list] | None:
    """(connections, groups) of a process whose ``activity`` Var holds several counters (a block, a mixer, the
    stack, the head), in golden names; None for a leaf counting one connection or one neuron group."""
    name, p = type(process).__name__, process.proc_params
    if name == "MMFreeBlock":
        return layer_connections(p["layer"]), layer_groups(p["layer"])
    if name in ("TokenMixer", "ChannelMixer"):
        return mixer_layout(name, p["layer"])
    if name == "MMFreeStack":
        return stack_layout(p["net"].cfg.num_layers)
    if name == "LmHead":
        return head_layout()
    return None


def var_size(process) -> int:
    """The counters of ``process``: a Dense's connection fields, a neuron's, or a block's, mixer's or the stack's
    (``layout``; counted by their fused models, by their leaves when decomposed)."""
    from lava.proc.dense.process import Dense

    name = type(process).__name__
    if type(process) is Dense:
        return len(CONNECTION_FIELDS)
    if name in PHASES:
        return len(NEURON_FIELDS)
    lay = layout(process)
    if lay is not None:
        return len(lay[0]) * len(CONNECTION_FIELDS) + len(lay[1]) * len(NEURON_FIELDS)
    raise ValueError(f"{name}: no activity counters (counted: Dense, the microcoded neurons, MMFreeBlock, "
                     "TokenMixer, ChannelMixer, MMFreeStack, LmHead)")


def enable(process) -> None:
    """Give ``process`` its ``activity`` Var (before the graph is compiled) and mark it for its sub-models. A
    Dense must be one of the model's connections (connections.ternary_connection: the token lane last)."""
    if process.proc_params.get(FLAG) is None:  # Lava's parameters take a new key, never a second value
        process.proc_params[FLAG] = True
    n = var_size(process)
    if n and not hasattr(process, VAR):
        var = Var(shape=(n,), init=np.zeros(n, dtype=np.int64))
        setattr(process, VAR, var)
        process._init_proc_member_obj({VAR: var})
        process.vars.add_members({VAR: var})


def enable_if_asked(proc_params, *processes) -> None:
    """In a sub-process model: enable the leaves it made when its parent was enabled."""
    if proc_params.get(FLAG):
        for p in processes:
            enable(p)


_TWINS: dict = {}


def counting_model(model_cls):
    """The counting twin of a Python process model: the same class with the ``activity`` Var typed and
    ``COUNTS`` set (a module-level name, so Lava's workers find it)."""
    twin = _TWINS.get(model_cls)
    if twin is None:
        name = f"Counting{model_cls.__name__}"
        twin = type(name, (model_cls,), {VAR: LavaPyType(np.ndarray, np.int64, precision=64), "COUNTS": True,
                                         "__module__": __name__, "__qualname__": name})
        _TWINS[model_cls] = globals()[name] = twin
    return twin


def counting_run_config(run_cfg):
    """``run_cfg``, selecting the counting twin of the model of every process that holds an ``activity`` Var."""
    base = type(run_cfg)
    if getattr(base, "_counts_activity", False):
        return run_cfg

    def select(self, proc, proc_models):
        model = base.select(self, proc, proc_models)
        if hasattr(proc, VAR) and getattr(model, "COUNTS", None) is False:
            return counting_model(model)
        return model

    run_cfg.__class__ = type(f"Counting{base.__name__}", (base,), {"select": select, "_counts_activity": True})
    return run_cfg
