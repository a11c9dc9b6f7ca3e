"""Traffic on the mapping (docs/activity.md, "Traffic"): messages per core and per chip-to-chip link per token,
the busiest of each, and what the step time would be if it were set by the average core instead of the slowest.

:class:`~.cost_model.LoihiCostModel` already charges each group the work of its busiest core (the group's
neurons per core rounded up) and lasts a step as long as the busiest resource: the barrier waits for the
slowest core. :func:`mean_core_model` is the counterfactual with each group's average core, so the report can
say how much that choice moves the figures.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from lava_matmulfree.loihi.core_groups import CoreGroup, LoihiMapping
from lava_matmulfree.loihi.cost_model import LoihiCostModel


def traffic(cm: LoihiCostModel) -> dict[str, Any]:
    """Messages per token on the busiest core of each group and on each chip boundary (chips in a row; the
    host link's are the injected embedding and the output); the busiest core and link."""
    m = cm.mapping
    sent, recv = cm.sent.sum(axis=1), cm.received.sum(axis=1)
    groups = [{"group": g.name, "layer": g.layer, "cores": g.cores,
               "first_core": g.first_core, "sent_per_core": float(sent[i]), "received_per_core": float(recv[i]),
               "messages_per_core": float(sent[i] + recv[i])} for i, g in enumerate(m.groups)]
    busiest = max(groups, key=lambda r: r["messages_per_core"])
    links = cm.link_messages.sum(axis=1)
    link_rows = [{"link": f"chip {i} - chip {i + 1}", "messages_per_token": float(v)} for i, v in enumerate(links)]
    host = float(sum(h.n_dst for h in m.hops if h.kind == "inject") + sum(h.readout for h in m.hops))
    out = {"per_group": groups, "busiest_core": busiest, "chip_links": link_rows,
           "busiest_link": max(link_rows, key=lambda r: r["messages_per_token"]) if link_rows else None,
           "host_link_messages_per_token": host,
           "messages_per_token": float(sum(c.messages for c in cm.hop_costs))}
    return out


class _MeanCoreGroup(CoreGroup):
    """A core group whose every core holds the average share of its neurons (a counterfactual)."""

    @property
    def neurons_per_core(self) -> float:  # type: ignore[override]
        return self.neurons / max(1, self.cores_per_split)


def mean_core_model(cm: LoihiCostModel) -> LoihiCostModel:
    """The same mapping costed with each group's average core instead of its busiest (rounded-up) one."""
    m = cm.mapping
    groups = []
    for g in m.groups:
        g2 = copy.copy(g)
        g2.__class__ = _MeanCoreGroup
        groups.append(g2)
    return LoihiCostModel(LoihiMapping(m.cfg, m.hw, m.options, groups, m.hops), cm.instructions)


def figures(cm: LoihiCostModel, prompt_tokens: int) -> dict[str, float]:
    """The headline figures of one cost model (the report's platform columns, SynOps and messages)."""
    t = cm.totals()
    return {**cm.headline(prompt_tokens), "dynamic_mj_per_token": 1e3 * cm.dynamic_energy_per_token_j,
            "synops_per_token": t["synops_per_token"], "ternary_synops_per_token": t["ternary_synops_per_token"],
            "messages_per_token": t["messages_per_token"]}


def slowest_vs_mean(cm: LoihiCostModel, prompt_tokens: int) -> dict[str, Any]:
    """The figures with the step set by the slowest core (the model) and by the average core, and the change."""
    slow, mean = figures(cm, prompt_tokens), figures(mean_core_model(cm), prompt_tokens)
    change = {k: (slow[k] / mean[k] - 1.0) if mean[k] else 0.0 for k in slow}
    imbalance = [{"group": g.name, "busiest": g.neurons_per_core,
                  "mean": g.neurons / max(1, g.cores_per_split)} for g in cm.mapping.groups
                 if g.role == "synapses"]
    worst = max(imbalance, key=lambda r: r["busiest"] / r["mean"]) if imbalance else None
    return {"slowest_core": slow, "mean_core": mean, "change": change, "most_unbalanced": worst,
            "max_change": float(np.max(np.abs(list(change.values()))))}
