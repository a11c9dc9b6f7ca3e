"""The options of ``lava-matmulfree train``, without torch: ``train --help`` and every option's check work
before (and without) the ``train`` extra. :mod:`lava_matmulfree.train.trainer` does the training."""
from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path
from dataclasses import dataclass, fields

from lava_matmulfree.io.checkpoint import SAVE_DTYPES
from lava_matmulfree.io.corpus import SplitConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Every training hyper-parameter (written to training.json)."""

    hidden_size: int = 192
    num_layers: int = 3
    intermediate_size: int = 0  # 0: the released rule 256*ceil(int(8d/3)/256)
    steps: int = 1800
    batch_size: int = 16
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decay to lr * this
    warmup_steps: int = 100
    weight_decay: float = 0.1  # on the ternary (projection and head) matrices only
    beta1: float = 0.9
    beta2: float = 0.95
    adam_eps: float = 1e-8
    grad_clip: float = 1.0
    init_std: float = 0.02
    seed: int = 0
    eval_every: int = 200  # 0: only the final evaluation
    eval_windows: int = 0  # windows of the validation split used by periodic evals; 0: all
    threads: int = 2
    save_dtype: str = "float16"
    save_every: int = 0  # >0: also write the checkpoint every this many steps (a long run keeps its progress)
    name: str = ""  # the model's name in config.json; "": lava-matmulfree-<the --out folder's name>

    def __post_init__(self):
        bad = self.problems()
        if bad:
            raise ValueError(f"{bad[0][0]} {bad[0][1]}")

    def problems(self) -> list[tuple[str, str]]:
        """(field, why) for every impossible value."""
        bad = []
        for k in POSITIVE:
            if getattr(self, k) < 1:
                bad.append((k, f"must be >= 1, got {getattr(self, k)}"))
        for k in NON_NEGATIVE:
            if getattr(self, k) < 0:
                bad.append((k, f"must be >= 0, got {getattr(self, k)}"))
        for k, (lo, hi) in UNIT_RANGES.items():
            v = getattr(self, k)
            if not (math.isfinite(v) and lo <= v <= hi):
                bad.append((k, f"must be in [{lo}, {hi}], got {v}"))
        for k in POSITIVE_REALS:
            v = getattr(self, k)
            if not (math.isfinite(v) and v > 0):
                bad.append((k, f"must be a positive finite number, got {v}"))
        if self.weight_decay < 0 or not math.isfinite(self.weight_decay):
            bad.append(("weight_decay", f"must be a finite number >= 0, got {self.weight_decay}"))
        return bad


POSITIVE = ("hidden_size", "num_layers", "steps", "batch_size", "threads")
NON_NEGATIVE = ("intermediate_size", "warmup_steps", "seed", "eval_every", "eval_windows", "save_every")
UNIT_RANGES = {"min_lr_ratio": (0.0, 1.0), "beta1": (0.0, 0.999999), "beta2": (0.0, 0.999999)}
POSITIVE_REALS = ("lr", "adam_eps", "grad_clip", "init_std")


#: What each option means, for ``train --help`` (its default is added).
OPTION_HELP = {
    "hidden_size": "model width d", "num_layers": "layers (blocks)",
    "intermediate_size": "GLU width; 0: the released rule 256*ceil(int(8d/3)/256)",
    "steps": "optimizer steps", "batch_size": "sequences per step", "lr": "peak learning rate",
    "min_lr_ratio": "the cosine decay ends at lr x this", "warmup_steps": "linear warm-up steps",
    "weight_decay": "AdamW decay of the ternary matrices (projections, head) only",
    "beta1": "AdamW beta1", "beta2": "AdamW beta2", "adam_eps": "AdamW epsilon",
    "grad_clip": "gradient norm clip", "init_std": "standard deviation of the initial weights",
    "seed": "seed of the initial weights and the batches",
    "eval_every": "steps between validation evaluations; 0: only the final one",
    "eval_windows": "validation windows of each periodic evaluation; 0: all of them",
    "threads": "torch threads", "save_dtype": "dtype of the saved weights",
    "save_every": "also write the checkpoint every this many steps, so that a stopped run keeps its progress; 0: "
                  "only at the end",
    "name": "the model's name in its config.json (empty: lava-matmulfree-<the --out folder's name>, so a model of "
            "one's own is not labelled as another)",
    "seq_len": "tokens per training sequence", "block_tokens": "tokens per block of the corpus split",
    "val_every": "every this many blocks goes to the validation split",
}


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(parser_class=argparse.ArgumentParser) -> argparse.ArgumentParser:
    ap = parser_class(prog="lava-matmulfree train",
                      description="Quantisation-aware training of a small byte-level MMfreeLM on CPython's own "
                                  "documentation (pydoc_data.topics), written as a Hugging Face checkpoint folder. "
                                  "Needs the train extra: pip install 'lava-matmulfree[train]'.")
    ap.add_argument("--out", default="demo_model",
                    help="output folder, relative to the current one (default: %(default)s)")
    ap.add_argument("--overwrite", action="store_true", help="replace the model an existing --out folder holds")
    defaults = TrainConfig()
    choices = {"save_dtype": SAVE_DTYPES}
    for f in fields(TrainConfig):
        ap.add_argument(option(f.name), type=type(getattr(defaults, f.name)), default=getattr(defaults, f.name),
                        choices=choices.get(f.name),
                        help=f"{OPTION_HELP[f.name]} (default: {getattr(defaults, f.name)})")
    sd = SplitConfig()
    for f in fields(SplitConfig):
        ap.add_argument(option(f.name), type=int, default=getattr(sd, f.name),
                        help=f"{OPTION_HELP[f.name]} (default: {getattr(sd, f.name)})")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    return ap


def model_name(name: str, out) -> str:
    """``name``, or where it is empty, the name of a model trained into the folder ``out``: every model trained here
    was called lava-matmulfree-demo, so a user's was reported as the shipped demo model."""
    return name or f"lava-matmulfree-{Path(out or 'model').resolve().name.removesuffix('_model')}"


def parse(argv, parser_class=argparse.ArgumentParser):
    """(args, TrainConfig, SplitConfig) of a command line; an impossible value is a parser error naming the
    option."""
    ap = build_parser(parser_class)
    args = ap.parse_args(argv)
    raw = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    raw["name"] = model_name(raw["name"], args.out)
    bad = TrainConfig.problems(_Unchecked(**raw))
    if bad:
        ap.error(f"{option(bad[0][0])} {bad[0][1]}")
    try:
        split = SplitConfig(**{f.name: getattr(args, f.name) for f in fields(SplitConfig)})
    except ValueError as e:
        ap.error(f"{e} (options {', '.join(option(f.name) for f in fields(SplitConfig))})")
    warn_warmup_past_the_end(raw["warmup_steps"], raw["steps"])
    return args, TrainConfig(**raw), split


def warn_warmup_past_the_end(warmup_steps: int, steps: int) -> None:
    """A warm-up as long as the run (``--steps 50`` under the default 100) leaves the learning rate rising until
    the last step, never decayed (at its peak only at that step, where the two are equal): allowed, but named, as a
    short trial run did it without a word."""
    if warmup_steps >= steps > 0:
        log.warning("%s %d is not below %s %d: the learning rate rises to lr x %.2f at the last step and never "
                    "decays (set %s below %s, e.g. %d)", option("warmup_steps"), warmup_steps, option("steps"), steps,
                    steps / warmup_steps, option("warmup_steps"), option("steps"), max(1, steps // 10))


class _Unchecked:
    """The fields of a TrainConfig before its check, so the check can name the option."""

    def __init__(self, **kw):
        self.__dict__.update(kw)
