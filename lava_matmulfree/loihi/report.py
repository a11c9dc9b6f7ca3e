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
from lava_matmulfree.loihi.activity import DENSE, ActivityProfile, default_activity, model_config, resolve_activity
from lava_matmulfree.loihi.calibration import anchor_table, calibrate
from lava_matmulfree.loihi.core_groups import MappingOptions
from lava_matmulfree.loihi.cost_model import HopCost, LoihiCostModel, resolve_instruction_counts
from lava_matmulfree.loihi.gpu_baseline import BASELINES, baselines_for, model_axis
from lava_matmulfree.loihi.gpu_runtimes import gpu_estimate, gpu_rows
from lava_matmulfree.loihi.hardware import (GAUSSIAN_ZERO_FRACTION, GPU_NOTES, GPU_SECTIONS, HW_SECTIONS,
                                            CostModelError, GpuSpec, load_hardware, provenance, short_name,
                                            with_overrides)
from lava_matmulfree.loihi.presets import (PAPER, PRESETS, VARIANTS, apply, loihi_model, preset_change,
                                           resolve_options)
from lava_matmulfree.loihi.traffic import figures, slowest_vs_mean, traffic
from lava_matmulfree.loihi.verdict import format_verdict, verdict

DEFAULT_PROMPT_LENGTHS = (16, 64, 256, 500, 1024, 2048, 4096, 8192, 16384)
PAPER_MEASURED = "paper's measurement, 24 chips"  # the verdict's row of the paper's own Loihi 2 figures


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


def loihi_platform(cm: LoihiCostModel, T: int) -> dict[str, Any]:
    """The per-platform figures of the JSON report (steady-state prefill: flat in T, as the paper measured)."""
    return {"ttft_s": cm.ttft_s(T), "prefill_tokens_per_s": 1.0 / cm.prefill_step_s,
            "decode_tokens_per_s": 1.0 / cm.decode_token_s,
            "prefill_mj_per_token": 1e3 * (cm.dynamic_energy_per_token_j + cm.static_power_w * cm.prefill_step_s),
            "decode_mj_per_token": 1e3 * cm.decode_energy_per_token_j,
            "chips": cm.mapping.chips, "system_chips": cm.mapping.system_chips, "cores": cm.mapping.cores,
            "boards": cm.hw.boards(cm.mapping.chips), "barrier_s": cm.barrier_s,
            "pipeline_depth": cm.pipeline_depth, "static_power_w": cm.static_power_w,
            "dynamic_mj_per_token": 1e3 * cm.dynamic_energy_per_token_j}


def gpu_platform(shape, T: int, gpu: GpuSpec, runtime: str = "eager") -> dict[str, Any]:
    """A GPU baseline at batch 1 (eager PyTorch, as the paper's), its energy from the board power model."""
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
    ``anchor_tokens``, ``activity`` (a profile file, 'dense', or 'auto': :func:`_choose_activity`; the
    calibration and its anchors stay dense, docs/activity.md), and any field of MappingOptions, Loihi2Spec
    (plain or ``loihi2.NAME``) or a GPU (``jetson.NAME``, ``h100.NAME``, ``h200.NAME``)."""
    overrides = dict(overrides)
    activity_arg = overrides.pop("activity", overrides.pop("options.activity", "auto"))
    instructions, instr_source = resolve_instruction_counts(overrides.pop("instructions", None))
    if "instructions_source" in overrides:
        instr_source = overrides.pop("instructions_source")
    specs = load_hardware(overrides.pop("hw_file", None))
    T = int(overrides.pop("anchor_tokens", PAPER.prompt_tokens))
    parts = _split_overrides(overrides)
    hw = with_overrides(specs["loihi2"], parts["loihi2"], "overrides")
    gpus = {k: with_overrides(specs[k], parts[k], "overrides") for k in GPU_SECTIONS}
    chosen = preset_change(preset)
    cfg = model_config(config_name)  # a shipped model's name too (docs/activity.md)
    is_paper_model = cfg.hidden_size == 1024 and cfg.num_layers == 24 and cfg.vocab_size == 32000
    headline, beside, activity_why = _choose_activity(activity_arg, cfg)

    # 1. calibration: on the paper preset of the 370M model (the anchors are its figures)
    fixed = set(parts["loihi2"]) | {f"jetson.{k}" for k in parts["jetson"]}
    cal_cfg = cfg if is_paper_model else load_config("370m").model
    hw, gpus["jetson"], fitted = calibrate(cal_cfg, hw, gpus["jetson"], instructions, fixed)

    def model(change, cfg_=cfg, activity=headline):
        h, o = apply(hw, MappingOptions(), change)
        h = with_overrides(h, parts["loihi2"], "overrides")
        o = dataclasses.replace(o, **parts["options"], activity=activity)
        return loihi_model(cfg_, h, o, instructions)

    # 2. the anchors: the paper preset's predictions next to the paper's figures (on the dense assumption, as
    # the calibration: docs/activity.md, "Which profile")
    paper_cm = model(PRESETS["paper"], cal_cfg, None)
    gpu_at_anchor = {f"{g}/{k}": gpu_platform(shape, PAPER.prompt_tokens, gpus[g])
                     for g in GPU_SECTIONS for k, shape in BASELINES.items()}
    fitted_on = {a for r in fitted for a in r["anchors"]}
    if any(r["constant"] == "jetson.prefill_efficiency" for r in fitted):
        # the Llama baseline's prefill rate and energy follow from its fitted TTFT (T / TTFT, power x TTFT / T)
        name = short_name(BASELINES["llama370m"].name)
        fitted_on |= {f"Jetson prefill tokens/s ({name})", f"Jetson prefill mJ/token ({name})"}
    anchors = anchor_table(loihi_platform(paper_cm, PAPER.prompt_tokens), gpu_at_anchor, fitted_on)

    # 3. the chosen preset
    cm = model(chosen)
    m = cm.mapping
    platforms = {"loihi2": loihi_platform(cm, T)}
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
        except CostModelError as e:
            variants.append({"variant": label, "error": str(e), "reason": why})
            continue
        variants.append({"variant": label, "reason": why, **loihi_platform(v, T),
                         "by_length": [{"prompt_tokens": t, "ttft_s": v.ttft_s(t),
                                        "decode_mj_per_token": 1e3 * v.decode_energy_per_token_j}
                                       for t in lengths]})
    preset_label = f"preset '{preset}'"
    deployments = {}
    if is_paper_model:
        deployments[PAPER_MEASURED] = {
            "ttft_s": PAPER.loihi_ttft_s, "prefill_tokens_per_s": PAPER.loihi_prefill_tokens_per_s,
            "decode_tokens_per_s": PAPER.loihi_decode_tokens_per_s,
            "prefill_mj_per_token": PAPER.loihi_prefill_mj_per_token,
            "decode_mj_per_token": PAPER.loihi_decode_mj_per_token}
    deployments[preset_label] = platforms["loihi2"]
    same = VARIANTS[0][0] if preset == "paper" else None  # the paper deployment is the preset itself
    deployments.update({f"variant: {v['variant']}": v for v in variants if "error" not in v and v["variant"] != same})
    the_verdict = verdict(deployments, model_axis(cfg), gpus, T, cm, preset_label,
                          shown=tuple(k for k in (PAPER_MEASURED, preset_label) if k in deployments))
    layers = [{"layer": l, "rows": m.layer_table(l), "totals": m.layer_totals(l)}
              for l in range(-1, cfg.num_layers + 1)]
    measured = headline or beside
    activity = {"headline": "measured" if headline else "dense", "why": activity_why,
                "profile": measured.label if measured else None, "rows": []}
    if measured is not None:
        # a profile of another model standing in (the 370M's) is labelled so, a model's own one 'measured'
        own = headline is not None or measured.per_layer(cfg.num_layers)
        for p in PRESETS:
            for label, prof in (("dense", None), ("measured" if own else "stand-in", measured)):
                activity["rows"].append({"preset": p, "activity": label, **figures(model(PRESETS[p], cfg, prof), T)})
        activity["densities"] = {k: _densities(cm, measured, k) for k in
                                 ("i_proj", "f_proj", "g_proj", "o_proj", "gate_proj", "down_proj", "lm_head")
                                 if k in measured.connections}
    options = dataclasses.asdict(resolve_options(m.options, m.hw, cfg))
    options["activity"] = headline.label if headline else "dense"
    return {
        "config": config_name, "preset": preset,
        "preset_description": chosen["description"].format(layers=cfg.num_layers),
        "prompt_tokens": T,
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
        "constants": (provenance(hw, "loihi2")
                      + [row for g in GPU_SECTIONS for row in provenance(gpus[g], g, GPU_NOTES.get(g))]
                      + provenance(PAPER, "paper")),
    }


def _choose_activity(arg, cfg) -> tuple[ActivityProfile | None, ActivityProfile | None, str]:
    """(headline profile, profile shown beside the dense assumption, why): a given profile is the headline;
    'auto' takes :func:`~.activity.default_activity` (a shipped model's own profile is its headline; the 370M's
    stand-in is only shown beside); 'dense' keeps the headline dense with the default profile beside."""
    if isinstance(arg, str) and arg.lower() in DENSE + ("auto",):
        prof, why, is_headline = default_activity(cfg)
        if arg.lower() == "auto" and is_headline:
            return prof, None, why
        return None, prof, ("dense assumption (--activity dense); beside it: " if arg.lower() != "auto" else
                            "headline on the dense assumption; beside it: ") + why
    prof = resolve_activity(arg)
    why = f"given: {prof.label}"
    if prof.layers and not prof.per_layer(cfg.num_layers):
        why += (f"; measured on {len(prof.layers)} layers, this model has {cfg.num_layers}: its per-type averages "
                "over layers apply, not its per-layer densities")
    return prof, None, why


def _densities(cm: LoihiCostModel, prof: ActivityProfile, name: str) -> dict[str, Any]:
    L = cm.mapping.cfg.num_layers
    per = [prof.density(name, l, L) for l in range(L)] if name != "lm_head" else [prof.density(name, L, L)]
    return {"mean": float(np.mean(per)), "min": float(min(per)), "max": float(max(per)),
            "per_layer": prof.per_layer(L) and name != "lm_head",
            "weight_nonzero_fraction": prof.weight_nonzero().get(name)}


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
        return _fmt_t(x) if unit == "s" else f"{x:,.1f}" if x < 100 else f"{x:,.0f}"
    return f"{one(v[0])}-{one(v[1])}" if isinstance(v, tuple) else one(v)


def format_report(r: dict[str, Any]) -> str:
    lines = []
    mc = r["model"]
    o = r["options"]
    lines.append(f"== Loihi 2 mapping: {r['config']} (L={mc['num_layers']}, d={mc['hidden_size']}, "
                 f"I={mc['intermediate_size']}, V={mc['vocab_size']}), preset '{r['preset']}': "
                 f"{r['preset_description']}")
    lines.append(f"   {r['loihi']['dense_weight_bits']}-bit dense weights, encoding={o['encoding']}, "
                 f"cores_per_block={o['cores_per_block'] or 'packed'}, head_on_chip={o['head_on_chip']}, "
                 f"fold={o['fold_norms']}, zero fraction {o['zero_fraction']:.3f}")
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
                 f"static {lp['static_power_w']:.1f} W")
    for why in sorted({mm["reason"] for mm in r["matrices"]})[:3]:
        lines.append(f"  encoding: {why}")
    lines.append("")
    T = r["prompt_tokens"]
    lines.append(f"== Platforms, batch 1, {T}-token prompt (prefill figures steady-state on Loihi 2; the GPUs in "
                 f"eager PyTorch; every runtime, model and batch: the verdict below)")
    lines.append(f"{'platform':<52}{'chips':>6}{'TTFT':>10}{'prefill tok/s':>15}{'gen tok/s':>11}"
                 f"{'prefill mJ/tok':>16}{'gen mJ/tok':>12}")
    for name, p in r["platforms"].items():
        label = ("Loihi 2" if name == "loihi2" else
                 f"{short_name(p['gpu'])}, {short_name(p['model'])} ({p['dtype']}, {p['runtime']})")
        lines.append(f"{label:<52}{p['chips'] if p['chips'] else '-':>6}{_fmt_t(p['ttft_s']):>10}"
                     f"{p['prefill_tokens_per_s']:>15,.0f}{p['decode_tokens_per_s']:>11.1f}"
                     f"{p['prefill_mj_per_token']:>16.2f}{p['decode_mj_per_token']:>12.1f}")
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
    lines.append("(error: model/paper - 1; for a range, 0 inside it, else the distance to the nearest bound)")
    lines.append("")
    lines.append(f"== Beyond the paper: variants of the paper deployment, same constants ({T}-token prompt)")
    lines.append(f"{'variant':<48}{'chips':>6}{'TTFT':>10}{'prefill tok/s':>15}{'gen tok/s':>11}"
                 f"{'prefill mJ':>12}{'gen mJ':>9}")
    for v in r["variants"]:
        if "error" in v:
            lines.append(f"{v['variant']:<48}  does not map: {v['error']}")
            continue
        lines.append(f"{v['variant'][:47]:<48}{v['chips']:>6}{_fmt_t(v['ttft_s']):>10}"
                     f"{v['prefill_tokens_per_s']:>15,.0f}{v['decode_tokens_per_s']:>11.1f}"
                     f"{v['prefill_mj_per_token']:>12.2f}{v['decode_mj_per_token']:>9.1f}")
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
            lines.append(f"{'preset':<9}{'activity':<10}{'TTFT':>10}{'prefill tok/s':>15}{'gen tok/s':>11}"
                         f"{'prefill mJ':>12}{'gen mJ':>9}{'SynOps/token':>15}{'messages/token':>16}")
            for row in a["rows"]:
                lines.append(f"{row['preset']:<9}{row['activity']:<10}{_fmt_t(row['ttft_s']):>10}"
                             f"{row['prefill_tokens_per_s']:>15,.0f}{row['decode_tokens_per_s']:>11.1f}"
                             f"{row['prefill_mj_per_token']:>12.2f}{row['decode_mj_per_token']:>9.1f}"
                             f"{row['synops_per_token']:>15.3g}{row['messages_per_token']:>16.3g}")
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
                         f"{100 * c['prefill_tokens_per_s']:+.2f}%, gen mJ {100 * c['decode_mj_per_token']:+.2f}%")
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
