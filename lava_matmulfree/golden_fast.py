"""Fast path of the golden model: the same integers through fused numba kernels.

Speed. The blocks run as fused numba kernels, one call per stage (a whole norm round: squares, aggregate,
inverse sqrt and the spikes of every consumer; the MLGRU neurons with their recurrence; the GLU neurons;
a residual update), with the same integer operations in the same int64 arithmetic as the numpy reference
(``fixed_point.py``; the loops are written so that LLVM vectorises them). Integer results do not depend on
the order of elementwise work, and a saturation count is a sum over elements, so the kernels give the same
values and the same overflow counts bit for bit (golden.py's GoldenModel is the numpy reference;
tests/test_benchmarks_smoke.py proves them equal). Inside ``layer`` the spikes stay int8 (int16 for
``act_bits`` > 8) and the synaptic accumulators int32 (the synapse kernel's types, exact by its bounds); every
recorded probe is int64 as before. Each method falls back to the numpy reference where a kernel's
preconditions do not hold (another array rank, a shift outside [-62, 62], ``state_bits`` > 25 where the
inverse-sqrt seed index could leave its table, more than three consumers of one norm, LUTs of another size
than the config's).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .fixed_point import (INT, INVSQRT_NORM_LO_BITS, INVSQRT_OUT_FRAC, INVSQRT_P_FRAC, INVSQRT_Q_FRAC,
                          INVSQRT_Y_FRAC, int_range, lut_frac_bits)
from .float_model import ternary_matrix
from .golden import GoldenModel, synapses
from .quantise import QLayer, QNorm, QuantisedNetwork


def synapses32(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``synapses`` for spikes [T, in], left in the kernel's int32 (|acc| <= 32768 * in fits; the layer's fused
    kernels read int32 directly, which saves widening every accumulator array to int64)."""
    tm = ternary_matrix(w)
    if tm is None or np.ndim(a) != 2:
        return synapses(w, a)
    return tm.matmul(a)


# ----------------------------------------------------------------------------------------- fused kernels
# The numpy reference (fixed_point.py) element by element, in int64 (products wrap exactly as numpy's do).
# rshift_round(x, k) is written ((x << left) + rnd) >> right with loop-invariant parts (_parts), so LLVM
# vectorises the loops (AVX-512 here); each LUT look-up is a loop of its own. Saturation counts are sums of
# comparisons. Shifts are checked to lie in [-MAX_SHIFT, MAX_SHIFT] before a kernel runs: numpy defines
# larger shifts, LLVM does not.
MAX_SHIFT = 62
MAX_CONSUMERS = 3  # spike outputs of one norm-stage kernel (the attn norm feeds i, f, g)
INT8_ACT_BITS = 8  # spikes of at most this many bits are written as int8 (the synapse kernel's input) ...
INT16_ACT_BITS = 16  # ... wider ones up to this as int16 (its wide-spike path)
SEED_INDEX_SAFE_BITS = INVSQRT_NORM_LO_BITS + 4  # S < 2**24: the normalised n stays in the seed table


@njit(cache=True, inline="always")
def _parts(k):
    """(left, rnd, right) with fixed_point.rshift_round(x, k) == ((x << left) + rnd) >> right."""
    if k > 0:
        return np.int64(0), np.int64(1) << (k - 1), np.int64(k)
    return np.int64(-k), np.int64(0), np.int64(0)


@njit(cache=True, inline="always")
def _sh(x, p):
    return ((x << p[0]) + p[1]) >> p[2]


@njit(cache=True, inline="always")
def _out(x, lo, hi):
    """1 where saturating x to [lo, hi] changes it, else 0."""
    return np.int64(x < lo) + np.int64(x > hi)


@njit(cache=True, inline="always")
def _clamp(x, lo, hi):
    return min(max(x, lo), hi)


@njit(cache=True, inline="always")
def _rsr(x, k):
    """fixed_point.rshift_round of one int64 (scalar code)."""
    if k > 0:
        return (x + (np.int64(1) << (k - 1))) >> k
    if k < 0:
        return x << (-k)
    return x


@njit(cache=True, inline="always")
def _inv_sqrt1(S, seed_lut, seed_bits, newton_steps):
    """fixed_point.inv_sqrt of one S in [0, 2**24) (same steps, same integers)."""
    n = max(S, np.int64(1))
    e = np.int64(0)
    if n >= (np.int64(1) << (INVSQRT_NORM_LO_BITS + 2)):
        n = n >> 2
        e = np.int64(-1)
    step = 8
    while step > 0:  # steps 8, 4, 2, 1
        if n < (np.int64(1) << (INVSQRT_NORM_LO_BITS + 2 - 2 * step)):
            n = n << (2 * step)
            e += step
        step >>= 1
    y = seed_lut[(n >> (INVSQRT_NORM_LO_BITS + 2 - seed_bits)) - (np.int64(1) << (seed_bits - 2))]
    three = np.int64(3) << INVSQRT_Q_FRAC
    for _ in range(newton_steps):
        p = _rsr(y * y, 2 * INVSQRT_Y_FRAC - INVSQRT_P_FRAC)
        q = _rsr(p * n, INVSQRT_P_FRAC - INVSQRT_Q_FRAC)
        y = _rsr(y * (three - q), INVSQRT_Q_FRAC + 1)
    shift = INVSQRT_Y_FRAC - INVSQRT_OUT_FRAC - e
    if shift > 0:
        return (y + (np.int64(1) << (shift - 1))) >> shift
    if shift < 0:
        return y << (-shift)
    return y


@njit(cache=True)
def _k_inv_sqrt(S, seed_lut, seed_bits, newton_steps, out):
    for e in range(S.size):
        out[e] = _inv_sqrt1(S[e], seed_lut, seed_bits, newton_steps)


@njit(cache=True, inline="always")
def _k_spikes(t_row, g, k, a_lo, a_hi, out_row):
    """out = sat_act(t g >> k) over one row; returns the saturation count."""
    p = _parts(k)
    c = np.int64(0)
    for j in range(t_row.shape[0]):
        a = _sh(t_row[j] * g[j], p)
        c += _out(a, a_lo, a_hi)
        out_row[j] = _clamp(a, a_lo, a_hi)
    return c


@njit(cache=True)
def _k_norm_stage(v, m, k, sq_lo, sq_hi, lo, hi, seed_lut, seed_bits, newton_steps, t_k,
                  g0, k0, g1, k1, g2, k2, n_cons, a_lo, a_hi, S_out, r_out, a0, a1, a2, cnt):
    """One norm round over v [T, n]: u = sat(v m >> k) (cnt 0), S = sat(sum u^2) (cnt 1), r = inv_sqrt(S),
    t = sat(v r >> t_k) (cnt 2), spikes a_p = sat_act(t g_p >> k_p) (cnt 3 + p) for p < n_cons."""
    T, n = v.shape
    pm = _parts(k)
    pt = _parts(t_k)
    tv = np.empty(n, dtype=np.int64)
    c = np.zeros(6, dtype=np.int64)
    for t in range(T):
        s = np.int64(0)
        cu = np.int64(0)
        for j in range(n):
            u = _sh(v[t, j] * m[j], pm)
            cu += _out(u, sq_lo, sq_hi)
            u = _clamp(u, sq_lo, sq_hi)
            s += u * u
        c[0] += cu
        c[1] += _out(s, lo, hi)
        s = _clamp(s, lo, hi)
        S_out[t, 0] = s
        r = _inv_sqrt1(s, seed_lut, seed_bits, newton_steps)
        r_out[t, 0] = r
        ct = np.int64(0)
        for j in range(n):
            x = _sh(v[t, j] * r, pt)
            ct += _out(x, lo, hi)
            tv[j] = _clamp(x, lo, hi)
        c[2] += ct
        c[3] += _k_spikes(tv, g0, k0, a_lo, a_hi, a0[t])
        if n_cons > 1:
            c[4] += _k_spikes(tv, g1, k1, a_lo, a_hi, a1[t])
        if n_cons > 2:
            c[5] += _k_spikes(tv, g2, k2, a_lo, a_hi, a2[t])
    for e in range(6):
        cnt[e] += c[e]


@njit(cache=True)
def _k_mlgru(acc_i, acc_f, acc_g, m_i, k_i, m_f, k_f, m_g, k_g, lo, hi, lb, one, gf, lut, half, top,
             s_i, s_f, s_h, i_shift, gz_shift, h0, f_out, hs, v_out, h_last, cnt):
    """GoldenModel.mlgru over T tokens; counters: pre_i, pre_f, pre_g, silu_i, i, h, silu_h, gz.
    s_i, s_f, s_h: the sigmoid-index shifts (v_frac - lut_frac_bits) of x_i, x_f and h."""
    T, d = acc_i.shape
    pi, pf, pg, p1 = _parts(k_i), _parts(k_f), _parts(k_g), _parts(gf)
    psi, psf, psh = _parts(s_i), _parts(s_f), _parts(s_h)
    pis, pgz = _parts(i_shift), _parts(gz_shift)
    x_i = np.empty(d, dtype=np.int64)
    x_g = np.empty(d, dtype=np.int64)
    idx_i = np.empty(d, dtype=np.int64)
    idx_f = np.empty(d, dtype=np.int64)
    sig_i = np.empty(d, dtype=np.int64)
    sig_f = np.empty(d, dtype=np.int64)
    c = np.zeros(8, dtype=np.int64)
    for j in range(d):
        h_last[j] = h0[j]
    for t in range(T):
        c0 = np.int64(0)
        c1 = np.int64(0)
        c2 = np.int64(0)
        for j in range(d):  # pre-activations and their sigmoid indices
            a = _sh(acc_i[t, j] * m_i, pi)
            c0 += _out(a, lo, hi)
            a = _clamp(a, lo, hi)
            x_i[j] = a
            idx_i[j] = _clamp(_sh(a, psi) + half, 0, top)
            b = _sh(acc_f[t, j] * m_f, pf)
            c1 += _out(b, lo, hi)
            idx_f[j] = _clamp(_sh(_clamp(b, lo, hi), psf) + half, 0, top)
            g = _sh(acc_g[t, j] * m_g, pg)
            c2 += _out(g, lo, hi)
            x_g[j] = _clamp(g, lo, hi)
        for j in range(d):
            sig_i[j] = lut[idx_i[j]]
            sig_f[j] = lut[idx_f[j]]
        c3 = np.int64(0)
        c4 = np.int64(0)
        c5 = np.int64(0)
        for j in range(d):  # gates and the recurrence h_t = f h_{t-1} + i
            b = lb[j]
            f = b + _sh((one - b) * sig_f[j], p1)
            f_out[t, j] = f
            si = _sh(x_i[j] * sig_i[j], p1)
            c3 += _out(si, lo, hi)
            i = _sh(_clamp(si, lo, hi) * (one - f), pis)
            c4 += _out(i, lo, hi)
            h = _sh(f * h_last[j], p1) + _clamp(i, lo, hi)
            c5 += _out(h, lo, hi)
            h = _clamp(h, lo, hi)
            h_last[j] = h
            hs[t, j] = h
            idx_i[j] = _clamp(_sh(h, psh) + half, 0, top)
        for j in range(d):
            sig_i[j] = lut[idx_i[j]]
        c6 = np.int64(0)
        c7 = np.int64(0)
        for j in range(d):  # g SiLU(h)
            z = _sh(hs[t, j] * sig_i[j], p1)
            c6 += _out(z, lo, hi)
            o = _sh(x_g[j] * _clamp(z, lo, hi), pgz)
            c7 += _out(o, lo, hi)
            v_out[t, j] = _clamp(o, lo, hi)
        c[0] += c0
        c[1] += c1
        c[2] += c2
        c[3] += c3
        c[4] += c4
        c[5] += c5
        c[6] += c6
        c[7] += c7
    for e in range(8):
        cnt[e] += c[e]


@njit(cache=True)
def _k_glu(acc, n_i, m_u, k_u, m_v, k_v, lo, hi, lut, half, top, s_u, gf, y_shift, y_out, cnt):
    """GoldenModel.glu over acc [T, 2I]; counters: u, v, silu_u, y."""
    T = acc.shape[0]
    pu, pv, ps, p1, py = _parts(k_u), _parts(k_v), _parts(s_u), _parts(gf), _parts(y_shift)
    u = np.empty(n_i, dtype=np.int64)
    idx = np.empty(n_i, dtype=np.int64)
    c = np.zeros(4, dtype=np.int64)
    for t in range(T):
        u_acc = acc[t, :n_i]
        v_acc = acc[t, n_i:]  # a slice, not acc[t, n_i + j]: an index LLVM cannot prove >= 0 stops vectorising
        cu = np.int64(0)
        for j in range(n_i):
            a = _sh(u_acc[j] * m_u, pu)
            cu += _out(a, lo, hi)
            a = _clamp(a, lo, hi)
            u[j] = a
            idx[j] = _clamp(_sh(a, ps) + half, 0, top)
        for j in range(n_i):
            idx[j] = lut[idx[j]]  # now the sigmoid of u
        cv = np.int64(0)
        cs = np.int64(0)
        cy = np.int64(0)
        for j in range(n_i):
            b = _sh(v_acc[j] * m_v, pv)
            cv += _out(b, lo, hi)
            s = _sh(u[j] * idx[j], p1)
            cs += _out(s, lo, hi)
            y = _sh(_clamp(s, lo, hi) * _clamp(b, lo, hi), py)
            cy += _out(y, lo, hi)
            y_out[t, j] = _clamp(y, lo, hi)
        c[0] += cu
        c[1] += cv
        c[2] += cs
        c[3] += cy
    for e in range(4):
        cnt[e] += c[e]


@njit(cache=True)
def _k_residual(x, acc, m, k, lo, hi, out, cnt):
    """out = sat(x + sat(acc m >> k)) elementwise (flat arrays); both saturations counted in cnt[0]."""
    p = _parts(k)
    c = np.int64(0)
    for e in range(x.size):
        o = _sh(acc[e] * m, p)
        c += _out(o, lo, hi)
        y = x[e] + _clamp(o, lo, hi)
        c += _out(y, lo, hi)
        out[e] = _clamp(y, lo, hi)
    cnt[0] += c


def _shifts_ok(*shifts) -> bool:
    for k in shifts:
        if not -MAX_SHIFT <= k <= MAX_SHIFT:
            return False
    return True


def _i64(a) -> np.ndarray:
    """a as a C-contiguous int64 array (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=INT)


def _acc(a) -> np.ndarray:
    """Synaptic accumulators for a kernel: C-contiguous int32 (the synapse kernel's output) or int64 as they
    are, anything else as int64 (every product in the kernels is formed in int64 either way)."""
    if a.dtype in (np.int32, INT) and a.flags.c_contiguous:
        return a
    return _i64(a)


def _channels(m, n: int) -> np.ndarray | None:
    """A per-channel [n] or scalar integer multiplier as a contiguous int64 [n] (no copy when it already is
    one); None for anything else (the caller then takes the numpy reference)."""
    m = np.asarray(m)
    if m.dtype.kind not in "iu" or m.ndim > 1 or m.size not in (1, n):
        return None
    if m.shape == (n,) and m.dtype == INT and m.flags.c_contiguous:
        return m
    return np.ascontiguousarray(np.broadcast_to(m.astype(INT), (n,)))


def _int_array(a) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind in "iu"


class FastGoldenModel(GoldenModel):
    """GoldenModel whose blocks run as fused kernels where their preconditions hold (else the reference)."""

    def __init__(self, net: QuantisedNetwork):
        super().__init__(net)
        self._consts = None  # (fp, LUTs, ...) for the fused kernels, rebuilt when fp or a LUT is replaced

    def _count(self, cnt: np.ndarray, names) -> None:
        """Add a kernel's saturation counts to the overflow counter; ``names()`` gives their names (built only
        when something saturated; names with a zero count stay absent, as with ``saturate``)."""
        counts = cnt.tolist()
        if any(counts):
            for name, c in zip(names(), counts):
                if c:
                    self.ovf[name] += c

    def _kernel_consts(self):
        """What every fused kernel needs from the config and the LUTs:
        (state lo, hi, sigmoid LUT int64 or None, size // 2, size - 1, lut_frac_bits, seed LUT int64 or None,
        whether the norm-stage kernel applies to this config). Cached while ``fp`` and both LUT objects stay
        the same and the LUTs needed no conversion (so an in-place edit of a LUT is still seen)."""
        fp, net = self.fp, self.net
        sig, seed = net.sigmoid_lut, net.invsqrt_lut
        c = self._consts
        if c is not None and c[0] is fp and c[1] is sig and c[2] is seed:
            return c[3]
        lo, hi = int_range(fp.state_bits)
        sig_ok = _int_array(sig) and sig.shape == (fp.sigmoid_lut_size,)
        seed_ok = _int_array(seed) and seed.shape == (3 << (fp.invsqrt_seed_bits - 2),)
        sig64 = _i64(sig) if sig_ok else None
        seed64 = _i64(seed) if seed_ok else None
        norm_ok = (seed_ok and fp.act_bits <= INT16_ACT_BITS and fp.state_bits - 1 <= SEED_INDEX_SAFE_BITS)
        out = (lo, hi, sig64, fp.sigmoid_lut_size // 2, fp.sigmoid_lut_size - 1,
               lut_frac_bits(fp.sigmoid_lut_size, fp.sigmoid_lut_range), seed64, norm_ok)
        # cache only when nothing was copied (a copy would not follow in-place edits of the LUT)
        self._consts = (fp, sig, seed, out) if sig64 is sig and seed64 is seed else None
        return out

    def _norm_spikes_fused(self, q: QNorm, v, name: str) -> dict[str, np.ndarray] | None:
        if not _int_array(v) or v.ndim != 2:
            return None
        lo, hi, _, _, _, _, seed, norm_ok = self._kernel_consts()
        gain_m, gain_k = q.gain_m, q.gain_k
        cons = list(gain_m)
        n_cons = len(cons)
        if not norm_ok or not 1 <= n_cons <= MAX_CONSUMERS:
            return None
        T, n = v.shape
        inner = _channels(q.inner_m, n)
        gains = [_channels(gain_m[p], n) for p in cons]
        ks = [gain_k[p] for p in cons]
        if inner is None or any(g is None for g in gains) or not _shifts_ok(q.inner_k, q.t_k, *ks):
            return None
        fp = self.fp
        spike_dtype = np.int8 if fp.act_bits <= INT8_ACT_BITS else np.int16
        outs = [np.empty((T, n), dtype=spike_dtype) for _ in cons]
        g1, k1, a1 = (gains[1], ks[1], outs[1]) if n_cons > 1 else (gains[0], ks[0], outs[0])
        g2, k2, a2 = (gains[2], ks[2], outs[2]) if n_cons > 2 else (gains[0], ks[0], outs[0])
        S = np.empty((T, 1), dtype=INT)
        r = np.empty((T, 1), dtype=INT)
        cnt = np.zeros(3 + MAX_CONSUMERS, dtype=INT)
        a_hi = (1 << (fp.act_bits - 1)) - 1
        sq_hi = (1 << (fp.norm_square_bits - 1)) - 1
        _k_norm_stage(_i64(v), inner, int(q.inner_k), -sq_hi - 1, sq_hi, lo, hi, seed, fp.invsqrt_seed_bits,
                      fp.invsqrt_newton_steps, int(q.t_k), gains[0], int(ks[0]), g1, int(k1), g2, int(k2),
                      n_cons, -a_hi - 1, a_hi, S, r, outs[0], a1, a2, cnt)
        self._count(cnt, lambda: [f"{name}.u", f"{name}.sum_sq", f"{name}.unit"]
                    + [f"{name}.{p}.clip" for p in cons])
        if self.probes is not None:
            self.record(f"{name}.sum_sq", S)
            self.record(f"{name}.inv_rms", r)
            for p, a in zip(cons, outs):
                self.record(f"{name}.{p}.spikes", a.astype(INT))
        return dict(zip(cons, outs))

    def _mlgru_fused(self, q: QLayer, acc_i, acc_f, acc_g, h0, l: int):
        if not (_int_array(acc_i) and _int_array(acc_f) and _int_array(acc_g) and _int_array(h0)):
            return None
        if acc_i.ndim != 2 or acc_f.shape != acc_i.shape or acc_g.shape != acc_i.shape:
            return None
        T, d = acc_i.shape
        lo, hi, lut, half, top, lfb, _, _ = self._kernel_consts()
        lb = _channels(q.lb, d)
        if lut is None or lb is None or h0.shape != (d,):
            return None
        pf, gf = q.pre_frac, self.fp.gate_frac_bits
        i_shift = gf + pf["i"] - q.h_frac
        gz_shift = pf["g"] + q.h_frac - q.gz_frac
        s_i, s_f, s_h = pf["i"] - lfb, pf["f"] - lfb, q.h_frac - lfb
        if not _shifts_ok(q.i.out_k, q.f.out_k, q.g.out_k, gf, i_shift, gz_shift, s_i, s_f, s_h):
            return None
        f = np.empty((T, d), dtype=INT)
        hs = np.empty((T, d), dtype=INT)
        v = np.empty((T, d), dtype=INT)
        h = np.empty(d, dtype=INT)
        cnt = np.zeros(8, dtype=INT)
        acc_i, acc_f, acc_g = _acc(acc_i), _acc(acc_f), _acc(acc_g)
        if not acc_i.dtype == acc_f.dtype == acc_g.dtype:
            acc_i, acc_f, acc_g = _i64(acc_i), _i64(acc_f), _i64(acc_g)
        _k_mlgru(acc_i, acc_f, acc_g, int(q.i.out_m), int(q.i.out_k), int(q.f.out_m),
                 int(q.f.out_k), int(q.g.out_m), int(q.g.out_k), lo, hi, lb, 1 << gf, gf, lut, half, top,
                 int(s_i), int(s_f), int(s_h), int(i_shift), int(gz_shift), _i64(h0), f, hs, v, h, cnt)
        self._count(cnt, lambda: [f"l{l}.{n}" for n in ("pre_i", "pre_f", "pre_g", "silu_i", "i", "h", "silu_h",
                                                          "gz")])
        if self.probes is not None:
            self.record(f"l{l}.f", f)
            self.record(f"l{l}.h", hs)
        return v, h

    def _glu_fused(self, q: QLayer, acc_uv, l: int):
        I = q.gate_w.shape[0] // 2
        if not _int_array(acc_uv) or acc_uv.ndim != 2 or acc_uv.shape[1] != 2 * I:
            return None
        lo, hi, lut, half, top, lfb, _, _ = self._kernel_consts()
        if lut is None:
            return None
        gf = self.fp.gate_frac_bits
        y_shift = q.u_frac + q.v_frac - q.y_frac
        s_u = q.u_frac - lfb
        if not _shifts_ok(q.u_k, q.v_k, gf, y_shift, s_u):
            return None
        y = np.empty((acc_uv.shape[0], I), dtype=INT)
        cnt = np.zeros(4, dtype=INT)
        _k_glu(_acc(acc_uv), I, int(q.u_m), int(q.u_k), int(q.v_m), int(q.v_k), lo, hi, lut, half, top, int(s_u),
               gf, int(y_shift), y, cnt)
        self._count(cnt, lambda: [f"l{l}.u", f"l{l}.v", f"l{l}.silu_u", f"l{l}.y"])
        return self.record(f"l{l}.y", y)

    def norm_spikes(self, q: QNorm, v: np.ndarray, name: str) -> dict[str, np.ndarray]:
        """The fused kernel returns the spikes as int8 / int16 arrays (the reference as int64; same values)."""
        spikes = self._norm_spikes_fused(q, v, name)
        return spikes if spikes is not None else super().norm_spikes(q, v, name)

    def mlgru(self, q: QLayer, acc_i, acc_f, acc_g, h0, l: int):
        fused = self._mlgru_fused(q, acc_i, acc_f, acc_g, h0, l)
        return fused if fused is not None else super().mlgru(q, acc_i, acc_f, acc_g, h0, l)

    def glu(self, q: QLayer, acc_uv, l: int) -> np.ndarray:
        fused = self._glu_fused(q, acc_uv, l)
        return fused if fused is not None else super().glu(q, acc_uv, l)

    def inv_rms(self, S: np.ndarray, name: str) -> np.ndarray:
        """The aggregator's soma: r ~ 2**22 / sqrt(S) (Q22 of 1/sqrt(S)), broadcast back."""
        fp = self.fp
        lut = self._kernel_consts()[6]
        if lut is not None and _int_array(S) and S.size and int(S.max()) < (1 << SEED_INDEX_SAFE_BITS):
            S64 = _i64(S)
            r = np.empty(S64.shape, dtype=INT)
            _k_inv_sqrt(S64.reshape(-1), lut, fp.invsqrt_seed_bits, fp.invsqrt_newton_steps, r.reshape(-1))
            return self.record(f"{name}.inv_rms", r)
        return super().inv_rms(S, name)

    def residual(self, x, acc, proj, name: str) -> np.ndarray:
        """x + W a rescaled into the residual format Q(x_frac). The rescaled term is a register of its own
        (saturated before the add), as on the 24-bit neuron (microcode/residual.ucode)."""
        if (_int_array(x) and _int_array(acc) and x.shape == acc.shape and x.size
                and _shifts_ok(proj.out_k)):
            lo, hi = self._kernel_consts()[:2]
            out = np.empty(x.shape, dtype=INT)
            cnt = np.zeros(1, dtype=INT)
            _k_residual(_i64(x).reshape(-1), _acc(acc).reshape(-1), int(proj.out_m), int(proj.out_k), lo, hi,
                        out.reshape(-1), cnt)
            self._count(cnt, lambda: [name])
            return out
        return super().residual(x, acc, proj, name)

    def synapses(self, w: np.ndarray, a: np.ndarray) -> np.ndarray:
        """Spikes stay int8 / int16 and the accumulators int32 inside a layer (the fused kernels read both)."""
        return synapses32(w, a)

    def dendrite(self, acc: np.ndarray, name: str) -> np.ndarray:
        """The reference's saturate-and-count, keeping the int32 array as it is when nothing saturates."""
        lo, hi = self._kernel_consts()[:2]
        if acc.dtype == np.int32 and (lo <= np.iinfo(np.int32).min and hi >= np.iinfo(np.int32).max
                                      or not np.any((acc < lo) | (acc > hi))):
            return acc
        return super().dendrite(acc, name)
