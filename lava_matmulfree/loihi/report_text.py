"""The cost report as text tables (docs/cost_model.md): :func:`format_report` prints what
:func:`.report.build_report` returns, section by section, as ``estimate`` shows it."""
from __future__ import annotations

from typing import Any, Mapping

from lava_matmulfree.loihi.calibration import FITTED_CONSTANTS
from lava_matmulfree.loihi.hardware import short_name
from lava_matmulfree.loihi.verdict import fmt_sig, format_verdict, notes

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


def _layer_layouts(layers, num_layers: int) -> dict[int, list[int]]:
    """The blocks' distinct layouts (groups, encodings, cores, memory): the first layer of each -> the later layers
    laid out as it (a block's cores differ where it shares a core budget with the input neurons, or pads it)."""
    out: dict[int, list[int]] = {}
    seen: dict[tuple, int] = {}
    for lay in layers:
        if not 0 <= lay["layer"] < num_layers:
            continue
        key = tuple((row["group"].split(".", 1)[-1], row["neurons"], row["synapses"], row["encoding"], row["cores"],
                     row["memory_bytes"]) for row in lay["rows"])
        if key in seen:
            out[seen[key]].append(lay["layer"])
        else:
            seen[key] = lay["layer"]
            out[lay["layer"]] = []
    return out


def _ranges(numbers: list[int]) -> str:
    """1, 3..7, 9: runs of consecutive integers written as first..last."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in runs)


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
    layouts = _layer_layouts(r["layers"], mc["num_layers"])
    for lay in r["layers"]:
        if not lay["rows"] or not (lay["layer"] in (-1, mc["num_layers"]) or lay["layer"] in layouts):
            continue
        for row in lay["rows"]:
            lines.append(f"{row['group']:<14}{row['description'][:57]:<58}{row['neurons']:>8}"
                         f"{row['synapses']:>11}{row['encoding']:>7}{row['cores']:>6}"
                         f"{_fmt_bytes(row['memory_bytes']):>11}")
    alike = [f"{_ranges(same)} as layer {first}" for first, same in layouts.items() if same]
    if alike:
        lines.append(f"(layers {'; '.join(alike)})")
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
