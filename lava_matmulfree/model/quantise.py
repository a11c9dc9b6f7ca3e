"""Compile: float checkpoint + calibration -> a quantised network of integers (docs/fixed_point.md).

Everything the golden model and the Lava models need is here as integers: ternary int8 weights, int24
embedding table, per-channel gain mantissas with shared shifts, rescale multipliers, LUTs, and the
fraction bits of every state tensor. The per-matrix ternary scale s and each static activation scale
are folded into the next requantisation; nothing multiplies by a float at run time.

Formats (Q notation: a value v is stored as round(v * 2**frac)):
  residual stream x       Q(x_frac), one format for the whole model (it is one tensor)
  pre-activations         Q(pre_frac[p]) per projection p in i, f, g; GLU u, v: Q(u_frac), Q(v_frac)
  MLGRU h, SiLU(h)        Q(h_frac) per layer
  g * SiLU(h)             Q(gz_frac); GLU SiLU(u) * v: Q(y_frac)
  gates sigma, f, 1-f     Q(gate_frac_bits)
  norm messages           u = w1 v in Q(u_frac) (|u| < 2**(norm_square_bits-1)); S = sum u^2 < 2**23
  inverse RMS r           ~ 2**22 / sqrt(S)
  unit value t            v / sqrt(sum (w1 v)^2) in Q(t_frac)
  spikes a                act_bits-wide: round(w1 w2 sqrt(n) t * qmax / clip), qmax = 2**(act_bits-1) - 1
  synaptic sums W a       the dendritic accumulator, state_bits wide, saturating (counted as NAME.acc)

Dendritic accumulator. With spikes of up to 8 bits no input can overflow it (fan-in x 128 < 2**23 for every
model shape), as the worst case proves. Wider spikes (the paper's W8A16) are sized by what the data does:
where the worst case would not fit, a consumer's static clip is raised just enough that the calibrated
maximum of its synaptic sum stays ``headroom_bits`` below the accumulator's limit (the calibrated
percentile clip usually already does: then nothing changes), and the golden model saturates and counts
any sum beyond it. :func:`dendrite_fits` reports, per projection, which case holds and the headroom.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lava_matmulfree.config import FixedPointConfig, check_values
from lava_matmulfree.model.calibration import (HEAD_PROJECTION, LOGITS_STAT, Calibration, TOKEN_MIXER_INPUTS,
                                               norm_stages, projection_output_stats)
from lava_matmulfree.model.compiled_formats import check_calibration_finite, check_compiled_network
from lava_matmulfree.model.fixed_point import (INVSQRT_OUT_FRAC, INT, frac_bits_for, invsqrt_seed_lut,
                                               quantize_multiplier, sigmoid_lut)
from lava_matmulfree.model.float_model import FloatModel
# The compiled network's types and file live in quantised_network.py; they are imported from here.
from lava_matmulfree.model.quantised_network import (  # noqa: F401
    FORMAT_VERSION, QLayer, QNorm, QProj, QuantisedNetwork, expected_compiled_tensors, release_freed_memory,
    validate_tensors)


# ----------------------------------------------------------------------------------- compile
def _act_clip(cal: Calibration, name: str, fp: FixedPointConfig, floor: float = 0.0) -> float:
    clip = max(cal[name], 1e-6, floor)
    return 2.0 ** math.ceil(math.log2(clip)) if fp.pow2_act_scales else clip


def act_qmax(fp: FixedPointConfig) -> int:
    """Largest spike magnitude: the act_bits-wide signed range is [-qmax - 1, qmax]."""
    return (1 << (fp.act_bits - 1)) - 1


def accumulator_limit(fp: FixedPointConfig) -> int:
    """Largest |synaptic sum| the signed state_bits dendritic accumulator holds."""
    return (1 << (fp.state_bits - 1)) - 1


def worst_case_sum(wt: np.ndarray, fp: FixedPointConfig) -> int:
    """max over rows of nnz(row) * 2**(act_bits-1): no spike input can give a larger |W a|."""
    return int(np.count_nonzero(wt, axis=-1).max()) << (fp.act_bits - 1)


def _output_max(cal: Calibration, names, what: str) -> float:
    missing = [n for n in names if n not in cal.stats]
    if missing:
        raise ValueError(f"{what}: the calibration has no {missing[0]!r} statistic (recorded since wide spikes; "
                         f"recalibrate)")
    return max(cal[n] for n in names)


def _dendrite_min_clip(s: float, out_max: float, fp: FixedPointConfig) -> float:
    """Smallest static clip of a projection's input spikes that keeps its calibrated synaptic sum
    ``headroom_bits`` below the accumulator limit. One accumulator unit is worth clip / (qmax s) of the
    BitLinear output, so the calibrated sum is out_max qmax s / clip."""
    return out_max * act_qmax(fp) * s * 2.0 ** fp.headroom_bits / accumulator_limit(fp)


def _qnorm(stage: str, w1, consumers, v_frac: int, cal: Calibration, fp: FixedPointConfig,
           min_clip: dict | None = None) -> QNorm:
    sb, hb, mb = fp.state_bits, fp.headroom_bits, fp.mantissa_bits
    n = w1.shape[-1]
    # u = w1 v 2**u_frac with S = sum u^2 <= 2**(state_bits - 1 - headroom)
    u_frac = math.floor((sb - 1 - hb - math.log2(max(cal[f"{stage}.sum_sq"], 1e-30))) / 2)
    inner_m, inner_k = quantize_multiplier(w1 * 2.0 ** (u_frac - v_frac), mb)
    t_frac = frac_bits_for(cal[f"{stage}.unit"], sb, hb)
    t_k = v_frac + INVSQRT_OUT_FRAC - u_frac - t_frac
    q = QNorm(v_frac=v_frac, u_frac=u_frac, inner_m=inner_m, inner_k=inner_k, t_frac=t_frac, t_k=t_k)
    qmax = act_qmax(fp)
    for p, w2 in consumers.items():
        clip = _act_clip(cal, f"{stage}.{p}.clip", fp, (min_clip or {}).get(p, 0.0))
        m, k = quantize_multiplier(w1 * w2 * math.sqrt(n) * qmax / clip * 2.0 ** -t_frac, mb)
        q.gain_m[p], q.gain_k[p], q.clip[p] = m, k, clip
    return q


def _qproj(w, s: float, clip: float, target_frac: int, fp: FixedPointConfig) -> QProj:
    scale = clip / (act_qmax(fp) * s)
    m, k = quantize_multiplier(scale * 2.0 ** target_frac, fp.mantissa_bits)
    return QProj(w=w, out_m=int(m), out_k=int(k), scale=scale)


@dataclass(frozen=True)
class DendriteFit:
    """How the synaptic sums of one projection fit the dendritic accumulator (quantise.py docstring)."""

    name: str  # l{l}.{i,f,g,o,gate,down} or head.lm_head (its saturation counter is NAME.acc)
    fan_in: int
    worst_case: int  # no input can give a larger |W a|
    calibrated: float  # max |W a| on the calibration text (in accumulator units; from the float model)
    limit: int  # 2**(state_bits-1) - 1
    widened: bool  # the spike clip was raised above its calibrated percentile to keep the headroom

    @property
    def guaranteed(self) -> bool:
        """No input can saturate the accumulator."""
        return self.worst_case <= self.limit

    @property
    def headroom_bits(self) -> float:
        """log2(limit / calibrated maximum): bits to spare above what the calibration text reached."""
        return math.log2(self.limit / self.calibrated) if self.calibrated > 0 else math.inf


def dendrite_fits(net: "QuantisedNetwork") -> list[DendriteFit]:
    """One :class:`DendriteFit` per projection, in graph order (from the compiled network and its calibration).
    ``calibrated`` is NaN for a network compiled before the output maxima were recorded."""
    fp, cal = net.fp, net.calibration
    limit = accumulator_limit(fp)

    def fit(name, wt, scale, stats, clip, clip_stat):
        out_max = max((cal.stats.get(k, math.nan) for k in stats), default=math.nan)
        widened = clip > _act_clip(cal, clip_stat, fp) if clip_stat in cal.stats else False
        return DendriteFit(name, int(wt.shape[-1]), worst_case_sum(wt, fp), out_max / scale, limit, bool(widened))

    fits = []
    for l, q in enumerate(net.layers):
        outs = projection_output_stats(l)
        gate_scale = float(q.u_m) * 2.0 ** (-q.u_k - q.u_frac)  # u_m 2**-u_k = scale 2**u_frac
        for p in TOKEN_MIXER_INPUTS:
            proj = getattr(q, p)
            fits.append(fit(f"l{l}.{p}", proj.w, proj.scale, outs[p], q.attn.clip[p], f"l{l}.attn.{p}.clip"))
        fits.append(fit(f"l{l}.o", q.o.w, q.o.scale, outs["o"], q.gate.clip["o"], f"l{l}.gate.o.clip"))
        fits.append(fit(f"l{l}.gate", q.gate_w, gate_scale, outs["gate"], q.mlp.clip["gate"],
                        f"l{l}.mlp.gate.clip"))
        fits.append(fit(f"l{l}.down", q.down.w, q.down.scale, outs["down"], q.down_norm.clip["down"],
                        f"l{l}.down.down.clip"))
    fits.append(fit(HEAD_PROJECTION, net.lm_head, net.logit_scale, (LOGITS_STAT,), net.head.clip["lm_head"],
                    "head.lm_head.clip"))
    return fits


def compile_network(model: FloatModel, cal: Calibration, fp: FixedPointConfig) -> QuantisedNetwork:
    """Quantise an (unfused) float model with a calibration; the dual RMSNorm fold is built in. A network whose
    formats its arithmetic cannot take (weights far from a trained model's scale) is refused with a
    CheckpointError naming the calibrated range or weight tensor that set them (compiled_formats.py)."""
    if model.folded:
        raise ValueError("compile the unfused float model; the fold is applied here")
    check_values(fp, "compile_network's FixedPointConfig")
    check_calibration_finite(cal, getattr(model, "peak_weight", None))  # an inf would read as an empty range
    cfg = model.cfg
    sb, hb, gf = fp.state_bits, fp.headroom_bits, fp.gate_frac_bits
    x_frac = frac_bits_for(cal["resid"], sb, hb)
    stages = {name: (w1, cons) for name, w1, cons in norm_stages(model)}

    def qnorm(name, v_frac, projections):
        """projections: consumer -> (BitLinear, calibration statistics of its output)."""
        w1, cons = stages[name]
        floors = {p: _dendrite_min_clip(bl.s, _output_max(cal, stats, f"{name}.{p}"), fp)
                  for p, (bl, stats) in projections.items() if worst_case_sum(bl.wt, fp) > accumulator_limit(fp)}
        return _qnorm(name, w1, cons, v_frac, cal, fp, floors)

    layers = []
    for l, lw in enumerate(model.layers):
        outs = projection_output_stats(l)
        pre_frac = {p: frac_bits_for(cal[f"l{l}.pre_{p}"], sb, hb) for p in TOKEN_MIXER_INPUTS}
        attn = qnorm(f"l{l}.attn", x_frac, {p: (getattr(lw, f"{p}_proj"), outs[p]) for p in TOKEN_MIXER_INPUTS})
        proj = {p: _qproj(getattr(lw, f"{p}_proj").wt, getattr(lw, f"{p}_proj").s, attn.clip[p],
                          pre_frac[p], fp) for p in TOKEN_MIXER_INPUTS}
        h_frac = frac_bits_for(cal[f"l{l}.h"], sb, hb)
        gz_frac = frac_bits_for(cal[f"l{l}.gate.v"], sb, hb)
        gate = qnorm(f"l{l}.gate", gz_frac, {"o": (lw.o_proj, outs["o"])})
        o = _qproj(lw.o_proj.wt, lw.o_proj.s, gate.clip["o"], x_frac, fp)
        mlp = qnorm(f"l{l}.mlp", x_frac, {"gate": (lw.gate_proj, outs["gate"])})
        u_frac = frac_bits_for(cal[f"l{l}.u"], sb, hb)
        v_frac = frac_bits_for(cal[f"l{l}.v"], sb, hb)
        gp = _qproj(lw.gate_proj.wt, lw.gate_proj.s, mlp.clip["gate"], 0, fp)
        u_m, u_k = quantize_multiplier(gp.scale * 2.0 ** u_frac, fp.mantissa_bits)
        v_m, v_k = quantize_multiplier(gp.scale * 2.0 ** v_frac, fp.mantissa_bits)
        y_frac = frac_bits_for(cal[f"l{l}.down.v"], sb, hb)
        down_norm = qnorm(f"l{l}.down", y_frac, {"down": (lw.down_proj, outs["down"])})
        down = _qproj(lw.down_proj.wt, lw.down_proj.s, down_norm.clip["down"], x_frac, fp)
        lb = np.round(np.asarray(lw.lower_bound, dtype=np.float64) * 2.0 ** gf).astype(INT)
        layers.append(QLayer(attn=attn, i=proj["i"], f=proj["f"], g=proj["g"], pre_frac=pre_frac, lb=lb,
                             h_frac=h_frac, gz_frac=gz_frac, gate=gate, o=o, mlp=mlp, gate_w=lw.gate_proj.wt,
                             u_m=int(u_m), u_k=int(u_k), v_m=int(v_m), v_k=int(v_k), u_frac=u_frac,
                             v_frac=v_frac, y_frac=y_frac, down_norm=down_norm, down=down))
    head = qnorm("head", x_frac, {"lm_head": (model.lm_head, (LOGITS_STAT,))})
    lo, hi = -(1 << (sb - 1)), (1 << (sb - 1)) - 1
    embed = np.clip(np.round(np.asarray(model.embeddings, np.float64) * 2.0 ** x_frac), lo, hi).astype(np.int32)
    net = QuantisedNetwork(
        cfg=cfg, fp=fp, x_frac=x_frac, embed=embed, layers=layers, head=head, lm_head=model.lm_head.wt,
        logit_scale=head.clip["lm_head"] / (act_qmax(fp) * model.lm_head.s),
        sigmoid_lut=sigmoid_lut(fp.sigmoid_lut_size, fp.sigmoid_lut_range, gf),
        invsqrt_lut=invsqrt_seed_lut(fp.invsqrt_seed_bits), calibration=cal)
    # what the loader checks of a file, checked of every network compiled (the CLI's and the API's): weights far
    # from a trained model's scale calibrate to formats no int64 shift can take, which ran as garbage
    check_compiled_network(net, getattr(model, "peak_weight", None))
    return net
