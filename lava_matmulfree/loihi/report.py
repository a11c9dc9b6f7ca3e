"""The cost report of a config (docs/cost_model.md): the three constants fitted on the paper's anchors, the
chosen preset costed on Loihi 2 beside the GPU baselines, a sweep over prompt lengths, the variants beyond the
paper, the per-layer and per-hop tables and every constant with its source; and the same as text tables.

:func:`build_report` returns it as a JSON-ready dict (:func:`report_json` is its text), :func:`format_report`
prints it; :mod:`.outputs` writes both with the plots.
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
from lava_matmulfree.loihi.calibration import FITTED_CONSTANTS, JETSON_EFFICIENCY, anchor_table, calibrate
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
from lava_matmulfree.loihi.verdict import fmt_sig, format_verdict, notes, verdict

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
            hint = " (GPU fields need jetson.NAME, h100.NAME or h200.NAME)" if k in targets["jetson"] else ""
            raise CostModelError(f"unknown override {k!r}: not a MappingOptions or Loihi2Spec field{hint}")
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
    fitted_on = {a for r in fitted for a in r["anchors"]}
    if any(r["constant"] == JETSON_EFFICIENCY for r in fitted):
        # the Llama baseline's prefill rate and energy follow from its fitted TTFT (T / TTFT, power x TTFT / T)
        name = short_name(BASELINES["llama370m"].name)
        fitted_on |= {f"Jetson prefill tokens/s ({name})", f"Jetson prefill mJ/token ({name})"}
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
        "constants": (provenance(hw, "loihi2", user_set=user_set["loihi2"])
                      + [row for g in GPU_SECTIONS
                         for row in provenance(gpus[g], g, GPU_NOTES.get(g), user_set=user_set[g])]
                      + provenance(PAPER, "paper")),
    }


def _hop_row(c: HopCost) -> dict[str, Any]:
    return {"hop": c.index, "layer": c.layer, "name": c.name, "kind": c.kind, "synops": c.synops,
            "messages": c.messages, "instructions": c.instructions, "latency_s": c.latency_s,
            "energy_j": c.energy_total_j}


# ------------------------------------------------------------------------------------------- printing
def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:.0f} {unit}" if unit == "B" else f"{b:.1f} {unit}"
        b /= 1024
    return f"{b:.1f} GB"  # pragma: no cover


def _fmt_t(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} us"


def _fmt_paper(v, unit: str) -> str:
    def one(x):
        return _fmt_t(x) if unit == "s" else fmt_sig(x)
    return f"{one(v[0])}-{one(v[1])}" if isinstance(v, tuple) else one(v)


def _fmt_count(x: float) -> str:
    return f"{x:.3g}"


# the columns of every table of Loihi 2 (and GPU) figures: heading, key, format; prefill over the whole prompt,
# steady-state (docs/cost_model.md, section 2)
FIGURE_COLUMNS = (("TTFT", "ttft_s", _fmt_t), ("prefill tok/s", "prefill_tokens_per_s", fmt_sig),
                  ("prefill mJ/tok", "prefill_mj_per_token", fmt_sig),
                  ("steady tok/s", "prefill_steady_tokens_per_s", fmt_sig),
                  ("steady mJ/tok", "prefill_steady_mj_per_token", fmt_sig),
                  ("gen tok/s", "decode_tokens_per_s", fmt_sig), ("gen mJ/tok", "decode_mj_per_token", fmt_sig))
ACTIVITY_COLUMNS = (*FIGURE_COLUMNS[:3], *FIGURE_COLUMNS[5:], ("SynOps/token", "synops_per_token", _fmt_count),
                    ("messages/token", "messages_per_token", _fmt_count))
COLUMN_WIDTH = 15


def _figure_cells(p: Mapping[str, Any], columns=FIGURE_COLUMNS) -> str:
    return "".join(f"{'-' if p.get(k) is None else fmt(p[k]):>{COLUMN_WIDTH}}" for _, k, fmt in columns)


def _figure_heads(columns=FIGURE_COLUMNS) -> str:
    return "".join(f"{h:>{COLUMN_WIDTH}}" for h, _, _ in columns)


def prefill_legend(T: int) -> str:
    """What the prefill columns mean (docs/cost_model.md, section 2)."""
    return (f"  (prefill: the whole {T}-token prompt on every platform, T / TTFT tokens/s and its energy / T, Loihi "
            f"2's pipeline fill and host round trip included; steady: Loihi 2 with its pipeline full, one step a "
            f"token, flat in T, as the paper measured its prefill; gen: a generated token at batch 1)")


def _user_lines(r: dict[str, Any]) -> list[str]:
    """The overrides the user set, and the preset's settings they replaced."""
    if not r.get("overrides") and not r.get("hw_file"):
        return []
    changed = r.get("preset_changed", {})
    fitted = {f["constant"] for f in r["calibration"]["fitted"]}
    items = []
    for k, v in r["overrides"].items():
        note = []
        if k in changed:
            note.append(f"preset '{r['preset']}': {changed[k]['preset']}")
        if k in FITTED_CONSTANTS and k not in fitted:
            note.append("fitted by default, kept as given")
        items.append(f"{k}={v}" + (f" ({'; '.join(note)})" if note else ""))
    if r.get("hw_file"):
        items.append(f"hardware file {r['hw_file']}")
    return [f"   set by the user (--set; user-set in the constants): {', '.join(items)}"]


def format_report(r: dict[str, Any]) -> str:
    lines = []
    mc = r["model"]
    o = r["options"]
    lines.append(f"== Loihi 2 mapping: {r['config']} (L={mc['num_layers']}, d={mc['hidden_size']}, "
                 f"I={mc['intermediate_size']}, V={mc['vocab_size']}), preset '{r['preset']}': "
                 f"{r['preset_description']}")
    lines.append(f"   {r['loihi']['dense_weight_bits']}-bit dense weights, {o['act_bits']}-bit spikes, "
                 f"encoding={o['encoding']}, cores_per_block={o['cores_per_block'] or 'packed'}, "
                 f"head_on_chip={o['head_on_chip']}, fold_norms={o['fold_norms']}, zero fraction "
                 f"{o['zero_fraction']:.3f}")
    lines += _user_lines(r)
    lines.append(f"{'group':<14}{'content':<58}{'neurons':>8}{'synapses':>11}{'enc':>7}{'cores':>6}"
                 f"{'memory':>11}")
    for lay in r["layers"]:
        if lay["layer"] not in (-1, 0, mc["num_layers"]) or not lay["rows"]:
            continue
        for row in lay["rows"]:
            lines.append(f"{row['group']:<14}{row['description'][:57]:<58}{row['neurons']:>8}"
                         f"{row['synapses']:>11}{row['encoding']:>7}{row['cores']:>6}"
                         f"{_fmt_bytes(row['memory_bytes']):>11}")
    if mc["num_layers"] > 1:
        lines.append(f"(layers 1..{mc['num_layers'] - 1} as layer 0)")
    s = r["loihi"]
    lp = r["platforms"]["loihi2"]
    lines.append(f"totals: {s['cores']} cores on {lp['chips']} chips ({lp['boards']} board(s)) of a "
                 f"{lp['system_chips']}-chip system, {_fmt_bytes(s['memory_bytes'])} on chip; {s['hops_per_layer']} "
                 f"hops/layer, pipeline depth {s['pipeline_depth']}; barrier {_fmt_t(lp['barrier_s'])} per step; "
                 f"static {fmt_sig(lp['static_power_w'])} W")
    for why in sorted({mm["reason"] for mm in r["matrices"]})[:3]:
        lines.append(f"  encoding: {why}")
    lines.append("")
    T = r["prompt_tokens"]
    lines.append(f"== Platforms, batch 1, {T}-token prompt (the GPUs in eager PyTorch; every runtime, model and "
                 f"batch: the verdict below)")
    labels = {name: (f"Loihi 2, preset '{r['preset']}'" if name == "loihi2" else
                     f"{short_name(p['gpu'])}, {short_name(p['model'])} ({p['dtype']}, {p['runtime']})")
              for name, p in r["platforms"].items()}
    width = max(len(label) for label in labels.values()) + 2
    lines.append(f"{'platform':<{width}}{'chips':>6}" + _figure_heads())
    for name, p in r["platforms"].items():
        lines.append(f"{labels[name]:<{width}}{p['chips'] if p['chips'] else '-':>6}" + _figure_cells(p))
    lines.append(prefill_legend(T))
    lines += [f"  Loihi 2: {n}" for n in notes(lp)]
    cal = r["calibration"]
    lines.append("")
    lines.append(f"== Calibration (paper preset, {cal['calibrated_on']}): fitted constants")
    for f in cal["fitted"]:
        lines.append(f"  {f['constant']} = {f['value']:.4g} {f['unit']}   fitted on: {', '.join(f['anchors'])}")
    lines.append(f"{'anchor':<70}{'paper':>14}{'model':>12}{'error':>9}  status")
    for a in cal["anchors"]:
        lines.append(f"{a['anchor'][:69]:<70}{_fmt_paper(a['paper'], a['unit']):>14}"
                     f"{_fmt_paper(a['model'], a['unit']):>12}"
                     f"{100 * a['error']:>+8.0f}%  {a['status']}")
    lines.append("(error: model/paper - 1; for a range, 0 inside it, else the distance to the nearest bound; the "
                 "paper's Loihi 2 prefill figures are steady-state, its Jetson's a whole prompt's)")
    lines.append("")
    lines.append(f"== Beyond the paper: variants of the paper deployment, same constants ({T}-token prompt)")
    vwidth = max([10] + [len(v["variant"]) + 2 for v in r["variants"]])
    lines.append(f"{'variant':<{vwidth}}{'chips':>6}" + _figure_heads())
    for v in r["variants"]:
        if "error" in v:
            lines.append(f"{v['variant']:<{vwidth}}  does not map: {v['error']}")
            continue
        lines.append(f"{v['variant']:<{vwidth}}{v['chips']:>6}" + _figure_cells(v))
    lines.append(prefill_legend(T))
    lines += _format_activity(r)
    if "verdict" in r:
        lines += ["", format_verdict(r["verdict"])]
    return "\n".join(lines)


def _format_activity(r: dict[str, Any]) -> list[str]:
    """The activity table (dense assumption and measured profile side by side) and the traffic lines."""
    a, tr = r.get("activity"), r.get("traffic")
    lines = []
    if a is not None:
        lines += ["", f"== Activity ({r['prompt_tokens']}-token prompt): {a['why']}"]
        if a["rows"]:
            lines.append(f"{'preset':<9}{'activity':<10}{'spikes':>7}{'profile':>8}" + _figure_heads(ACTIVITY_COLUMNS))
            for row in a["rows"]:
                prof_bits = "-" if row["activity"] == "dense" else f"{a['profile_act_bits']}"
                mark = "!" if row["activity"] != "dense" and a["profile_act_bits"] != row["act_bits"] else ""
                lines.append(f"{row['preset']:<9}{row['activity']:<10}{row['act_bits']:>6}b{prof_bits + mark:>8}"
                             + _figure_cells(row, ACTIVITY_COLUMNS))
            lines.append(prefill_legend(r["prompt_tokens"]))
            lines.append("  (spikes: the width each preset sends; profile: the width the profile was measured at, "
                         "'!' where they differ: the densities of one width do not hold at another)")
            for row in a["rows"]:
                if row["caveats"]:
                    lines.append(f"  {row['preset']} {row['activity']}: {'; '.join(row['caveats'])}")
            dens = ", ".join(f"{k} {v['mean']:.2f}" for k, v in a.get("densities", {}).items())
            lines.append(f"  measured input density per connection: {dens}")
    if tr is not None:
        b, lk = tr["busiest_core"], tr["busiest_link"]
        lines += ["", f"== Traffic per token (preset '{r['preset']}'): {tr['messages_per_token']:,.0f} messages; "
                      f"busiest core: {b['group']} ({b['sent_per_core']:,.0f} sent, "
                      f"{b['received_per_core']:,.0f} received)"]
        lines.append("   busiest chip link: " + (f"{lk['link']} ({lk['messages_per_token']:,.0f} messages)"
                                                   if lk else "none (one chip)")
                     + f"; host link {tr['host_link_messages_per_token']:,.0f} values")
        shown = [("slowest_vs_mean", f"preset '{r['preset']}'")]
        if r["preset"] != "paper" or r["options"]["activity"] != "dense":
            shown.append(("paper_preset_slowest_vs_mean", "paper preset, dense"))
        for key, label in shown:
            c = tr[key]["change"]
            lines.append(f"   step set by the slowest core, not the average ({label}): gen tok/s "
                         f"{100 * c['decode_tokens_per_s']:+.2f}%, prefill tok/s "
                         f"{100 * c['prefill_tokens_per_s']:+.2f}%, gen mJ/tok {100 * c['decode_mj_per_token']:+.2f}%")
    return lines


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
