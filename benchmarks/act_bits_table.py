"""Fixed point against float at act_bits 8 / 12 / 16 (issue 15): the deep and demo models, 370m random weights.

    .venv/bin/python benchmarks/act_bits_table.py --model deep            # out/act_bits_deep.json
    .venv/bin/python benchmarks/act_bits_table.py --model demo
    .venv/bin/python benchmarks/act_bits_table.py --config 370m --seed 0   # random weights, no text

A packaged model is calibrated once on windows of its training text (as ``benchmarks/demo_figures.py``
ships it; the calibration does not depend on act_bits) and compiled at each act_bits; on its held-out
validation windows (each from the zero state) the table gives float and fixed-point perplexity, top-1
agreement, mean KL, the per-layer relative error of the residual stream, clipping, state overflows and
how the dendritic accumulators were sized (quantise.dendrite_fits). ``--lava-prefix N`` also runs the first
N tokens of a validation window through the Lava simulator (``--lava-backend``, sim-fused by default) and
checks its logits equal the golden model's bit for bit. Random weights have no text: sample sequences of
random ids (as ``benchmarks/golden_370m.py``), no perplexity.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import json_out, write_json  # noqa: E402
from demo_figures import CALIB_WINDOWS, calibration_windows  # noqa: E402

from lava_matmulfree.evaluation.accuracy import accuracy_report, build_evaluation, heldout_perplexity  # noqa: E402
from lava_matmulfree.evaluation.accuracy import sample_sequences  # noqa: E402
from lava_matmulfree.model.calibration import calibrate  # noqa: E402
from lava_matmulfree.io.checkpoint import load_checkpoint  # noqa: E402
from lava_matmulfree.config import FixedPointConfig  # noqa: E402
from lava_matmulfree.model.float_model import FloatModel  # noqa: E402
from lava_matmulfree.model.golden_fast import FastGoldenModel  # noqa: E402
from lava_matmulfree.model.quantise import compile_network  # noqa: E402
from lava_matmulfree.io.corpus import eval_windows, load_corpus, split_from_training_json, split_stream  # noqa: E402

DATA = HERE.parent / "lava_matmulfree" / "data"
ACT_BITS = (8, 12, 16)


def lava_check(net, prompt, backend) -> dict:
    from lava_matmulfree.graph.backends import generate

    ref = generate("reference", net, prompt, 1)
    t0 = time.perf_counter()
    sim = generate(backend, net, prompt, 1)
    return {"backend": backend, "tokens": len(prompt), "logits_equal_golden": bool(np.array_equal(ref.logits,
                                                                                                   sim.logits)),
            "wall_s": time.perf_counter() - t0}


def summarise(rep) -> dict:
    sized = [d for d in rep.dendrites if not d["guaranteed"]]
    return {"resid_rel_err_per_layer": [le.resid for le in rep.layers],
            "h_rel_err_per_layer": [le.h for le in rep.layers],
            "max_resid_rel_err": rep.max_resid_err, "logits_rel_err": rep.logits_rel_err,
            "report_top1": rep.top1_agreement, "report_mean_kl": rep.mean_kl,
            "clip_rate": rep.clip_rate, "state_overflows": rep.state_overflows,
            "accumulator_saturations": rep.accumulator_saturations,
            "accumulators_sized_by_calibration": len(sized),
            "accumulators_widened": int(sum(d["widened"] for d in sized)),
            "least_headroom_bits": min((d["headroom_bits"] for d in sized), default=None)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", choices=("demo", "deep"), help="a packaged trained model")
    src.add_argument("--config", help="random weights of this config (e.g. 370m)")
    src.add_argument("--folder", type=Path, help="a model folder written by `lava-matmulfree train`")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--act-bits", type=int, nargs="+", default=list(ACT_BITS))
    ap.add_argument("--val-windows", type=int, default=0, help="validation windows (0: all)")
    ap.add_argument("--report-windows", type=int, default=8, help="windows of the per-layer report")
    ap.add_argument("--lava-prefix", type=int, default=0, help="tokens through the Lava simulator (0: none)")
    ap.add_argument("--lava-backend", default="sim-fused")
    ap.add_argument("--out", type=json_out, default=None)
    args = ap.parse_args(argv)
    name = args.model or (args.folder.name if args.folder else f"{args.config}-random-seed{args.seed}")
    out = args.out or HERE.parent / "out" / f"act_bits_{name}.json"
    t_start = time.perf_counter()
    result = {"model": name, "act_bits": {}, "load_average_start": os.getloadavg()}

    if args.model or args.folder:
        folder = args.folder or DATA / f"{args.model}_model"
        split, _ = split_from_training_json(folder)
        train, val = split_stream(load_corpus().tokens, split)
        cfg, params = load_checkpoint(folder)
        fm = FloatModel(cfg, params)
        cal = calibrate(fm, calibration_windows(train, split.seq_len, CALIB_WINDOWS), FixedPointConfig())
        windows = eval_windows(val, split.seq_len)
        if args.val_windows:
            windows = windows[:args.val_windows]
        report_seqs = [w[0] for w in windows[:args.report_windows]]
        result["calibration"] = f"{CALIB_WINDOWS} training windows of {split.seq_len} tokens"
    else:
        setup = build_evaluation(args.config, seed=args.seed, num_calib=4, calib_length=16, dtype=np.float32)
        fm, cal, windows = setup.float_model, setup.calibration, None
        report_seqs = sample_sequences(setup.cfg.vocab_size, 2, 16)
        result["calibration"] = cal.source

    for bits in args.act_bits:
        net = compile_network(fm, cal, FixedPointConfig(act_bits=bits))
        row = summarise(accuracy_report(fm, net, report_seqs))
        if windows is not None:
            row.update(heldout_perplexity(fm, net, windows))
        if args.lava_prefix and windows is not None:
            row["lava"] = lava_check(net, [int(t) for t in windows[0][0][:args.lava_prefix]], args.lava_backend)
        result["act_bits"][bits] = row
        ppl = (f"ppl float {row['ppl_float']:.4f} fixed {row['ppl_fixed']:.4f} ({100 * row['ppl_rel_diff']:+.2f} %), "
               f"top-1 {100 * row['top1_agreement']:.2f} %, KL {row['mean_kl']:.2e}; ") if "ppl_float" in row else \
            f"top-1 {100 * row['report_top1']:.2f} %, KL {row['report_mean_kl']:.2e}; "
        lava = f"; Lava {row['lava']['backend']} == golden: {row['lava']['logits_equal_golden']}" if "lava" in row else ""
        print(f"{name} act_bits={bits}: {ppl}resid err max {row['max_resid_rel_err']:.3e} (last layer "
              f"{row['resid_rel_err_per_layer'][-1]:.3e}); acc saturations {sum(row['accumulator_saturations'].values())}"
              f", sized by calibration {row['accumulators_sized_by_calibration']}{lava}", flush=True)
    result["wall_s"] = time.perf_counter() - t_start
    write_json(out, result, default=float)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
