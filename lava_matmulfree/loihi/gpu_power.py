"""Board power of a GPU (docs/gpu_baselines.md, "Power"): energy = the integral of idle plus dynamic power.

A board draws ``idle_power_w`` whenever it is on. Above that it draws up to its limit (``power_w``) while its
kernels run at their roofline rate: a kernel whose FLOPs or bytes keep the tensor cores or the DRAM as busy as
they can be (a long GEMM, an eager attention pass over its scores, a weight stream) is *busy* for its roofline
time; the launch ramp and tail of a short kernel, and the time the GPU waits for its host, are not. So

    P(t) = idle + (limit - idle) x u(t),   u = busy time / wall time  (0..1: capped at the limit)
    E    = idle x wall + (limit - idle) x min(wall, busy)

with ``busy`` the sum of the ops' roofline times (:mod:`.gpu_runtimes`). Where the host that dispatches the ops
is inside the measured power (``host_on_board``: a Jetson's module rail holds its CPU), the host's dispatch time
counts as busy too. No constant here is fitted: idle and limit are the spec's (the H200's idle is measured).

Against the H200 measurement (lava_matmulfree/data/gpu_h200.json): a batch-1 eager decode waits on its host for ~21 ms
per token and streams its weights for 0.2 ms of it: the model says 125-130 W, the board drew 130-170 W; a
CUDA-graph decode: 184-196 W against 185-189 W measured; a 16k-token eager prompt pass runs memory-bound passes
back to back: the model says ~700 W, the board drew 658 W.
"""
from __future__ import annotations

from typing import Any

from lava_matmulfree.loihi.hardware import GpuSpec


def busy_s(gpu: GpuSpec, wall_s: float, roofline_s: float, host_s: float) -> float:
    """Seconds of ``wall_s`` the board is modelled at its limit (its roofline work, and the host's dispatch where
    the host is on the board), never more than the wall time."""
    return min(wall_s, max(roofline_s, host_s if gpu.host_on_board else 0.0))


def board_energy(gpu: GpuSpec, wall_s: float, roofline_s: float, host_s: float = 0.0) -> dict[str, Any]:
    """Energy of ``wall_s`` seconds of work whose kernels' roofline times sum to ``roofline_s``: total, above
    idle, mean power and the busy fraction."""
    busy = busy_s(gpu, wall_s, roofline_s, host_s)
    above = (gpu.power_w - gpu.idle_power_w) * busy
    energy = gpu.idle_power_w * wall_s + above
    return {"energy_j": energy, "above_idle_j": above, "mean_power_w": energy / wall_s if wall_s else 0.0,
            "busy_fraction": busy / wall_s if wall_s else 0.0}
