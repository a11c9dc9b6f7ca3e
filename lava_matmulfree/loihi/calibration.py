"""The fit of three constants on the paper's anchors (:data:`~.presets.PAPER`), and the table that sets every
anchor beside the model's value (docs/cost_model.md); and the fit of the H200's two constants on named cells of
its measurement (:func:`fit_h200`, docs/gpu_baselines.md).

Fitted (each on named anchors; everything else in the report is a prediction):

1. ``Loihi2Spec.board_sync_s`` on the Loihi generation *and* prefill throughputs of the paper preset: the one
   value whose predicted throughputs have the paper's product (the geometric-mean fit: both miss by the same
   factor in opposite directions, which shows how far one constant is from reproducing both).
2. ``Loihi2Spec.static_power_per_chip_w`` on the Loihi generation energy per token (static power dominates it).
3. ``jetson.prefill_efficiency`` on the Jetson's TTFT (500 tokens, Llama-style baseline).

Each model quantity is affine in the constant being fitted (or in its inverse), so each fit evaluates the
model at two values, solves exactly and checks the solution by a third evaluation.

The H200 (:func:`fit_h200`, not re-run by the report: the stored defaults of ``hardware.H200_SXM`` are its
result, and tests/test_gpu_baselines.py re-fits them from lava_matmulfree/data/gpu_h200.json):

4. ``h200.host_op_overhead_s`` on the measured prompt passes of 16, 128 and 512 tokens, eager and sdpa
   (:data:`HOST_FIT_CELLS`: host-bound, their time is the host's dispatch), tokens/s;
5. ``h200.kernel_floor_s`` on the measured CUDA-graph decode (:data:`FLOOR_FIT_CELLS`), tokens/s.

Each is fitted so that the geometric mean of the model's tokens/s over its cells is the measured one; every
other cell of the measurement, and every energy, is a prediction.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping

from lava_matmulfree.config import ModelConfig
from lava_matmulfree.loihi.gpu_baseline import BASELINES, LLAMA_370M
from lava_matmulfree.loihi.gpu_runtimes import cell, gpu_estimate
from lava_matmulfree.loihi.hardware import H200_SXM, CostModelError, GpuSpec, Loihi2Spec, short_name
from lava_matmulfree.loihi.presets import PAPER, PaperAnchors, loihi_model, preset

# the constants calibrate() fits, by their report names (a user's value of one is kept as given)
BOARD_SYNC, STATIC_POWER, JETSON_EFFICIENCY = FITTED_CONSTANTS = (
    "loihi2.board_sync_s", "loihi2.static_power_per_chip_w", "jetson.prefill_efficiency")
FIT_CHECK_RTOL = 1e-6  # a fit whose check evaluation misses its target by more than this is an error
SECANT_STEPS = 30

# An anchor's status in the calibration table (docs/cost_model.md, section 5)
FIT_TARGET = "fitted"  # a constant fitted on this anchor alone reproduces it
FIT_JOINT = "fitted jointly"  # one constant fitted on two anchors: their product is reproduced, not each
FIT_FOLLOWS = "follows from a fit"  # computed from a fitted anchor (the Jetson's prefill rate and energy: its TTFT)
PREDICTED = "predicted"

def _affine_solve(f: Callable[[float], float], target: float, x0: float, x1: float) -> float:
    """x with f(x) = target for an f that is affine in x piecewise (a max() can switch pieces): secant steps,
    exact after one step within a piece."""
    y0, y1 = f(x0), f(x1)
    for _ in range(SECANT_STEPS):
        if y1 == y0:
            raise CostModelError("the anchor does not depend on the constant being fitted")
        x0, y0, x1 = x1, y1, x1 + (target - y1) * (x1 - x0) / (y1 - y0)
        y1 = f(x1)
        if math.isclose(y1, target, rel_tol=FIT_CHECK_RTOL / 10):
            return x1
    return x1


def _check(value: float, target: float, what: str) -> None:
    if not math.isclose(value, target, rel_tol=FIT_CHECK_RTOL):
        raise CostModelError(f"fit of {what} did not converge ({value} vs {target})")  # pragma: no cover


def fit_board_sync(cfg, hw, opts, instructions, decode_tok_s: float, prefill_tok_s: float) -> float:
    """board_sync_s whose predicted decode and prefill throughputs have the product of the targets."""
    if hw.board_levels(loihi_model(cfg, hw, opts, instructions).mapping.chips) == 0:
        raise CostModelError("board_sync_s cannot be fitted on a mapping that fits one board")
    step = 1e-4

    def times(s):
        cm = loihi_model(cfg, dataclasses.replace(hw, board_sync_s=s), opts, instructions)
        return cm.decode_token_s, cm.prefill_step_s

    (d0, p0), (d1, p1) = times(0.0), times(step)
    kd, kp = (d1 - d0) / step, (p1 - p0) / step
    # (d0 + kd s)(p0 + kp s) = 1 / (decode x prefill): a quadratic in s with one positive root
    a, b, c = kd * kp, d0 * kp + p0 * kd, d0 * p0 - 1.0 / (decode_tok_s * prefill_tok_s)
    s = (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)
    if s < 0:
        raise CostModelError("the anchors need a negative board_sync_s: the rest of the model is too slow")
    d, p = times(s)
    _check(1.0 / (d * p), decode_tok_s * prefill_tok_s, "board_sync_s")
    return s


def fit_static_power(cfg, hw, opts, instructions, decode_j: float) -> float:
    """static_power_per_chip_w whose predicted decode energy per token is ``decode_j``."""
    def energy(p):
        return loihi_model(cfg, dataclasses.replace(hw, static_power_per_chip_w=p), opts,
                           instructions).decode_energy_per_token_j

    p = _affine_solve(energy, decode_j, 0.0, 0.5)
    if p <= 0:
        raise CostModelError("the generation energy anchor needs a negative static power")
    _check(energy(p), decode_j, "static_power_per_chip_w")
    return p


def fit_prefill_efficiency(gpu: GpuSpec, tokens: int, ttft_s: float, shape=LLAMA_370M) -> float:
    """GPU prefill efficiency whose predicted TTFT is ``ttft_s`` (compute time is affine in 1/efficiency)."""
    def ttft(inv):
        return gpu_estimate(shape, tokens, dataclasses.replace(gpu, prefill_efficiency=1.0 / inv))["ttft_s"]

    inv = _affine_solve(ttft, ttft_s, 1.0 / gpu.prefill_efficiency, 2.0 / gpu.prefill_efficiency)
    if inv < 1:
        raise CostModelError(f"a TTFT of {ttft_s} s needs a prefill efficiency above 1")
    _check(ttft(inv), ttft_s, "prefill_efficiency")
    return 1.0 / inv


def calibrate(cfg: ModelConfig, hw: Loihi2Spec, jetson: GpuSpec, instructions, fixed: set[str] = frozenset(),
              anchors: PaperAnchors = PAPER) -> tuple[Loihi2Spec, GpuSpec, list[dict[str, Any]]]:
    """Fit the three constants on the paper preset (constants named in ``fixed`` are kept as given).
    Returns the updated specs and one row per fitted constant."""
    rows = []
    hw_p, opts_p = preset("paper", hw)
    if BOARD_SYNC.split(".")[1] not in fixed:
        s = fit_board_sync(cfg, hw_p, opts_p, instructions, anchors.loihi_decode_tokens_per_s,
                           anchors.loihi_prefill_tokens_per_s)
        hw, hw_p = dataclasses.replace(hw, board_sync_s=s), dataclasses.replace(hw_p, board_sync_s=s)
        rows.append({"constant": BOARD_SYNC, "value": s, "unit": "s",
                     "anchors": ["Loihi generation tokens/s", "Loihi prefill tokens/s"]})
    if STATIC_POWER.split(".")[1] not in fixed:
        p = fit_static_power(cfg, hw_p, opts_p, instructions, anchors.loihi_decode_mj_per_token * 1e-3)
        hw = dataclasses.replace(hw, static_power_per_chip_w=p)
        rows.append({"constant": STATIC_POWER, "value": p, "unit": "W",
                     "anchors": ["Loihi generation mJ/token"]})
    if JETSON_EFFICIENCY not in fixed:
        e = fit_prefill_efficiency(jetson, anchors.prompt_tokens, anchors.jetson_ttft_s)
        jetson = dataclasses.replace(jetson, prefill_efficiency=e)
        rows.append({"constant": JETSON_EFFICIENCY, "value": e, "unit": "",
                     "anchors": [f"Jetson TTFT ({short_name(LLAMA_370M.name)})"]})
    return hw, jetson, rows


def relative_error(model: float, paper) -> float:
    """model / paper - 1; for a (low, high) range 0 inside it, else the distance to the nearest bound."""
    if isinstance(paper, tuple):
        lo, hi = paper
        return 0.0 if lo <= model <= hi else (model / lo - 1 if model < lo else model / hi - 1)
    return model / paper - 1


def anchor_table(loihi: dict[str, Any], gpus: dict[str, dict[str, Any]], fitted_on: Mapping[str, str],
                 anchors: PaperAnchors = PAPER) -> list[dict[str, Any]]:
    """Anchor, paper value, model value, error and status, one row per cell of the paper's table: the status its
    anchor has in ``fitted_on`` (FIT_TARGET, FIT_JOINT, FIT_FOLLOWS), else PREDICTED."""
    rows = []

    def row(name, paper, model, unit):
        rows.append({"anchor": name, "paper": paper, "model": model, "unit": unit,
                     "error": relative_error(model, paper),
                     "status": fitted_on.get(name, PREDICTED)})

    row("Loihi generation tokens/s", anchors.loihi_decode_tokens_per_s, loihi["decode_tokens_per_s"], "tokens/s")
    row("Loihi generation mJ/token", anchors.loihi_decode_mj_per_token, loihi["decode_mj_per_token"], "mJ")
    # the paper's Loihi 2 prefill figures are steady-state (flat in the prompt's length): the model's steady ones
    row("Loihi prefill tokens/s", anchors.loihi_prefill_tokens_per_s, loihi["prefill_steady_tokens_per_s"],
        "tokens/s")
    row("Loihi prefill mJ/token", anchors.loihi_prefill_mj_per_token, loihi["prefill_steady_mj_per_token"], "mJ")
    row("Loihi TTFT, 500 tokens", anchors.loihi_ttft_s, loihi["ttft_s"], "s")
    for key, shape in BASELINES.items():
        g = gpus[f"jetson/{key}"]
        row(f"Jetson generation tokens/s ({short_name(shape.name)})", anchors.jetson_decode_tokens_per_s,
            g["decode_tokens_per_s"], "tokens/s")
        row(f"Jetson generation mJ/token ({short_name(shape.name)})", anchors.jetson_decode_mj_per_token,
            g["decode_mj_per_token"], "mJ")
        row(f"Jetson prefill tokens/s ({short_name(shape.name)})", anchors.jetson_prefill_tokens_per_s,
            g["prefill_tokens_per_s"], "tokens/s")
        row(f"Jetson prefill mJ/token ({short_name(shape.name)})", anchors.jetson_prefill_mj_per_token,
            g["prefill_mj_per_token"], "mJ")
    row(f"Jetson TTFT ({short_name(LLAMA_370M.name)})", anchors.jetson_ttft_s, gpus["jetson/llama370m"]["ttft_s"], "s")
    return rows


# ------------------------------------------------------------------------------------------- the H200
def HOST_FIT_CELLS(c: dict) -> bool:  # noqa: N802 (a named subset, read as a constant)
    """The measured cells ``h200.host_op_overhead_s`` is fitted on: prompt passes of at most 512 tokens."""
    return c["phase"] == "prefill" and c["runtime"] in ("eager", "sdpa") and c["tokens"] <= 512


def FLOOR_FIT_CELLS(c: dict) -> bool:  # noqa: N802
    """The measured cells ``h200.kernel_floor_s`` is fitted on: the CUDA-graph decode."""
    return c["phase"] == "decode" and c["runtime"] == "cuda-graph"


H200_FITS = (("host_op_overhead_s", HOST_FIT_CELLS), ("kernel_floor_s", FLOOR_FIT_CELLS))
H200_FIT_ROUNDS = 4  # the two fits barely interact (one graph launch; the floors under a host-bound pass)


def predicted_cell(c: dict, gpu: GpuSpec = H200_SXM, shape=LLAMA_370M) -> dict:
    """The model's row for a measured cell ({runtime, phase, tokens or context, batch})."""
    length = c["tokens"] if c["phase"] == "prefill" else c["context"]
    return cell(shape, gpu, c["runtime"], c["phase"], length, c.get("batch", 1))


def _log_mean_rate(cells: list[dict], gpu: GpuSpec | None = None, shape=LLAMA_370M) -> float:
    """log of the geometric mean of tokens/s over ``cells``: the measured ones, or the model's with ``gpu``."""
    rates = [c["tokens_per_s"] if gpu is None else predicted_cell(c, gpu, shape)["tokens_per_s"] for c in cells]
    return sum(math.log(r) for r in rates) / len(rates)


def fit_h200(measured: list[dict], gpu: GpuSpec = H200_SXM, shape=LLAMA_370M) -> tuple[GpuSpec, list[dict]]:
    """Fit ``host_op_overhead_s`` and ``kernel_floor_s`` on their named subsets of the measured cells (each a
    dict with runtime, phase, tokens or context, batch, tokens_per_s). Returns the spec and one row per fit."""
    rows = []
    for _ in range(H200_FIT_ROUNDS):
        rows = []
        for name, subset in H200_FITS:
            cells = [c for c in measured if subset(c)]
            if not cells:
                raise CostModelError(f"no measured cell to fit h200.{name} on")

            def f(x, name=name, cells=cells):
                return _log_mean_rate(cells, dataclasses.replace(gpu, **{name: x}), shape)

            x0 = getattr(gpu, name)
            x = _affine_solve(f, _log_mean_rate(cells), x0, 1.1 * x0)
            if x <= 0:
                raise CostModelError(f"the measured cells need h200.{name} <= 0")
            gpu = dataclasses.replace(gpu, **{name: x})
            rows.append({"constant": f"h200.{name}", "value": x, "unit": "s", "cells": len(cells),
                         "fitted_on": subset.__doc__.split(": ", 1)[1].rstrip(".")})
    return gpu, rows
