"""The cost report of a config (docs/cost_model.md): the three constants fitted on the paper's anchors, the
chosen preset costed on Loihi 2 beside the GPU baselines, a sweep over prompt lengths, the variants beyond the
paper, the per-layer and per-hop tables and every constant with its source; and the same as text tables.

:func:`build_report` returns it as a JSON-ready dict (:func:`report_json` is its text), :func:`format_report`
prints it (:mod:`.report_text`); :mod:`.outputs` writes both with the plots.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from lava_matmulfree.config import load_config
from lava_matmulfree.loihi.activity import (HEAD_CONNECTION, LAYER_CONNECTIONS, activity_label, choose_activity,
                                            model_config)
from lava_matmulfree.loihi.calibration import (FIT_FOLLOWS, FIT_JOINT, FIT_TARGET, JETSON_EFFICIENCY, anchor_table,
                                               calibrate)
from lava_matmulfree.loihi.core_groups import MappingOptions
from lava_matmulfree.loihi.cost_model import HopCost, LoihiCostModel, resolve_instruction_counts
from lava_matmulfree.loihi.gpu_baseline import BASELINES, baselines_for, is_paper_model, model_axis
from lava_matmulfree.loihi.gpu_runtimes import gpu_estimate, gpu_rows
from lava_matmulfree.loihi.hardware import (DEFAULT_SPECS, GAUSSIAN_ZERO_FRACTION, GPU_NOTES, GPU_SECTIONS,
                                            HW_SECTIONS, CostModelError, GpuSpec, coerce,
                                            load_hardware, provenance, short_name, with_overrides)
from lava_matmulfree.loihi.presets import (PAPER, PRESETS, VARIANTS, apply, loihi_model, preset_change,
                                           preset_changed, resolve_options)
from lava_matmulfree.loihi.traffic import figures, slowest_vs_mean, traffic
from lava_matmulfree.loihi.verdict import verdict

DEFAULT_PROMPT_LENGTHS = (16, 64, 256, 500, 1024, 2048, 4096, 8192, 16384)
PAPER_MEASURED = "paper's measurement, 24 chips"  # the verdict's row of the paper's own Loihi 2 figures


OVERRIDE_SOURCE = "override (--set)"  # how an error in a user's override names where the value came from


def _split_overrides(overrides: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Route ``NAME=VALUE`` overrides to MappingOptions, Loihi2Spec or a GPU by field name; ``loihi2.NAME``,
    ``jetson.NAME``, ``h100.NAME``, ``h200.NAME`` and ``options.NAME`` say where explicitly (GPU fields need
    it)."""
    targets = {"options": {f.name for f in fields(MappingOptions)},
               **{k: {f.name for f in fields(spec)} for k, spec in HW_SECTIONS.items()}}
    out: dict[str, dict[str, Any]] = {k: {} for k in targets}
    for k, v in overrides.items():
        section, _, name = k.rpartition(".")
        if section:
            if section not in targets:
                raise CostModelError(f"unknown override {k!r}: no section {section!r} (sections: "
                                     f"{', '.join(targets)}; a mapping option is options.NAME or NAME)")
            if name not in targets[section]:
                raise CostModelError(f"unknown override {k!r}: no field {name!r} in {section!r} "
                                     f"(its fields: {', '.join(sorted(targets[section]))})")
            out[section][name] = v
            continue
        where = [t for t in ("options", "loihi2") if k in targets[t]]
        if not where:
            if k in targets["jetson"]:
                hint = "; a GPU's field needs its name: jetson.NAME, h100.NAME or h200.NAME"
            else:
                import difflib

                near = difflib.get_close_matches(k, [f"{s}.{n}" if s not in ("options", "loihi2") else n
                                                     for s, names in targets.items() for n in names], n=1)
                hint = (f" (did you mean {near[0]}?)" if near else "") + (
                    "; a field is named NAME or SECTION.NAME (loihi2, options; jetson, h100, h200), besides "
                    "anchor_tokens and activity; the JSON report's `constants` lists every hardware field")
            raise CostModelError(f"unknown override {k!r}: not a mapping option or Loihi 2 field{hint}")
        out[where[0]][k] = v
    return out


def _typed_options(values: Mapping[str, Any]) -> dict[str, Any]:
    """The user's mapping options, each checked against its type and range (text parsed as ``--set`` gives it:
    :func:`~.hardware.coerce`) on the default options: one clear line for a bad one. The presets' placeholders
    (a negative cores_per_block) are not the user's to set."""
    opts = with_overrides(MappingOptions(), values, OVERRIDE_SOURCE)
    return {k: getattr(opts, k) for k in values}


def _anchor_tokens(value) -> int:
    t = coerce("int", value, f"{OVERRIDE_SOURCE}: anchor_tokens")
    if t < 1:
        raise CostModelError(f"{OVERRIDE_SOURCE}: anchor_tokens must be >= 1, got {t}")
    return t


def loihi_platform(cm: LoihiCostModel, T: int) -> dict[str, Any]:
    """The per-platform figures of the JSON report (:meth:`~.cost_model.LoihiCostModel.headline`: ``prefill_*``
    over the whole T-token prompt, as the GPUs'; ``prefill_steady_*`` with the pipeline full, as the paper
    measured), the mapping's size, and where its LM head runs."""
    return {**cm.headline(T),
            "chips": cm.mapping.chips, "system_chips": cm.mapping.system_chips, "cores": cm.mapping.cores,
            "boards": cm.hw.boards(cm.mapping.chips), "barrier_s": cm.barrier_s,
            "pipeline_depth": cm.pipeline_depth, "static_power_w": cm.static_power_w,
            "dynamic_mj_per_token": 1e3 * cm.dynamic_energy_per_token_j,
            "act_bits": cm.mapping.options.act_bits, "head_on_chip": cm.mapping.options.head_on_chip}


def gpu_platform(shape, T: int, gpu: GpuSpec, runtime: str = "eager") -> dict[str, Any]:
    """A GPU baseline at batch 1 (eager PyTorch, as the paper's), its energy from the board power model; its
    prefill figures are its prompt pass's (T / TTFT, energy / T)."""
    e = gpu_estimate(shape, T, gpu, runtime)
    return {"ttft_s": e["ttft_s"], "prefill_tokens_per_s": e["prefill_tokens_per_s"],
            "decode_tokens_per_s": e["decode_tokens_per_s"],
            "prefill_mj_per_token": 1e3 * e["prefill_energy_per_token_j"],
            "decode_mj_per_token": 1e3 * e["decode_energy_per_token_j"], "chips": None,
            "gpu": gpu.name, "model": shape.name, "params": shape.params, "dtype": gpu.dtype, "runtime": runtime,
            "power_limit_w": gpu.power_w, "prefill_power_w": e["prefill_power_w"],
            "decode_power_w": e["decode_power_w"], "fits_in_memory": e["fits_in_memory"],
            "peak_bytes": e["peak_bytes"], "prefill_bound": e["prefill_bound"], "decode_bound": e["decode_bound"]}


def build_report(config_name: str, prompt_lengths: Sequence[int] = DEFAULT_PROMPT_LENGTHS, preset: str = "paper",
                 **overrides) -> dict[str, Any]:
    """Everything ``estimate_main`` prints and saves, as a JSON-ready dict.

    The three fitted constants are fitted on the paper preset (:mod:`.calibration`), with the overrides applied
    to everything else; an override of a fitted constant keeps it as given. Then ``preset`` is predicted.
    Overrides: ``instructions`` (mapping or file), ``hw_file`` (TOML with [loihi2]/[jetson]/[h100]/[h200]),
    ``anchor_tokens``, ``activity`` (a profile file, 'dense', or 'auto': :func:`~.activity.choose_activity`; the
    calibration and its anchors stay dense, docs/activity.md), and any field of MappingOptions, Loihi2Spec
    (plain or ``loihi2.NAME``) or a GPU (``jetson.NAME``, ``h100.NAME``, ``h200.NAME``). A value may be text, as
    ``estimate --set NAME=VALUE`` gives it: it is parsed by its field's type (:func:`~.hardware.coerce`). The
    report records the overrides (``overrides``), and every constant they set reads as user-set."""
    overrides = dict(overrides)
    activity_arg = overrides.pop("activity", overrides.pop("options.activity", "auto"))
    instructions, instr_source = resolve_instruction_counts(overrides.pop("instructions", None))
    if "instructions_source" in overrides:
        instr_source = overrides.pop("instructions_source")
    hw_file = overrides.pop("hw_file", None)
    specs = load_hardware(hw_file)
    from_file = {k: {f.name for f in fields(specs[k]) if getattr(specs[k], f.name) != getattr(DEFAULT_SPECS[k], f.name)}
                 for k in HW_SECTIONS}  # what the hardware file set
    T = _anchor_tokens(overrides.pop("anchor_tokens", PAPER.prompt_tokens))
    parts = _split_overrides(overrides)
    hw = with_overrides(specs["loihi2"], parts["loihi2"], OVERRIDE_SOURCE)
    gpus = {k: with_overrides(specs[k], parts[k], OVERRIDE_SOURCE) for k in GPU_SECTIONS}
    user_options = _typed_options(parts["options"])
    user_set = {k: set(parts[k]) | from_file[k] for k in HW_SECTIONS}
    recorded = {**{f"options.{k}": v for k, v in user_options.items()},
                **{f"{k}.{n}": getattr(hw if k == "loihi2" else gpus[k], n) for k in HW_SECTIONS for n in parts[k]}}
    chosen = preset_change(preset)
    cfg = model_config(config_name)  # a shipped model's name too (docs/activity.md)
    paper_model = is_paper_model(cfg)
    deploy_bits = dataclasses.replace(apply(hw, MappingOptions(), chosen)[1], **user_options).act_bits
    headline, beside, activity_why = choose_activity(activity_arg, cfg, deploy_bits)
    auto_activity = str(activity_arg).lower() == "auto"

    # 1. calibration: on the paper preset of the 370M model (the anchors are its figures)
    fixed = user_set["loihi2"] | {f"jetson.{k}" for k in user_set["jetson"]}
    cal_cfg = cfg if paper_model else load_config("370m").model
    hw, gpus["jetson"], fitted = calibrate(cal_cfg, hw, gpus["jetson"], instructions, fixed)

    def model(change, cfg_=cfg, activity=headline):
        h, o = apply(hw, MappingOptions(), change)
        h = with_overrides(h, parts["loihi2"], OVERRIDE_SOURCE)
        o = dataclasses.replace(o, **user_options, activity=activity)
        return loihi_model(cfg_, h, o, instructions)

    # 2. the anchors: the paper preset's predictions next to the paper's figures (on the dense assumption, as
    # the calibration: docs/activity.md, "Which profile"); the paper's prefill figures are steady-state
    paper_cm = model(PRESETS["paper"], cal_cfg, None)
    gpu_at_anchor = {f"{g}/{k}": gpu_platform(shape, PAPER.prompt_tokens, gpus[g])
                     for g in GPU_SECTIONS for k, shape in BASELINES.items()}
    # what each anchor is to the fit: one constant on one anchor reproduces it; one on two reproduces their product
    # only (each cell misses by the factor it cannot close); a cell computed from a fitted one follows from it
    fitted_on = {a: FIT_TARGET if len(r["anchors"]) == 1 else FIT_JOINT for r in fitted for a in r["anchors"]}
    if any(r["constant"] == JETSON_EFFICIENCY for r in fitted):
        # the Llama baseline's prefill rate and energy follow from its fitted TTFT (T / TTFT, power x TTFT / T)
        name = short_name(BASELINES["llama370m"].name)
        fitted_on |= {f"Jetson prefill {q} ({name})": FIT_FOLLOWS for q in ("tokens/s", "mJ/token")}
    anchors = anchor_table(loihi_platform(paper_cm, PAPER.prompt_tokens), gpu_at_anchor, fitted_on)

    # 3. the chosen preset
    cm = model(chosen)
    m = cm.mapping
    if 0 < user_options.get("system_chips", 0) < m.chips:
        raise CostModelError(f"{OVERRIDE_SOURCE}: system_chips={user_options['system_chips']}: preset '{preset}' "
                             f"maps {config_name} onto {m.chips} chips, and a system holds at least the chips it "
                             f"runs on (0: as many as the mapping takes)")
    platforms = {"loihi2": {**loihi_platform(cm, T), "activity": activity_label(headline, cfg, m.options.act_bits)}}
    compared = baselines_for(cfg)
    for g in GPU_SECTIONS:
        for k, shape in compared.items():
            platforms[f"{g}/{k}"] = gpu_platform(shape, T, gpus[g])
    lengths = sorted({int(t) for t in prompt_lengths} | {T})
    sweep = []
    for t in lengths:
        row = {"prompt_tokens": t, "loihi2": {"ttft_s": cm.ttft_s(t),
                                              "prefill_mj_per_token": 1e3 * cm.prefill_energy_j(t) / t,
                                              "decode_mj_per_token": 1e3 * cm.decode_energy_per_token_j,
                                              "decode_tokens_per_s": 1.0 / cm.decode_token_s}}
        for g in GPU_SECTIONS:
            for k, shape in compared.items():
                p = gpu_platform(shape, t, gpus[g])
                row[f"{g}/{k}"] = {q: p[q] for q in ("ttft_s", "prefill_mj_per_token", "decode_mj_per_token",
                                                     "decode_tokens_per_s", "fits_in_memory")}
        sweep.append(row)
    variants = []
    for label, change, why in VARIANTS:
        merged = {"loihi2": {**PRESETS["paper"]["loihi2"], **change.get("loihi2", {})},
                  "options": {**PRESETS["paper"]["options"], **change.get("options", {})}}
        try:
            v = model(merged)
            v_activity = headline
            if auto_activity and headline is not None and v.mapping.options.act_bits != headline.act_bits:
                v_activity = None  # as the headline's choice: another width's densities are not spent by default
                v = model(merged, activity=None)
        except CostModelError as e:
            variants.append({"variant": label, "error": str(e), "reason": why})
            continue
        variants.append({"variant": label, "reason": why, **loihi_platform(v, T),
                         "activity": activity_label(v_activity, cfg, v.mapping.options.act_bits),
                         "by_length": [{"prompt_tokens": t, "ttft_s": v.ttft_s(t),
                                        "decode_mj_per_token": 1e3 * v.decode_energy_per_token_j}
                                       for t in lengths]})
    preset_label = f"preset '{preset}'"
    deployments = {}
    if paper_model and T == PAPER.prompt_tokens:
        # the paper's Loihi 2 over the same whole prompt: its TTFT gives T / TTFT; its prefill energy is
        # steady-state only (no whole-prompt figure published), so it has no prefill energy ratio
        deployments[PAPER_MEASURED] = {
            "ttft_s": PAPER.loihi_ttft_s, "prefill_tokens_per_s": PAPER.prompt_tokens / PAPER.loihi_ttft_s,
            "prefill_mj_per_token": None,
            "prefill_steady_tokens_per_s": PAPER.loihi_prefill_tokens_per_s,
            "prefill_steady_mj_per_token": PAPER.loihi_prefill_mj_per_token,
            "decode_tokens_per_s": PAPER.loihi_decode_tokens_per_s,
            "decode_mj_per_token": PAPER.loihi_decode_mj_per_token, "head_on_chip": False, "activity": None}
    deployments[preset_label] = platforms["loihi2"]
    same = VARIANTS[0][0] if preset == "paper" else None  # the paper deployment is the preset itself
    deployments.update({f"variant: {v['variant']}": v for v in variants if "error" not in v and v["variant"] != same})
    the_verdict = verdict(deployments, model_axis(cfg), gpus, T, cm, preset_label,
                          shown=tuple(k for k in (PAPER_MEASURED, preset_label) if k in deployments),
                          paper_claims=paper_model)
    layers = [{"layer": l, "rows": m.layer_table(l), "totals": m.layer_totals(l)}
              for l in range(-1, cfg.num_layers + 1)]
    measured = headline or beside
    activity = {"headline": "dense" if headline is None else headline.kind(cfg),
                "headline_label": platforms["loihi2"]["activity"], "why": activity_why,
                "profile": measured.description if measured else None,
                "profile_act_bits": measured.act_bits if measured else None,
                "of_this_model": measured.of_model(cfg) if measured else None, "rows": []}
    if measured is not None:
        for p in PRESETS:
            dense_cm, prof_cm = model(PRESETS[p], cfg, None), model(PRESETS[p], cfg, measured)
            bits = prof_cm.mapping.options.act_bits
            activity["rows"].append({"preset": p, "activity": "dense", "act_bits": bits, "caveats": [],
                                     **figures(dense_cm, T)})
            activity["rows"].append({"preset": p, "activity": measured.kind(cfg),
                                     "act_bits": bits, "caveats": measured.caveats(cfg, bits),
                                     **figures(prof_cm, T)})
        activity["densities"] = {k: measured.densities(k, cfg.num_layers) for k in (*LAYER_CONNECTIONS, HEAD_CONNECTION)
                                 if k in measured.connections}
    options = dataclasses.asdict(resolve_options(m.options, m.hw, cfg))
    options["activity"] = headline.description if headline else "dense"
    return {
        "config": config_name, "preset": preset,
        "preset_description": chosen["description"].format(layers=cfg.num_layers, chips=m.chips,
                                                           system_chips=m.system_chips),
        "prompt_tokens": T,
        "overrides": recorded, "hw_file": str(hw_file) if hw_file is not None else None,
        "preset_changed": preset_changed(chosen, hw, cfg, user_options, parts["loihi2"]),
        "model": dataclasses.asdict(cfg),
        "options": options,
        "activity": activity,
        "traffic": {**traffic(cm), "slowest_vs_mean": slowest_vs_mean(cm, T),
                    "paper_preset_slowest_vs_mean": slowest_vs_mean(paper_cm, T)},
        "instructions": instructions, "instructions_source": instr_source,
        "platforms": platforms,
        "calibration": {"fitted": fitted, "anchors": anchors, "tolerance": PAPER.tolerance,
                        "calibrated_on": cal_cfg.name},
        "loihi": {**cm.summary(T), "dense_weight_bits": m.hw.dense_weight_bits},
        "per_hop_layer0": [_hop_row(c) for c in cm.hop_costs if c.layer in (-1, 0)],
        "per_hop_head": [_hop_row(c) for c in cm.hop_costs if c.layer == cfg.num_layers],
        "layers": layers,
        "matrices": m.matrix_table(),
        "sweep": sweep,
        "variants": variants,
        "derived_constants": {
            "synop_time_s": hw.synop_time_s, "hala_point_synop_time_s": hw.hala_point_synop_time_s,
            "synop_energy_j": hw.synop_energy_j, "instruction_time_s": hw.instruction_time_s,
            "instruction_energy_j": hw.instruction_energy_j, "spike_out_energy_j": hw.spike_out_energy_j,
            "hop_energy_j": hw.hop_energy_j, "energy_scale_loihi1_to_2": hw.energy_scale,
            "sparse_bits_per_nonzero": hw.sparse_bits_per_nonzero,
            "gaussian_zero_fraction": GAUSSIAN_ZERO_FRACTION,
        },
        "gpu_rows": gpu_rows(model_axis(cfg), gpus),
        "verdict": the_verdict,
        # the Loihi 2 constants as the chosen preset ran them (the paper's 8-bit weights, not the default 2)
        "constants": (provenance(m.hw, "loihi2", _preset_notes(hw, m.hw, preset, user_set["loihi2"]),
                                 user_set=user_set["loihi2"])
                      + [row for g in GPU_SECTIONS
                         for row in provenance(gpus[g], g, GPU_NOTES.get(g), user_set=user_set[g])]
                      + provenance(PAPER, "paper")),
    }


def _preset_notes(default: Any, used: Any, preset: str, user_set: set) -> dict[str, tuple[str, str, str]]:
    """provenance() notes of the fields the preset set (a user's --set of one says so itself)."""
    out = {}
    for f in fields(used):
        if f.name in user_set or getattr(used, f.name) == getattr(default, f.name):
            continue
        md = f.metadata
        out[f.name] = (f"preset '{preset}'", md.get("confidence", ""),
                       f"the preset's; default {getattr(default, f.name)} (source {md.get('source', '')})")
    return out


def _hop_row(c: HopCost) -> dict[str, Any]:
    return {"hop": c.index, "layer": c.layer, "name": c.name, "kind": c.kind, "synops": c.synops,
            "messages": c.messages, "instructions": c.instructions, "latency_s": c.latency_s,
            "energy_j": c.energy_total_j}


# ------------------------------------------------------------------------------------------- printing
def report_json(report: dict[str, Any]) -> str:
    """The JSON text of a report (numpy numbers as Python ones, paths as strings)."""
    return json.dumps(report, indent=1, default=_json_default)


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o))
