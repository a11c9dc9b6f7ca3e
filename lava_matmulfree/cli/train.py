"""``train``: quantisation-aware training of the small demo model (the train extra: lava-dl, torch). Every
option after ``train`` belongs to the trainer's own parser (docs/training.md)."""
from __future__ import annotations

import argparse

from lava_matmulfree.cli.arguments import _Parser


def add_parser(sub):
    t = sub.add_parser("train", add_help=False, help="train the small demo model with quantisation-aware "
                       "training (needs the train extra: lava-dl, torch); `train --help` for its options")
    t.add_argument("train_args", nargs=argparse.REMAINDER)
    t.set_defaults(func=cmd_train)


def _check_out(out, overwrite: bool = False) -> None:
    from pathlib import Path

    from lava_matmulfree.errors import OutputError
    from lava_matmulfree.io.checkpoint import CONFIG_FILE, WEIGHTS_FILE
    from lava_matmulfree.utils.atomic import check_output_dir

    check_output_dir(out, "--out")
    held = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if (Path(out) / f).exists()]
    if held and not overwrite:  # a trained model is minutes to hours of work: replaced only when asked
        raise OutputError(f"--out {out} holds a model already ({', '.join(held)}): give another folder, or "
                          "--overwrite to replace it")


def cmd_train(args) -> int:
    from lava_matmulfree.train.options import parse

    parsed = parse(args.train_args, parser_class=_Parser)  # --help and bad options need no torch
    _check_out(parsed[0].out, parsed[0].overwrite)  # before the training (45 minutes at the defaults on 2 cores)
    try:
        from lava_matmulfree.train.trainer import main as train_main
    except ImportError as e:
        raise ValueError(str(e)) from None
    return train_main(args.train_args, args=parsed)
