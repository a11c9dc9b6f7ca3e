"""Training and validation text of the demo model, and its evaluation with the numpy float model.

numpy only (no torch). The validation loss of a trained model on this split is measured by
:mod:`lava_matmulfree.evaluation.perplexity`.

Data: ``pydoc_data.topics``, the plain-text rendering of the Python Language Reference that every CPython
ships for ``help()`` (about 460 KB of English prose with grammar snippets and code examples). Why it is fair:

- licence: it is part of the CPython distribution, under the Python Software Foundation License version 2
  (the documentation's code examples additionally under the Zero-Clause BSD licence), which permits use,
  modification and redistribution of derived works; the model folder credits the source in
  ``training.json``;
- availability: it is inside the standard library of the very interpreter the package runs on, so it is
  on every machine of the project, offline, with no download and no extra package; the exact text is
  pinned by its SHA-256 (recorded in ``training.json``, checked when evaluating) because patch releases of
  Python may edit the documentation.

Tokens: each topic (in sorted key order) becomes ``<s>`` + its UTF-8 bytes + ``</s>`` through the byte-level
tokenizer; the topics are concatenated into one stream. Split: the stream is cut into blocks of
``block_tokens`` tokens and every ``val_every``-th block is held out for validation, so validation text is
drawn evenly from the whole reference and never overlaps training text. Training windows are drawn only
inside the runs of consecutive training blocks (never across a held-out block).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import platform
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

CORPUS_NAME = "pydoc_data.topics"
CORPUS_DESCRIPTION = ("CPython's pydoc_data.topics: the plain-text Python Language Reference shipped with "
                      "every CPython for help()")
CORPUS_LICENSE = "PSF-2.0 (Python Software Foundation License Version 2); code examples also 0BSD"
TRAINING_FILE = "training.json"


@dataclass(frozen=True)
class SplitConfig:
    """How the token stream is cut into training and validation text, and the window length."""

    seq_len: int = 256  # tokens per training / validation window (the model predicts seq_len targets)
    block_tokens: int = 1024  # split unit
    val_every: int = 20  # every val_every-th block is validation (1/20 = 5 %)

    def __post_init__(self):
        for k in ("seq_len", "block_tokens", "val_every"):
            if getattr(self, k) <= 0:
                raise ValueError(f"{k} must be positive, got {getattr(self, k)}")
        if self.val_every < 2:
            raise ValueError(f"val_every must be >= 2 (some training text must remain), got {self.val_every}")
        if self.block_tokens < self.seq_len + 1:
            raise ValueError(f"block_tokens ({self.block_tokens}) must be > seq_len ({self.seq_len})")


@dataclass(frozen=True)
class Corpus:
    tokens: np.ndarray  # int64 token ids of the whole stream
    sha256: str  # of the UTF-8 text the stream was built from (topics joined in key order)
    num_documents: int
    num_bytes: int
    python_version: str


def _tokenizer():
    from lava_matmulfree.io.tokenizer import ByteTokenizer

    return ByteTokenizer()


def corpus_documents() -> list[tuple[str, str]]:
    """(topic key, text) of every pydoc topic, in sorted key order."""
    from pydoc_data.topics import topics

    return [(k, topics[k]) for k in sorted(topics)]


def load_corpus(tokenizer=None) -> Corpus:
    """The whole token stream: per topic ``<s>`` + bytes + ``</s>``."""
    tok = _tokenizer() if tokenizer is None else tokenizer
    digest = hashlib.sha256()
    parts, nbytes = [], 0
    docs = corpus_documents()
    for key, text in docs:
        raw = text.encode("utf-8")
        digest.update(key.encode("utf-8") + b"\0" + raw + b"\0")
        nbytes += len(raw)
        ids = tok.encode(text)
        bos = [tok.bos_token_id] if tok.bos_token_id >= 0 else []  # a tokenizer without <s> / </s>: none
        eos = [tok.eos_token_id] if tok.eos_token_id >= 0 else []
        parts.append(np.asarray([*bos, *ids, *eos], dtype=np.int64))
    return Corpus(np.concatenate(parts), digest.hexdigest(), len(docs), nbytes, platform.python_version())


def split_stream(tokens: np.ndarray, split: SplitConfig) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(training segments, validation blocks): every ``val_every``-th block of ``block_tokens`` is held out;
    the blocks between two held-out ones form one training segment. A final block shorter than a window
    plus one goes to training."""
    n = len(tokens)
    nblocks = math.ceil(n / split.block_tokens)
    train, val = [], []
    seg_start = 0
    for b in range(nblocks):
        lo, hi = b * split.block_tokens, min((b + 1) * split.block_tokens, n)
        if (b + 1) % split.val_every == 0 and hi - lo > split.seq_len:
            if lo > seg_start:
                train.append(tokens[seg_start:lo])
            val.append(tokens[lo:hi])
            seg_start = hi
    if n > seg_start:
        train.append(tokens[seg_start:n])
    train = [s for s in train if len(s) > split.seq_len]
    if not train or not val:
        raise ValueError(f"a stream of {n} tokens is too short for {split}")
    return train, val


class WindowSampler:
    """Uniformly random training windows (inputs, next-token targets) inside the training segments."""

    def __init__(self, segments: Sequence[np.ndarray], seq_len: int):
        self.seq_len = seq_len
        self.stream = np.concatenate(segments)
        starts, off = [], 0
        for s in segments:
            starts.append(off + np.arange(len(s) - seq_len))  # a start needs seq_len + 1 tokens
            off += len(s)
        self.starts = np.concatenate(starts)
        self.num_tokens = len(self.stream)

    def sample(self, batch: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        st = rng.choice(self.starts, size=batch)
        idx = st[:, None] + np.arange(self.seq_len + 1)[None, :]
        w = self.stream[idx]
        return w[:, :-1], w[:, 1:]


def eval_windows(blocks: Sequence[np.ndarray], seq_len: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Non-overlapping windows covering every validation block (each window starts from a zero state):
    (inputs [t], targets [t]) with t <= seq_len; every token but the first of a block is a target once."""
    out = []
    for blk in blocks:
        for lo in range(0, len(blk) - 1, seq_len):
            y = blk[lo + 1: lo + 1 + seq_len]
            out.append((blk[lo: lo + len(y)], y))
    return out


def split_from_training_json(folder: str | Path) -> tuple[SplitConfig, dict]:
    """The split a model folder was trained with (its ``training.json``) and the whole record."""
    path = Path(folder) / TRAINING_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (written by `lava-matmulfree train`)")
    rec = json.loads(path.read_text(encoding="utf-8"))
    return SplitConfig(**rec["split"]), rec
