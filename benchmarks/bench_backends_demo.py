"""Tokens/s of the demo model on the Lava backends, for this checkout and (optionally) another revision, in one
run: each revision's measurement runs in its own subprocess, the revisions alternate, repeats interleaved.

    .venv/bin/python benchmarks/bench_backends_demo.py                       # this checkout only
    .venv/bin/python benchmarks/bench_backends_demo.py --against /path/to/other/checkout/.venv/bin/python

A measurement generates ``--new`` tokens greedily after a ``--prompt``-byte prompt of Python-reference
text (the demo model's domain) on each backend (wall time of ``backends.generate``, start-up included, as a user sees it) and checks that
every backend gives the reference backend's tokens. Writes out/bench_backends_demo.json and prints a table with the
machine's load average.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _harness import json_out, write_json

BACKENDS = ("sim-fused", "sim")


def measure(prompt_len: int, new: int, backends) -> dict:
    """In the interpreter of the checkout under test."""
    import numpy as np

    import lava_matmulfree
    from lava_matmulfree.graph.backends import generate
    from lava_matmulfree.model.quantise import QuantisedNetwork

    demo = Path(lava_matmulfree.__file__).resolve().parent / "data" / "demo_model"
    net = QuantisedNetwork.load(demo / "compiled.safetensors")
    prompt = list((b"A class definition is an executable statement. " * 4)[:prompt_len])
    ref = generate("reference", net, prompt, new)
    out = {}
    for b in backends:
        t0 = time.perf_counter()
        g = generate(b, net, prompt, new)
        wall = time.perf_counter() - t0
        out[b] = {"seconds": wall, "tokens_per_s": new / wall, "same_tokens": g.tokens == ref.tokens,
                  "steps": g.steps, "leaf_processes": g.leaf_processes}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", help="python of another checkout (its own venv) to compare with")
    ap.add_argument("--prompt", type=int, default=16)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=json_out, default="out/bench_backends_demo.json")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.prompt, args.new, args.backends)))
        return 0
    pythons = {"this checkout": sys.executable}
    if args.against:
        pythons["other"] = args.against
    rows: dict = {k: [] for k in pythons}
    for r in range(args.repeats):
        for label, py in pythons.items():
            cmd = [py, str(Path(__file__).resolve()), "--worker", "--prompt", str(args.prompt), "--new",
                   str(args.new), "--backends", *args.backends]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return 1
            rows[label].append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(f"repeat {r + 1}, {label}: " + ", ".join(f"{b} {v['tokens_per_s']:.2f} tok/s"
                                                           for b, v in rows[label][-1].items())
                  + f" (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
    summary = {label: {b: {"tokens_per_s_median": sorted(x[b]["tokens_per_s"] for x in reps)[len(reps) // 2],
                           "same_tokens": all(x[b]["same_tokens"] for x in reps), "steps": reps[0][b]["steps"],
                           "leaf_processes": reps[0][b]["leaf_processes"]} for b in args.backends}
               for label, reps in rows.items()}
    print(f"{'backend':<11}" + "".join(f"{label:>28}" for label in pythons))
    for b in args.backends:
        print(f"{b:<11}" + "".join(
            f"{summary[l][b]['tokens_per_s_median']:>10.2f} tok/s {summary[l][b]['steps']:>5} steps "
            f"{summary[l][b]['leaf_processes']:>3}p" for l in pythons))
    write_json(args.out, {"args": vars(args), "load": os.getloadavg(), "summary": summary, "repeats": rows},
               default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
