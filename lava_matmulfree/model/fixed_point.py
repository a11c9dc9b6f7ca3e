"""Integer primitives of the fixed-point contract (docs/fixed_point.md), shared by the golden model, the
Lava Python models and the microcode interpreter. Everything is int64 numpy; results that model a
``bits``-wide register are saturated and every saturation is counted.

Rounding convention everywhere: round half up, ``rshift_round(x, k) = (x + 2**(k-1)) >> k`` (arithmetic
shift), which one add and one shift implement on a neuro core.
"""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

from lava_matmulfree.config import MAX_STATE_BITS

INT = np.int64


class OverflowCounter(defaultdict):
    """Saturation events per tensor name (``counter["layer3.h"] += n``)."""

    def __init__(self):
        super().__init__(int)

    def total(self) -> int:
        return int(sum(self.values()))


def int_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def saturate(x, bits: int, ovf: OverflowCounter | None = None, name: str = "") -> np.ndarray:
    """Clip to a signed ``bits``-wide register, counting the clipped elements under ``name``."""
    lo, hi = int_range(bits)
    x = np.asarray(x, dtype=INT)
    if ovf is not None:
        n = int(np.count_nonzero((x < lo) | (x > hi)))
        if n:
            ovf[name] += n
    return np.clip(x, lo, hi)


def rshift_round(x, k: int) -> np.ndarray:
    """x / 2**k rounded half up for k > 0; a left shift for k < 0."""
    x = np.asarray(x, dtype=INT)
    if k > 0:
        return (x + (1 << (k - 1))) >> k
    if k < 0:
        return x << (-k)
    return x


def mul_shift(a, b, k: int) -> np.ndarray:
    """rshift_round(a * b, k) with the product exact (|a|, |b| < 2**24 -> < 2**48 fits int64)."""
    return rshift_round(np.asarray(a, dtype=INT) * np.asarray(b, dtype=INT), k)


def quantize_multiplier(real, mantissa_bits: int) -> tuple[np.ndarray, int]:
    """Integer mantissa(s) M and one shared shift k with M / 2**k ~ real and max|M| < 2**mantissa_bits.

    ``real`` may be a scalar or a per-channel array (one shift for the whole array)."""
    real = np.asarray(real, dtype=np.float64)
    if not np.all(np.isfinite(real)):
        raise ValueError("cannot quantise a non-finite multiplier")
    peak = float(np.max(np.abs(real))) if real.size else 0.0
    if peak == 0.0:
        return np.zeros(real.shape, dtype=INT), 0
    k = mantissa_bits - 1 - math.floor(math.log2(peak))
    m = np.round(real * 2.0 ** k).astype(INT)
    if np.max(np.abs(m)) >= (1 << mantissa_bits):  # rounding pushed the peak over
        k -= 1
        m = np.round(real * 2.0 ** k).astype(INT)
    return m, k


def frac_bits_for(max_abs: float, bits: int, headroom: int) -> int:
    """Fraction bits of a signed ``bits``-wide format holding |v| <= max_abs with ``headroom`` spare bits."""
    if not (max_abs > 0 and math.isfinite(max_abs)):
        return bits - 1 - headroom
    return bits - 2 - headroom - math.floor(math.log2(max_abs))  # max_abs * 2**(frac+headroom) < 2**(bits-1)


# --------------------------------------------------------------------------------------- sigmoid LUT
def sigmoid_lut(size: int, in_range: float, out_frac: int) -> np.ndarray:
    """table[i] = round(sigmoid((i - size/2) * step) * 2**out_frac), step = 2*in_range/size.

    Indexed by the input rounded to the grid (``sigmoid_index``), so the table value is the sigmoid at the
    nearest grid point: error <= max|sigmoid'| * step/2 + 2**-(out_frac+1) = step/8 + 2**-(out_frac+1)."""
    step = 2.0 * in_range / size
    x = (np.arange(size) - size // 2) * step
    return np.round(0.5 * (1.0 + np.tanh(0.5 * x)) * 2.0 ** out_frac).astype(INT)


def lut_frac_bits(size: int, in_range: float) -> int:
    """Fraction bits of the LUT's input grid: step = 2**-lut_frac_bits."""
    return int(round(math.log2(size / (2.0 * in_range))))


def sigmoid_index(v, v_frac: int, size: int, in_range: float) -> np.ndarray:
    """Grid index of a Q(v_frac) value: round to the LUT step, offset by size/2, clamp to the table."""
    idx = rshift_round(v, v_frac - lut_frac_bits(size, in_range)) + size // 2
    return np.clip(idx, 0, size - 1)


# --------------------------------------------------------------------------------------- inverse sqrt
INVSQRT_NORM_LO_BITS = 20  # the normalised argument n lies in [2**20, 2**22)
# inv_sqrt takes every S < 2**(INVSQRT_NORM_LO_BITS + 4): the widest sum register the config allows
assert MAX_STATE_BITS - 1 <= INVSQRT_NORM_LO_BITS + 4
INVSQRT_Y_FRAC = 31  # seed and iterate y ~ 2**31 / sqrt(n), in (2**20, 2**21]
INVSQRT_OUT_FRAC = 22  # result r ~ 2**22 / sqrt(S): at most 2**22 (S = 1), fits 24 bits
INVSQRT_P_FRAC = 42  # y^2 in Q42: p = y^2 * 2**42 in (2**20, 2**22]
INVSQRT_Q_FRAC = 21  # n * y^2 ~ 1 in Q21 inside a Newton step (3 * 2**21 < 2**23)


def invsqrt_seed_lut(seed_bits: int) -> np.ndarray:
    """Seeds 2**31/sqrt(n) at the centre of each bin of n >> (22 - seed_bits), n in [2**20, 2**22)."""
    lo = 1 << (seed_bits - 2)
    idx = np.arange(lo, 1 << seed_bits, dtype=np.float64)
    centre = (idx + 0.5) * 2.0 ** (INVSQRT_NORM_LO_BITS + 2 - seed_bits)
    return np.round(2.0 ** INVSQRT_Y_FRAC / np.sqrt(centre)).astype(INT)


def inv_sqrt(S, seed_lut: np.ndarray, seed_bits: int, newton_steps: int) -> np.ndarray:
    """r ~ 2**22 / sqrt(max(S, 1)) for 0 <= S < 2**23, integer only.

    1. Normalise by an even shift: n = S * 4**e in [2**20, 2**22) (e in [-1, 10]; four compare/shift steps).
    2. Seed y from the LUT on the top ``seed_bits`` bits of n.
    3. Newton: y <- y * (3 - n*y^2) / 2, each step three multiply-shifts in 24-bit registers.
    4. Denormalise: r = y * 2**(e - 9) (since 22 - 31 = -9).
    Relative error after the seed <= ~2**-(seed_bits) ; each step squares it (times 1.5), down to the
    rounding floor of ~2**-20, and the output grid adds 0.5 LSB of r."""
    n = np.maximum(np.asarray(S, dtype=INT), 1)
    hi = 1 << (INVSQRT_NORM_LO_BITS + 2)
    big = n >= hi
    n = np.where(big, n >> 2, n)
    e = np.where(big, -1, 0).astype(INT)
    for step in (8, 4, 2, 1):
        small = n < (1 << (INVSQRT_NORM_LO_BITS + 2 - 2 * step))
        n = np.where(small, n << (2 * step), n)
        e = e + small * step
    y = seed_lut[(n >> (INVSQRT_NORM_LO_BITS + 2 - seed_bits)) - (1 << (seed_bits - 2))]
    three = 3 << INVSQRT_Q_FRAC
    for _ in range(newton_steps):
        p = mul_shift(y, y, 2 * INVSQRT_Y_FRAC - INVSQRT_P_FRAC)  # y^2, Q42
        q = mul_shift(p, n, INVSQRT_P_FRAC - INVSQRT_Q_FRAC)  # n*y^2, Q21
        y = mul_shift(y, three - q, INVSQRT_Q_FRAC + 1)
    shift = INVSQRT_Y_FRAC - INVSQRT_OUT_FRAC - e  # = 9 - e, per element
    return np.where(shift >= 0,
                    (y + np.where(shift > 0, 1 << np.maximum(shift - 1, 0), 0)) >> np.maximum(shift, 0),
                    y << np.maximum(-shift, 0))
