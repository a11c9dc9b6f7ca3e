"""Golden fixed-point model vs float reference on the 370M shape (random weights), in one run.

    .venv/bin/python benchmarks/golden_370m.py [--config 370m] [--seed 0] [--decode-tokens 8] ...

Builds the ``370m`` config with random weights (``random_params``, float32), calibrates on a few short random
sequences, compiles to integers, then
  1. times decoding (one token per call, state carried) of the golden model against the float model
     (``FloatModel`` in float32) on the same tokens, after the same prefix;
  2. runs the accuracy report (per-layer relative error of residual stream, h and inverse RMS; top-1
     agreement and KL of the next-token distributions; overflow counts) on a few sample sequences.
Prints a table and writes ``out/golden_370m.json``. Takes minutes: the golden synapses are numpy int64
matmuls (no BLAS) until a fast kernel replaces them.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _harness import json_out, write_json
from lava_matmulfree.evaluation.accuracy import accuracy_report, build_evaluation, sample_sequences
from lava_matmulfree.model.golden_fast import FastGoldenModel as GoldenModel

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "out" / "golden_370m.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="370m", help="model config name or TOML (default: 370m)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    p.add_argument("--calib-sequences", type=int, default=4, help="calibration sequences (default: 4)")
    p.add_argument("--calib-length", type=int, default=16, help="tokens per calibration sequence (default: 16)")
    p.add_argument("--prefix", type=int, default=4, help="prompt tokens before the timed decode (default: 4)")
    p.add_argument("--decode-tokens", type=int, default=8, help="timed decode steps per model (default: 8)")
    p.add_argument("--eval-sequences", type=int, default=2, help="sample sequences of the report (default: 2)")
    p.add_argument("--eval-length", type=int, default=16, help="tokens per sample sequence (default: 16)")
    p.add_argument("--out", type=json_out, default=DEFAULT_OUT, help=f"JSON output (default: {DEFAULT_OUT})")
    return p.parse_args(argv)


def time_decode(step, tokens, state):
    """Seconds per call of ``step(token, state) -> (logits, state)`` over ``tokens``."""
    times = []
    for t in tokens:
        t0 = time.perf_counter()
        _, state = step(t, state)
        times.append(time.perf_counter() - t0)
    return times


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    setup = build_evaluation(args.config, seed=args.seed, num_calib=args.calib_sequences,
                             calib_length=args.calib_length, dtype=np.float32, progress=True)
    t_build = time.perf_counter() - t0
    cfg, net, fm = setup.cfg, setup.net, setup.float_model
    print(f"built {setup.source}: {cfg.num_layers} layers, d={cfg.hidden_size}, I={cfg.intermediate_size}, "
          f"V={cfg.vocab_size}; calibrate + compile {t_build:.1f} s", file=sys.stderr)

    rng = np.random.default_rng(args.seed + 1)
    toks = rng.integers(0, cfg.vocab_size, size=args.prefix + args.decode_tokens).tolist()
    prefix, decode = toks[:args.prefix], toks[args.prefix:]

    golden = GoldenModel(net)
    t0 = time.perf_counter()
    _, gs = golden.prefill(prefix)
    g_prefill = time.perf_counter() - t0
    g_times = time_decode(golden.step, decode, gs)
    t0 = time.perf_counter()
    _, fs = fm.prefill(prefix)
    f_prefill = time.perf_counter() - t0
    f_times = time_decode(fm.step, decode, fs)
    g_med, f_med = statistics.median(g_times), statistics.median(f_times)
    print(f"decode: golden {g_med * 1e3:.0f} ms/token, float {f_med * 1e3:.0f} ms/token", file=sys.stderr)

    t0 = time.perf_counter()
    seqs = sample_sequences(cfg.vocab_size, args.eval_sequences, args.eval_length)
    rep = accuracy_report(fm, net, seqs)
    t_report = time.perf_counter() - t0

    timing = {
        "decode_tokens": len(decode), "prefix_tokens": len(prefix),
        "golden_ms_per_token_median": g_med * 1e3, "golden_ms_per_token_mean": statistics.mean(g_times) * 1e3,
        "float32_ms_per_token_median": f_med * 1e3, "float32_ms_per_token_mean": statistics.mean(f_times) * 1e3,
        "golden_over_float": g_med / f_med,
        "golden_prefill_s": g_prefill, "float32_prefill_s": f_prefill,
        "build_s": t_build, "report_s": t_report,
    }
    result = {
        "benchmark": "golden_370m", "config": args.config, "seed": args.seed,
        "command": " ".join([Path(sys.executable).name, "benchmarks/golden_370m.py"] + (argv or sys.argv[1:])),
        "model": {"layers": cfg.num_layers, "hidden": cfg.hidden_size, "intermediate": cfg.intermediate_size,
                  "vocab": cfg.vocab_size},
        "calibration": {"sequences": args.calib_sequences, "length": args.calib_length},
        "timing": timing, "accuracy": rep.to_dict(),
        "environment": {"python": platform.python_version(), "numpy": np.__version__, "cpus": os.cpu_count(),
                        "machine": platform.machine()},
    }
    write_json(args.out, result, sort_keys=True)

    print(f"\n== golden vs float, {args.config} random weights (seed {args.seed}) ==")
    print(f"{'':28}{'golden (int)':>14}{'float32':>12}{'ratio':>8}")
    print(f"{'decode, ms/token (median)':28}{g_med * 1e3:>14.1f}{f_med * 1e3:>12.1f}{g_med / f_med:>8.1f}")
    print(f"{'prefill of ' + str(len(prefix)) + ' tokens, s':28}{g_prefill:>14.2f}{f_prefill:>12.2f}"
          f"{g_prefill / f_prefill:>8.1f}")
    print()
    print(rep.table())
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
