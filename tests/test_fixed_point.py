"""The integer primitives of the fixed-point contract (docs/fixed_point.md) against exact or float references.

Every test compares with an oracle written here (exact rational arithmetic via ``fractions.Fraction`` or
float64 math of the real function) over the whole input range, within an error bound derived in the
test's docstring from the algorithm's definition, not from its observed output.
"""
from __future__ import annotations

import math
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest

from lava_matmulfree.config import FixedPointConfig
from lava_matmulfree.model.fixed_point import (OverflowCounter, frac_bits_for, int_range, inv_sqrt, invsqrt_seed_lut,
                                         lut_frac_bits, mul_shift, quantize_multiplier, rshift_round, saturate,
                                         sigmoid_index, sigmoid_lut)
from lava_matmulfree.model.golden import GoldenModel

DEFAULT = FixedPointConfig()
# Restated from fixed_point.py's documented contract (not imported, so a silent change there fails here):
INVSQRT_OUT_FRAC = 22  # r ~ 2**22 / sqrt(S)
INVSQRT_S_BITS = 23  # the aggregator sum S is a non-negative 24-bit register value: 0 <= S < 2**23
NORM_LO, NORM_HI = 2 ** 20, 2 ** 22  # inv_sqrt normalises S * 4**e into [2**20, 2**22)
Y_LO = 2 ** 20  # the Newton iterate y ~ 2**31 / sqrt(n) > 2**20
CHUNK = 1 << 20  # exhaustive sweeps run in chunks of this many inputs


def exact_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=np.float64)))


def round_half_up(num: int, den: int) -> int:
    """floor(num/den + 1/2) in exact rational arithmetic (den > 0)."""
    return math.floor(Fraction(num, den) + Fraction(1, 2))


# ============================================================================ rshift_round / mul_shift
def test_rshift_round_is_round_half_up_including_negatives():
    """rshift_round(x, k) == floor(x / 2**k + 1/2) exactly, for every x in a window around 0 (negative
    ties go up, towards +inf: -1.5 -> -1, not -2) and for large random values, k = 1..20."""
    xs = list(range(-1100, 1101))
    for k in range(1, 11):
        got = rshift_round(np.array(xs), k)
        want = [round_half_up(x, 2 ** k) for x in xs]
        assert got.tolist() == want, k
    rng = np.random.default_rng(0)
    big = rng.integers(-(2 ** 47), 2 ** 47, size=500)
    for k in (11, 16, 20):
        assert rshift_round(big, k).tolist() == [round_half_up(int(x), 2 ** k) for x in big]
    # the ties spelled out
    assert rshift_round(np.array([-3, 3, -5, -6, -7, 5, 6]), 1).tolist() == [-1, 2, -2, -3, -3, 3, 3]
    assert rshift_round(np.array([-6, -10, 6, 10]), 2).tolist() == [-1, -2, 2, 3]


def test_rshift_round_zero_and_negative_shift():
    """k == 0 is the identity; k < 0 is an exact left shift, x * 2**-k, for negative x too."""
    xs = np.arange(-300, 301)
    assert np.array_equal(rshift_round(xs, 0), xs)
    for k in (-1, -3, -9):
        assert rshift_round(xs, k).tolist() == [int(x) * 2 ** (-k) for x in xs]
    assert int(rshift_round(5, -2)) == 20  # a scalar works too


def test_mul_shift_is_exact_product_rounded_half_up():
    """mul_shift(a, b, k) == floor(a*b / 2**k + 1/2) with the product exact, |a|, |b| < 2**24 (the operands
    of 24-bit registers), k = 0..47; also broadcast per channel (a vector of mantissas)."""
    rng = np.random.default_rng(1)
    a = rng.integers(-(2 ** 24) + 1, 2 ** 24, size=400)
    b = rng.integers(-(2 ** 24) + 1, 2 ** 24, size=400)
    a[:4] = [2 ** 24 - 1, -(2 ** 24) + 1, 2 ** 24 - 1, 0]
    b[:4] = [2 ** 24 - 1, 2 ** 24 - 1, -(2 ** 24) + 1, 5]
    for k in (0, 1, 7, 15, 24, 31, 47):
        got = mul_shift(a, b, k)
        assert got.tolist() == [round_half_up(int(x) * int(y), 2 ** k) for x, y in zip(a, b)], k
    m = np.array([3, -7, 11])
    v = np.array([[100, 200, -300], [-1, 1, 0]])
    assert mul_shift(v, m, 2).tolist() == [[round_half_up(int(x) * int(y), 4) for x, y in zip(row, m)] for row in v]


# ============================================================================ saturate
@pytest.mark.parametrize("bits", [8, 12, 24])
def test_saturate_clips_to_the_register_and_counts(bits):
    """Values outside [-2**(bits-1), 2**(bits-1)-1] are clipped to the nearest bound (never wrapped) and
    their number is added to ovf[name]; in-range values pass unchanged; counts accumulate over calls."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert int_range(bits) == (lo, hi)
    x = np.array([lo - 5, lo - 1, lo, -1, 0, 1, hi, hi + 1, hi + 2 ** bits, 3 * hi])
    ovf = OverflowCounter()
    y = saturate(x, bits, ovf, "t")
    assert y.tolist() == [lo, lo, lo, -1, 0, 1, hi, hi, hi, hi]
    assert ovf["t"] == 5 and ovf.total() == 5
    saturate(np.array([[hi + 1, lo - 1], [0, 0]]), bits, ovf, "t")
    assert ovf["t"] == 7
    saturate(np.array([lo, hi]), bits, ovf, "other")  # nothing clipped: no count
    assert ovf.get("other", 0) == 0 and ovf.total() == 7
    assert saturate(x, bits).tolist() == y.tolist()  # without a counter it clips all the same


# ============================================================================ quantize_multiplier
@pytest.mark.parametrize("mantissa_bits", [4, 8, 15, 23])
def test_quantize_multiplier_scalar(mantissa_bits):
    """For a scalar r != 0: 2**(mb-1) <= |M| < 2**mb (the shift is chosen so the mantissa uses its whole
    range, and lowered by one if rounding reached 2**mb), hence |M/2**k - r| / |r| <= (1/2) / (2**(mb-1) - 1/4)
    (rounding error <= 1/2 on |r| 2**k >= 2**(mb-1) - 1/4), which is <= 2**-(mb-1)."""
    rng = np.random.default_rng(2)
    reals = np.concatenate([10.0 ** rng.uniform(-9, 9, size=300) * rng.choice([-1, 1], size=300),
                            [1.0, -1.0, 0.5, 2.0 ** 20, 3.0, 2.0 ** mantissa_bits - 0.25]])
    bound = 0.5 / (2 ** (mantissa_bits - 1) - 0.25)
    assert bound <= 2.0 ** -(mantissa_bits - 1)
    for r in reals:
        m, k = quantize_multiplier(r, mantissa_bits)
        m = int(m)
        assert 2 ** (mantissa_bits - 1) <= abs(m) < 2 ** mantissa_bits, (r, m, k)
        assert abs(Fraction(m, 1) * Fraction(2) ** -k - Fraction(float(r))) <= bound * abs(Fraction(float(r)))


def test_quantize_multiplier_rounding_overflow_lowers_the_shift():
    """r = 15.75 with 4 mantissa bits: k = 0 would round to 16 = 2**4 (out of range), so k = -1, M = 8."""
    m, k = quantize_multiplier(15.75, 4)
    assert (int(m), k) == (8, -1)


@pytest.mark.parametrize("mantissa_bits", [6, 15])
def test_quantize_multiplier_array_shares_one_shift(mantissa_bits):
    """Per-channel reals share one shift set by the peak p = max|r|: every |M_j| < 2**mb, the peak's mantissa
    >= 2**(mb-1), and every element's absolute error <= (1/2) 2**-k <= p / (2**mb - 1/2) (<= p 2**-(mb-1))."""
    rng = np.random.default_rng(3)
    for scale in (1e-6, 0.3, 1.0, 7e5):
        r = scale * rng.standard_normal(50)
        m, k = quantize_multiplier(r, mantissa_bits)
        assert m.shape == r.shape and m.dtype.kind == "i"
        p = np.max(np.abs(r))
        assert np.all(np.abs(m) < 2 ** mantissa_bits)
        assert np.max(np.abs(m)) >= 2 ** (mantissa_bits - 1)
        err = np.abs(m * 2.0 ** -k - r)
        assert np.all(err <= p / (2 ** mantissa_bits - 0.5) * (1 + 1e-12))
    z, kz = quantize_multiplier(np.zeros(4), mantissa_bits)
    assert np.all(z == 0)
    with pytest.raises(ValueError):
        quantize_multiplier(np.array([1.0, np.nan]), mantissa_bits)
    with pytest.raises(ValueError):
        quantize_multiplier(np.inf, mantissa_bits)


# ============================================================================ frac_bits_for
@pytest.mark.parametrize("bits,headroom", [(24, 0), (24, 1), (24, 3), (16, 0), (8, 1)])
def test_frac_bits_for_holds_max_with_headroom(bits, headroom):
    """The format Q(f) = frac_bits_for(m, bits, headroom) holds m * 2**headroom (the calibrated maximum with
    the headroom) in the bits-1 magnitude bits of the signed register, m 2**(f+headroom) < 2**(bits-1), and is
    the finest that does: m 2**(f+1+headroom) >= 2**(bits-1). Exact powers of two (m = 1.0, 4.0) included:
    there a format of ceil(log2 m) integer bits is one LSB short (m 2**(f+headroom) == 2**(bits-1))."""
    for m in (1.0, 4.0, 0.75, 3.3, 1e-3, 123.0, 0.5 + 1e-9, 2.0 - 1e-9):
        f = frac_bits_for(m, bits, headroom)
        assert m * 2.0 ** (f + headroom) < 2.0 ** (bits - 1), (m, f)
        assert m * 2.0 ** (f + 1 + headroom) >= 2.0 ** (bits - 1), (m, f)


# ============================================================================ sigmoid LUT and SiLU
# (size, range, out_frac): the default, a coarse one, one where the clamp beyond the range dominates,
# and a fine one.
SIGMOID_CONFIGS = [(DEFAULT.sigmoid_lut_size, DEFAULT.sigmoid_lut_range, DEFAULT.gate_frac_bits),
                   (256, 8.0, 12), (64, 4.0, 16), (4096, 16.0, 20)]


def sigmoid_bound(size: int, in_range: float, out_frac: int) -> float:
    """Max |LUT(x) - sigmoid(x)| over all real x (see test_sigmoid_lut_error_bound)."""
    step = 2.0 * in_range / size
    return max(step / 8.0, float(exact_sigmoid(-(in_range - step)))) + 2.0 ** -(out_frac + 1)


def lut_sigmoid(v, v_frac: int, size: int, in_range: float, out_frac: int) -> np.ndarray:
    """The real value of the LUT output for a Q(v_frac) input."""
    table = sigmoid_lut(size, in_range, out_frac)
    return table[sigmoid_index(v, v_frac, size, in_range)] * 2.0 ** -out_frac


def sweep_inputs(v_frac: int, in_range: float, rng) -> np.ndarray:
    """Q(v_frac) integers covering [-2 range, 2 range] (beyond the LUT on both sides): every grid value
    when v_frac is small, else a dense random sample plus the grid points, half-steps and the edges."""
    span = int(2 * in_range * 2 ** v_frac)
    if span <= 1 << 19:
        return np.arange(-span, span + 1, dtype=np.int64)
    rand = rng.integers(-span, span + 1, size=1 << 18)
    grid = np.round(np.arange(-2 * in_range, 2 * in_range + 1e-9, 1.0 / 256) * 2 ** v_frac).astype(np.int64)
    return np.concatenate([rand, grid, grid + 1, grid - 1, [-span, span, 0]])


@pytest.mark.parametrize("size,in_range,out_frac", SIGMOID_CONFIGS)
def test_sigmoid_lut_error_bound(size, in_range, out_frac):
    """|LUT(x) - sigmoid(x)| <= max(step/8, sigmoid(-(R - step))) + 2**-(out_frac+1), step = 2R/size,
    for every Q(v_frac) input x, including |x| up to twice the LUT range R.

    Derivation: the index rounds x to the nearest grid point x_i (|x - x_i| <= step/2), and the table holds
    sigmoid(x_i) rounded to Q(out_frac) (error <= 2**-(out_frac+1)). Inside the range, since
    |sigmoid'| <= 1/4, |sigmoid(x) - sigmoid(x_i)| <= step/8. Beyond, the index clamps to the first
    (x_0 = -R) or last (x_{size-1} = R - step) entry, and sigmoid(x) lies between that entry's sigmoid and
    0 or 1, so the error is <= sigmoid(-R) < sigmoid(-(R - step)), resp. 1 - sigmoid(R - step) =
    sigmoid(-(R - step)). For the default (1024 entries over [-8, 8), Q16 output) the clamp term is below
    step/8, so the bound is step/8 + 2**-17 (about 2.0e-3) over the whole input range, and it is attained
    (near x = 0 half a step off the grid) to within the output rounding."""
    rng = np.random.default_rng(size)
    bound = sigmoid_bound(size, in_range, out_frac)
    step = 2.0 * in_range / size
    lf = lut_frac_bits(size, in_range)
    assert 2.0 ** -lf == step
    worst = 0.0
    for v_frac in sorted({max(lf - 3, 0), 12, 23}):  # coarser than the grid (left shift), finer, and Q23
        v = sweep_inputs(v_frac, in_range, rng)
        err = np.abs(lut_sigmoid(v, v_frac, size, in_range, out_frac) - exact_sigmoid(v * 2.0 ** -v_frac))
        assert err.max() <= bound, (v_frac, float(err.max()), bound)
        worst = max(worst, float(err.max()))
    if (size, in_range, out_frac) == SIGMOID_CONFIGS[0]:
        assert bound == step / 8 + 2.0 ** -(out_frac + 1)
        assert worst >= step / 8 - 2.0 ** -(out_frac + 1) - step ** 3  # the bound is tight
    table = sigmoid_lut(size, in_range, out_frac)
    assert table.dtype.kind == "i" and len(table) == size
    assert np.all(np.diff(table) >= 0) and 0 <= table[0] and table[-1] <= 2 ** out_frac


@pytest.mark.parametrize("size,in_range,out_frac", SIGMOID_CONFIGS[:3])
def test_silu_via_lut_error_bound(size, in_range, out_frac):
    """The golden SiLU(v) = mul_shift(v, LUT sigmoid(v), out_frac), in the format Q(v_frac) of v:
    |SiLU_q(x) - x sigmoid(x)| <= |x| B + 2**-(v_frac+1), with B the sigmoid bound above (the LUT error
    scaled by |x|) plus half an output LSB for the rounding shift. Checked over the whole 24-bit input range
    of two formats (|x| up to 2**11 in Q12, up to 8 in Q20 where the sweep is random)."""
    fp = FixedPointConfig(sigmoid_lut_size=size, sigmoid_lut_range=in_range, gate_frac_bits=out_frac)
    gm = GoldenModel(SimpleNamespace(fp=fp, sigmoid_lut=sigmoid_lut(size, in_range, out_frac)))
    B = sigmoid_bound(size, in_range, out_frac)
    rng = np.random.default_rng(7)
    lo, hi = int_range(fp.state_bits)
    for v_frac in (12, 20):
        v = np.concatenate([rng.integers(lo, hi + 1, size=1 << 17), sweep_inputs(v_frac, in_range, rng),
                            [lo, hi, 0, 1, -1]])
        v = np.clip(v, lo, hi)
        x = v * 2.0 ** -v_frac
        got = gm.silu(v, v_frac, "silu") * 2.0 ** -v_frac
        err = np.abs(got - x * exact_sigmoid(x))
        assert np.all(err <= np.abs(x) * B + 2.0 ** -(v_frac + 1)), float(err.max())
    assert gm.ovf.total() == 0  # |SiLU(x)| <= |x|: never saturates


# ============================================================================ inverse square root
def seed_error(seed_bits: int) -> float:
    """Relative error of the LUT seed: bins of n of width w = 2**(22-b) from 2**20; the seed is 1/sqrt of the
    bin centre rounded to an integer y0 > 2**20 (relative <= 2**-21). The worst bin is the first
    (index j = 2**(b-2), centre (j + 1/2) w), at its low edge: |sqrt(n/c) - 1| = 1 - sqrt(j/(j + 1/2))."""
    j = 2 ** (seed_bits - 2)
    return 1.0 - math.sqrt(j / (j + 0.5)) + 2.0 ** -21


def newton_bound(seed_bits: int, steps: int) -> float:
    """Bound on |y sqrt(n) - 1| after ``steps`` integer Newton steps y <- y (3 - n y^2) / 2.

    Exact step: with y = (1 + e)/sqrt(n), y' sqrt(n) = 1 - e^2 (3 + e)/2, so |e'| <= e^2 (3 + |e|)/2.
    Rounding per step (y < 2**21 in Q31, n < 2**22): p = y^2 >> 20 (error <= 1/2, times n / 2**42 <= 2**-21
    in n y^2), q = p n >> 21 (<= 2**-22), so n y^2 is off by <= 3 2**-22 and y' by a relative
    (1 + |e|) 3 2**-23; then y' = y (3 - q) >> 22 rounds by <= 1/2 on y' > 2**20: <= 2**-21."""
    e = seed_error(seed_bits)
    for _ in range(steps):
        e = e * e * (3.0 + e) / 2.0 + (1.0 + e) * 3.0 * 2.0 ** -23 + 2.0 ** -21
    return e


def inv_sqrt_lsb_bound(S: np.ndarray, seed_bits: int, steps: int) -> np.ndarray:
    """|r - 2**22/sqrt(S)| <= r_true ((1 + E)(1 + T) - 1) + 1/2 in LSB of r, with E = newton_bound, T the
    truncation n = S >> 2 for S >= 2**22 (relative <= sqrt(1 + (3/4)/2**20) - 1), and the final rounding
    shift (1/2 LSB; for S < 4 the result is a left shift of y, no rounding, error relative only)."""
    r_true = 2.0 ** INVSQRT_OUT_FRAC / np.sqrt(np.maximum(S, 1).astype(np.float64))
    E = newton_bound(seed_bits, steps)
    T = np.where(S >= NORM_HI, math.sqrt(1.0 + 0.75 / NORM_LO) - 1.0, 0.0)
    return r_true * ((1.0 + E) * (1.0 + T) - 1.0) + 0.5


def inv_sqrt_errors(S, seed_bits, steps):
    r = inv_sqrt(S, invsqrt_seed_lut(seed_bits), seed_bits, steps)
    assert r.dtype.kind == "i"
    r_true = 2.0 ** INVSQRT_OUT_FRAC / np.sqrt(np.maximum(S, 1).astype(np.float64))
    return r, np.abs(r - r_true)


def test_inv_sqrt_default_exhaustive():
    """Every S in [0, 2**23) with the default seed bits (6) and Newton steps (2): |r - 2**22/sqrt(S)| within
    the derived bound (see newton_bound / inv_sqrt_lsb_bound): E_2 ~ 1.0e-6 relative, so at most ~4.8 LSB
    at S = 1 (r = 2**22) and ~0.5 LSB for S >= 2**12; r never exceeds 2**22 (1 + E_2) < 2**23 (fits 24 bits).
    Also S = 0 is treated as S = 1."""
    b, k = DEFAULT.invsqrt_seed_bits, DEFAULT.invsqrt_newton_steps
    E = newton_bound(b, k)
    assert E < 1.1e-6  # the figure quoted above
    worst_excess = -np.inf
    for lo in range(0, 2 ** INVSQRT_S_BITS, CHUNK):
        S = np.arange(lo, min(lo + CHUNK, 2 ** INVSQRT_S_BITS), dtype=np.int64)
        r, err = inv_sqrt_errors(S, b, k)
        excess = err - inv_sqrt_lsb_bound(S, b, k)
        worst_excess = max(worst_excess, float(excess.max()))
        assert r.max() < 2 ** (INVSQRT_S_BITS) and r.min() > 0
    assert worst_excess <= 0.0
    r0 = inv_sqrt(np.array([0, 1]), invsqrt_seed_lut(b), b, k)
    assert r0[0] == r0[1]


def representative_S(rng) -> np.ndarray:
    """All S < 2**12 and all S in one seed bin of each octave pair, plus a random sample and the edges."""
    parts = [np.arange(0, 2 ** 12), rng.integers(1, 2 ** INVSQRT_S_BITS, size=1 << 19),
             np.arange(NORM_LO, NORM_LO + 2 ** 16), np.arange(NORM_HI - 2 ** 16, NORM_HI + 2 ** 16),
             np.arange(2 ** INVSQRT_S_BITS - 2 ** 16, 2 ** INVSQRT_S_BITS)]
    return np.concatenate(parts).astype(np.int64)


@pytest.mark.parametrize("seed_bits", [2, 4, 6, 8, 12])
def test_inv_sqrt_bound_and_convergence_with_steps(seed_bits):
    """For steps 0..4 the error stays within the derived bound; the bound shrinks quadratically with the
    steps down to the rounding floor (~8e-7 relative), and so does the observed worst error: each extra step
    lowers it until it is within a few LSB."""
    rng = np.random.default_rng(seed_bits)
    S = representative_S(rng)
    worst = []
    for steps in range(5):
        _, err = inv_sqrt_errors(S, seed_bits, steps)
        assert np.all(err <= inv_sqrt_lsb_bound(S, seed_bits, steps)), (steps, float(err.max()))
        worst.append(float(err.max()))
    bounds = [newton_bound(seed_bits, s) for s in range(5)]
    assert all(b1 <= b0 for b0, b1 in zip(bounds, bounds[1:]))
    floor_lsb = 2.0 ** INVSQRT_OUT_FRAC * bounds[-1] + 0.5
    for w0, w1 in zip(worst, worst[1:]):
        assert w1 < w0 or w0 <= floor_lsb
    assert worst[-1] <= floor_lsb


def test_inv_sqrt_seed_lut_layout():
    """3 * 2**(b-2) seeds, each 2**31/sqrt(bin centre) rounded, decreasing, within (2**20, 2**21]."""
    for b in (2, 6, 9):
        lut = invsqrt_seed_lut(b)
        assert lut.dtype.kind == "i" and len(lut) == 3 * 2 ** (b - 2)
        assert np.all(np.diff(lut) < 0) and lut.max() <= 2 ** 21 and lut.min() > Y_LO
