"""Figures of the shipped demo model (issue 7): float vs fixed-point golden vs Lava simulator.

1. Calibrates the demo model on windows of its training text and ships the compiled network as
   ``lava_matmulfree/data/demo_model/compiled.safetensors`` (what ``generate`` uses by default).
2. On the held-out validation windows: perplexity of the float model and of the golden fixed-point model,
   top-1 agreement and mean KL between them; on a prefix of one window, the Lava simulator's logits
   against the golden model's (bit for bit) and its perplexity.
3. Tokens/s of each backend generating the same continuation (greedy), start-up included, in one run.

    .venv/bin/python benchmarks/demo_figures.py            # writes out/demo_figures.json
    .venv/bin/python benchmarks/demo_figures.py --model deep --speed-backends float reference sim-fused
                                                           # the 12-layer model: out/deep_figures.json
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from _harness import json_out, write_json
from lava_matmulfree.evaluation.accuracy import heldout_perplexity
from lava_matmulfree.graph.backends import generate
from lava_matmulfree.model.calibration import calibrate
from lava_matmulfree.io.checkpoint import fingerprint, load_checkpoint
from lava_matmulfree.config import FixedPointConfig
from lava_matmulfree.model.float_model import FloatModel
from lava_matmulfree.model.golden_fast import FastGoldenModel as GoldenModel
from lava_matmulfree.utils.progress import progress
from lava_matmulfree.model.quantise import compile_network
from lava_matmulfree.io.corpus import (CORPUS_NAME, eval_windows, load_corpus, split_from_training_json, split_stream)

DATA = Path(__file__).resolve().parent.parent / "lava_matmulfree" / "data"
CALIB_WINDOWS = 32  # training windows the static scales are calibrated on
CALIB_STRIDE = 7  # take every 7th training segment window, spread over the text
LAVA_PREFIX = 48  # tokens of a validation window run through the Lava simulator
SPEED_PROMPT = 16
SPEED_NEW = 32
SPEED_BACKENDS = ("float", "reference", "sim-fused", "sim-mixers", "sim")


def calibration_windows(train_segments, seq_len: int, n: int) -> list[list[int]]:
    wins = [seg[i:i + seq_len] for seg in train_segments for i in range(0, len(seg) - seq_len, seq_len)]
    return [w.tolist() for w in wins[::CALIB_STRIDE][:n]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("demo", "deep"), default="demo", help="the packaged model")
    ap.add_argument("--out", type=json_out, default=None, help="default: out/MODEL_figures.json")
    ap.add_argument("--val-windows", type=int, default=0, help="validation windows to use (0: all)")
    ap.add_argument("--speed-backends", nargs="+", default=list(SPEED_BACKENDS))
    args = ap.parse_args(argv)
    if args.val_windows == 1 or args.val_windows < 0:  # before the shipped compiled network is rewritten
        ap.error(f"--val-windows must be 0 (all) or at least 2 (the speed rows' prompt is the second window), got "
                 f"{args.val_windows}")
    args.out = args.out or f"out/{args.model}_figures.json"
    DEMO = DATA / f"{args.model}_model"

    split, _ = split_from_training_json(DEMO)
    train, val = split_stream(load_corpus().tokens, split)
    cfg, params = load_checkpoint(DEMO)
    fm = FloatModel(cfg, params)
    fp = FixedPointConfig()
    cal = calibrate(fm, calibration_windows(train, split.seq_len, CALIB_WINDOWS), fp, progress=True,
                    source=f"text: {CALIB_WINDOWS} training windows of {split.seq_len} tokens of {CORPUS_NAME}")
    net = compile_network(fm, cal, fp)
    net.fingerprint = fingerprint(cfg, params)  # the compiled file names the weights it was made from
    net.save(DEMO / "compiled.safetensors")

    windows = eval_windows(val, split.seq_len)
    if args.val_windows:
        windows = windows[:args.val_windows]
    g = GoldenModel(net)
    r = heldout_perplexity(fm, net, progress(windows, desc="validation", unit="win"), golden=g)
    fig = {"val_windows": len(windows), "val_tokens": r["tokens"],
           "float_perplexity": r["ppl_float"], "golden_perplexity": r["ppl_fixed"],
           "top1_agreement": r["top1_agreement"], "mean_kl": r["mean_kl"],
           "calibration_windows": CALIB_WINDOWS, "state_overflows": {k: v for k, v in g.ovf.items()
                                                                     if not k.endswith(".clip")}}

    # the Lava simulator on a validation prefix: the same integers as the golden model
    inputs = [int(t) for t in windows[0][0][:LAVA_PREFIX]]
    prompt = inputs
    ref = generate("reference", net, prompt, 1)
    sim = generate("sim-fused", net, prompt, 1)
    fig["lava_logits_equal_golden"] = bool(np.array_equal(ref.logits, sim.logits))
    fig["lava_prefix_tokens"] = len(prompt)

    speed = {}
    prompt = [int(t) for t in windows[1][0][:SPEED_PROMPT]]
    outs = {}
    for b in args.speed_backends:
        t0 = time.perf_counter()
        r = generate(b, net, prompt, SPEED_NEW, float_model=fm)
        wall = time.perf_counter() - t0
        outs[b] = r
        speed[b] = {"tokens_per_s": SPEED_NEW / wall, "wall_s": wall, "steps": r.steps,
                    "leaf_processes": r.leaf_processes, "tokens": r.tokens}
    fig["speed"] = speed
    fig["fixed_backends_same_tokens"] = all(outs[b].tokens == outs["reference"].tokens
                                            for b in args.speed_backends if b != "float")
    fig["fixed_backends_same_logits"] = all(np.array_equal(outs[b].logits, outs["reference"].logits)
                                            for b in args.speed_backends if b != "float")
    fig["load_average"] = os.getloadavg()
    write_json(args.out, fig)

    print(f"validation: {fig['val_windows']} windows, {fig['val_tokens']} tokens")
    print(f"  perplexity float {fig['float_perplexity']:.4f}   golden (fixed point) {fig['golden_perplexity']:.4f}")
    print(f"  top-1 agreement float vs fixed point {100 * fig['top1_agreement']:.2f} %   mean KL "
          f"{fig['mean_kl']:.2e} nats   state overflows {sum(fig['state_overflows'].values())}")
    print(f"  Lava sim-fused logits == golden: {fig['lava_logits_equal_golden']}; every fixed backend, same "
          f"tokens: {fig['fixed_backends_same_tokens']}, same logits: {fig['fixed_backends_same_logits']}")
    print(f"speed ({SPEED_PROMPT}-token prompt + {SPEED_NEW} new tokens, start-up included; load "
          f"{fig['load_average'][0]:.1f}):")
    for b, v in speed.items():
        extra = f", {v['steps']} steps, {v['leaf_processes']} leaf processes" if v["steps"] else ""
        print(f"  {b:<11} {v['tokens_per_s']:8.2f} tokens/s  ({v['wall_s']:.2f} s{extra})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
