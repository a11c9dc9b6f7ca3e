"""What the benchmark scripts share: where they run from, medians over repeats, the memory and CPU of processes
(read from ``/proc``, Linux), worker subprocesses and writing their JSON results.

Not a benchmark itself. A script imports it as ``_harness`` (``python benchmarks/NAME.py`` puts this folder
first on ``sys.path``); importing it also puts the repository root on ``sys.path``, so the checkout's
``lava_matmulfree`` is the one measured.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (ROOT, HERE):  # HERE: the scripts import one another (bench_lava_overhead, membw)
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from lava_matmulfree.errors import OutputError  # noqa: E402  (after the path set-up above)
from lava_matmulfree.utils import procfs  # noqa: E402
from lava_matmulfree.utils.atomic import check_output_file, write_text  # noqa: E402

OUT_DIR = ROOT / "out"
MS = 1e3
MIB = 1 << 20
KIB = 1024
CLK_TCK = os.sysconf("SC_CLK_TCK")


def loadavg() -> list[float]:
    """The machine's load average (1, 5, 15 min): other jobs share the 2 cores, so every result records it."""
    return [round(v, 2) for v in os.getloadavg()]


def med(values):
    return statistics.median(values) if values else float("nan")


NOISY_SPREAD = 2.0  # repeats whose max / min exceeds this: the figure is marked noisy


def spread(values) -> float:
    """max / min of positive repeats (1.0 for one value, nan for none)."""
    vals = [v for v in values if v is not None]
    if not vals:
        return float("nan")
    lo, hi = min(vals), max(vals)
    return hi / lo if lo > 0 else float("inf")


def robust(values, higher_is_better: bool = False) -> dict:
    """One figure from its repeats: median, best (the least time, the most GB/s), the spread max/min, whether
    it is noisy (spread > ``NOISY_SPREAD``: another job took the cores during some repeats) and every value."""
    vals = [float(v) for v in values]
    best = (max(vals) if higher_is_better else min(vals)) if vals else float("nan")
    sp = spread(vals)
    return {"median": med(vals), "best": best, "spread": sp, "noisy": bool(sp > NOISY_SPREAD), "n": len(vals),
            "all": vals}


def medians(reps: list[dict], keys) -> dict:
    """Per key: the median over the repeats, and every repeat's value under ``KEY_all``."""
    out = {}
    for key in keys:
        out[key] = med([x[key] for x in reps])
        out[key + "_all"] = [x[key] for x in reps]
    return out


# =========================================================================================== this process
def _status_kib(key: str) -> int:
    m = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def rss_bytes() -> int:
    return _status_kib("VmRSS") * KIB


def reset_peak_rss() -> bool:
    """Reset the process's high-water mark VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def peak_rss_bytes() -> int:
    return _status_kib("VmHWM") * KIB


# =========================================================================================== any process
def child_pids(parent: int | None = None) -> list[int]:
    """Live children of ``parent`` (this process by default)."""
    return sorted(procfs.child_pids(parent))


def within(value: float, resolution: float, digits: int = 1) -> str:
    """A derived figure as text, or ``~0 (+-resolution)`` where it is below what its readings resolve (Lava's own
    CPU per step is the workers' CPU from /proc, in clock ticks, less their models' run_spk: at a few steps it came
    out at -0.9 to -2.4 ms)."""
    return f"{value:.{digits}f}" if abs(value) >= resolution else f"~0 (+-{resolution:.{digits}f})"


def lava_own_cpu(chunk: dict) -> tuple[float, float]:
    """(Lava's own CPU ms per step, its resolution) of a chunk of ``bench_lava_overhead.InstrumentedRun``: the
    workers' CPU less their models' run_spk."""
    return ((chunk["children_cpu_s"] - chunk["compute_cpu_s"]) / chunk["steps"] * MS,
            chunk["children_cpu_resolution_s"] / chunk["steps"] * MS)


def lava_own_cpu_med(chunks) -> tuple[float, float]:
    """:func:`lava_own_cpu` of the same chunk of each repeat: the median of each of its two figures."""
    own = [lava_own_cpu(c) for c in chunks]
    return med([ms for ms, _ in own]), med([res for _, res in own])


def proc_cpu_s(pid: int) -> float:
    """utime + stime of a process, seconds (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def smaps_kib(pid: int, keys=("Pss",)) -> dict[str, int]:
    """Fields of a process's ``/proc/PID/smaps_rollup``, KiB (empty if it is gone). PSS (proportional set size)
    splits each shared page among the processes that map it: summed over processes it is their real memory."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in keys:
                out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def proc_pss_bytes(pid: int) -> int:
    """Proportional set size of a process, bytes (0 if it is gone)."""
    return smaps_kib(pid).get("Pss", 0) * KIB


# =================================================================================== the kernel benchmarks' model
def packed_golden(config: str, seed: int = 0):
    """(the network with its weights packed, a FastGoldenModel on a thread team, its whole-model plan) of ``config``
    with random weights and a short calibration: what the kernel benchmarks measure. ValueError
    where the config has no whole-model plan (a stage kernel's precondition fails)."""
    import numpy as np

    from lava_matmulfree.evaluation.accuracy import build_evaluation
    from lava_matmulfree.model.golden_fast import FastGoldenModel

    net = build_evaluation(config, seed=seed, num_calib=2, calib_length=8, dtype=np.float32).net.pack_weights()
    golden = FastGoldenModel(net, parallel=True)
    plan = golden.model_plan()
    if plan is None:
        raise ValueError(f"config {config!r} has no whole-model plan (a stage kernel's precondition fails)")
    return net, golden, plan


def packed_plan(config: str, seed: int = 0):
    """The whole-model plan of :func:`packed_golden`, or None after one ``error:`` line on stderr (a config without
    a plan: the benchmark then exits with 2)."""
    try:
        return packed_golden(config, seed)[2]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


# =========================================================================================== workers and results
def run_worker(script: Path, flags, out: Path, timeout: float, check: bool = False):
    """Run ``script`` in a fresh interpreter with ``flags`` and ``--worker-out OUT`` (a process of its own, so its
    memory is its own); its stdout is dropped, its stderr (progress) passes through. Returns (exit status, the
    JSON it wrote to OUT, or None when it failed); ``check``: raise when it failed."""
    cmd = [sys.executable, str(Path(script).resolve()), *flags, "--worker-out", str(out)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, timeout=timeout, check=check)
    if proc.returncode != 0 or not out.is_file():
        return proc.returncode, None
    return 0, json.loads(out.read_text())


def json_out(value: str) -> Path:
    """The argparse type of a benchmark's ``--out`` (its JSON report): refused when the arguments are read, not
    after minutes of measuring, where it cannot become a file (a folder, a file where its folder should be, a
    folder that cannot be written)."""
    try:
        return check_output_file(value)
    except OutputError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def write_json(path: Path, data: dict, **dumps) -> None:
    """Write a result (its folder made) with the package's atomic writer, so an interrupted run leaves the last one
    and no partial file; ``dumps``: json.dumps's options beside indent=1."""
    write_text(path, json.dumps(data, indent=1, **dumps) + "\n")


def finish(res: dict, out: Path) -> int:
    """The end of a benchmark that keeps its load average from the start in ``res["load_start"]``: the load now
    into ``res["load_end"]``, ``res`` written to ``out``, one line saying both; exit status 0."""
    res["load_end"] = loadavg()
    write_json(out, res)
    print(f"load {res['load_start']} -> {res['load_end']}; wrote {out}")
    return 0
