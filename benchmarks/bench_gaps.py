"""What compute between the matrices of a decode token costs the weight stream.

The synapses of one token (every matrix in layer order, the team meeting between dependent ones, as
whole_model._k_synapse_pass_thread) are timed with a gap of memory-free compute at each place where the
whole-model kernel runs neurons (before i, f, g; before o; before gate and up; before down: 4 per layer), and
the gaps are timed alone (less an empty parallel region). Where the stream simply paused, pass with gaps = pass
without + gaps alone; what is left over, per gap, is what restarting the stream costs (medians). ``--prefetch``
also issues software prefetches (into L2) of the first bytes of each thread's rows of the next matrix just before
each gap: the restart's usual remedy.

    .venv/bin/python benchmarks/bench_gaps.py --config 370m

Figures and what they say: docs/cpu_tuning.md, "Gaps between the matrices".
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _harness import MS, OUT_DIR, finish, json_out, loadavg, packed_plan, robust
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from lava_matmulfree.model.ternary_kernels import CACHE_LINE_BYTES, FIELDS_PER_BYTE
from lava_matmulfree.model.thread_team import barrier, share, team_rows
from lava_matmulfree.model.whole_model import PRANGE_ONLY

DEFAULT_OUT = OUT_DIR / "bench_gaps.json"
GAPS_PER_LAYER = 4
LCG_MUL, LCG_ADD = 6364136223846793005, 1442695040888963407   # a dependent chain the compiler cannot fold


@intrinsic
def _prefetch_l2(typingctx, arr, byte_offset):
    """prefetcht1 of the cache line at ``byte_offset`` into the data of a contiguous array."""
    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        base = builder.ptrtoint(ary.data, ir.IntType(64))
        ptr = builder.inttoptr(builder.add(base, args[1]), ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [ir.IntType(8).as_pointer(), i32, i32, i32]),
            "llvm.prefetch.p0i8")
        builder.call(fn, [ptr, ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()
    return types.void(arr, types.int64), codegen


@njit(inline="always")
def _spin(steps, s):
    """``steps`` steps of compute that touch no memory."""
    for _ in range(steps):
        s = (s * LCG_MUL + LCG_ADD) >> 1
    return s


@njit(inline="always")
def _gap(spin, prefetch_bytes, next_codes, tid, n, s):
    """Before the next matrix: prefetch its first bytes of this thread's rows, then ``spin`` steps of compute."""
    if prefetch_bytes:
        r_lo, r_hi = share(next_codes.shape[0], tid, n)
        start = r_lo * next_codes.shape[1]
        for off in range(start, min(r_hi * next_codes.shape[1], start + prefetch_bytes), CACHE_LINE_BYTES):
            _prefetch_l2(next_codes, off)
    return _spin(spin, s)


@njit(inline="always")
def _thread(tid, n, bar, c_ifgo, c_gate, c_down, c_head, x_d, x_i, xs, acc_d, acc_uv, logits, spin, pf, out):
    s = np.int64(tid + 1)
    for l in range(c_gate.shape[0]):
        s = _gap(spin, pf, c_ifgo[4 * l], tid, n, s)
        for k in range(3):
            team_rows(c_ifgo[4 * l + k], x_d, xs, acc_d, tid, n)
        s = _gap(spin, pf, c_ifgo[4 * l + 3], tid, n, s)
        barrier(bar, n)
        team_rows(c_ifgo[4 * l + 3], x_d, xs, acc_d, tid, n)
        s = _gap(spin, pf, c_gate[l], tid, n, s)
        barrier(bar, n)
        team_rows(c_gate[l], x_d, xs, acc_uv, tid, n)
        s = _gap(spin, pf, c_down[l], tid, n, s)
        barrier(bar, n)
        team_rows(c_down[l], x_i, xs, acc_d, tid, n)
        barrier(bar, n)
    team_rows(c_head, x_d, xs, logits, tid, n)
    barrier(bar, n)
    out[tid] = s


@njit(parallel=PRANGE_ONLY)
def _pass(c_ifgo, c_gate, c_down, c_head, x_d, x_i, xs, acc_d, acc_uv, logits, n, spin, pf, out):
    """The synapses of a token on a team of ``n`` with the gaps (spin 0, pf 0: the plain synapse pass)."""
    bar = np.zeros(2, dtype=np.int64)
    for tid in prange(n):
        _thread(tid, n, bar, c_ifgo, c_gate, c_down, c_head, x_d, x_i, xs, acc_d, acc_uv, logits, spin, pf, out)


@njit(parallel=PRANGE_ONLY)
def _gaps_alone(L, n, spin, out):
    for tid in prange(n):
        s = np.int64(tid + 1)
        for _ in range(L * GAPS_PER_LAYER):
            s = _spin(spin, s)
        out[tid] = s


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="370m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--spins", type=int, nargs="+", default=[500, 2000, 8000],
                   help="compute steps per gap (about 1.3 ns each here; default 500 2000 8000)")
    p.add_argument("--prefetch", type=int, nargs="+", default=[0, 8192, 32768],
                   help="bytes of the next matrix prefetched into L2 before each gap (default 0 8192 32768)")
    p.add_argument("--repeats", type=int, default=20, help="timed passes per setting (default 20)")
    p.add_argument("--warm", type=int, default=10, help="untimed passes before them (default 10)")
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from lava_matmulfree.model.thread_team import use_threads

    plan = packed_plan(args.config, args.seed)
    if plan is None:
        return 2
    c_ifgo, c_gate, c_down, c_head = (plan.arrays[k] for k in (3, 4, 5, 12))
    rng = np.random.default_rng(args.seed)
    x_d = rng.integers(-128, 128, (1, c_ifgo.shape[2] * FIELDS_PER_BYTE)).astype(np.int8)
    x_i = rng.integers(-128, 128, (1, c_down.shape[2] * FIELDS_PER_BYTE)).astype(np.int8)
    xs = np.zeros(1, np.int32)
    acc_d, acc_uv = np.empty((1, c_ifgo.shape[1]), np.int32), np.empty((1, c_gate.shape[1]), np.int32)
    logits, out = np.empty((1, c_head.shape[0]), np.int32), np.zeros(args.threads, np.int64)
    n, L = args.threads, c_gate.shape[0]

    def timed(fn, *a):
        for _ in range(args.warm):
            fn(*a)
        ts = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fn(*a)
            ts.append((time.perf_counter() - t0) * MS)
        return robust(ts)

    res = {"config": args.config, "threads": n, "gaps_per_token": L * GAPS_PER_LAYER, "weight_bytes": plan.weight_bytes,
           "load_start": loadavg(), "rows": []}
    print(f"{args.config}: {plan.weight_bytes / 1e6:.1f} MB of weights per token, {L * GAPS_PER_LAYER} gaps, "
          f"{n} thread(s); ms median / best of {args.repeats} passes")
    print("| spin per gap | prefetch B | gap us | pass + gaps ms | gaps alone ms | pass ms | extra per gap us |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with use_threads(n):
        plain = timed(_pass, c_ifgo, c_gate, c_down, c_head, x_d, x_i, xs, acc_d, acc_uv, logits, n, 0, 0, out)
        res["plain_pass_ms"] = plain
        print(f"| 0 (plain pass) | 0 | 0 | {plain['median']:.3f} / {plain['best']:.3f} | 0 | {plain['median']:.3f} | "
              "0 |")
        region = timed(_gaps_alone, L, n, 0, out)["median"]     # the parallel region alone, in both timings
        for spin in args.spins:
            alone = timed(_gaps_alone, L, n, spin, out)
            gaps_ms = alone["median"] - region if spin else 0.0
            for pf in args.prefetch:
                both = timed(_pass, c_ifgo, c_gate, c_down, c_head, x_d, x_i, xs, acc_d, acc_uv, logits, n, spin, pf,
                             out)
                pass_ms = both["median"] - gaps_ms
                extra = (pass_ms - plain["median"]) / (L * GAPS_PER_LAYER) * MS
                gap_us = gaps_ms / (L * GAPS_PER_LAYER) * MS
                res["rows"].append({"spin": spin, "prefetch_bytes": pf, "gap_us": gap_us, "with_gaps_ms": both,
                                    "gaps_alone_ms": gaps_ms, "pass_ms": pass_ms, "extra_per_gap_us": extra})
                print(f"| {spin} | {pf} | {gap_us:.2f} | {both['median']:.3f} / {both['best']:.3f} | "
                      f"{gaps_ms:.3f} | {pass_ms:.3f} | {extra:.2f} |")
    return finish(res, args.out)


if __name__ == "__main__":
    sys.exit(main())
