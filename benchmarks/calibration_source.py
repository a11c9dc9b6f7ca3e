"""Real-text against random-id calibration of a checkpoint without a compiled network (issue 15, part 4).

    .venv/bin/python benchmarks/calibration_source.py --model demo [--val-windows 0]   # out/calibration_source_demo.json

What ``lava-matmulfree eval/generate --checkpoint FOLDER`` does when the folder has no compiled network:
``build_evaluation`` calibrates on 16 windows of 128 tokens of the shipped corpus's training part through the
checkpoint's tokenizer (the default now), or on 8 sequences of 32 random token ids (``--calibrate random``,
the former default). Both networks are then measured on the held-out validation windows: float and
fixed-point perplexity, top-1 agreement, mean KL, clipping and state overflows.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import json_out, write_json  # noqa: E402
from act_bits_table import DATA  # noqa: E402

from lava_matmulfree.evaluation.accuracy import accuracy_report, build_evaluation, heldout_perplexity  # noqa: E402
from lava_matmulfree.io.corpus import eval_windows, load_corpus, split_from_training_json, split_stream  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", choices=("demo", "deep"))
    src.add_argument("--folder", type=Path, help="a model folder written by `lava-matmulfree train`")
    ap.add_argument("--val-windows", type=int, default=0, help="validation windows (0: all)")
    ap.add_argument("--out", type=json_out, default=None)
    args = ap.parse_args(argv)
    folder = args.folder or DATA / f"{args.model}_model"
    args.model = args.model or folder.name
    split, _ = split_from_training_json(folder)
    _, val = split_stream(load_corpus().tokens, split)
    windows = eval_windows(val, split.seq_len)
    if args.val_windows:
        windows = windows[:args.val_windows]
    result = {"model": args.model, "val_windows": len(windows)}
    for how in ("text", "random"):
        setup = build_evaluation(checkpoint=folder, calibration=how)
        row = heldout_perplexity(setup.float_model, setup.net, windows)
        rep = accuracy_report(setup.float_model, setup.net, [w[0] for w in windows[:4]])
        row.update(calibrated_on=setup.calibration.source, clip_rate=rep.clip_rate,
                   state_overflows=rep.num_state_overflows, max_resid_rel_err=rep.max_resid_err)
        result[how] = row
        print(f"{args.model}, calibrated on {row['calibrated_on']}: ppl float {row['ppl_float']:.4f} fixed "
              f"{row['ppl_fixed']:.4f} ({100 * row['ppl_rel_diff']:+.2f} %), top-1 {100 * row['top1_agreement']:.2f} %, "
              f"KL {row['mean_kl']:.2e}, clip rate {100 * row['clip_rate']:.3f} %, state overflows "
              f"{row['state_overflows']}, max resid err {row['max_resid_rel_err']:.3e}", flush=True)
    out = args.out or HERE.parent / "out" / f"calibration_source_{args.model}.json"
    write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
