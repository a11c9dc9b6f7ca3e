"""Float reference of a released HGRN-Bit (MMfreeLM) checkpoint, in numpy (docs/model.md).

The accuracy yardstick of the fixed-point path. Weights are ternarised at load (absmean, one scale per
matrix); activations entering every BitLinear are per-token int8 absmax fake-quantised. Two execution
modes that agree: ``prefill`` (a whole sequence) and ``step`` (one token with the recurrent state).

``fold_dual_rmsnorm`` turns the model into its folded form (a block RMSNorm followed by a BitLinear's own
RMSNorm becomes one normalisation with one aggregation round), exact including eps:

    RMSNorm_w2(RMSNorm_w1(x)) = w2*w1*x / sqrt(mean((w1*x)^2) + eps2*(mean(x^2) + eps1))

and likewise for the MLGRU gate norm followed by o_proj's norm, with x = g and the gated value g*z:

    RMSNorm_wo(RMSNorm_gn(g) * z) = wo*gn*g*z / sqrt(mean((gn*g*z)^2) + eps_o*(mean(g^2) + eps_gn))

(derivation: RMS(c*v) = |c| RMS(v) with c = 1/sqrt(mean(x^2)+eps1) a per-token scalar).

Speed: a BitLinear multiplies the int8 activation integers ``n = clip(round(x*q), -128, 127)`` by the
ternary weights with the exact integer kernel of ``ternary.py`` (packed once per matrix, shared with the
golden model) and scales the integer sums, ``(n @ Wt^T) / q / s``: the same value as ``(n/q) @ Wt^T / s`` up
to float rounding (the integer sum is exact), without re-widening the int8 weights to floats on every call.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import Mapping

import numpy as np

from lava_matmulfree.config import ModelConfig
from lava_matmulfree.errors import NumericalError
from lava_matmulfree.io.params import EMBED_WEIGHT

TERNARY_SCALE_FLOOR = 1e-5  # s = 1 / max(mean|W|, 1e-5)
ACT_ABSMAX_FLOOR = 1e-5  # q = 127 / max(max|x|, 1e-5)
Q8_MAX = 127  # the BitLinear's int8 activations: q = 127 / absmax, values clipped to [-128, 127]
Q8_MIN = -128


# ----------------------------------------------------------------------------------------- primitives
def ternarize(w: np.ndarray) -> tuple[np.ndarray, float]:
    """Absmean ternarisation: (Wt in {-1,0,1} as int8, s) with W ~ Wt / s."""
    s = 1.0 / max(float(np.mean(np.abs(w, dtype=np.float64))), TERNARY_SCALE_FLOOR)
    wt = np.clip(np.round(w.astype(np.float64) * s), -1, 1).astype(np.int8)
    return wt, s


def act_quant_ints(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n, q) of the per-token int8 absmax quantisation: ``n = clip(round(x*q), -128, 127)`` (integer values,
    in x's float dtype) and ``q = 127/max(max|x|, 1e-5)`` over the last axis (keepdims)."""
    q = float(Q8_MAX) / np.maximum(np.max(np.abs(x), axis=-1, keepdims=True), ACT_ABSMAX_FLOOR)
    return np.clip(np.round(x * q), Q8_MIN, Q8_MAX), q


def act_quant_q8(x: np.ndarray) -> np.ndarray:
    """Per-token (last axis) int8 absmax fake quantisation."""
    n, q = act_quant_ints(x)
    return n / q


_TERNARY: dict = {}  # id(int8 ternary weights) -> (weak reference to the array, its TernaryMatrix or None)


def ternary_matrix(wt: np.ndarray, build: bool = True):
    """The packed exact-integer kernel of a ternary weight matrix (``ternary.TernaryMatrix``), built once per
    array and shared by every model holding that array (dropped with the array); None when ``wt`` is not a
    valid ternary matrix, or (``build=False``) when it has not been packed yet."""
    from lava_matmulfree.model.ternary import PackedTernary

    if isinstance(wt, PackedTernary):  # held packed only (QuantisedNetwork.pack_weights)
        return wt.matrix
    key = id(wt)
    hit = _TERNARY.get(key)
    if hit is not None and hit[0]() is wt:
        return hit[1]
    if not build:
        return None
    from lava_matmulfree.model.ternary import TernaryMatrix

    try:
        tm = TernaryMatrix(wt)
    except ValueError:
        tm = None
    try:
        ref = weakref.ref(wt, lambda _, key=key: _TERNARY.pop(key, None))
    except TypeError:  # not weak-referenceable: keep the object alive with its kernel
        ref = (lambda obj: lambda: obj)(wt)
    _TERNARY[key] = (ref, tm)
    return tm


def rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return w * x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free form


def silu(x: np.ndarray) -> np.ndarray:
    return x * sigmoid(x)


def lower_bounds(param: np.ndarray) -> np.ndarray:
    """Layer-wise forget-gate lower bounds: cumsum(softmax over layers) minus its first row (lb_0 = 0)."""
    e = np.exp(param - param.max(axis=0, keepdims=True))
    sm = e / e.sum(axis=0, keepdims=True)
    cs = np.cumsum(sm, axis=0)
    return cs - cs[0:1]


@dataclass(frozen=True)
class BitLinear:
    """Q8(RMSNorm_norm_w(x)) @ Wt^T / s; ``norm_w`` None when the norm is folded away upstream."""

    wt: np.ndarray  # int8 [out, in]
    s: float
    norm_w: np.ndarray | None
    eps: float

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.norm_w is not None:
            x = rms_norm(x, self.norm_w, self.eps)
        n, q = act_quant_ints(x)
        tm = ternary_matrix(self.wt) if n.ndim >= 1 else None
        if tm is not None and np.isfinite(n).all():  # integer kernel: exact sum, one scaling
            n8 = n.astype(np.int8).reshape(-1, n.shape[-1])
            acc = tm.matmul(n8).reshape(n.shape[:-1] + (tm.n_out,))
            return acc.astype(x.dtype) / q / self.s
        return ((n / q) @ self.wt.T.astype(x.dtype)) / self.s


@dataclass(frozen=True)
class DualRMSNorm:
    """Folded pair RMSNorm_outer(RMSNorm_inner(x) [* gate]): one aggregation of two sums, exact eps."""

    inner_w: np.ndarray
    gain: np.ndarray  # outer_w * inner_w
    eps_inner: float
    eps_outer: float

    @property
    def eps_const(self) -> float:
        """The constant term of the folded denominator, eps_outer * eps_inner: what an aggregator adds to
        mean((w1 v)^2 + eps_outer x^2) (the per-channel terms are summed by its dendrite)."""
        return self.eps_outer * self.eps_inner

    def squares(self, x: np.ndarray, v: np.ndarray | None = None) -> np.ndarray:
        """What each channel neuron sends its aggregator: (w1 v)^2 + eps_outer x^2, v = x or the gated x."""
        v = x if v is None else v
        return (self.inner_w * v) ** 2 + self.eps_outer * x * x

    def __call__(self, x: np.ndarray, gate: np.ndarray | None = None) -> np.ndarray:
        v = x if gate is None else x * gate
        big = np.mean((self.inner_w * v) ** 2, axis=-1, keepdims=True)
        small = np.mean(x * x, axis=-1, keepdims=True)
        return self.gain * v / np.sqrt(big + self.eps_outer * (small + self.eps_inner))


# ----------------------------------------------------------------------------------------- layers
@dataclass(frozen=True)
class LayerWeights:
    attn_norm: np.ndarray
    i_proj: BitLinear
    f_proj: BitLinear
    g_proj: BitLinear
    o_proj: BitLinear
    g_norm: np.ndarray
    mlp_norm: np.ndarray
    gate_proj: BitLinear
    down_proj: BitLinear
    lower_bound: np.ndarray  # [d]; zeros for layer 0 or when the bound is off
    # set by fold_dual_rmsnorm: norm pairs replaced by one folded normalisation each
    fold_i: DualRMSNorm | None = None
    fold_f: DualRMSNorm | None = None
    fold_g: DualRMSNorm | None = None
    fold_o: DualRMSNorm | None = None
    fold_gate: DualRMSNorm | None = None


def token_mixer(lw: LayerWeights, x: np.ndarray, h0: np.ndarray, eps: float, rec: dict | None = None):
    """MLGRU over a sequence x [T, d] from state h0 [d]; returns (o [T, d], h_T).

    ``rec``, when given, receives the pre-activations and the h sequence (for calibration)."""
    if lw.fold_i is None:
        a = rms_norm(x, lw.attn_norm, eps)
        pre_i, pre_f, pre_g = lw.i_proj(a), lw.f_proj(a), lw.g_proj(a)
    else:
        pre_i = lw.i_proj(lw.fold_i(x))
        pre_f = lw.f_proj(lw.fold_f(x))
        pre_g = lw.g_proj(lw.fold_g(x))
    f = sigmoid(pre_f)
    f = lw.lower_bound + (1.0 - lw.lower_bound) * f
    i = silu(pre_i) * (1.0 - f)
    hs = np.empty_like(i)
    h = h0
    for t in range(x.shape[0]):
        h = f[t] * h + i[t]
        hs[t] = h
    z = silu(hs)  # h * sigmoid(h)
    if rec is not None:
        rec.update(pre_i=pre_i, pre_f=pre_f, pre_g=pre_g, h=hs)
    if lw.fold_o is None:
        o_in = rms_norm(pre_g, lw.g_norm, eps) * z
    else:
        o_in = lw.fold_o(pre_g, gate=z)
    return lw.o_proj(o_in), h


def channel_mixer(lw: LayerWeights, r: np.ndarray, eps: float, intermediate: int,
                  rec: dict | None = None) -> np.ndarray:
    """GLU: down(SiLU(u) * v) with [u, v] = gate(RMSNorm_mlp(r))."""
    if lw.fold_gate is None:
        uv = lw.gate_proj(rms_norm(r, lw.mlp_norm, eps))
    else:
        uv = lw.gate_proj(lw.fold_gate(r))
    u, v = uv[..., :intermediate], uv[..., intermediate:]
    if rec is not None:
        rec.update(u=u, v=v)
    return lw.down_proj(silu(u) * v)


# ----------------------------------------------------------------------------------------- model
@dataclass
class FloatState:
    """Recurrent state: the MLGRU hidden state h of every layer, [L, d]."""

    h: np.ndarray

    def copy(self) -> "FloatState":
        return FloatState(self.h.copy())


class FloatModel:
    """The float reference forward pass (float64 by default, so tolerances in tests are about the math)."""

    def __init__(self, cfg: ModelConfig, params: Mapping[str, np.ndarray], dtype=np.float64):
        self.cfg = cfg
        self.dtype = dtype
        P = {k: np.asarray(v, dtype=dtype) for k, v in params.items()}
        # the largest weight, named when the arithmetic overflows (non-finite logits)
        self.peak_weight = max(((float(np.max(np.abs(v))) if v.size else 0.0, k) for k, v in P.items()),
                               default=(0.0, ""))
        be = cfg.bitlinear_eps

        def bl(prefix):
            wt, s = ternarize(P[prefix + ".weight"])
            return BitLinear(wt, s, P[prefix + ".norm.weight"], be)

        L, d = cfg.num_layers, cfg.hidden_size
        if cfg.use_lower_bound:
            lb = lower_bounds(P["model.lower_bounds"])
        else:
            lb = np.zeros((L, d), dtype=dtype)
        self.embeddings = P[EMBED_WEIGHT]
        self.layers = []
        for l in range(L):
            p = f"model.layers.{l}."
            self.layers.append(LayerWeights(
                attn_norm=P[p + "attn_norm.weight"],
                i_proj=bl(p + "attn.i_proj"), f_proj=bl(p + "attn.f_proj"),
                g_proj=bl(p + "attn.g_proj"), o_proj=bl(p + "attn.o_proj"),
                g_norm=P[p + "attn.g_norm.weight"], mlp_norm=P[p + "mlp_norm.weight"],
                gate_proj=bl(p + "mlp.gate_proj"), down_proj=bl(p + "mlp.down_proj"),
                lower_bound=lb[l] if l > 0 else np.zeros(d, dtype=dtype),
            ))
        self.final_norm = P["model.norm.weight"]
        self.lm_head = bl("lm_head")
        self.fold_head: DualRMSNorm | None = None
        self.folded = False

    # ------------------------------------------------------------------ the fold (a model transformation)
    def fold_dual_rmsnorm(self) -> "FloatModel":
        """A copy in which every block norm + BitLinear norm pair is one folded normalisation."""
        eps, be = self.cfg.rms_norm_eps, self.cfg.bitlinear_eps
        new = object.__new__(FloatModel)
        new.__dict__.update(self.__dict__)

        def dual(inner, proj):
            return DualRMSNorm(inner, proj.norm_w * inner, eps, be), replace(proj, norm_w=None)

        layers = []
        for lw in self.layers:
            fi, ip = dual(lw.attn_norm, lw.i_proj)
            ff, fp = dual(lw.attn_norm, lw.f_proj)
            fg, gp = dual(lw.attn_norm, lw.g_proj)
            fo, op = dual(lw.g_norm, lw.o_proj)
            fm, mp = dual(lw.mlp_norm, lw.gate_proj)
            layers.append(replace(lw, i_proj=ip, f_proj=fp, g_proj=gp, o_proj=op, gate_proj=mp,
                                  fold_i=fi, fold_f=ff, fold_g=fg, fold_o=fo, fold_gate=fm))
        new.layers = layers
        new.fold_head, new.lm_head = dual(self.final_norm, self.lm_head)
        new.folded = True
        return new

    # ------------------------------------------------------------------ execution
    def init_state(self) -> FloatState:
        return FloatState(np.zeros((self.cfg.num_layers, self.cfg.hidden_size), dtype=self.dtype))

    def embed(self, tokens) -> np.ndarray:
        return self.embeddings[np.asarray(tokens, dtype=np.int64)]

    def head(self, x: np.ndarray) -> np.ndarray:
        if self.fold_head is None:
            return self.lm_head(rms_norm(x, self.final_norm, self.cfg.rms_norm_eps))
        return self.lm_head(self.fold_head(x))

    def prefill(self, tokens, state: FloatState | None = None, return_hidden: bool = False,
                record: list | None = None):
        """Logits [T, V] of a whole token sequence, and the state after it (not modified in place).

        With ``return_hidden`` also the residual stream after every layer, [L+1, T, d]. ``record``, a
        list, receives one dict of intermediates per layer (x, pre_i/f/g, h, r, u, v) for calibration."""
        state = self.init_state() if state is None else state.copy()
        x = self.embed(tokens)
        hidden = [x]
        eps, I = self.cfg.rms_norm_eps, self.cfg.intermediate_size
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # checked once, on the logits
            for l, lw in enumerate(self.layers):
                rec = None if record is None else {"x": x}
                o, state.h[l] = token_mixer(lw, x, state.h[l], eps, rec)
                r = x + o
                if rec is not None:
                    rec["r"] = r
                x = r + channel_mixer(lw, r, eps, I, rec)
                hidden.append(x)
                if rec is not None:
                    record.append(rec)
            logits = self.head(x)
        self._check_finite(logits)
        if return_hidden:
            return logits, state, np.stack(hidden)
        return logits, state

    def _check_finite(self, logits: np.ndarray) -> None:
        bad = ~np.isfinite(logits)
        if bad.any():
            pos = int(np.argwhere(bad)[0][0])
            peak, name = self.peak_weight
            hint = "; --float-dtype float64 has more range" if np.dtype(self.dtype) == np.float32 else ""
            raise NumericalError(f"the float model's logits are not finite (NaN/Inf) at position {pos}: its "
                                 f"{np.dtype(self.dtype).name} arithmetic overflowed (largest weight |{peak:.3g}| in "
                                 f"tensor {name!r}){hint}")

    def step(self, token: int, state: FloatState | None = None):
        """Decode one token: (logits [V], new state)."""
        logits, state = self.prefill([token], state)
        return logits[0], state
