"""Calibration: run the float model on sample token sequences and collect, per tensor, the statistics from
which the compiler picks static activation scales and the 24-bit formats of the state tensors.

Norm stages (one RMS aggregation each, after the dual-RMSNorm fold; docs/model.md, docs/graph.md):

    stage          channel value v             inner gain w1     consumers (BitLinear norm w2)
    l{l}.attn      residual x                  attn_norm         i_proj, f_proj, g_proj
    l{l}.gate      g * SiLU(h)                 g_norm            o_proj
    l{l}.mlp       residual r                  mlp_norm          gate_proj
    l{l}.down      SiLU(u) * v                 1                 down_proj
    head           final residual x_L          norm              lm_head

For a stage: ``sum_sq`` = sum_j (w1_j v_j)^2 per token; ``unit`` = v_j / sqrt(sum_sq); a consumer's int8
input is round(w1 w2 sqrt(d) unit * 127 / clip) with ``clip`` the calibrated percentile of its |value|.

Every BitLinear's output maximum is recorded too (:func:`projection_output_stats`): divided by the value of
one accumulator unit it is the calibrated maximum of that projection's synaptic sum, which decides how wide
spikes (``act_bits`` > 8) fit the 24-bit dendritic accumulator (quantise.py, ``dendrite_fits``).
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from lava_matmulfree.utils.progress import progress as progress_bar

from lava_matmulfree.config import FixedPointConfig
from lava_matmulfree.model.float_model import FloatModel, silu

log = logging.getLogger(__name__)

TOKEN_MIXER_INPUTS = ("i", "f", "g")


PROJECTIONS = ("i", "f", "g", "o", "gate", "down")  # the ternary projections of a layer, in graph order
HEAD_PROJECTION = "head.lm_head"
LOGITS_STAT = "logits"


def projection_output_stats(l: int) -> dict[str, tuple[str, ...]]:
    """Projection of layer ``l`` -> the calibration statistics whose maximum is its BitLinear output's |max|
    (gate_proj's output is the GLU's u and v halves)."""
    return {"i": (f"l{l}.pre_i",), "f": (f"l{l}.pre_f",), "g": (f"l{l}.pre_g",), "o": (f"l{l}.out_o",),
            "gate": (f"l{l}.u", f"l{l}.v"), "down": (f"l{l}.out_down",)}


def norm_stages(model: FloatModel):
    """Per stage: (name, inner gain w1, {consumer: w2}) in graph order, from the unfused model's weights."""
    stages = []
    d = model.cfg.hidden_size
    for l, lw in enumerate(model.layers):
        stages.append((f"l{l}.attn", lw.attn_norm, {p: getattr(lw, f"{p}_proj").norm_w for p in TOKEN_MIXER_INPUTS}))
        stages.append((f"l{l}.gate", lw.g_norm, {"o": lw.o_proj.norm_w}))
        stages.append((f"l{l}.mlp", lw.mlp_norm, {"gate": lw.gate_proj.norm_w}))
        stages.append((f"l{l}.down", np.ones(model.cfg.intermediate_size), {"down": lw.down_proj.norm_w}))
    stages.append(("head", model.final_norm, {"lm_head": model.lm_head.norm_w}))
    assert all(s[1].shape[-1] in (d, model.cfg.intermediate_size) for s in stages)
    return stages


def stage_values(model: FloatModel, rec: list[dict], x_final: np.ndarray) -> dict[str, np.ndarray]:
    """Channel values v [T, n] of every norm stage, from one recorded float forward pass."""
    vals = {}
    for l, r in enumerate(rec):
        vals[f"l{l}.attn"] = r["x"]
        vals[f"l{l}.gate"] = r["pre_g"] * silu(r["h"])
        vals[f"l{l}.mlp"] = r["r"]
        vals[f"l{l}.down"] = silu(r["u"]) * r["v"]
    vals["head"] = x_final
    return vals


@dataclass
class Calibration:
    """Max-abs / percentile statistics per tensor name, from ``num_tokens`` tokens of sample text."""

    stats: dict[str, float] = field(default_factory=dict)
    num_tokens: int = 0
    percentile: float = 100.0
    source: str = ""  # what the sample text was (random_calibration_sequences / text_calibration_sequences)

    def __getitem__(self, name: str) -> float:
        return self.stats[name]

    def to_json(self) -> str:
        return json.dumps({"stats": self.stats, "num_tokens": self.num_tokens, "percentile": self.percentile,
                           "source": self.source}, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Calibration":
        d = json.loads(text)
        return cls(stats={k: float(v) for k, v in d["stats"].items()}, num_tokens=int(d["num_tokens"]),
                   percentile=float(d["percentile"]), source=str(d.get("source", "")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        return cls.from_json(Path(path).read_text())


def _maxabs(a) -> float:
    return float(np.max(np.abs(a))) if np.size(a) else 0.0


def calibrate(model: FloatModel, sequences, fp: FixedPointConfig, progress: bool = False,
              source: str = "") -> Calibration:
    """Statistics of the (unfused) float model on ``sequences`` (lists of token ids), each run from the
    zero state. Max-abs statistics take the maximum over all sequences; activation clips the
    ``fp.act_clip_percentile`` percentile of all |values| seen."""
    if model.folded:
        raise ValueError("calibrate the unfused float model (its recorded intermediates name the norm pairs)")
    maxes: dict[str, float] = {}
    pools: dict[str, list[np.ndarray]] = {}
    stages = norm_stages(model)
    ntok = 0

    def upd(name, v):
        maxes[name] = max(maxes.get(name, 0.0), v)

    for seq in progress_bar(list(sequences), desc="calibrate", disable=not progress, unit="seq"):
        rec: list[dict] = []
        logits, _, hidden = model.prefill(seq, return_hidden=True, record=rec)
        ntok += len(seq)
        upd("resid", _maxabs(hidden))
        upd(LOGITS_STAT, _maxabs(logits))
        for l, r in enumerate(rec):
            upd("resid", _maxabs(r["r"]))
            upd(f"l{l}.out_o", _maxabs(r["r"] - r["x"]))  # o_proj's output: r = x + o
            upd(f"l{l}.out_down", _maxabs(hidden[l + 1] - r["r"]))  # down_proj's output: x_next = r + down
            for p in TOKEN_MIXER_INPUTS:
                upd(f"l{l}.pre_{p}", _maxabs(r[f"pre_{p}"]))
            upd(f"l{l}.h", _maxabs(r["h"]))
            upd(f"l{l}.u", _maxabs(r["u"]))
            upd(f"l{l}.v", _maxabs(r["v"]))
        vals = stage_values(model, rec, hidden[-1])
        for name, w1, consumers in stages:
            v = vals[name]
            upd(f"{name}.v", _maxabs(v))
            sum_sq = np.sum((w1 * v) ** 2, axis=-1, keepdims=True)
            upd(f"{name}.sum_sq", float(np.max(sum_sq)))
            unit = v / np.sqrt(np.maximum(sum_sq, 1e-30))
            upd(f"{name}.unit", _maxabs(unit))
            d = v.shape[-1]
            for p, w2 in consumers.items():
                normed = w1 * w2 * np.sqrt(d) * unit
                pools.setdefault(f"{name}.{p}.clip", []).append(np.abs(normed).ravel())
    stats = dict(maxes)
    for k, chunks in pools.items():
        stats[k] = float(np.percentile(np.concatenate(chunks), fp.act_clip_percentile))
    return Calibration(stats=stats, num_tokens=ntok, percentile=fp.act_clip_percentile, source=source)


CALIBRATION_SOURCES = ("text", "random")  # real text (the default for checkpoints) or random token ids
RANDOM_SOURCE = "random token ids"


def random_calibration_sequences(vocab_size: int, num: int = 8, length: int = 32, seed: int = 1234):
    """Sample sequences for models without text (random weights): uniform random token ids."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab_size, size=length).tolist() for _ in range(num)]


def text_calibration_sequences(tokenizer, vocab_size: int, num: int = 16, length: int = 128,
                               held_out: bool = False) -> list[list[int]]:
    """``num`` windows of ``length`` tokens of real text, evenly spaced over the training part of the shipped
    corpus (CPython's ``pydoc_data.topics``, see train_data.py) tokenised by ``tokenizer``: the statistics a
    checkpoint shows on text, which random token ids do not reproduce. The held-out validation blocks are
    left out, so a perplexity measured on them stays out of sample; ``held_out``: windows of those blocks
    instead (what ``eval`` measures a checkpoint on)."""
    from lava_matmulfree.io.corpus import SplitConfig, load_corpus, split_stream

    stream = np.concatenate(split_stream(load_corpus(tokenizer).tokens, SplitConfig())[1 if held_out else 0])
    part, option = ("held-out (validation)", "--length") if held_out else ("training", "--calib-length")
    top = int(stream.max())
    if top >= vocab_size:
        raise ValueError(f"the tokenizer produced id {top} on the corpus's {part} text but the model has only "
                         f"{vocab_size} tokens")
    if length > len(stream):  # it was cut to the stream, and every window was then the same one
        raise ValueError(f"sequences of {length:,} tokens do not fit in the {len(stream):,} tokens of the corpus's "
                         f"{part} text (a shorter {option})")
    starts = np.linspace(0, len(stream) - length, num).round().astype(np.int64)
    distinct = len(set(starts.tolist()))
    if distinct < num:  # windows that are the same tokens would count them twice, as if distinct
        raise ValueError(f"{num} sequences of {length:,} tokens leave room for only {distinct} "
                         f"distinct ones in the {len(stream):,} tokens of the corpus's {part} text (fewer sequences "
                         f"or a shorter {option})")
    if num * length > len(stream):
        log.warning("%d sequences of %s tokens overlap in the %s tokens of the corpus's %s text: some tokens count "
                    "more than once", num, f"{length:,}", f"{len(stream):,}", part)
    return [stream[s:s + length].tolist() for s in starts]


def text_source(num: int, length: int) -> str:
    from lava_matmulfree.io.corpus import CORPUS_NAME

    return f"text: {num} windows of {length} tokens of {CORPUS_NAME}"
