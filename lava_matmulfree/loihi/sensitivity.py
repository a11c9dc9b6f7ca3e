"""How far each low-confidence constant moves the estimate (docs/cost_model.md, section 8).

Many Loihi 2 constants are not published (per-op times scaled from Loihi 1, chip links, the host round trip)
and carry confidence ``low`` in :mod:`.hardware`. For each numeric one of them (Loihi 2 and the Jetson) the
report is rebuilt with the constant halved and doubled; the three fitted constants are refitted on the paper's
anchors every time, as ``estimate --set`` does. The table says how much the predictions (the paper preset's
predicted cells) and the project preset, which moves away from the calibration, change. A figure that moves a
lot under a constant nobody has measured is one to hold loosely.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from lava_matmulfree.loihi.calibration import FIT_FOLLOWS, FIT_JOINT, FIT_TARGET, PREDICTED
from lava_matmulfree.loihi.gpu_baseline import LLAMA_370M, QWEN25_05B
from lava_matmulfree.loihi.hardware import CostModelError, short_name
from lava_matmulfree.loihi.presets import PAPER
from lava_matmulfree.loihi.report import build_report
from lava_matmulfree.loihi.verdict import fmt_sig

FACTORS = (0.5, 2.0)
PROMPT_TOKENS = PAPER.prompt_tokens  # every report is read at the anchors' prompt length
SECTIONS = ("loihi2", "jetson")  # the constants of the calibrated platforms (the H100 is not calibrated)


def _anchor(name: str) -> Callable[[dict], float]:
    def get(report: dict) -> float:
        return next(a["model"] for a in report["calibration"]["anchors"] if a["anchor"] == name)
    get.anchor = name  # its status (fitted, fitted jointly, predicted ...) is the calibration table's
    return get


def _project(key: str) -> Callable[[dict], float]:
    return lambda report: report["platforms"]["loihi2"][key]


# (label, column heading with its unit, how to read it from a report built with preset="project", the factor from
# the report's unit to the heading's); the paper's Loihi prefill cell is its steady-state figure. A paper anchor's
# status is the report's calibration table's; the project's figures are all predicted
MS_PER_S = 1e3
QUANTITIES: tuple[tuple[str, str, Callable[[dict], float], float], ...] = (
    ("paper: Loihi TTFT", "TTFT ms", _anchor("Loihi TTFT, 500 tokens"), MS_PER_S),
    ("paper: Loihi prefill mJ/token", "steady mJ/tok", _anchor("Loihi prefill mJ/token"), 1.0),
    ("paper: Loihi generation tokens/s", "gen tok/s", _anchor("Loihi generation tokens/s"), 1.0),
    ("paper: Jetson generation tokens/s", "Jetson tok/s",
     _anchor(f"Jetson generation tokens/s ({short_name(LLAMA_370M.name)})"), 1.0),
    ("paper: Jetson Qwen prefill mJ/token", "Qwen pre mJ/tok",
     _anchor(f"Jetson prefill mJ/token ({short_name(QWEN25_05B.name)})"), 1.0),
    ("project: Loihi TTFT", "TTFT ms", _project("ttft_s"), MS_PER_S),
    ("project: Loihi generation tokens/s", "gen tok/s", _project("decode_tokens_per_s"), 1.0),
    ("project: Loihi generation mJ/token", "gen mJ/tok", _project("decode_mj_per_token"), 1.0),
)
HEADINGS = {label: heading for label, heading, _, _ in QUANTITIES}
SCALES = {label: scale for label, _, _, scale in QUANTITIES}


STATUS_SHORT = {FIT_TARGET: "fit", FIT_JOINT: "joint fit", FIT_FOLLOWS: "from fit", PREDICTED: "pred."}


def statuses(report: dict) -> dict[str, str]:
    """Each quantity's status: a paper anchor's as the report's calibration table gives it, else predicted."""
    anchors = {a["anchor"]: a["status"] for a in report["calibration"]["anchors"]}
    return {label: anchors[get.anchor] if hasattr(get, "anchor") else PREDICTED for label, _, get, _ in QUANTITIES}


def varied_constants(report: dict, sections: Sequence[str] = SECTIONS) -> list[str]:
    """Names of the numeric (not boolean) constants of confidence ``low`` in ``sections``."""
    return [c["name"] for c in report["constants"]
            if c["confidence"] == "low" and c["name"].split(".")[0] in sections
            and isinstance(c["value"], (int, float)) and not isinstance(c["value"], bool)]


def scaled(value: int | float, factor: float) -> int | float:
    """``value`` x ``factor``; an integer stays an integer (at least 1)."""
    if isinstance(value, int):
        return max(1, round(value * factor))
    return value * factor


def held(overrides: Mapping[str, Any]) -> set[str]:
    """The constants a user's overrides set, by their full names (a plain name is a Loihi 2 field)."""
    return {k if "." in k else f"loihi2.{k}" for k in overrides}


def base_report(config: str, overrides: Mapping[str, Any]) -> dict:
    """The report every run is compared with: preset project, the anchors' prompt length."""
    return build_report(config, (PROMPT_TOKENS,), preset="project", **overrides)


def to_vary(base: dict, names: Iterable[str] | None, overrides: Mapping[str, Any]) -> list[str]:
    """``names`` (default: :func:`varied_constants` of ``base``) less those the overrides hold."""
    return [n for n in (varied_constants(base) if names is None else names) if n not in held(overrides)]


def quantities(report: dict) -> dict[str, float]:
    return {label: get(report) for label, _, get, _ in QUANTITIES}


def sensitivity(config: str = "370m", names: Iterable[str] | None = None, factors: Sequence[float] = FACTORS,
                overrides: Mapping[str, Any] | None = None, on_step: Callable[[str], None] | None = None
                ) -> dict[str, Any]:
    """The report of ``config`` (:func:`base_report`) rebuilt with each constant in ``names`` (default:
    :func:`varied_constants`) times each factor. ``overrides`` apply to every run (a constant they set is not
    varied). Each row: the constant, its value, per factor the value used and the relative change of every
    quantity, or the error that made the estimate impossible (a mapping that no longer fits, anchors that can
    no longer be fitted)."""
    overrides = dict(overrides or {})
    base = base_report(config, overrides)
    base_q = quantities(base)
    values = {c["name"]: c["value"] for c in base["constants"]}
    names = to_vary(base, names, overrides)
    unknown = [n for n in names if n not in values]
    if unknown:
        raise CostModelError(f"sensitivity: unknown constant(s) {', '.join(unknown)}")
    rows = []
    for name in names:
        row: dict[str, Any] = {"constant": name, "value": values[name], "runs": []}
        for f in factors:
            v = scaled(values[name], f)
            run: dict[str, Any] = {"factor": f, "value": v}
            if v == values[name]:
                run["error"] = "unchanged (an integer constant of 1)"
            else:
                try:
                    q = quantities(base_report(config, {**overrides, name: v}))
                    run["change"] = {k: q[k] / base_q[k] - 1 for k in base_q}
                except CostModelError as e:
                    run["error"] = str(e)
            row["runs"].append(run)
            if on_step:
                on_step(name)
        rows.append(row)
    return {"config": config, "factors": list(factors), "overrides": overrides, "base": base_q,
            "status": statuses(base), "rows": rows}


def largest_change(row: dict) -> float:
    """The largest |relative change| of any quantity over the row's runs (inf where a run failed)."""
    out = 0.0
    for run in row["runs"]:
        if "error" in run:
            if not run["error"].startswith("unchanged"):
                return float("inf")
            continue
        out = max(out, max(abs(c) for c in run["change"].values()))
    return out


def format_sensitivity(s: dict) -> str:
    """A table: one row per constant (largest effect first), per quantity the change at each factor."""
    labels = list(s["base"])
    f = " / ".join(f"x{x:g}" for x in s["factors"])
    width = 18  # "paper (joint fit)" and a space
    lines = [f"== Sensitivity ({s['config']}, {PROMPT_TOKENS}-token prompt): change of each figure with a "
             f"low-confidence constant {f}, the fitted constants refitted each time (paper preset's cells; project "
             f"preset)",
             f"{'':<40}" + "".join(f"{k.split(':')[0] + ' (' + STATUS_SHORT[s['status'][k]] + ')':>{width}}"
                                   for k in labels),
             f"{'constant':<40}" + "".join(f"{HEADINGS[k]:>{width}}" for k in labels),
             f"{'base':<40}" + "".join(f"{fmt_sig(v * SCALES[k]):>{width}}" for k, v in s["base"].items())]
    for row in sorted(s["rows"], key=largest_change, reverse=True):
        cells = []
        for k in labels:
            parts = []
            for run in row["runs"]:
                if "error" in run:
                    parts.append("-" if run["error"].startswith("unchanged") else "fail")
                else:
                    parts.append(f"{100 * run['change'][k]:+.0f}%")
            cells.append("/".join(parts))
        lines.append(f"{row['constant'][:39]:<40}" + "".join(f"{c:>{width}}" for c in cells))
    for row in s["rows"]:
        for run in row["runs"]:
            if "error" in run and not run["error"].startswith("unchanged"):
                lines.append(f"  fail: {row['constant']} x{run['factor']:g} = {run['value']:g}: {run['error']}")
    return "\n".join(lines)
