"""The paper's deployment and what it measured, this project's deployment, and the variants beyond the paper
(docs/cost_model.md).

:data:`PAPER` holds the paper's figures (the anchors :mod:`.calibration` fits on and reports against);
:data:`PRESETS` are the deployments ``estimate --preset`` names, as overrides of :class:`~.hardware.Loihi2Spec`
and :class:`~.core_groups.MappingOptions`; :data:`VARIANTS` are changes of the paper's deployment the report
costs with the same constants. :func:`loihi_model` builds the cost model of one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from lava_matmulfree.config import ModelConfig
from lava_matmulfree.loihi.core_groups import MappingOptions
from lava_matmulfree.loihi.cost_model import LoihiCostModel
from lava_matmulfree.loihi.hardware import CostModelError, Loihi2Spec, const, with_overrides
from lava_matmulfree.loihi.mapping import build_mapping


@dataclass(frozen=True)
class PaperAnchors:
    """What the paper measured (370M, batch 1; Abreu et al. 2025, arXiv:2503.18002, Tables 1-3 as publicly
    transcribed). Ranges are (low, high) over the transformer baselines."""

    prompt_tokens: int = const(500, "paper", "high", "prompt length of the TTFT comparison")
    loihi_decode_tokens_per_s: float = const(41.5, "paper", "high", "")
    loihi_decode_mj_per_token: float = const(405.0, "paper", "high", "")
    loihi_prefill_tokens_per_s: float = const(6632.0, "paper", "high", "")
    loihi_prefill_mj_per_token: float = const(3.7, "paper", "high", "")
    loihi_ttft_s: float = const(0.099, "paper", "high", "")
    loihi_chips: int = const(24, "paper", "high", "one block per chip")
    loihi_system_chips: int = const(32, "paper", "high", "")
    loihi_head_extra_chips: int = const(7, "paper", "high", "the LM head would need 7 more chips")
    jetson_decode_tokens_per_s: tuple = const((12.6, 15.4), "paper", "high", "")
    jetson_decode_mj_per_token: tuple = const((719.0, 1200.0), "paper", "high", "")
    jetson_prefill_tokens_per_s: tuple = const((627.0, 3861.0), "paper", "high", "")
    jetson_prefill_mj_per_token: tuple = const((4.4, 17.9), "paper", "high", "")
    jetson_ttft_s: float = const(0.659, "paper", "high", "")
    tolerance: float = const(0.25, "assumed", "high", "goal for every predicted cell")


PAPER = PaperAnchors()

# cores_per_block placeholders, resolved against the hardware by resolve_options
ONE_CHIP = -1  # the hardware's cores_per_chip (one block per chip)
FULL_SYSTEM = -2  # the whole system's cores shared by the blocks

# deployments: overrides of Loihi2Spec ("loihi2"), MappingOptions ("options") and the GPUs
PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "description": "the paper's deployment: 8-bit dense weights and 16-bit spikes (W8A16), each block on chips "
                       "of its own ({chips} chips for {layers} layers; the paper's 370M: 24 for 24) of a "
                       "{system_chips}-chip system (the paper's: 32), embedding and LM head on the host",
        "loihi2": {"dense_weight_bits": 8},
        "options": {"encoding": "dense", "cores_per_block": ONE_CHIP, "head_on_chip": False,
                    "system_chips": PAPER.loihi_system_chips, "act_bits": 16},
    },
    "project": {
        "description": "this project's mapping: 2-bit ternary weights, dense or sparse chosen per matrix, "
                       "blocks packed in a row, LM head on chip, the system as large as the mapping",
        "loihi2": {}, "options": {},
    },
}

# what the paper did not build, each a change of the paper preset and the reason it moves
VARIANTS: list[tuple[str, dict[str, Any], str]] = [
    ("paper deployment", {}, "the reference"),
    ("2-bit weights, dense/sparse per matrix", {"loihi2": {"dense_weight_bits": 2}, "options": {"encoding": "auto"}},
     "a quarter of the synapse memory, but one block per chip keeps 24 chips and all 120 cores of each (the "
     "spare ones spread the synaptic work): the same step, the same static power"),
    ("2-bit, blocks packed onto fewer chips",
     {"loihi2": {"dense_weight_bits": 2}, "options": {"encoding": "auto", "cores_per_block": 0, "system_chips": 0}},
     "7 chips on one board: no barrier across boards (the fitted board_sync_s drops out) and 7 chips of "
     "static power instead of 32; 4x the synaptic work per core"),
    ("LM head on chip (8-bit)", {"options": {"head_on_chip": True}},
     "the last residual fans out to every head core (~1024 x 260 messages over the chip links per token), "
     "3 more hops, logits instead of the residual over the host link"),
    ("fully used system (blocks over all 32 chips)", {"options": {"cores_per_block": FULL_SYSTEM}},
     "each block gets 32 x 120 / 24 = 160 cores: less work per core, but blocks straddle chips"),
]


def resolve_options(opts: MappingOptions, hw: Loihi2Spec, cfg: ModelConfig) -> MappingOptions:
    """Replace the cores_per_block placeholders by core counts."""
    if opts.cores_per_block == ONE_CHIP:
        return dataclasses.replace(opts, cores_per_block=hw.cores_per_chip)
    if opts.cores_per_block == FULL_SYSTEM:
        system = opts.system_chips or PAPER.loihi_system_chips
        return dataclasses.replace(opts, cores_per_block=system * hw.cores_per_chip // cfg.num_layers)
    return opts


def apply(hw: Loihi2Spec, opts: MappingOptions, change: Mapping[str, Any]) -> tuple[Loihi2Spec, MappingOptions]:
    return (dataclasses.replace(hw, **change.get("loihi2", {})),
            dataclasses.replace(opts, **change.get("options", {})))


def preset_change(name: str) -> dict[str, Any]:
    """The overrides of the preset ``name`` (a CostModelError for an unknown one)."""
    if name not in PRESETS:
        raise CostModelError(f"unknown preset {name!r} (known: {', '.join(PRESETS)})")
    return PRESETS[name]


def preset_changed(chosen: Mapping[str, Any], hw: Loihi2Spec, cfg: ModelConfig, options: Mapping[str, Any],
                   loihi2: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The settings of the preset ``chosen`` that a user's mapping ``options`` and Loihi 2 overrides replaced:
    name -> {"preset": its value, "set": the user's}."""
    h, o = apply(hw, MappingOptions(), chosen)
    o = resolve_options(o, h, cfg)
    out = {f"options.{k}": {"preset": getattr(o, k), "set": v} for k, v in options.items() if getattr(o, k) != v}
    out.update({f"loihi2.{k}": {"preset": getattr(h, k), "set": getattr(with_overrides(h, {k: v}), k)}
                for k, v in loihi2.items() if k in chosen["loihi2"]})
    return out


def preset(name: str, hw: Loihi2Spec, opts: MappingOptions = MappingOptions()
           ) -> tuple[Loihi2Spec, MappingOptions]:
    return apply(hw, opts, preset_change(name))


def loihi_model(cfg: ModelConfig, hw: Loihi2Spec, opts: MappingOptions, instructions) -> LoihiCostModel:
    """The cost model of a deployment (its placeholders resolved)."""
    return LoihiCostModel(build_mapping(cfg, hw, resolve_options(opts, hw, cfg)), instructions)
