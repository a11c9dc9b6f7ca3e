"""Time and energy of a forward pass on a GPU, per runtime (docs/gpu_baselines.md, "Time").

Every op of :func:`~.gpu_baseline.forward_ops` costs the GPU ``kernels x kernel_floor_s`` plus its roofline
time: its FLOPs at ``prefill_efficiency`` of the FP16 peak (a fused attention kernel at
``fused_attention_efficiency``), or its bytes at ``memory_efficiency`` of the DRAM bandwidth, whichever is longer. The runtimes:

- ``eager`` and ``sdpa`` (Hugging Face with eager or fused attention, a DynamicCache): the host dispatches
  every op, ``host_op_overhead_s`` each, and a kernel cannot start before the host has issued it. With op i
  issued at H_i (the host's cumulative time) and taking g_i on the GPU, the pass ends at
  max_i (H_i + g_i + ... + g_N): the host's time where it is slower (batch 1, short prompts), the GPU's where
  it is (long prompts), and in between whatever the GPU cannot hide behind the host.
- ``cuda-graph`` (a tuned runtime: the step captured once and replayed, fused attention, a static KV cache):
  one host call per step, then the kernels back to back: ``host_op_overhead_s`` + the sum of the g_i.

Energy: :func:`~.gpu_power.board_energy` with the wall time, the ops' summed roofline time and the host's time.
The grid of the report (:func:`gpu_rows`): every GPU x model x runtime x phase x length x batch.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from lava_matmulfree.loihi.gpu_baseline import RUNTIMES, forward_ops, peak_bytes
from lava_matmulfree.loihi.gpu_power import board_energy
from lava_matmulfree.loihi.hardware import GpuSpec

PREFILL_TOKENS = (16, 128, 512, 2048, 8192, 16384)
DECODE_CONTEXTS = (128, 500, 2048, 16384)
BATCHES = (1, 8, 64)  # decode streams; prompt passes at batch 1
# the report's names of the GPUs (its hardware sections: jetson, h100, h200)
GPU_IDS = {"h200": "h200", "h100": "h100", "jetson": "jetson-orin-nano"}
KIND_CODES = {"gemm": 0, "attention": 1, "memory": 2}


def _columns(ops) -> np.ndarray:
    """(host ops, kernels, flops, bytes, kind) per op, as a float array of shape (ops, 5)."""
    return np.array([(o.host_ops, o.kernels, o.flops, o.bytes, KIND_CODES[o.kind]) for o in ops],
                    dtype=float).reshape(-1, 5)


def run(shape, runtime: str, tokens: int, context: int, batch: int, gpu: GpuSpec) -> dict[str, Any]:
    """Wall time, host time, GPU time, roofline time, kernels and energy of one forward of ``batch`` streams,
    ``tokens`` new tokens each after ``context`` cached ones."""
    gpu.check()
    pre, layer, post, layers = forward_ops(shape, runtime, tokens, context, batch, gpu)
    c = np.concatenate([_columns(pre), np.tile(_columns(layer), (layers, 1)), _columns(post)])
    host_ops, kernels, flops, nbytes, kind = c.T
    rate = gpu.peak_flops * np.where(kind == KIND_CODES["attention"], gpu.fused_attention_efficiency,
                                     gpu.prefill_efficiency)
    t_flops = flops / rate
    t_bytes = nbytes / (gpu.memory_bandwidth_bps * gpu.memory_efficiency)
    roofline = np.maximum(t_flops, t_bytes)
    g = kernels * gpu.kernel_floor_s + roofline
    if runtime == "cuda-graph":
        host = gpu.host_op_overhead_s  # one graph replay per step
        wall = host + float(g.sum())
    else:
        issued = np.cumsum(host_ops * gpu.host_op_overhead_s)
        after = np.cumsum(g[::-1])[::-1]  # GPU time of op i and every op after it
        host = float(issued[-1])
        wall = max(host, float((issued + after).max()))
    roof = float(roofline.sum())
    parts = {"host dispatch": host if runtime != "cuda-graph" else 0.0,
             "kernel launches": float(kernels.sum()) * gpu.kernel_floor_s,
             "memory": float(np.where(t_bytes >= t_flops, roofline, 0).sum()),
             "compute": float(np.where(t_bytes < t_flops, roofline, 0).sum())}
    return {"wall_s": wall, "host_s": host, "gpu_s": float(g.sum()), "roofline_s": roof,
            "bound": max(parts, key=parts.get), "kernels": int(kernels.sum()), "host_ops": int(host_ops.sum()),
            "flops": float(flops.sum()), "bytes": float(nbytes.sum()),
            **board_energy(gpu, wall, roof, host)}


def cell(shape, gpu: GpuSpec, runtime: str, phase: str, length: int, batch: int = 1) -> dict[str, Any]:
    """One row of the grid: a prompt pass of ``length`` tokens (``phase="prefill"``) or one generated token per
    stream after ``length`` tokens of context (``"decode"``), for ``batch`` streams."""
    if phase == "prefill":
        r = run(shape, runtime, length, 0, batch, gpu)
        tokens, peak = batch * length, peak_bytes(shape, runtime, length, 0, batch, gpu)
    elif phase == "decode":
        r = run(shape, runtime, 1, length, batch, gpu)
        tokens, peak = batch, peak_bytes(shape, runtime, 1, length, batch, gpu)
    else:
        raise ValueError(f"phase must be 'prefill' or 'decode', got {phase!r}")
    above = r["above_idle_j"]
    return {"runtime": runtime, "phase": phase, ("tokens" if phase == "prefill" else "context"): length,
            "batch": batch, "tokens_per_s": tokens / r["wall_s"],
            "tokens_per_s_per_stream": tokens / r["wall_s"] / batch, "time_s": r["wall_s"],
            "mj_per_token": 1e3 * r["energy_j"] / tokens, "mj_per_token_above_idle": 1e3 * above / tokens,
            "mean_power_w": r["mean_power_w"], "bound": r["bound"], "host_s": r["host_s"], "gpu_s": r["gpu_s"],
            "kernels": r["kernels"], "peak_bytes": peak, "fits_in_memory": bool(peak <= gpu.memory_capacity_bytes)}


def gpu_estimate(shape, prompt_tokens: int, gpu: GpuSpec, runtime: str = "eager") -> dict[str, Any]:
    """TTFT, throughputs and energy per token at batch 1 for a prompt of ``prompt_tokens`` (decode after it)."""
    p = cell(shape, gpu, runtime, "prefill", prompt_tokens)
    d = cell(shape, gpu, runtime, "decode", prompt_tokens)
    return {
        "gpu": gpu.name, "model": shape.name, "dtype": gpu.dtype, "runtime": runtime,
        "weights_bytes": shape.params * gpu.bytes_per_value, "peak_bytes": max(p["peak_bytes"], d["peak_bytes"]),
        "fits_in_memory": p["fits_in_memory"] and d["fits_in_memory"],
        "prompt_tokens": prompt_tokens, "ttft_s": p["time_s"], "prefill_tokens_per_s": p["tokens_per_s"],
        "prefill_bound": p["bound"], "decode_token_s": d["time_s"], "decode_tokens_per_s": d["tokens_per_s"],
        "decode_bound": d["bound"], "prefill_power_w": p["mean_power_w"], "decode_power_w": d["mean_power_w"],
        "prefill_energy_per_token_j": 1e-3 * p["mj_per_token"],
        "decode_energy_per_token_j": 1e-3 * d["mj_per_token"],
        "decode_energy_above_idle_j": 1e-3 * d["mj_per_token_above_idle"],
    }


def gpu_rows(models: Mapping[str, Any], gpus: Mapping[str, GpuSpec], runtimes: Iterable[str] = RUNTIMES,
             prefill_tokens: Iterable[int] = PREFILL_TOKENS, contexts: Iterable[int] = DECODE_CONTEXTS,
             batches: Iterable[int] = BATCHES) -> list[dict[str, Any]]:
    """Every GPU x model x runtime x phase x length x batch (prompt passes at batch 1). ``models``: the report's
    model names -> shapes; ``gpus``: hardware sections ("jetson", "h100", "h200") -> specs."""
    rows = []
    for section, gpu in gpus.items():
        for model, shape in models.items():
            for runtime in runtimes:
                head = {"gpu": GPU_IDS.get(section, section), "model": model}
                rows += [{**head, **cell(shape, gpu, runtime, "prefill", t)} for t in prefill_tokens]
                rows += [{**head, **cell(shape, gpu, runtime, "decode", c, b)} for c in contexts for b in batches]
    return rows
