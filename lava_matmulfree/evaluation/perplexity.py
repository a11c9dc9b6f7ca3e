"""Validation loss and perplexity of a trained model folder with the numpy float model (float64), on exactly
the split its training used (read back from the folder's ``training.json``; the corpus and split are
:mod:`lava_matmulfree.io.corpus`).

numpy only (no torch): ``python -m lava_matmulfree.evaluation.perplexity MODEL_FOLDER``.
"""
from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Sequence

import numpy as np

from lava_matmulfree.io.corpus import CORPUS_NAME, eval_windows, load_corpus, split_from_training_json, split_stream


def log_softmax_np(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def float_model_loss(model, windows: Sequence[tuple[np.ndarray, np.ndarray]], progress: bool = False) -> float:
    """Mean next-token cross-entropy (nats per token) of a :class:`FloatModel` over the windows."""
    total, count = 0.0, 0
    it = windows
    if progress:
        from tqdm import tqdm

        it = tqdm(windows, desc="float-model eval", unit="win", leave=False)
    for x, y in it:
        logits, _ = model.prefill(x)
        lp = log_softmax_np(np.asarray(logits, dtype=np.float64))
        total -= float(lp[np.arange(len(y)), y].sum())
        count += len(y)
    return total / count


def evaluate_checkpoint(folder: str | Path, progress: bool = True) -> dict:
    """Validation loss / perplexity of a trained model folder with the numpy float model (float64)."""
    from lava_matmulfree.io.checkpoint import load_checkpoint
    from lava_matmulfree.model.float_model import FloatModel

    split, rec = split_from_training_json(folder)
    corpus = load_corpus()
    want = rec.get("data", {}).get("sha256")
    if want and want != corpus.sha256:
        print(f"warning: this Python's {CORPUS_NAME} (Python {corpus.python_version}) differs from the text "
              f"the model was trained on (Python {rec['data'].get('python_version')}); the validation split "
              "is not the same", file=sys.stderr)
    _, val = split_stream(corpus.tokens, split)
    cfg, params = load_checkpoint(folder)
    loss = float_model_loss(FloatModel(cfg, params), eval_windows(val, split.seq_len), progress=progress)
    return {"val_loss": loss, "val_perplexity": math.exp(loss), "val_tokens": int(sum(len(b) - 1 for b in val)),
            "split": asdict(split), "corpus_sha256": corpus.sha256}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lava_matmulfree.evaluation.perplexity",
                                 description="Validation loss and perplexity of a trained model folder, "
                                             "computed with the numpy float model on its training split.")
    ap.add_argument("model", help="checkpoint folder holding config.json, model.safetensors, training.json")
    args = ap.parse_args(argv)
    res = evaluate_checkpoint(args.model)
    print(f"val loss {res['val_loss']:.4f} nats/token, perplexity {res['val_perplexity']:.3f} "
          f"({res['val_tokens']} tokens, float model, numpy float64)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
