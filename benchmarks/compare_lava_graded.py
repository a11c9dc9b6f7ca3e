"""Lava's public graded neurons against the roles of this model (docs/graph.md, "Which Lava process for which
neuron"): the inverse square root of lava.proc.graded.InvSqrt's fixed-point model against this project's
aggregator arithmetic (fixed_point.inv_sqrt, the contract of microcode/rms_aggregator.ucode), both against the
exact 1/sqrt, on the sums of squares an RMSNorm aggregator receives, [1, 2^23).

    .venv/bin/python benchmarks/compare_lava_graded.py [--samples N]

Prints the relative error of each (median, 99th percentile, max) and the fraction of sums each handles without
overflow; writes out/compare_lava_graded.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _harness import json_out, write_json  # noqa: E402
from lava_matmulfree.config import FixedPointConfig  # noqa: E402
from lava_matmulfree.model.fixed_point import INVSQRT_OUT_FRAC, inv_sqrt, invsqrt_seed_lut  # noqa: E402

#: lava.proc.graded.models.InvSqrtModelFP calls inv_sqrt(a, 5) with its default fixed-point base of 12 bits.
LAVA_FP_BASE = 12
LAVA_ITERS = 5


def lava_inv_sqrt(S: np.ndarray) -> np.ndarray:
    from lava.proc.graded.models import inv_sqrt as lava_one  # one value per call, as the model does

    return np.array([lava_one(int(s), LAVA_ITERS, LAVA_FP_BASE) for s in S], dtype=np.float64)


def stats(rel: np.ndarray) -> dict:
    finite = np.isfinite(rel)
    r = np.abs(rel[finite])
    return {"median": float(np.median(r)), "p99": float(np.percentile(r, 99)), "max": float(r.max()),
            "finite_fraction": float(finite.mean())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=4000)
    ap.add_argument("--out", type=json_out, default="out/compare_lava_graded.json")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    S = np.unique(np.exp(rng.uniform(0, np.log(2 ** 23 - 1), args.samples)).astype(np.int64))
    S = S[S >= 1]
    exact = 1.0 / np.sqrt(S.astype(np.float64))
    fp = FixedPointConfig()
    ours = inv_sqrt(S, invsqrt_seed_lut(fp.invsqrt_seed_bits), fp.invsqrt_seed_bits, fp.invsqrt_newton_steps)
    ours_rel = ours * 2.0 ** -INVSQRT_OUT_FRAC / exact - 1
    with np.errstate(all="ignore"):
        lava = lava_inv_sqrt(S)
        # InvSqrt reads its input and output in Q(fp_base): y / 2^b ~ 1 / sqrt(S / 2^b)
        lava_rel = lava * 2.0 ** -LAVA_FP_BASE / (exact * 2.0 ** (LAVA_FP_BASE / 2)) - 1
    res = {"sums": int(S.size), "range": [int(S.min()), int(S.max())],
           "project_aggregator": stats(ours_rel), "lava_graded_InvSqrt": stats(lava_rel)}
    print(f"{S.size} sums of squares in [{S.min()}, {S.max()}]; relative error against 1/sqrt(S):")
    for k in ("project_aggregator", "lava_graded_InvSqrt"):
        s = res[k]
        print(f"  {k:<22} median {s['median']:.2e}  p99 {s['p99']:.2e}  max {s['max']:.2e}  "
              f"finite {s['finite_fraction']:.1%}")
    write_json(args.out, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
