"""PNG plots of a cost report (matplotlib, Agg backend) against prompt length up to 16k tokens, log-log axes
(slope 1: linear growth, slope 2: quadratic): Loihi 2 (the preset and the variants beyond the paper) next to
the GPU baselines (Jetson Orin Nano, H100 SXM and H200 SXM in eager PyTorch, two transformer shapes each);
tokens/s against mJ/token for every platform, runtime, model and batch (:func:`plot_efficiency`); the scaling
with model size; the sensitivity map. Imported only to draw (:mod:`.outputs`, benchmarks/cost_estimate.py)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import numpy as np

from lava_matmulfree.loihi.calibration import PREDICTED
from lava_matmulfree.loihi.gpu_baseline import transformer_pp_key
from lava_matmulfree.loihi.hardware import short_name
from lava_matmulfree.loihi.sensitivity import HEADINGS, largest_change

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

FIG_SIZE_WIDE = (12.0, 4.8)
DPI = 120
GPU_STYLE = {"jetson": ("#d62728", "s"), "h100": ("#7f7f7f", "^"), "h200": ("#2ca02c", "v")}
QWEN_DASH = "--"
LOIHI_COLOR = "#1f77b4"
VARIANT_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


def _gpu_lines(ax, report, key, scale):
    """One line per GPU and baseline; a cross on every length whose prompt pass does not fit in the GPU's
    memory (eager attention's T x T scores), where the roofline's figure could not be measured."""
    T = [row["prompt_tokens"] for row in report["sweep"]]
    out = []
    for name in report["platforms"]:
        if name == "loihi2":
            continue
        gpu, model = name.split("/", 1)  # a model name may hold a slash (an HF repo id)
        color, marker = GPU_STYLE[gpu]
        p = report["platforms"][name]
        y = [row[name][key] * scale for row in report["sweep"]]
        ax.plot(T, y, marker=marker, color=color, linestyle=QWEN_DASH if model.startswith("qwen") else "-",
                markersize=4, label=f"{short_name(p['gpu'])}, {short_name(p['model'])}")
        out += [(t, v) for t, v, row in zip(T, y, report["sweep"]) if not row[name]["fits_in_memory"]]
    if out:
        ax.plot(*zip(*out), "x", color="k", markersize=8, linestyle="none",
                label="GPU: does not fit in its memory (eager T x T scores)")


def _legend_below(fig, *axes) -> None:
    """One legend for the figure under its panels, from the entries of ``axes`` (each label once): inside a panel
    it hid the data (the paper's Jetson TTFT star sat under it)."""
    entries = {}
    for a in fig.axes:
        if a.get_legend() is not None:
            a.get_legend().remove()
    for a in axes:
        for handle, label in zip(*a.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    fig.legend(list(entries.values()), list(entries), loc="lower center", ncol=3, fontsize=7, frameon=False)
    fig.set_figheight(fig.get_figheight() * 1.3)
    fig.tight_layout(rect=(0, 0.2, 1, 1))  # the bottom fifth for the legend's rows


def _save(fig, path: str | Path) -> Path:
    out = Path(path)
    try:  # closed also when saving fails (a full disk), so a caller that goes on holds no figure
        if not fig.legends:  # a figure legend placed its panels already
            fig.tight_layout()
        fig.savefig(out, dpi=DPI)
    finally:
        plt.close(fig)
    return out


def _finish(ax, xlabel, ylabel, title):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7)


def plot_ttft(report: dict[str, Any], path: str | Path) -> Path:
    """Left: TTFT vs prompt length for the Loihi 2 variants and the GPUs. Right: energy per generated token vs
    context length (Loihi 2: flat, recurrent state; GPUs: the KV cache grows). Stars: the paper's anchors."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIG_SIZE_WIDE)
    for i, v in enumerate(v for v in report["variants"] if "error" not in v):
        T = [row["prompt_tokens"] for row in v["by_length"]]
        c = VARIANT_COLORS[i % len(VARIANT_COLORS)]
        label = f"Loihi 2: {v['variant']} ({v['chips']} chips)"
        ax1.plot(T, [row["ttft_s"] for row in v["by_length"]], "o-", color=c, markersize=3, label=label)
        ax2.plot(T, [row["decode_mj_per_token"] for row in v["by_length"]], "o-", color=c, markersize=3,
                 label=label)
    if report["preset"] != "paper":  # the variants are the paper deployment's; draw the chosen preset too
        T = [row["prompt_tokens"] for row in report["sweep"]]
        label = f"Loihi 2: preset '{report['preset']}' ({report['platforms']['loihi2']['chips']} chips)"
        for ax, key in ((ax1, "ttft_s"), (ax2, "decode_mj_per_token")):
            ax.plot(T, [row["loihi2"][key] for row in report["sweep"]], "s--", color=LOIHI_COLOR, markersize=4,
                    label=label)
    _gpu_lines(ax1, report, "ttft_s", 1.0)
    _gpu_lines(ax2, report, "decode_mj_per_token", 1.0)
    anchors = {a["anchor"]: a for a in report["calibration"]["anchors"]}
    ax1.plot([500], [anchors["Loihi TTFT, 500 tokens"]["paper"]], "*", color=LOIHI_COLOR, markersize=13,
             markeredgecolor="k", label="paper: Loihi 2 99 ms, Jetson 659 ms")
    jetson_ttft = next(a for k, a in anchors.items() if k.startswith("Jetson TTFT"))
    ax1.plot([500], [jetson_ttft["paper"]], "*", color=GPU_STYLE["jetson"][0], markersize=13, markeredgecolor="k")
    _finish(ax1, "prompt length T (tokens)", "time to first token (s)", "time to first token, batch 1")
    _finish(ax2, "context length (tokens)", "energy per generated token (mJ)",
            "generation energy per token (GPU: idle + dynamic board power)")
    fig.suptitle(f"{report['config']}: Loihi 2 deployments (same constants) vs GPU baselines", fontsize=10)
    _legend_below(fig, ax1)
    return _save(fig, path)


def plot_energy(report: dict[str, Any], path: str | Path) -> Path:
    """Prefill energy per prompt token and generation throughput vs length, for the chosen preset and GPUs."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIG_SIZE_WIDE)
    T = [row["prompt_tokens"] for row in report["sweep"]]
    label = f"Loihi 2, preset '{report['preset']}' ({report['platforms']['loihi2']['chips']} chips)"
    for ax, key in ((ax1, "prefill_mj_per_token"), (ax2, "decode_tokens_per_s")):
        ax.plot(T, [row["loihi2"][key] for row in report["sweep"]], "o-", color=LOIHI_COLOR, label=label)
    _gpu_lines(ax1, report, "prefill_mj_per_token", 1.0)
    _gpu_lines(ax2, report, "decode_tokens_per_s", 1.0)
    _finish(ax1, "prompt length T (tokens)", "prefill energy per prompt token (mJ)",
            "prefill energy per token (Loihi 2: pipeline fill amortised)")
    _finish(ax2, "context length (tokens)", "generation throughput (tokens/s)", "generation throughput, batch 1")
    fig.suptitle(f"{report['config']}: energy and throughput against sequence length", fontsize=10)
    return _save(fig, path)


# the efficiency map: colour by GPU, marker by model, line by runtime
GPU_COLORS = {"jetson-orin-nano": GPU_STYLE["jetson"][0], "h100": GPU_STYLE["h100"][0], "h200": GPU_STYLE["h200"][0]}
MODEL_MARKERS = {"transformer++": "o", "qwen2.5-0.5b": "s", "matmulfree": "^"}
RUNTIME_LINES = {"eager": ":", "sdpa": "--", "cuda-graph": "-"}


def plot_efficiency(report: dict[str, Any], path: str | Path) -> Path:
    """Tokens/s against mJ/token, log-log, for every platform: left the prompt pass (each GPU x model x runtime
    over prompt lengths 16..16k, Loihi 2's deployments over the whole prompt of the report's length, as the GPUs';
    the paper's measured Loihi 2 point is its steady-state prefill), right generation (each GPU x model x
    runtime at the anchors' context over batch 1, 8, 64; Loihi 2's deployments at one sequence, and the chosen
    preset with 1..D sequences in flight). Up and to the left is better: more tokens/s for less energy."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(FIG_SIZE_WIDE[0] * 1.15, FIG_SIZE_WIDE[1] * 1.35))
    T = report["prompt_tokens"]
    context = min({r["context"] for r in report["gpu_rows"] if r["phase"] == "decode"}, key=lambda c: abs(c - T))
    keys = sorted({(r["gpu"], r["model"], r["runtime"]) for r in report["gpu_rows"]})
    for gpu, model, runtime in keys:
        style = dict(color=GPU_COLORS.get(gpu, "k"), marker=MODEL_MARKERS.get(model, "x"),
                     linestyle=RUNTIME_LINES.get(runtime, "-"), markersize=3, linewidth=0.9, alpha=0.8)
        mine = [r for r in report["gpu_rows"] if (r["gpu"], r["model"], r["runtime"]) == (gpu, model, runtime)
                and r["fits_in_memory"]]
        pre = sorted((r for r in mine if r["phase"] == "prefill"), key=lambda r: r["tokens"])
        dec = sorted((r for r in mine if r["phase"] == "decode" and r["context"] == context), key=lambda r: r["batch"])
        ax1.plot([r["mj_per_token"] for r in pre], [r["tokens_per_s"] for r in pre], **style)
        ax2.plot([r["mj_per_token"] for r in dec], [r["tokens_per_s"] for r in dec], **style)
    for i, v in enumerate(v for v in report["variants"] if "error" not in v):
        c = VARIANT_COLORS[i % len(VARIANT_COLORS)]
        ax1.plot(v["prefill_mj_per_token"], v["prefill_tokens_per_s"], "*", color=c, markersize=11,
                 markeredgecolor="k", label=f"Loihi 2: {v['variant']} ({v['chips']} chips)")
        ax2.plot(v["decode_mj_per_token"], v["decode_tokens_per_s"], "*", color=c, markersize=11, markeredgecolor="k")
    lp = report["platforms"]["loihi2"]
    ax1.plot(lp["prefill_mj_per_token"], lp["prefill_tokens_per_s"], "P", color=LOIHI_COLOR, markersize=10,
             markeredgecolor="k", label=f"Loihi 2, preset '{report['preset']}'")
    ax1.plot(lp["prefill_steady_mj_per_token"], lp["prefill_steady_tokens_per_s"], "P", color="w", markersize=10,
             markeredgecolor=LOIHI_COLOR, markeredgewidth=1.5,
             label=f"Loihi 2, preset '{report['preset']}', steady-state prefill (as the paper measured it)")
    anchors = {a["anchor"]: a["paper"] for a in report["calibration"]["anchors"]}
    if report["config"] == report["calibration"]["calibrated_on"]:
        ax1.plot(anchors["Loihi prefill mJ/token"], anchors["Loihi prefill tokens/s"], "X", color="w", markersize=10,
                 markeredgecolor="k", label="Loihi 2, the paper's measurement (steady-state prefill)")
        ax2.plot(anchors["Loihi generation mJ/token"], anchors["Loihi generation tokens/s"], "X", color="w",
                 markersize=10, markeredgecolor="k", label="Loihi 2, the paper's measurement")
    flight = report["verdict"]["in_flight"]
    ax2.plot([r["mj_per_token"] for r in flight], [r["tokens_per_s"] for r in flight], "P-", color=LOIHI_COLOR,
             markersize=6, label=f"Loihi 2, preset '{report['preset']}', 1..{flight[-1]['streams']} sequences "
                                 f"in flight")
    for gpu, color in GPU_COLORS.items():
        ax1.plot([], [], color=color, linewidth=3, label=gpu)
    for model, marker in MODEL_MARKERS.items():
        ax1.plot([], [], marker, color="k", linestyle="none", label=model)
    for runtime, line in RUNTIME_LINES.items():
        ax1.plot([], [], line, color="k", label=runtime)
    _finish(ax1, "energy per prompt token (mJ)", "prompt tokens/s",
            f"prompt pass (GPU lines: 16 -> 16k tokens, batch 1, those that fit in memory;\n"
            f"Loihi 2: a whole {T}-token prompt)")
    _finish(ax2, "energy per generated token (mJ)", "generated tokens/s, all streams",
            f"generation (GPU lines: batch 1 -> 8 -> 64, context {context})")
    fig.suptitle(f"{report['config']}: throughput against energy per token, every platform (log-log; up and to "
                 f"the left is better)", fontsize=10)
    _legend_below(fig, ax1, ax2)
    return _save(fig, path)


PRESET_MARKERS = ("o", "D", "v", "P")
SCALING_PANELS = (("decode_mj_per_token", "energy per generated token (mJ)"),
                  ("ttft_s", "time to first token, 500 tokens (s)"),
                  ("decode_tokens_per_s", "generation throughput (tokens/s)"))


def plot_scaling(summary: dict[str, Any], configs, presets, path: str | Path) -> Path:
    """Against model size (the Transformer++ of each config's shape, in parameters): Loihi 2 per preset next to
    the GPUs running that Transformer++; one panel each for generation energy, TTFT and generation rate.
    ``summary``: ``{"<config>/<preset>": {"platforms": ...}}`` as benchmarks/cost_estimate.py collects it."""
    fig, axes = plt.subplots(1, len(SCALING_PANELS), figsize=(FIG_SIZE_WIDE[0] * 1.25, FIG_SIZE_WIDE[1]))
    size = [summary[f"{c}/{presets[0]}"]["platforms"][f"jetson/{transformer_pp_key(c)}"]["params"] for c in configs]
    for ax, (key, label) in zip(axes, SCALING_PANELS):
        for i, preset in enumerate(presets):
            lp = [summary[f"{c}/{preset}"]["platforms"]["loihi2"] for c in configs]
            ax.plot(size, [p[key] for p in lp], marker=PRESET_MARKERS[i % len(PRESET_MARKERS)], color=LOIHI_COLOR,
                    linestyle="-" if i == 0 else "--", label=f"Loihi 2, preset '{preset}'")
            for x, p in zip(size, lp):
                ax.annotate(f"{p['chips']}", (x, p[key]), textcoords="offset points", xytext=(4, 4), fontsize=7,
                            color=LOIHI_COLOR)
        for gpu, (color, marker) in GPU_STYLE.items():
            if f"{gpu}/{transformer_pp_key(configs[0])}" not in summary[f"{configs[0]}/{presets[0]}"]["platforms"]:
                continue
            g = [summary[f"{c}/{presets[0]}"]["platforms"][f"{gpu}/{transformer_pp_key(c)}"] for c in configs]
            ax.plot(size, [p[key] for p in g], marker=marker, color=color,
                    label=f"{short_name(g[0]['gpu'])}, Transformer++ of the same shape")
        _finish(ax, "model size (parameters of the same-shape Transformer++)", label, label)
    fig.suptitle(f"Scaling with model size ({', '.join(configs)}): Loihi 2 vs GPU, batch 1 "
                 f"(numbers beside the Loihi 2 points: chips)", fontsize=10)
    return _save(fig, path)


SENSITIVITY_CLIP = 1.0  # colour scale of the sensitivity map: changes beyond +-100% share the end colours


def plot_sensitivity(s: dict[str, Any], path: str | Path) -> Path:
    """One map per factor: rows the varied constants (largest effect first), columns the figures; each cell the
    figure's relative change, coloured (red up, blue down), 'fail' where the estimate became impossible."""
    rows = sorted(s["rows"], key=largest_change, reverse=True)
    labels = list(s["base"])
    fig, axes = plt.subplots(1, len(s["factors"]), figsize=(FIG_SIZE_WIDE[0] * 1.2, 0.38 * len(rows) + 2.2),
                             squeeze=False)
    for j, (ax, factor) in enumerate(zip(axes[0], s["factors"])):
        grid = np.full((len(rows), len(labels)), np.nan)
        for i, row in enumerate(rows):
            run = row["runs"][j]
            if "change" in run:
                grid[i] = [run["change"][k] for k in labels]
        ax.imshow(np.clip(grid, -SENSITIVITY_CLIP, SENSITIVITY_CLIP), cmap="coolwarm", vmin=-SENSITIVITY_CLIP,
                  vmax=SENSITIVITY_CLIP, aspect="auto")
        for i, row in enumerate(rows):
            run = row["runs"][j]
            for k, label in enumerate(labels):
                text = (f"{100 * run['change'][label]:+.0f}%" if "change" in run
                        else "-" if run["error"].startswith("unchanged") else "fail")
                ax.text(k, i, text, ha="center", va="center", fontsize=7)
        ax.set_xticks(range(len(labels)))
        marks = {k: f" ({s['status'][k]})" if s["status"][k] != PREDICTED else "" for k in labels}
        ax.set_xticklabels([f"{k.split(':')[0]}: {HEADINGS[k]}{marks[k]}" for k in labels], rotation=35, ha="right",
                           fontsize=7)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([r["constant"] for r in rows] if j == 0 else [], fontsize=7)
        ax.set_title(f"constant x{factor:g}", fontsize=9)
    fig.suptitle(f"{s['config']}: change of each figure when a low-confidence constant is scaled "
                 f"(fitted constants refitted)", fontsize=10)
    return _save(fig, path)
