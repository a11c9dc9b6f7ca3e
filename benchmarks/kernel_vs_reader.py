"""The synapses of a decode token against the read bound, alone: bench_decode's kernel goals in about a minute.

The synapses of one token (every packed matrix once, in layer order: ModelPlan.synapse_pass) on 1 and 2
threads, and the C reader of membw.py over the same number of bytes, in ``--rounds`` interleaved rounds (each
round: the reader's passes on 1 then 2 threads, then the kernel's, each after ``--warm`` untimed passes, as in
bench_decode.py). Prints GB/s median / best of each and kernel / reader (best over best, the fraction
bench_decode's goals use). No model rows, so a change to the kernel (ternary_kernels.py) can be weighed by
running this before and after it, in the same hour.

    .venv/bin/python benchmarks/kernel_vs_reader.py --config 370m [--rounds 6]

Figures and what they say: docs/cpu_tuning.md, "An AVX2 host".
"""
from __future__ import annotations

import argparse
import sys
import time

import membw
from _harness import OUT_DIR, finish, json_out, loadavg, packed_plan, robust

DEFAULT_OUT = OUT_DIR / "kernel_vs_reader.json"
PASSES = 3                                      # timed passes of each per round


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="370m")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=6)
    p.add_argument("--warm", type=int, default=4, help="untimed passes before each timed set (default 4)")
    p.add_argument("--out", type=json_out, default=str(DEFAULT_OUT))
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    plan = packed_plan(args.config, args.seed)
    if plan is None:
        return 2
    nbytes = plan.weight_bytes
    kernels = {1: plan.synapse_pass(False), 2: plan.synapse_pass(True)}
    for f in kernels.values():
        f()
    reader = membw.Reader(membw.buffer_bytes(nbytes))
    read = {th: [] for th in kernels}
    kern = {th: [] for th in kernels}
    load_start = loadavg()
    for _ in range(args.rounds):
        for th in kernels:
            reader.warm(th, args.warm)
            read[th] += reader.passes(th, PASSES)
        for th, f in kernels.items():
            for _ in range(args.warm):
                f()
            for _ in range(PASSES):
                t0 = time.perf_counter()
                f()
                kern[th].append(nbytes / (time.perf_counter() - t0) / 1e9)
    res = {"config": args.config, "weight_bytes": nbytes, "reader": reader.method, "load_start": load_start,
           "threads": {}}
    print(f"{args.config}: {nbytes / 1e6:.1f} MB of weights per token; GB/s median / best of {args.rounds} rounds "
          f"x {PASSES} passes; reader {reader.method}")
    for th in kernels:
        r, k = robust(read[th], higher_is_better=True), robust(kern[th], higher_is_better=True)
        res["threads"][th] = {"reader_gb_s": r, "kernel_gb_s": k, "kernel_over_reader_best": k["best"] / r["best"]}
        print(f"{th} thread(s): reader {r['median']:.1f} / {r['best']:.1f}, kernel {k['median']:.1f} / "
              f"{k['best']:.1f}: kernel / reader {k['best'] / r['best']:.3f} (best), "
              f"{k['median'] / r['median']:.3f} (medians)")
    return finish(res, args.out)


if __name__ == "__main__":
    sys.exit(main())
