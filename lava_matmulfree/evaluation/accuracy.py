"""Accuracy of the fixed-point golden model against the float reference (docs/fixed_point.md).

:func:`accuracy_report` runs both models on the same token sequences and measures, per layer, how far the
golden model's residual stream and MLGRU state h (dequantised with their formats) are from the float
model's; at the output, top-1 agreement and the mean KL divergence of the next-token distributions; and,
when the tokens of a text are given, the perplexity of both. Saturations counted by the golden model are
split into the activation clipping that static spike scales imply by design (names ending ``.clip``) and
state overflows (any other register), which mean a format is too narrow; among the latter, saturations of a
dendritic accumulator (``NAME.acc``, only possible with spikes wider than 8 bits) are also listed on their
own, next to how each projection's accumulator was sized (``quantise.dendrite_fits``).

Every figure is a function of the fixed-point knobs (:class:`FixedPointConfig`), so changing a knob and
re-running the report shows what it costs in accuracy.

:func:`build_evaluation` assembles float model, calibration and compiled network from a config name and a
seed (random weights) or from a Hugging Face checkpoint folder; :func:`evaluate` adds the report (what
``lava-matmulfree eval`` runs).

Definitions (all over every token of every sample sequence, each run from the zero state):

    relative error   ||golden - float||_F / ||float||_F, the norms taken over all tokens and channels
    top-1 agreement  fraction of tokens where argmax of the golden logits == argmax of the float logits
    KL               mean over tokens of KL(softmax(float) || softmax(golden)), in nats
    perplexity       exp(mean over t of -log p(token[t+1] | tokens[:t+1])), on the text tokens
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from lava_matmulfree.model.calibration import (CALIBRATION_SOURCES, RANDOM_SOURCE, Calibration, calibrate, norm_stages,
                          random_calibration_sequences, stage_values, text_calibration_sequences, text_source)
from lava_matmulfree.config import FixedPointConfig, ModelConfig, load_config, replace
from lava_matmulfree.model.fixed_point import INVSQRT_OUT_FRAC
from lava_matmulfree.model.float_model import FloatModel
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.model.quantise import QuantisedNetwork, compile_network, dendrite_fits

LAYER_NORM_STAGES = ("attn", "gate", "mlp", "down")  # the norm aggregators of a layer (calibration.norm_stages)
CLIP_SUFFIX = ".clip"  # saturations of the spike quantiser: activation clipping, expected
ACC_SUFFIX = ".acc"  # saturations of a dendritic accumulator (a state overflow)
TEXT_CHUNK = 256  # tokens per prefill call on a text (the state is carried between chunks)
DEFAULT_EVAL_SEQUENCES = 4
DEFAULT_EVAL_LENGTH = 32
DEFAULT_EVAL_SEED = 4321  # sample sequences differ from the calibration ones (random_calibration_sequences' seed)
DEFAULT_CALIB_SEQUENCES = 8  # random token ids (random weights)
DEFAULT_CALIB_LENGTH = 32
DEFAULT_TEXT_CALIB_SEQUENCES = 16  # windows of real text (checkpoints)
DEFAULT_TEXT_CALIB_LENGTH = 128


# ----------------------------------------------------------------------------------------- metrics
def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """KL(softmax(p) || softmax(q)) per row, in nats."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return np.sum(np.exp(lp) * (lp - lq), axis=-1)


def heldout_perplexity(float_model: FloatModel, net: QuantisedNetwork, windows, golden=None) -> dict:
    """Float and fixed-point perplexity, top-1 agreement and mean KL over (inputs, targets) windows, each from
    the zero state. ``golden``: the golden model to run (its overflow counters then tell the caller what
    saturated); ``windows`` may be any iterable (a progress bar)."""
    g = golden if golden is not None else FastGoldenModel(net)
    nll_f, nll_g, agree, kls = [], [], [], []
    for inputs, targets in windows:
        lf, _ = float_model.prefill(inputs)
        lg = g.dequantise_logits(g.prefill(inputs)[0])
        rows = np.arange(len(targets))
        nll_f.append(-log_softmax(lf)[rows, targets])
        nll_g.append(-log_softmax(lg)[rows, targets])
        agree.append(np.argmax(lf, -1) == np.argmax(lg, -1))
        kls.append(kl_divergence(lf, lg))
    nf, ng = np.concatenate(nll_f), np.concatenate(nll_g)
    return {"tokens": int(nf.size), "ppl_float": math.exp(nf.mean()), "ppl_fixed": math.exp(ng.mean()),
            "ppl_rel_diff": math.exp(ng.mean() - nf.mean()) - 1.0,
            "top1_agreement": float(np.concatenate(agree).mean()), "mean_kl": float(np.concatenate(kls).mean())}


def next_token_nll(logits: np.ndarray, tokens: Sequence[int]) -> np.ndarray:
    """-log p(tokens[t+1]) under logits[t], for t < T-1."""
    tokens = np.asarray(tokens, dtype=np.int64)
    lp = log_softmax(logits[:-1])
    return -lp[np.arange(len(tokens) - 1), tokens[1:]]


class _RelErr:
    """Accumulates ||a - b||^2 and ||b||^2 over calls; value = sqrt of their ratio."""

    def __init__(self):
        self.num = 0.0
        self.den = 0.0

    def add(self, approx: np.ndarray, ref: np.ndarray) -> None:
        ref = np.asarray(ref, dtype=np.float64)
        self.num += float(np.sum((np.asarray(approx, dtype=np.float64) - ref) ** 2))
        self.den += float(np.sum(ref ** 2))

    @property
    def value(self) -> float:
        if self.den == 0.0:
            return 0.0 if self.num == 0.0 else math.inf
        return math.sqrt(self.num / self.den)


# ----------------------------------------------------------------------------------------- report
@dataclass
class LayerError:
    """Relative errors of one layer: residual after the token mixer (r), after the layer (x), state h, and
    the inverse RMS 1/sqrt(sum (w1 v)^2) of each norm aggregator (the LUT seed + Newton result)."""

    layer: int
    resid_mid: float
    resid: float
    h: float
    norm: float = 0.0  # largest inverse-RMS error of the layer's four norm stages
    norm_stages: dict = field(default_factory=dict)  # stage (attn, gate, mlp, down) -> inverse-RMS rel err


@dataclass
class AccuracyReport:
    model: str
    fixed_point: dict
    num_sequences: int
    num_tokens: int
    layers: list[LayerError]
    logits_rel_err: float
    top1_agreement: float
    head_norm: float  # inverse-RMS rel err of the final norm
    mean_kl: float
    text_tokens: int = 0
    ppl_float: float | None = None
    ppl_golden: float | None = None
    text_top1_agreement: float | None = None
    text_mean_kl: float | None = None
    clip_counts: dict = field(default_factory=dict)  # name -> clipped spikes (activation clipping)
    clip_rate: float = 0.0  # clipped spikes / spikes sent, over every quantiser
    state_overflows: dict = field(default_factory=dict)  # name -> saturated state register writes
    accumulator_saturations: dict = field(default_factory=dict)  # the NAME.acc part of state_overflows
    dendrites: list = field(default_factory=list)  # per projection: quantise.DendriteFit as a dict
    calibrated_on: str = ""  # the calibration's sample text (Calibration.source)
    sampled_from: str = ""  # what the sample sequences are (evaluate: random token ids and their seed)

    @property
    def num_accumulator_saturations(self) -> int:
        return int(sum(self.accumulator_saturations.values()))

    @property
    def max_resid_err(self) -> float:
        return max((le.resid for le in self.layers), default=0.0)

    @property
    def max_h_err(self) -> float:
        return max((le.h for le in self.layers), default=0.0)

    @property
    def num_clipped(self) -> int:
        return int(sum(self.clip_counts.values()))

    @property
    def num_state_overflows(self) -> int:
        return int(sum(self.state_overflows.values()))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["summary"] = {"max_resid_rel_err": self.max_resid_err, "max_h_rel_err": self.max_h_err,
                        "clipped": self.num_clipped, "state_overflows": self.num_state_overflows,
                        "accumulator_saturations": self.num_accumulator_saturations}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "AccuracyReport":
        d = json.loads(text)
        d.pop("summary", None)
        d["layers"] = [LayerError(**le) for le in d["layers"]]
        return cls(**d)

    def table(self) -> str:
        """A printable summary: one row per layer, then the output figures and the overflow counts."""
        sample = f" of {self.sampled_from}" if self.sampled_from else ""
        lines = [f"golden (fixed point) vs float: model {self.model}, {self.num_sequences} sequences{sample}, "
                 f"{self.num_tokens} tokens",
                 "knobs: " + ", ".join(f"{k}={v}" for k, v in self.fixed_point.items()),
                 f"calibrated on: {self.calibrated_on or 'unrecorded'}",
                 "relative errors: r = residual after the token mixer, x = after the layer, h = MLGRU state, "
                 "1/rms = largest of the layer's four norm aggregators",
                 f"{'layer':>5}  {'r':>10}  {'x':>10}  {'h':>10}  {'1/rms':>10}"]
        for le in self.layers:
            lines.append(f"{le.layer:>5}  {le.resid_mid:>10.3e}  {le.resid:>10.3e}  {le.h:>10.3e}  {le.norm:>10.3e}")
        lines.append(f"{'head':>5}  {'':>10}  {'':>10}  {'':>10}  {self.head_norm:>10.3e}")
        lines.append(f"logits rel err {self.logits_rel_err:.3e}   top-1 agreement {self.top1_agreement:.2%}   "
                     f"mean KL {self.mean_kl:.3e} nats")
        if self.text_tokens:
            lines.append(f"text ({self.text_tokens} tokens): perplexity float {self.ppl_float:.4g}, golden "
                         f"{self.ppl_golden:.4g}; top-1 agreement {self.text_top1_agreement:.2%}, "
                         f"mean KL {self.text_mean_kl:.3e} nats")
        lines.append(f"activation clipping: {self.num_clipped} spikes ({self.clip_rate:.3%} of those sent)"
                     + _top_names(self.clip_counts))
        lines.append(f"state overflows: {self.num_state_overflows}" + _top_names(self.state_overflows))
        lines.append(self.dendrite_line())
        return "\n".join(lines)

    def dendrite_line(self) -> str:
        """How the dendritic accumulators were sized, and how often they saturated."""
        n = len(self.dendrites)
        sized = [d for d in self.dendrites if not d["guaranteed"]]
        text = f"dendritic accumulators: {n - len(sized)} of {n} projections safe for any input"
        if sized:
            low = min(sized, key=lambda d: d["headroom_bits"])
            widened = sum(d["widened"] for d in sized)
            text += (f"; {len(sized)} sized by calibration (least headroom {low['headroom_bits']:.2f} bits at "
                     f"{low['name']}; {widened} spike scale(s) widened to keep the headroom)")
        return (text + f"; saturations {self.num_accumulator_saturations}"
                + _top_names(self.accumulator_saturations))

    __str__ = table


def _layer_error(l: int, mid: _RelErr, res: _RelErr, h: _RelErr, inv_rms: Mapping[str, _RelErr]) -> LayerError:
    stages = {s: inv_rms[f"l{l}.{s}"].value for s in LAYER_NORM_STAGES}
    return LayerError(l, mid.value, res.value, h.value, max(stages.values()), stages)


def _top_names(counts: Mapping[str, int], shown: int = 6) -> str:
    if not counts:
        return ""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{k} {v}" for k, v in items[:shown])
    more = f", ... ({len(items) - shown} more)" if len(items) > shown else ""
    return f" [{text}{more}]"


def split_overflows(ovf: Mapping[str, int]) -> tuple[dict, dict]:
    """(activation clipping, state overflows) from the golden model's per-tensor saturation counts."""
    clip = {k: int(v) for k, v in ovf.items() if k.endswith(CLIP_SUFFIX) and v}
    state = {k: int(v) for k, v in ovf.items() if not k.endswith(CLIP_SUFFIX) and v}
    return clip, state


def layer_output_probe(l: int, num_layers: int) -> str:
    """The golden probe holding the residual stream after layer l: it is the stream entering the next
    layer (``l{l+1}.x``), or the final norm's input (``head.x``) after the last."""
    return f"l{l + 1}.x" if l + 1 < num_layers else "head.x"


def _spikes_per_token(net: QuantisedNetwork) -> int:
    """Spikes one token sends through every int8 quantiser of the network (the clip-rate denominator)."""
    qnorms = [net.head]
    for q in net.layers:
        qnorms += [q.attn, q.gate, q.mlp, q.down_norm]
    return int(sum(np.size(m) for qn in qnorms for m in qn.gain_m.values()))


def accuracy_report(float_model: FloatModel, net: QuantisedNetwork, sequences: Iterable[Sequence[int]],
                    text_tokens: Sequence[int] | None = None, golden: GoldenModel | None = None) -> AccuracyReport:
    """Golden model of ``net`` against ``float_model`` (the unfused model ``net`` was compiled from).

    ``sequences``: token id lists, each run from the zero state (per-layer errors, top-1, KL).
    ``text_tokens``: optional token ids of a text (>= 2), run in chunks with the state carried
    (perplexity of both models, and top-1 / KL on the text). ``golden``: a GoldenModel to use (its
    overflow counter keeps accumulating); a fresh one by default."""
    g = FastGoldenModel(net) if golden is None else golden
    L = net.cfg.num_layers
    mid, res, hh = ([_RelErr() for _ in range(L)] for _ in range(3))
    w1 = {name: w for name, w, _ in norm_stages(float_model)}
    qnorm = {"head": net.head}
    for l, q in enumerate(net.layers):
        qnorm.update({f"l{l}.attn": q.attn, f"l{l}.gate": q.gate, f"l{l}.mlp": q.mlp, f"l{l}.down": q.down_norm})
    inv_rms = {name: _RelErr() for name in qnorm}
    logit_err = _RelErr()
    agree, kls, ntok, nseq = 0, [], 0, 0
    for seq in sequences:
        seq = list(seq)
        if not seq:
            continue
        rec: list[dict] = []
        f_logits, _, hidden = float_model.prefill(seq, return_hidden=True, record=rec)
        g.probes = {}
        try:
            g_int, _ = g.prefill(seq)
            probes = g.probes
        finally:
            g.probes = None
        for l, q in enumerate(net.layers):
            mid[l].add(probes[f"l{l}.r"][0] * 2.0 ** -net.x_frac, rec[l]["r"])
            res[l].add(probes[layer_output_probe(l, L)][0] * 2.0 ** -net.x_frac, hidden[l + 1])
            hh[l].add(probes[f"l{l}.h"][0] * 2.0 ** -q.h_frac, rec[l]["h"])
        for name, v in stage_values(float_model, rec, hidden[-1]).items():
            # golden r ~ 2**22 / sqrt(S) with S = sum u^2, u = w1 v 2**u_frac
            ref = 1.0 / np.sqrt(np.sum((w1[name] * v) ** 2, axis=-1, keepdims=True))
            inv_rms[name].add(probes[f"{name}.inv_rms"][0] * 2.0 ** (qnorm[name].u_frac - INVSQRT_OUT_FRAC), ref)
        g_logits = g.dequantise_logits(g_int)
        logit_err.add(g_logits, f_logits)
        agree += int(np.sum(np.argmax(g_logits, -1) == np.argmax(f_logits, -1)))
        kls.append(kl_divergence(f_logits, g_logits))
        ntok += len(seq)
        nseq += 1
    if ntok == 0:
        raise ValueError("accuracy_report needs at least one non-empty sample sequence")
    report = AccuracyReport(
        model=net.cfg.name, fixed_point=dataclasses.asdict(net.fp), num_sequences=nseq, num_tokens=ntok,
        layers=[_layer_error(l, mid[l], res[l], hh[l], inv_rms) for l in range(L)], head_norm=inv_rms["head"].value,
        logits_rel_err=logit_err.value, top1_agreement=agree / ntok, mean_kl=float(np.mean(np.concatenate(kls))))
    sent = ntok * _spikes_per_token(net)

    if text_tokens is not None:
        text_tokens = [int(t) for t in text_tokens]
        if len(text_tokens) < 2:
            raise ValueError("perplexity needs a text of at least 2 tokens")
        f_chunks, g_chunks = [], []
        fs, gs = None, None
        for start in range(0, len(text_tokens), TEXT_CHUNK):
            chunk = text_tokens[start:start + TEXT_CHUNK]
            fl, fs = float_model.prefill(chunk, fs)
            gl, gs = g.prefill(chunk, gs)
            f_chunks.append(np.asarray(fl, dtype=np.float64))
            g_chunks.append(g.dequantise_logits(gl))
        f_logits, g_logits = np.concatenate(f_chunks), np.concatenate(g_chunks)
        report.text_tokens = len(text_tokens)
        report.ppl_float = float(np.exp(np.mean(next_token_nll(f_logits, text_tokens))))
        report.ppl_golden = float(np.exp(np.mean(next_token_nll(g_logits, text_tokens))))
        report.text_top1_agreement = float(np.mean(np.argmax(g_logits, -1) == np.argmax(f_logits, -1)))
        report.text_mean_kl = float(np.mean(kl_divergence(f_logits, g_logits)))
        sent += len(text_tokens) * _spikes_per_token(net)

    report.clip_counts, report.state_overflows = split_overflows(g.ovf)
    report.accumulator_saturations = {k: v for k, v in report.state_overflows.items() if k.endswith(ACC_SUFFIX)}
    report.dendrites = [dict(dataclasses.asdict(f), guaranteed=f.guaranteed, headroom_bits=f.headroom_bits)
                        for f in dendrite_fits(net)]
    report.calibrated_on = net.calibration.source
    report.clip_rate = report.num_clipped / sent
    return report


# ----------------------------------------------------------------------------------------- building
@dataclass
class EvalSetup:
    """Everything an evaluation needs, built from one source."""

    cfg: ModelConfig
    fp: FixedPointConfig
    float_model: FloatModel
    calibration: Calibration
    net: QuantisedNetwork
    source: str  # what the weights are, for messages
    checkpoint: str | None = None


def build_evaluation(config: str | Path | None = None, seed: int = 0, checkpoint: str | Path | None = None,
                     fixed_point: FixedPointConfig | None = None, overrides: Mapping | None = None,
                     calib_sequences: Iterable[Sequence[int]] | None = None,
                     num_calib: int | None = None, calib_length: int | None = None,
                     dtype=np.float64, progress: bool = False, calibration: str | None = None,
                     calib_source: str = "") -> EvalSetup:
    """Float model, calibration and compiled network.

    Weights: from ``checkpoint`` (a Hugging Face folder, or a repo id found in the local Hugging Face cache:
    ``checkpoint.resolve_checkpoint``) when given, else random (``random_params``, ``seed``) of the model of
    ``config`` (a name such as ``tiny`` / ``370m`` or a TOML path; default ``tiny``). Fixed-point knobs:
    ``fixed_point`` if given, else the ``[fixed_point]`` section of ``config`` (defaults without one), then
    ``overrides`` (field -> value, validated). Calibration on ``calib_sequences`` (described by
    ``calib_source``) if given, else by ``calibration``: ``"text"`` (the default for a checkpoint)
    ``num_calib`` windows of ``calib_length`` tokens of the shipped corpus through the checkpoint's tokenizer,
    ``"random"`` (the default for random weights) ``num_calib`` sequences of random token ids."""
    from lava_matmulfree.io.params import random_params

    if calibration is not None and calibration not in CALIBRATION_SOURCES:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATION_SOURCES)}, got {calibration!r}")
    cfg_file = load_config(config if config is not None else "tiny", require="model" if checkpoint is None else None) \
        if (config is not None or checkpoint is None) else None
    fp = fixed_point if fixed_point is not None else (cfg_file.fixed_point if cfg_file else FixedPointConfig())
    if overrides:
        fp = replace(fp, **dict(overrides))
    from lava_matmulfree.io.params import check_model_memory

    if checkpoint is not None:
        from lava_matmulfree.io.checkpoint import CONFIG_FILE, load_checkpoint, read_config_json, resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint)
        check_model_memory(read_config_json(checkpoint), str(Path(checkpoint) / CONFIG_FILE), hf=True)
        cfg, params = load_checkpoint(checkpoint)
        source = f"checkpoint {checkpoint}"
    else:
        cfg = cfg_file.model
        check_model_memory(cfg, cfg_file.source)  # before any allocation: calibrating and compiling included
        params = random_params(cfg, seed=seed)
        source = f"random weights of config {cfg.name!r} (seed {seed})"
    from lava_matmulfree.io.checkpoint import fingerprint

    weights_id = fingerprint(cfg, params)
    model = FloatModel(cfg, params, dtype=dtype)
    del params
    if calib_sequences is None:
        how = calibration or ("text" if checkpoint is not None else "random")
        if how == "text":
            from lava_matmulfree.io.tokenizer import load_tokenizer

            num, length = num_calib or DEFAULT_TEXT_CALIB_SEQUENCES, calib_length or DEFAULT_TEXT_CALIB_LENGTH
            calib_sequences = text_calibration_sequences(load_tokenizer(checkpoint), cfg.vocab_size, num, length)
            calib_source = text_source(num, length)
        else:
            num, length = num_calib or DEFAULT_CALIB_SEQUENCES, calib_length or DEFAULT_CALIB_LENGTH
            calib_sequences = random_calibration_sequences(cfg.vocab_size, num, length)
            calib_source = f"{RANDOM_SOURCE}: {num} sequences of {length}"
    cal = calibrate(model, calib_sequences, fp, progress=progress, source=calib_source)
    net = compile_network(model, cal, fp)
    net.fingerprint = weights_id
    return EvalSetup(cfg=cfg, fp=fp, float_model=model, calibration=cal, net=net, source=source,
                     checkpoint=None if checkpoint is None else str(checkpoint))


def sample_sequences(vocab_size: int, num: int = DEFAULT_EVAL_SEQUENCES, length: int = DEFAULT_EVAL_LENGTH,
                     seed: int = DEFAULT_EVAL_SEED) -> list[list[int]]:
    """Random token sequences for the report (a different seed from the calibration sequences)."""
    return random_calibration_sequences(vocab_size, num, length, seed=seed)


def evaluate(config: str | Path | None = None, seed: int = 0, checkpoint: str | Path | None = None,
             overrides: Mapping | None = None, num_sequences: int = DEFAULT_EVAL_SEQUENCES,
             length: int = DEFAULT_EVAL_LENGTH, text: str | None = None, dtype=np.float64,
             progress: bool = False, calibration: str | None = None,
             sequences: list[list[int]] | None = None) -> tuple[AccuracyReport, EvalSetup]:
    """Build (see :func:`build_evaluation`) and report on sample sequences (a checkpoint: windows of the shipped
    corpus's held-out blocks through its tokenizer; random weights: random token ids; it reported a trained model on
    random ids, 93.75% top-1 where its text gives 99.04%), plus the perplexity of ``text`` (tokenised by the
    checkpoint's tokenizer, the byte tokenizer for random weights). ``sequences``: a checkpoint's held-out windows
    taken already (``eval`` takes them before calibrating, so that a length they cannot hold is refused first)."""
    from lava_matmulfree.io.tokenizer import load_tokenizer

    setup = build_evaluation(config, seed, checkpoint, overrides=overrides, dtype=dtype, progress=progress,
                             calibration=calibration)
    tokens = None
    if text is not None:
        tok = load_tokenizer(setup.checkpoint)
        tokens = tok.encode(text, add_bos=tok.bos_token_id >= 0)
        if max(tokens, default=0) >= setup.cfg.vocab_size:
            raise ValueError(f"the tokenizer produced id {max(tokens)} but the model has only "
                             f"{setup.cfg.vocab_size} tokens")
    if setup.checkpoint is not None:  # a checkpoint is measured on text it saw in neither training nor calibration
        from lava_matmulfree.io.corpus import CORPUS_NAME

        seqs = sequences or text_calibration_sequences(load_tokenizer(setup.checkpoint), setup.cfg.vocab_size,
                                                       num_sequences, length, held_out=True)
        sampled = f"held-out text ({CORPUS_NAME}, validation blocks)"
    else:  # random weights know no text
        seqs = sample_sequences(setup.cfg.vocab_size, num_sequences, length)
        sampled = f"random token ids (seed {DEFAULT_EVAL_SEED})"
    report = accuracy_report(setup.float_model, setup.net, seqs, tokens)
    report.sampled_from = sampled
    return report, setup
