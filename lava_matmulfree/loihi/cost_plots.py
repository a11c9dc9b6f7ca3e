"""PNG plots of a cost report (matplotlib, Agg backend): TTFT and energy per token against prompt length for
Loihi 2 and the edge GPU, on log-log axes where a line of slope 1 is linear growth and slope 2 quadratic."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib import ticker  # noqa: E402

LOIHI_COLOR = "#1f77b4"
GPU_COLOR = "#d62728"
FIG_SIZE_WIDE = (11.0, 4.4)
DPI = 130
REFERENCE_STYLE = dict(color="0.6", linestyle=":", linewidth=1)


def _series(report: dict[str, Any], key: str) -> list[float]:
    return [row[key] for row in report["sweep"]]


def _log_ticks(ax) -> None:
    """Readable log axes: ticks at 1, 2, 5 x 10^k (x) and 1, 2, 3, 5 x 10^k (y), as plain numbers."""
    for axis, subs in ((ax.xaxis, (1.0, 2.0, 5.0)), (ax.yaxis, (1.0, 2.0, 3.0, 5.0))):
        axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
        axis.set_major_formatter(ticker.FormatStrFormatter("%g"))
        axis.set_minor_formatter(ticker.NullFormatter())


def _label(report: dict[str, Any]) -> str:
    return f"MatMul-free {report['config']}"


def _gpu_note(report: dict[str, Any]) -> str:
    g = report["gpu"]
    cap = next(c["value"] for c in report["constants"] if c["name"] == "GpuSpec.memory_capacity_bytes")
    return "" if g["fits_in_memory"] else f": {g['weights_bytes'] / 1e9:.1f} GB > {cap / 1e9:.0f} GB"


def plot_ttft(report: dict[str, Any], path: str | Path) -> Path:
    """Left: time to first token vs prompt length on linear axes (a straight line for Loihi 2, an upward
    curve for the GPU). Right: TTFT per prompt token (log-log): Loihi 2 falls to one time step per token, the
    GPU's grows with T (its attention is quadratic). Stars: the paper's 500-token anchors."""
    T = _series(report, "prompt_tokens")
    lo = [t * 1e3 for t in _series(report, "loihi_ttft_s")]
    gp = [t * 1e3 for t in _series(report, "gpu_ttft_s")]
    lo_label = f"Loihi 2, {_label(report)} ({report['loihi']['chips']} chips)"
    gp_label = (f"Jetson Orin Nano, Llama-style {report['gpu']['shape']['params'] / 1e6:.0f}M "
                f"({report['gpu']['dtype']}{_gpu_note(report)})")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIG_SIZE_WIDE)
    ax1.plot(T, [x / 1e3 for x in lo], "o-", color=LOIHI_COLOR, label=lo_label)
    ax1.plot(T, [x / 1e3 for x in gp], "s-", color=GPU_COLOR, label=gp_label)
    a = report.get("paper_anchor")
    if a:
        ax1.plot([500], [a["paper_ttft_loihi_s"]], "*", color=LOIHI_COLOR, markersize=13, markeredgecolor="k",
                 label=f"paper, Loihi 2: {a['paper_ttft_loihi_s'] * 1e3:.0f} ms")
        ax1.plot([500], [a["paper_ttft_jetson_s"]], "*", color=GPU_COLOR, markersize=13, markeredgecolor="k",
                 label=f"paper, Jetson: {a['paper_ttft_jetson_s'] * 1e3:.0f} ms")
    ax1.set_xlabel("prompt length T (tokens)")
    ax1.set_ylabel("time to first token (s)")
    ax1.set_title("time to first token (linear axes)", fontsize=10)
    ax1.grid(True, alpha=0.25)
    ax1.legend(fontsize=8, loc="upper left")
    ax2.loglog(T, [x / t for x, t in zip(lo, T)], "o-", color=LOIHI_COLOR, label="Loihi 2")
    ax2.loglog(T, [x / t for x, t in zip(gp, T)], "s-", color=GPU_COLOR, label="Jetson Orin Nano")
    ax2.axhline(report["loihi"]["prefill_step_s"] * 1e3, **REFERENCE_STYLE)
    ax2.annotate("one Loihi time step", (T[0], report["loihi"]["prefill_step_s"] * 1e3), fontsize=7,
                 color="0.45", va="bottom")
    _log_ticks(ax2)
    ax2.set_xlabel("prompt length T (tokens)")
    ax2.set_ylabel("TTFT / T (ms per prompt token)")
    ax2.set_title("time per prompt token: pipeline fill amortised vs attention growing", fontsize=10)
    ax2.grid(True, which="both", alpha=0.25)
    ax2.legend(fontsize=8)
    fig.suptitle(f"Time to first token, batch 1 - {report['config']}: Loihi 2 needs T + "
                 f"{report['loihi']['pipeline_depth'] - 1} time steps (linear in T); "
                 "the GPU's attention adds a T^2 term", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out


def plot_energy(report: dict[str, Any], path: str | Path) -> Path:
    """Energy per token vs prompt length: prefill (per prompt token) and decode (per generated token at that
    context length), for both platforms."""
    T = _series(report, "prompt_tokens")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=FIG_SIZE_WIDE)
    for ax, key, title in ((ax1, "prefill", "prefill: energy per prompt token"),
                           (ax2, "decode", "decode: energy per generated token at context T")):
        lo = [e * 1e3 for e in _series(report, f"loihi_{key}_energy_per_token_j")]
        gp = [e * 1e3 for e in _series(report, f"gpu_{key}_energy_per_token_j")]
        ax.loglog(T, lo, "o-", color=LOIHI_COLOR, label=f"Loihi 2 ({report['loihi']['chips']} chips, "
                                                       f"{report['loihi']['static_power_w']:.0f} W static)")
        ax.loglog(T, gp, "s-", color=GPU_COLOR, label=f"Jetson Orin Nano ({report['gpu']['power_w']:.0f} W, "
                                                      f"{report['gpu']['dtype']}{_gpu_note(report)})")
        _log_ticks(ax)
        ax.set_xlabel("prompt / context length T (tokens)")
        ax.set_ylabel("energy per token (mJ)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8)
    fig.suptitle(f"Energy per token - {report['config']}: Loihi 2 flat in T once the pipeline fill is amortised "
                 "(recurrent state, no cache); the GPU grows with T (attention, KV cache)", fontsize=10)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=DPI)
    plt.close(fig)
    return out
