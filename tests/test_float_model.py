"""The float reference model (docs/model.md) against a straightforward re-implementation in this file.

The reference below is written from the design text with explicit Python loops over plain floats; it
calls none of the module's helpers, so a mistake in a vectorised primitive shows up as a mismatch.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lava_matmulfree.config import ModelConfig
from lava_matmulfree.model.float_model import (BitLinear, DualRMSNorm, FloatModel, act_quant_q8, channel_mixer,
                                         lower_bounds, rms_norm, ternarize, token_mixer)
from lava_matmulfree.io.params import random_params
from lava_matmulfree.model.sampling import Sampler, generate

# tolerances of float64 results that differ only in summation order
RTOL = 1e-9
ATOL = 1e-9
# The design's constants, restated here from docs/model.md (not imported from the module under test).
WEIGHT_MEAN_FLOOR = 1e-5
ACT_MAX_FLOOR = 1e-5
Q8_MIN, Q8_MAX, Q8_LEVELS = -128, 127, 127.0

# a config small enough for a whole-model loop reference, every dimension different
MICRO = ModelConfig(name="micro", vocab_size=23, hidden_size=10, num_layers=3, intermediate_size=14)


# ================================================================================ the loop reference
def r_ternarize(w):
    """(Wt as nested lists of ints, s) for W given as nested lists; s = 1 / max(mean|W|, 1e-5)."""
    total, count = 0.0, 0
    for row in w:
        for v in row:
            total += abs(v)
            count += 1
    s = 1.0 / max(total / count, WEIGHT_MEAN_FLOOR)
    wt = [[max(-1, min(1, round(v * s))) for v in row] for row in w]
    return wt, s


def r_q8(x):
    m = 0.0
    for v in x:
        m = max(m, abs(v))
    q = Q8_LEVELS / max(m, ACT_MAX_FLOOR)
    return [max(Q8_MIN, min(Q8_MAX, round(v * q))) / q for v in x]


def r_rms(x, w, eps):
    ms = 0.0
    for v in x:
        ms += v * v
    ms /= len(x)
    return [w[j] * x[j] / math.sqrt(ms + eps) for j in range(len(x))]


def r_sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def r_silu(v):
    return v * r_sigmoid(v)


class RBitLinear:
    def __init__(self, w, norm_w, eps):
        self.wt, self.s = r_ternarize(w.tolist())
        self.norm_w = norm_w.tolist()
        self.eps = eps

    def __call__(self, x):
        q = r_q8(r_rms(x, self.norm_w, self.eps))
        out = []
        for row in self.wt:
            acc = 0.0
            for j in range(len(q)):
                acc += q[j] * row[j]
            out.append(acc / self.s)
        return out


def r_lower_bounds(param):
    """lb[l][j] = sum_{k<=l} softmax_l(param[:, j])[k] - softmax(param[:, j])[0]."""
    L, d = len(param), len(param[0])
    lb = [[0.0] * d for _ in range(L)]
    for j in range(d):
        col = [param[l][j] for l in range(L)]
        mx = max(col)
        ex = [math.exp(v - mx) for v in col]
        tot = sum(ex)
        run = 0.0
        for l in range(L):
            run += ex[l] / tot
            lb[l][j] = run - ex[0] / tot
    return lb


class RLayer:
    def __init__(self, P, l, cfg, lb_row):
        p = f"model.layers.{l}."
        be = cfg.bitlinear_eps
        self.attn_norm = P[p + "attn_norm.weight"].tolist()
        self.g_norm = P[p + "attn.g_norm.weight"].tolist()
        self.mlp_norm = P[p + "mlp_norm.weight"].tolist()
        self.proj = {n: RBitLinear(P[p + n + ".weight"], P[p + n + ".norm.weight"], be)
                     for n in ("attn.i_proj", "attn.f_proj", "attn.g_proj", "attn.o_proj", "mlp.gate_proj",
                               "mlp.down_proj")}
        self.lb = lb_row
        self.eps = cfg.rms_norm_eps
        self.I = cfg.intermediate_size

    def mlgru(self, x, h):
        """One token: (o, new h)."""
        a = r_rms(x, self.attn_norm, self.eps)
        pi, pf, pg = self.proj["attn.i_proj"](a), self.proj["attn.f_proj"](a), self.proj["attn.g_proj"](a)
        h_new, z = [], []
        for j in range(len(x)):
            f = r_sigmoid(pf[j])
            f = self.lb[j] + (1.0 - self.lb[j]) * f
            i = r_silu(pi[j]) * (1.0 - f)
            hj = f * h[j] + i
            h_new.append(hj)
            z.append(hj * r_sigmoid(hj))
        gn = r_rms(pg, self.g_norm, self.eps)
        o_in = [gn[j] * z[j] for j in range(len(x))]
        return self.proj["attn.o_proj"](o_in), h_new

    def glu(self, r):
        uv = self.proj["mlp.gate_proj"](r_rms(r, self.mlp_norm, self.eps))
        y = [r_silu(uv[k]) * uv[self.I + k] for k in range(self.I)]
        return self.proj["mlp.down_proj"](y)


class RModel:
    """The whole forward pass of docs/model.md, one token at a time."""

    def __init__(self, cfg, params):
        P = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
        L, d = cfg.num_layers, cfg.hidden_size
        if cfg.use_lower_bound:
            lb = r_lower_bounds(P["model.lower_bounds"].tolist())
        else:
            lb = [[0.0] * d for _ in range(L)]
        self.layers = [RLayer(P, l, cfg, lb[l] if l > 0 else [0.0] * d) for l in range(L)]
        self.emb = P["model.embeddings.weight"]
        self.final_norm = P["model.norm.weight"].tolist()
        self.head = RBitLinear(P["lm_head.weight"], P["lm_head.norm.weight"], cfg.bitlinear_eps)
        self.eps = cfg.rms_norm_eps
        self.h = [[0.0] * d for _ in range(L)]

    def step(self, token):
        x = self.emb[token].tolist()
        for l, layer in enumerate(self.layers):
            o, self.h[l] = layer.mlgru(x, self.h[l])
            r = [x[j] + o[j] for j in range(len(x))]
            m = layer.glu(r)
            x = [r[j] + m[j] for j in range(len(x))]
        return self.head(r_rms(x, self.final_norm, self.eps))


def close(a, b, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), rtol=rtol, atol=atol)


# ================================================================================ primitives
def test_ternarize_hand_example():
    # mean|W| = (0.5 + 1.5 + 0.02 + 3) / 4 = 1.255; W * s = [0.398, -1.195, 0.016, 2.390] -> [0, -1, 0, 1]
    wt, s = ternarize(np.array([[0.5, -1.5], [0.02, 3.0]]))
    assert wt.tolist() == [[0, -1], [0, 1]]
    assert s == pytest.approx(1 / 1.255, rel=1e-15)
    assert wt.dtype == np.int8


def test_ternarize_zero_matrix_uses_the_floor():
    wt, s = ternarize(np.zeros((3, 4)))
    assert not wt.any() and s == pytest.approx(1 / WEIGHT_MEAN_FLOOR)


@pytest.mark.parametrize("seed", range(3))
def test_ternarize_against_loops(seed):
    w = np.random.default_rng(seed).standard_normal((7, 11)) * 0.03
    wt, s = ternarize(w)
    rwt, rs = r_ternarize(w.tolist())
    assert wt.tolist() == rwt
    assert s == pytest.approx(rs, rel=1e-12)


def test_act_quant_hand_example():
    # q = 127: 1 -> 127, -0.5 -> -63.5 -> -64 (ties to even), 0.25 -> 31.75 -> 32
    y = act_quant_q8(np.array([1.0, -0.5, 0.25]))
    assert y.tolist() == pytest.approx([1.0, -64 / 127, 32 / 127], rel=1e-15)


def test_act_quant_zero_vector():
    assert act_quant_q8(np.zeros((2, 5))).tolist() == [[0.0] * 5] * 2


@pytest.mark.parametrize("seed", range(3))
def test_act_quant_against_loops_per_token(seed):
    x = np.random.default_rng(seed).standard_normal((4, 9)) * 3
    y = act_quant_q8(x)
    for t in range(4):
        close(y[t], r_q8(x[t].tolist()), rtol=1e-14, atol=0)


@pytest.mark.parametrize("seed", range(3))
def test_rms_norm_against_loops(seed):
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal((3, 8)), rng.standard_normal(8)
    y = rms_norm(x, w, 1e-6)
    for t in range(3):
        close(y[t], r_rms(x[t].tolist(), w.tolist(), 1e-6), rtol=1e-13, atol=0)


def test_lower_bounds_against_loops():
    param = np.random.default_rng(0).standard_normal((5, 6))
    lb = lower_bounds(param)
    close(lb, r_lower_bounds(param.tolist()), rtol=1e-13, atol=1e-15)
    assert np.all(lb[0] == 0)
    assert np.all(np.diff(lb, axis=0) >= 0) and np.all(lb < 1)


@pytest.mark.parametrize("seed", range(3))
def test_bitlinear_against_loops(seed):
    rng = np.random.default_rng(seed)
    w, nw, x = rng.standard_normal((13, 9)) * 0.02, 1 + 0.1 * rng.standard_normal(9), rng.standard_normal((3, 9))
    wt, s = ternarize(w)
    got = BitLinear(wt, s, nw, 1e-6)(x)
    ref = RBitLinear(w, nw, 1e-6)
    for t in range(3):
        close(got[t], ref(x[t].tolist()))


# ================================================================================ blocks
@pytest.fixture(scope="module")
def micro_params():
    return {k: v.astype(np.float64) for k, v in random_params(MICRO, seed=7).items()}


def test_mlgru_token_mixer_against_loops(micro_params):
    """Layer 1 (a non-zero lower bound), 4 tokens from a non-zero state, gate norm included."""
    m = FloatModel(MICRO, micro_params)
    layer = 1
    assert np.any(m.layers[layer].lower_bound > 0)
    rng = np.random.default_rng(1)
    x, h0 = rng.standard_normal((4, MICRO.hidden_size)), rng.standard_normal(MICRO.hidden_size)
    o, hT = token_mixer(m.layers[layer], x, h0, MICRO.rms_norm_eps)

    lb = r_lower_bounds(micro_params["model.lower_bounds"].tolist())
    ref = RLayer(micro_params, layer, MICRO, lb[layer])
    h = h0.tolist()
    for t in range(4):
        ro, h = ref.mlgru(x[t].tolist(), h)
        close(o[t], ro)
    close(hT, h)


def test_glu_channel_mixer_against_loops(micro_params):
    m = FloatModel(MICRO, micro_params)
    r = np.random.default_rng(2).standard_normal((3, MICRO.hidden_size))
    y = channel_mixer(m.layers[2], r, MICRO.rms_norm_eps, MICRO.intermediate_size)
    ref = RLayer(micro_params, 2, MICRO, [0.0] * MICRO.hidden_size)
    for t in range(3):
        close(y[t], ref.glu(r[t].tolist()))


def test_head_against_loops(micro_params):
    m = FloatModel(MICRO, micro_params)
    x = np.random.default_rng(3).standard_normal((2, MICRO.hidden_size))
    ref = RBitLinear(micro_params["lm_head.weight"], micro_params["lm_head.norm.weight"], MICRO.bitlinear_eps)
    fn = micro_params["model.norm.weight"].tolist()
    got = m.head(x)
    for t in range(2):
        close(got[t], ref(r_rms(x[t].tolist(), fn, MICRO.rms_norm_eps)))


@pytest.mark.parametrize("cfg_name", ["micro", "micro-no-lb", "tiny"])
def test_whole_model_against_loops(cfg_name, tiny_cfg):
    cfg = {"micro": MICRO, "micro-no-lb": dataclasses.replace(MICRO, use_lower_bound=False), "tiny": tiny_cfg}[cfg_name]
    params = random_params(cfg, seed=11)
    tokens = [5, 0, cfg.vocab_size - 1] if cfg_name != "tiny" else [1, 100, 258]
    logits, _ = FloatModel(cfg, params).prefill(tokens)
    ref = RModel(cfg, params)
    for t, tok in enumerate(tokens):
        close(logits[t], ref.step(tok))


# ================================================================================ prefill == steps
@pytest.mark.parametrize("seed", range(4))
def test_prefill_equals_successive_steps(tiny_cfg, seed):
    rng = np.random.default_rng(seed)
    m = FloatModel(tiny_cfg, random_params(tiny_cfg, seed=seed))
    tokens = rng.integers(0, tiny_cfg.vocab_size, size=7).tolist()
    logits, state = m.prefill(tokens)
    st_ = None
    for t, tok in enumerate(tokens):
        lg, st_ = m.step(tok, st_)
        close(lg, logits[t])
    close(st_.h, state.h)
    # a prefill continued from a state equals the prefill of the whole sequence
    a, sa = m.prefill(tokens[:3])
    b, sb = m.prefill(tokens[3:], sa)
    close(np.concatenate([a, b]), logits)
    close(sb.h, state.h)


def test_prefill_does_not_modify_the_given_state(tiny_cfg, tiny_params):
    m = FloatModel(tiny_cfg, tiny_params)
    _, s = m.prefill([1, 2, 3])
    before = s.h.copy()
    m.prefill([4, 5], s)
    assert np.array_equal(s.h, before)


# ================================================================================ the dual RMSNorm fold
def unfused_pair(x, w1, w2, e1, e2, gate=None):
    """RMSNorm_w2(RMSNorm_w1(x) [* gate]) in two sequential normalisations, per token, with loops."""
    out = []
    for t in range(x.shape[0]):
        y = r_rms(x[t].tolist(), w1.tolist(), e1)
        if gate is not None:
            y = [y[j] * gate[t, j] for j in range(len(y))]
        out.append(r_rms(y, w2.tolist(), e2))
    return np.array(out)


def eps_free_fold(x, w1, w2, gate=None):
    """The fold as RMS(c*v) = |c| RMS(v) suggests when eps is ignored: w2*w1*v / RMS(w1*v)."""
    v = x if gate is None else x * gate
    return w2 * w1 * v / np.sqrt(np.mean((w1 * v) ** 2, axis=-1, keepdims=True))


FOLD_EPS = 1e-6
SCALE_NORMAL = 1.0
SCALE_TINY = 1e-4  # mean(x^2) ~ 1e-8, well below eps: eps sets the inner normalisation
SCALE_TINIER = 1e-6
# scale -> lower bound of the eps-free fold's relative error on one norm pair (the exact fold: < 1e-12)
EPS_FREE_ERROR = {SCALE_TINY: 1e-5, SCALE_TINIER: 1e-1}


@pytest.mark.parametrize("scale", [SCALE_NORMAL, 1e-2, SCALE_TINY, SCALE_TINIER])
@pytest.mark.parametrize("gated", [False, True])
def test_dual_rmsnorm_block_is_exact_including_eps(scale, gated):
    rng = np.random.default_rng(4)
    d = 16
    x = scale * rng.standard_normal((5, d))
    w1, w2 = 1 + 0.1 * rng.standard_normal(d), 1 + 0.1 * rng.standard_normal(d)
    gate = rng.standard_normal((5, d)) if gated else None
    fold = DualRMSNorm(w1, w2 * w1, FOLD_EPS, FOLD_EPS)
    ref = unfused_pair(x, w1, w2, FOLD_EPS, FOLD_EPS, gate)
    close(fold(x, gate=gate), ref, rtol=1e-12, atol=0)
    if scale in EPS_FREE_ERROR and not gated:
        # here eps matters: the eps-free fold is off by ~ eps*(mean(x^2)+eps) / (2*mean(x^2)), relative
        err = np.max(np.abs(eps_free_fold(x, w1, w2, gate) - ref)) / np.max(np.abs(ref))
        assert err > EPS_FREE_ERROR[scale], err


class _EpsFreeFold:
    def __init__(self, fold: DualRMSNorm):
        self.fold = fold

    def __call__(self, x, gate=None):
        v = x if gate is None else x * gate
        big = np.mean((self.fold.inner_w * v) ** 2, axis=-1, keepdims=True)
        return self.fold.gain * v / np.sqrt(big)


def _eps_free_model(folded: FloatModel) -> FloatModel:
    m = object.__new__(FloatModel)
    m.__dict__.update(folded.__dict__)
    names = ("fold_i", "fold_f", "fold_g", "fold_o", "fold_gate")
    m.layers = [dataclasses.replace(lw, **{n: _EpsFreeFold(getattr(lw, n)) for n in names}) for lw in folded.layers]
    m.fold_head = _EpsFreeFold(folded.fold_head)
    return m


@pytest.mark.parametrize("seed", range(3))
def test_fold_equals_unfused_model(tiny_cfg, seed):
    m = FloatModel(tiny_cfg, random_params(tiny_cfg, seed=seed))
    f = m.fold_dual_rmsnorm()
    assert f.folded and not m.folded
    assert f.layers[0].i_proj.norm_w is None and m.layers[0].i_proj.norm_w is not None  # really folded
    tokens = np.random.default_rng(seed).integers(0, tiny_cfg.vocab_size, size=6).tolist()
    a, sa = m.prefill(tokens)
    b, sb = f.prefill(tokens)
    close(b, a)
    close(sb.h, sa.h)


def test_fold_exact_where_eps_matters(tiny_cfg, tiny_params):
    """Embeddings scaled by 1e-4: the first layer's norms see mean(x^2) << eps."""
    p = dict(tiny_params)
    p["model.embeddings.weight"] = p["model.embeddings.weight"] * SCALE_TINY
    m = FloatModel(tiny_cfg, p)
    f = m.fold_dual_rmsnorm()
    tokens = [1, 40, 41, 200, 7]
    a, _ = m.prefill(tokens)
    close(f.prefill(tokens)[0], a)
    wrong, _ = _eps_free_model(f).prefill(tokens)
    assert np.max(np.abs(wrong - a)) > 1e-3 * np.max(np.abs(a))


# ================================================================================ sampling
def _argmax_first(v):
    best = 0
    for i in range(len(v)):
        if v[i] > v[best]:
            best = i
    return best


def test_greedy_is_argmax_lowest_id_on_ties():
    s = Sampler(temperature=0.0)
    assert s(np.array([1.0, 3.0, 3.0, -2.0])) == 1
    rng = np.random.default_rng(0)
    for _ in range(50):
        v = rng.standard_normal(37)
        assert s(v) == _argmax_first(v.tolist())


def test_same_seed_same_tokens_other_seed_other_tokens():
    logits = np.random.default_rng(1).standard_normal((60, 50))

    def draw(seed):
        s = Sampler(temperature=1.0, top_k=10, seed=seed)
        return [s(v) for v in logits]

    assert draw(5) == draw(5)
    assert draw(5) != draw(6)


def test_top_k_1_is_greedy():
    rng = np.random.default_rng(2)
    s = Sampler(temperature=1.5, top_k=1, seed=0)
    for _ in range(100):
        v = rng.standard_normal(41)
        assert s(v) == _argmax_first(v.tolist())


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(logits=st.lists(st.floats(-20, 20, allow_nan=False), min_size=2, max_size=30),
       k=st.integers(1, 30), seed=st.integers(0, 2**31 - 1), temperature=st.floats(0.05, 5.0))
def test_top_k_never_picks_outside_the_top_k(logits, k, seed, temperature):
    s = Sampler(temperature=temperature, top_k=k, seed=seed)
    kth = sorted(logits, reverse=True)[min(k, len(logits)) - 1]
    for _ in range(20):
        assert logits[s(np.array(logits))] >= kth


def test_sampling_follows_the_softmax():
    logits = [0.0, 1.0, -1.0, 2.0]
    temperature, draws = 0.7, 20000
    ex = [math.exp(v / temperature) for v in logits]
    p = [e / sum(ex) for e in ex]
    s = Sampler(temperature=temperature, seed=9)
    counts = [0] * 4
    for _ in range(draws):
        counts[s(np.array(logits))] += 1
    for i in range(4):
        assert abs(counts[i] / draws - p[i]) < 0.015, (counts, p)


def test_sampler_rejects_bad_arguments():
    with pytest.raises(ValueError, match="temperature"):
        Sampler(temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        Sampler(top_k=-1)


def test_generate_loop_feeds_back_and_stops_at_eos():
    """A fake backend whose next token is always the previous one + 1."""
    V, eos = 10, 7
    calls = []

    def one_hot(i):
        v = np.zeros(V)
        v[i % V] = 1.0
        return v

    def prefill(tokens):
        calls.append(("prefill", list(tokens)))
        return one_hot(tokens[-1] + 1)

    def step(tok):
        calls.append(("step", tok))
        return one_hot(tok + 1)

    seen = []
    out = generate(step, prefill, [2, 3], 10, Sampler(), eos_token_id=eos, on_token=seen.append)
    assert out == [4, 5, 6, 7] and seen == out
    assert calls == [("prefill", [2, 3]), ("step", 4), ("step", 5), ("step", 6)]
    calls.clear()
    assert generate(step, prefill, [0], 3, Sampler()) == [1, 2, 3]
    assert [c[0] for c in calls] == ["prefill", "step", "step"]  # no step after the last token
    with pytest.raises(ValueError, match="prompt"):
        generate(step, prefill, [], 3, Sampler())
