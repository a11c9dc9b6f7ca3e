"""Decode speed and memory of the float reference model at the 370M shape, against bare float32 matvecs.

    .venv/bin/python benchmarks/float_370m_decode.py [--config 370m] [--steps 8] [--repeats 3]

Random float32 weights of the config (no checkpoint needed). Times one prefill token, then ``--steps``
decode steps of ``FloatModel(dtype=float32).step``; the reference in the same run is the bare time of
one float32 matrix-vector product with every weight matrix the model uses per token (every projection
and the LM head, the embedding row lookup excluded), i.e. the dense-arithmetic floor of a float32 decode
step on this machine. Peak RSS is the process's high-water mark (``ru_maxrss``), params included.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lava_matmulfree.config import load_config  # noqa: E402
from lava_matmulfree.model.float_model import FloatModel  # noqa: E402
from lava_matmulfree.io.params import random_params  # noqa: E402

KIB = 1024  # ru_maxrss is in KiB on Linux
MIB = 1024 * 1024
PROMPT_TOKEN = 1
EMBEDDING = "model.embeddings.weight"


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * KIB / MIB


def reference_matvecs(params, repeats: int) -> float:
    """Seconds for one float32 W @ x with every 2-D weight the decode step multiplies (best of repeats)."""
    mats = [w for n, w in params.items() if w.ndim == 2 and n != EMBEDDING and n != "model.lower_bounds"]
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(w.shape[1]).astype(np.float32) for w in mats]
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        for w, x in zip(mats, xs):
            w @ x
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="370m")
    ap.add_argument("--steps", type=int, default=8, help="decode steps timed")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the reference matvecs (best taken)")
    args = ap.parse_args(argv)

    cfg = load_config(args.config).model
    t0 = time.perf_counter()
    params = random_params(cfg, seed=0, dtype=np.float32)
    t_params = time.perf_counter() - t0
    n_params = sum(v.size for v in params.values())
    rss_params = peak_rss_mib()

    t0 = time.perf_counter()
    model = FloatModel(cfg, params, dtype=np.float32)
    t_build = time.perf_counter() - t0

    t0 = time.perf_counter()
    logits, state = model.prefill([PROMPT_TOKEN])
    t_prefill = time.perf_counter() - t0
    tok = int(np.argmax(logits[-1]))
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        logits, state = model.step(tok, state)
        times.append(time.perf_counter() - t0)
        tok = int(np.argmax(logits))
    t_ref = reference_matvecs(params, args.repeats)
    t_step = statistics.median(times)

    print(f"config {cfg.name}: {cfg.num_layers} layers, d={cfg.hidden_size}, I={cfg.intermediate_size}, "
          f"V={cfg.vocab_size}; {n_params / 1e6:.1f} M parameters ({n_params * 4 / MIB:.0f} MiB float32)")
    print(f"random params {t_params:.1f} s, FloatModel build (ternarise) {t_build:.1f} s, "
          f"prefill of 1 token {t_prefill * 1e3:.0f} ms")
    print(f"decode: median {t_step * 1e3:.1f} ms/token over {args.steps} steps "
          f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}) = {1 / t_step:.2f} tokens/s")
    print(f"reference: bare float32 matvecs of all weights {t_ref * 1e3:.1f} ms/token; "
          f"FloatModel step / reference = {t_step / t_ref:.2f}x")
    print(f"peak RSS {peak_rss_mib():.0f} MiB (after random params: {rss_params:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
