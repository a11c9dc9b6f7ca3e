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
  ``ActivityRecorder.vector(layer_connections(l), layer_groups(l))``, counted by the golden model it runs.
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


def var_size(process) -> int:
    """The counters of ``process``: a Dense's connection fields, a neuron's, or a fused block's whole layer."""
    from lava.proc.dense.process import Dense

    name = type(process).__name__
    if type(process) is Dense:
        return len(CONNECTION_FIELDS)
    if name in PHASES:
        return len(NEURON_FIELDS)
    if name == "MMFreeBlock":
        l = process.proc_params["layer"]
        return len(layer_connections(l)) * len(CONNECTION_FIELDS) + len(layer_groups(l)) * len(NEURON_FIELDS)
    if name in ("TokenMixer", "ChannelMixer"):
        return 0  # only their leaves count (the fused mixers do not)
    raise ValueError(f"{name}: no activity counters (counted: Dense, the microcoded neurons, MMFreeBlock)")


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
