"""Lava decode speed at the 370m shape: sim-fused (the per-layer graph: one Lava process per block, every block
computing a token in the step it arrives, 1 step per new token with the fused head) and sim-stack (every layer in one process),
against the golden model, in one run. Per-token time of a Lava backend is the difference of two runs (8 and 24 new
tokens after a 4-token prompt) divided by 16, so runtime start-up and teardown cancel; the golden model's is its
decode step.

    .venv/bin/python benchmarks/bench_stack.py [--config 370m]      # writes out/bench_stack.json
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from _harness import json_out, write_json
from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.graph.backends import generate
from lava_matmulfree.model.golden_fast import FastGoldenModel

PROMPT = [1, 2, 3, 4]
SHORT, LONG = 8, 24
BACKENDS = ("sim-fused", "sim-stack")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="370m")
    ap.add_argument("--out", type=json_out, default="out/bench_stack.json")
    args = ap.parse_args(argv)
    setup = build_evaluation(args.config, seed=0, num_calib=2, calib_length=8, dtype=np.float32, progress=True)
    FastGoldenModel(setup.net).prefill(PROMPT)  # compiled kernels and packed weights before Lava forks
    out = {"config": args.config, "load_start": os.getloadavg()}
    g = FastGoldenModel(setup.net)
    _, state = g.prefill(PROMPT)
    t0 = time.perf_counter()
    for t in range(LONG):
        _, state = g.step(t % setup.cfg.vocab_size, state)
    golden_per = (time.perf_counter() - t0) / LONG
    out["golden"] = {"ms_per_token": 1e3 * golden_per, "tokens_per_s": 1.0 / golden_per}
    print(f"{'golden':<10} {1e3 * golden_per:8.1f} ms/token  {1 / golden_per:7.2f} tokens/s", flush=True)
    tokens = {}
    for b in BACKENDS:
        runs = {n: generate(b, setup.net, PROMPT, n) for n in (SHORT, LONG)}
        per = (runs[LONG].seconds - runs[SHORT].seconds) / (LONG - SHORT)
        tokens[b] = runs[LONG].tokens
        out[b] = {"ms_per_token": 1e3 * per, "tokens_per_s": 1.0 / per, "leaf_processes": runs[LONG].leaf_processes,
                  "steps": runs[LONG].steps, "run_s": {str(n): r.seconds for n, r in runs.items()}}
        print(f"{b:<10} {1e3 * per:8.1f} ms/token  {1 / per:7.2f} tokens/s  ({runs[LONG].leaf_processes} leaf "
              f"processes, {runs[LONG].steps} steps for {LONG} tokens)", flush=True)
    out["same_tokens"] = tokens[BACKENDS[0]] == tokens[BACKENDS[1]]
    out["load_end"] = os.getloadavg()
    print(f"same tokens: {out['same_tokens']}; load {out['load_start'][0]:.1f} -> {out['load_end'][0]:.1f}")
    write_json(args.out, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
