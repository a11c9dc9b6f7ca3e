"""The golden fixed-point model (docs/fixed_point.md): integer-only, deterministic, prefill == decode bit for
bit, save/load exact, saturations counted under the right name and clipped, close to the float model.

Oracles are computed here from the recorded probes and the network's integers with exact arithmetic; the
accuracy bounds are derived in the docstrings.
"""
from __future__ import annotations

import copy
import dataclasses
from functools import lru_cache

import numpy as np
import pytest

from lava_matmulfree.model.calibration import calibrate, random_calibration_sequences
from lava_matmulfree.config import FixedPointConfig, load_config
from lava_matmulfree.errors import CheckpointError
from lava_matmulfree.model.fixed_point import mul_shift
from lava_matmulfree.model.float_model import FloatModel
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.io.params import random_params
from lava_matmulfree.model.quantise import QuantisedNetwork, compile_network, dendrite_fits

SEEDS = (0, 1, 2)
NUM_TOKENS = 12  # >= 8 tokens per test sequence
CHUNKS = (5, 4, 3)  # a prefill split into chunks with the state carried (sums to NUM_TOKENS)
SPIKE_BITS = 8  # int8 graded spikes (docs/fixed_point.md), restated
STATE_BITS = 24  # Loihi 2 neuron state registers, restated
TOP1_MIN = 0.90
REL_ERR_MAX = 0.05  # per-layer relative error bound of residual stream and h (derivation in the test)
WIDE_BITS = 32  # registers wide enough that the forced overflows below do not happen (the oracle run)
FORMAT_SQUEEZE = 8  # bits of range taken away from a state format to force its overflow


@lru_cache(maxsize=None)
def tiny(seed: int):
    """(float model, compiled network) of the tiny config with random weights of ``seed``."""
    cfg = load_config("tiny")
    model = FloatModel(cfg.model, random_params(cfg.model, seed=seed))
    cal = calibrate(model, random_calibration_sequences(cfg.model.vocab_size), cfg.fixed_point)
    return model, compile_network(model, cal, cfg.fixed_point)


def tokens(seed: int, n: int = NUM_TOKENS) -> list[int]:
    rng = np.random.default_rng(1000 + seed)
    return rng.integers(0, tiny(0)[1].cfg.vocab_size, size=n).tolist()


def run_with_probes(net, seq, state=None):
    g = GoldenModel(net)
    g.probes = {}
    logits, st = g.prefill(seq, state)
    return g, logits, st


# ================================================================================ integer-only rule
@pytest.mark.parametrize("seed", SEEDS[:2])
def test_every_intermediate_is_an_integer_register_value(seed):
    """Every probed intermediate is an integer numpy array (dtype kind 'i') within the signed state_bits
    register; spikes are within int8; aggregator sums are non-negative; the returned logits and state too."""
    _, net = tiny(seed)
    g, logits, st = run_with_probes(net, tokens(seed))
    lo, hi = -(2 ** (STATE_BITS - 1)), 2 ** (STATE_BITS - 1) - 1
    L = net.cfg.num_layers
    expected = {"embed", "logits", "head.x", "head.inv_rms"} | {f"l{l}.{n}" for l in range(L) for n in ("h", "f", "r", "x", "y")}
    assert expected <= set(g.probes)
    for name, values in g.probes.items():
        assert values, name
        for v in values:
            assert isinstance(v, np.ndarray) and v.dtype.kind == "i", (name, type(v), getattr(v, "dtype", None))
            assert v.min() >= lo and v.max() <= hi, name
            if name.endswith(".spikes"):
                assert v.min() >= -(2 ** (SPIKE_BITS - 1)) and v.max() <= 2 ** (SPIKE_BITS - 1) - 1, name
            if name.endswith(".sum_sq"):
                assert v.min() >= 0, name
    for a in (logits, st.h):
        assert a.dtype.kind == "i" and a.min() >= lo and a.max() <= hi


# ================================================================================ determinism
def test_two_runs_are_identical():
    """The same network and tokens give the same logits, state, probes and overflow counts, in a fresh
    model and when one model is reused."""
    _, net = tiny(0)
    seq = tokens(0)
    g1, l1, s1 = run_with_probes(net, seq)
    g2, l2, s2 = run_with_probes(net, seq)
    assert np.array_equal(l1, l2) and np.array_equal(s1.h, s2.h)
    assert g1.probes.keys() == g2.probes.keys()
    for k in g1.probes:
        assert all(np.array_equal(a, b) for a, b in zip(g1.probes[k], g2.probes[k])), k
    assert dict(g1.ovf) == dict(g2.ovf)
    l3, _ = g1.prefill(seq)
    assert np.array_equal(l1, l3)


# ================================================================================ prefill == decode
@pytest.mark.parametrize("seed", SEEDS)
def test_prefill_equals_decode_and_chunked_prefill(seed):
    """One prefill over the sequence, token-by-token decode with the state carried, and a prefill in chunks
    with the state carried give the same integer logits and final state, bit for bit (tiny config: d=72,
    I=200, V=259, none a power of two). The input state is not modified."""
    _, net = tiny(seed)
    seq = tokens(seed)
    g = GoldenModel(net)
    full, st_full = g.prefill(seq)
    st = g.init_state()
    steps = []
    for t in seq:
        before = st.h.copy()
        lg, new = g.step(t, st)
        assert np.array_equal(st.h, before)  # not modified in place
        steps.append(lg)
        st = new
    assert np.array_equal(np.stack(steps), full)
    assert np.array_equal(st.h, st_full.h)
    st, parts, start = None, [], 0
    assert sum(CHUNKS) == len(seq)
    for n in CHUNKS:
        lg, st = g.prefill(seq[start:start + n], st)
        parts.append(lg)
        start += n
    assert np.array_equal(np.concatenate(parts), full)
    assert np.array_equal(st.h, st_full.h)
    assert np.any(st_full.h != 0)  # the state does carry something


# ================================================================================ save / load
def test_save_load_gives_identical_logits(tmp_path):
    """A compiled network written to one safetensors file and read back computes identical logits and
    state, and keeps its formats and configs; a missing file is a CheckpointError."""
    _, net = tiny(1)
    path = tmp_path / "net.safetensors"
    net.save(path)
    back = QuantisedNetwork.load(path)
    seq = tokens(1)
    l1, s1 = GoldenModel(net).prefill(seq)
    l2, s2 = GoldenModel(back).prefill(seq)
    assert np.array_equal(l1, l2) and np.array_equal(s1.h, s2.h)
    assert back.fp == net.fp and back.cfg == net.cfg and back.x_frac == net.x_frac
    assert [q.h_frac for q in back.layers] == [q.h_frac for q in net.layers]
    assert back.calibration.stats == net.calibration.stats
    with pytest.raises(CheckpointError):
        QuantisedNetwork.load(tmp_path / "missing.safetensors")


def test_pack_weights_keeps_only_packed_weights(tmp_path):
    """A loaded network with its weights packed holds no int8 ternary array any more, computes identical logits
    (reference and fast path), and saves the same tensors as before packing."""
    from lava_matmulfree.model.ternary import PackedTernary

    _, net = tiny(2)
    path = tmp_path / "net.safetensors"
    net.save(path)
    packed = QuantisedNetwork.load(path).pack_weights()
    ws = [w for q in packed.layers for w in (q.i.w, q.f.w, q.g.w, q.o.w, q.down.w, q.gate_w)] + [packed.lm_head]
    assert all(isinstance(w, PackedTernary) for w in ws)
    assert packed.pack_weights() is packed  # packing twice changes nothing
    seq = tokens(2)
    from lava_matmulfree.model.golden_fast import FastGoldenModel
    want = GoldenModel(net).prefill(seq)[0]
    assert np.array_equal(GoldenModel(packed).prefill(seq)[0], want)
    assert np.array_equal(FastGoldenModel(packed).prefill(seq)[0], want)
    packed.save(tmp_path / "again.safetensors")
    from safetensors.numpy import load_file
    a, b = load_file(str(path)), load_file(str(tmp_path / "again.safetensors"))
    assert a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


# ================================================================================ overflow detection
def exact_rescale(acc: np.ndarray, m: int, k: int) -> np.ndarray:
    """round_half_up(acc * m / 2**k) with Python integers (the oracle of the requantisation)."""
    return np.array([[(int(a) * int(m) + (1 << (k - 1))) >> k if k > 0 else int(a) * int(m) << -k for a in row]
                     for row in acc], dtype=np.int64)


def test_residual_overflow_is_counted_and_clipped():
    """Scale layer 0's o-projection multiplier up by 2**12 so the residual r = x + o leaves the 24-bit
    register: every out-of-range element is counted under 'l0.resid' (the residual register of layer 0,
    written twice: after the token mixer and after the GLU) and holds the nearest bound, not a wrapped value.
    The oracle recomputes both residual sums from the recorded spikes with Python integers; the rescaled term
    saturates in its own 24-bit register before the add, as on the neuron (microcode/residual.ucode)."""
    _, net = tiny(0)
    bad = copy.deepcopy(net)
    q = bad.layers[0]
    q.o.out_m = int(q.o.out_m) << 12
    g, _, _ = run_with_probes(bad, tokens(0))
    lo, hi = -(2 ** (STATE_BITS - 1)), 2 ** (STATE_BITS - 1) - 1
    x = g.probes["embed"][0]
    a_o = g.probes["l0.gate.o.spikes"][0]
    term = exact_rescale(a_o.astype(np.int64) @ q.o.w.T.astype(np.int64), q.o.out_m, q.o.out_k)
    r_exact = x + np.clip(term, lo, hi)
    r = g.probes["l0.r"][0]
    assert np.array_equal(r, np.clip(r_exact, lo, hi))
    n1 = int(np.sum((term < lo) | (term > hi))) + int(np.sum((r_exact < lo) | (r_exact > hi)))
    assert n1 > 0 and np.all(r[r_exact > hi] == hi) and np.all(r[r_exact < lo] == lo)
    a_d = g.probes["l0.down.down.spikes"][0]
    term = exact_rescale(a_d.astype(np.int64) @ q.down.w.T.astype(np.int64), q.down.out_m, q.down.out_k)
    x_exact = r + np.clip(term, lo, hi)
    assert np.array_equal(g.probes["l1.x"][0], np.clip(x_exact, lo, hi))  # the stream entering layer 1
    n2 = int(np.sum((term < lo) | (term > hi))) + int(np.sum((x_exact < lo) | (x_exact > hi)))
    assert g.ovf["l0.resid"] == n1 + n2
    # the unmodified network does not overflow there
    g0, _, _ = run_with_probes(net, tokens(0))
    assert g0.ovf.get("l0.resid", 0) == 0


def test_h_overflow_is_counted_and_clipped():
    """Give layer 1's MLGRU state a format FORMAT_SQUEEZE bits finer than calibrated (a tiny headroom),
    so h = f h + i saturates. The same network with WIDE_BITS registers is the oracle: there h never
    saturates, and since f and i do not depend on h, i_t = h_t - mul_shift(f_t, h_{t-1}) there (in the
    24-bit run i is that value clipped, its own register). The 24-bit run must follow
    h_t = clip(mul_shift(f_t, h_{t-1}) + i_t) exactly, and count each clip of h under 'l1.h'."""
    _, net = tiny(2)
    layer = 1
    bad = copy.deepcopy(net)
    bad.layers[layer].h_frac += FORMAT_SQUEEZE
    wide = copy.deepcopy(bad)
    wide.fp = dataclasses.replace(bad.fp, state_bits=WIDE_BITS)
    seq = tokens(2)
    g, _, _ = run_with_probes(bad, seq)
    gw, _, _ = run_with_probes(wide, seq)
    name = f"l{layer}.h"
    assert gw.ovf.get(name, 0) == 0
    gf = bad.fp.gate_frac_bits
    # layer 1's input differs between the runs only after a saturation upstream: none happens before h
    assert np.array_equal(g.probes[f"l{layer}.x"][0], gw.probes[f"l{layer}.x"][0])
    f = g.probes[f"l{layer}.f"][0]
    assert np.array_equal(f, gw.probes[f"l{layer}.f"][0])
    hw = gw.probes[name][0]
    hw_prev = np.vstack([np.zeros_like(hw[:1]), hw[:-1]])
    lo, hi = -(2 ** (STATE_BITS - 1)), 2 ** (STATE_BITS - 1) - 1
    i = np.clip(hw - mul_shift(f, hw_prev, gf), lo, hi)  # the i register saturates (under 'l1.i') before h
    h = np.zeros(hw.shape[1], dtype=np.int64)
    clipped, want = 0, []
    for t in range(len(seq)):
        pre = mul_shift(f[t], h, gf) + i[t]
        clipped += int(np.sum((pre < lo) | (pre > hi)))
        h = np.clip(pre, lo, hi)
        want.append(h)
    assert clipped > 0
    assert np.array_equal(g.probes[name][0], np.stack(want))
    assert g.ovf[name] == clipped
    assert np.max(np.abs(hw)) > hi  # the wide run really went beyond the 24-bit range


# ================================================================================ golden vs float
@pytest.mark.parametrize("seed", SEEDS)
def test_golden_close_to_float(seed):
    """Top-1 agreement >= 90% and per-layer relative error (Frobenius, over tokens and channels) of the
    dequantised residual stream and h below 5%, on random tiny models.

    Error budget: the dominant source is the int8 quantisation of each BitLinear input (the float model
    uses the per-token absmax, the golden a static calibrated clip c ~ 4 on a unit-RMS vector): uniform
    rounding noise of (c/127)/sqrt(12) ~ 0.9% of the input RMS per model, ~1.1% for the difference of
    two independent ones, which passes to each projection's output. h sums i with weights f < 1 (no
    growth), and the residual adds the layers' outputs to the exactly represented embedding, so ~1-1.5%
    per layer is expected; 5% leaves a margin of ~3x over three layers. The LUT (2e-3), inverse-sqrt
    (1e-6) and the 24-bit formats (< 1e-5) add far less."""
    model, net = tiny(seed)
    seqs = random_calibration_sequences(net.cfg.vocab_size, num=4, length=NUM_TOKENS, seed=77 + seed)
    L = net.cfg.num_layers
    num = {k: np.zeros(L) for k in ("x", "h")}
    den = {k: np.zeros(L) for k in ("x", "h")}
    agree = total = 0
    for seq in seqs:
        rec = []
        fl, _, hidden = model.prefill(seq, return_hidden=True, record=rec)
        g, gl, _ = run_with_probes(net, seq)
        for l in range(L):
            out = g.probes[f"l{l + 1}.x" if l + 1 < L else "head.x"][0]  # the stream after layer l
            assert np.array_equal(g.probes[f"l{l}.x"][0], g.probes["embed"][0] if l == 0 else prev)
            prev = out
            for k, approx, ref in (("x", out * 2.0 ** -net.x_frac, hidden[l + 1]),
                                   ("h", g.probes[f"l{l}.h"][0] * 2.0 ** -net.layers[l].h_frac, rec[l]["h"])):
                num[k][l] += np.sum((approx - ref) ** 2)
                den[k][l] += np.sum(ref ** 2)
        agree += int(np.sum(np.argmax(gl, -1) == np.argmax(fl, -1)))  # a positive scale keeps the argmax
        total += len(seq)
        assert not {k for k in g.ovf if not k.endswith(".clip")}  # no state overflow on in-distribution input
    assert agree / total >= TOP1_MIN
    for k in ("x", "h"):
        rel = np.sqrt(num[k] / den[k])
        assert np.all(rel < REL_ERR_MAX), (k, rel)
        assert np.all(rel > 0)  # fixed point is not float: a zero error would mean the test compares nothing


# ================================================================================ accumulator check
def test_accumulator_worst_case_and_calibrated_sizing():
    """With 8-bit spikes and 24-bit registers every projection is safe for any input (fan-in x 128 fits);
    a config whose worst case does not fit compiles anyway, sized by the calibrated maximum with
    headroom_bits to spare (tests/test_wide_spikes.py runs such networks and counts saturations)."""
    model, net = tiny(0)
    fits = dendrite_fits(net)
    assert len(fits) == 6 * net.cfg.num_layers + 1 and all(f.guaranteed for f in fits)
    assert all(f.worst_case == 128 * np.count_nonzero(w, axis=1).max() for f, w in
               zip(fits[:3], (net.layers[0].i.w, net.layers[0].f.w, net.layers[0].g.w)))
    narrow = FixedPointConfig(state_bits=16, act_bits=10, gate_frac_bits=12, norm_square_bits=8)
    assert narrow._check() == []
    net2 = compile_network(model, net.calibration, narrow)  # d=72 x 512 > 2**15 - 1: no longer refused
    sized = [f for f in dendrite_fits(net2) if not f.guaranteed]
    assert sized, "the narrow config must exceed the worst case somewhere"
    for f in sized:
        assert f.headroom_bits >= narrow.headroom_bits - 1e-4, f  # gate: unit read back from a mantissa
