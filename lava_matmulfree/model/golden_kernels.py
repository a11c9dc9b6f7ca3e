"""The fused stage kernels of the fast golden model (golden_fast.py): the numpy reference of docs/fixed_point.md
(``fixed_point.py``, golden.py) element by element in numba, one call per stage: a whole norm round (squares,
aggregate, inverse sqrt and the spikes of every consumer), the MLGRU neurons with their recurrence, the GLU
neurons, a residual update.

Same integer operations in the same int64 arithmetic as the reference, so the same values and the same
saturation counts bit for bit (tests/test_benchmarks_smoke.py, tests/test_wide_spikes.py). Every kernel keeps
its counts in scalars inside its loops (a sum LLVM vectorises) and adds them to its counter slots once, at the
end (:func:`_count`). The checks at the end of this module are each kernel's preconditions (where one fails,
FastGoldenModel takes the numpy reference).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from lava_matmulfree.model.fixed_point import (INT, INVSQRT_NORM_LO_BITS, INVSQRT_OUT_FRAC, INVSQRT_P_FRAC,
                                               INVSQRT_Q_FRAC, INVSQRT_Y_FRAC)
from lava_matmulfree.model.thread_team import barrier, share

# All arithmetic in int64 (products wrap exactly as numpy's do).
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


@njit(inline="always")
def _count(cnt, counts):
    """cnt[e] += counts[e]: a kernel's saturation counts (scalars inside its loops) into its counter slots."""
    for e in range(len(counts)):
        cnt[e] += counts[e]


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
def _k_spikes(t_row, g, k, a_lo, a_hi, out_row, j0, j1):
    """out = sat_act(t g >> k) over channels j0..j1 of one row; returns the saturation count."""
    p = _parts(k)
    c = np.int64(0)
    tv, gv, ov = t_row[j0:j1], g[j0:j1], out_row[j0:j1]
    for j in range(j1 - j0):
        a = _sh(tv[j] * gv[j], p)
        c += _out(a, a_lo, a_hi)
        ov[j] = _clamp(a, a_lo, a_hi)
    return c


@njit(cache=True, inline="always")
def _norm_sum_sq(v_row, m, pm, sq_lo, sq_hi, j0, j1):
    """The part of one token's sum over channels j0..j1 of u^2, u = sat(v m >> k): (sum, u's saturation count)."""
    s = np.int64(0)
    cu = np.int64(0)
    vv, mv = v_row[j0:j1], m[j0:j1]
    for j in range(j1 - j0):
        u = _sh(vv[j] * mv[j], pm)
        cu += _out(u, sq_lo, sq_hi)
        u = _clamp(u, sq_lo, sq_hi)
        s += u * u
    return s, cu


@njit(cache=True, inline="always")
def _norm_spikes(v_row, r, pt, lo, hi, tv, g0, k0, g1, k1, g2, k2, n_cons, a_lo, a_hi, a0_row, a1_row, a2_row,
                 j0, j1):
    """One token's channels j0..j1 after its 1/sqrt r: t = sat(v r >> t_k) (into tv), spikes a_p = sat_act(t g_p
    >> k_p) for p < n_cons; returns the saturation counts (t, a_0, a_1, a_2)."""
    ct = np.int64(0)
    vv, tvv = v_row[j0:j1], tv[j0:j1]
    for j in range(j1 - j0):
        x = _sh(vv[j] * r, pt)
        ct += _out(x, lo, hi)
        tvv[j] = _clamp(x, lo, hi)
    ca0 = _k_spikes(tv, g0, k0, a_lo, a_hi, a0_row, j0, j1)
    ca1 = _k_spikes(tv, g1, k1, a_lo, a_hi, a1_row, j0, j1) if n_cons > 1 else np.int64(0)
    ca2 = _k_spikes(tv, g2, k2, a_lo, a_hi, a2_row, j0, j1) if n_cons > 2 else np.int64(0)
    return ct, ca0, ca1, ca2


@njit(cache=True)
def _k_norm_team(v, m, k, t_k, g0, k0, g1, k1, g2, k2, n_cons, sq_lo, sq_hi, lo, hi, seed, seed_bits, newton,
                 a_lo, a_hi, a0, a1, a2, cnt, part, tid, n, bar, S_out, r_out):
    """One norm round over v [T, n_ch] (:func:`_k_norm_stage`) on thread ``tid`` of a team of ``n``
    (thread_team.py): each thread sums u^2 over its channels into ``part`` [n, T], the team meets, then each
    thread adds the parts (exact: integer sums) and writes t and the spikes of its channels. cnt: this thread's
    slots (u, sum_sq, t, a_0..); the sum's saturation is counted by thread 0 only, which also records S and r
    into S_out and r_out [T, 1] where they have rows."""
    T, n_ch = v.shape
    j0, j1 = share(n_ch, tid, n)
    pm, pt = _parts(k), _parts(t_k)
    tv = np.empty(n_ch, dtype=np.int64)
    cu = cs = ct = ca0 = ca1 = ca2 = np.int64(0)
    for t in range(T):
        s, c = _norm_sum_sq(v[t], m, pm, sq_lo, sq_hi, j0, j1)
        part[tid, t] = s
        cu += c
    barrier(bar, n)
    record = tid == 0 and S_out.shape[0] > 0
    for t in range(T):
        s = np.int64(0)
        for q in range(n):
            s += part[q, t]
        if tid == 0:
            cs += _out(s, lo, hi)
        s = _clamp(s, lo, hi)
        r = _inv_sqrt1(s, seed, seed_bits, newton)
        if record:
            S_out[t, 0] = s
            r_out[t, 0] = r
        c_t, c0, c1, c2 = _norm_spikes(v[t], r, pt, lo, hi, tv, g0, k0, g1, k1, g2, k2, n_cons, a_lo, a_hi, a0[t],
                                       a1[t], a2[t], j0, j1)
        ct += c_t
        ca0 += c0
        ca1 += c1
        ca2 += c2
    _count(cnt, (cu, cs, ct, ca0, ca1, ca2))


@njit(cache=True)
def _k_norm_stage(v, m, k, sq_lo, sq_hi, lo, hi, seed_lut, seed_bits, newton_steps, t_k,
                  g0, k0, g1, k1, g2, k2, n_cons, a_lo, a_hi, S_out, r_out, a0, a1, a2, cnt):
    """One norm round over v [T, n]: u = sat(v m >> k) (cnt 0), S = sat(sum u^2) (cnt 1), r = inv_sqrt(S),
    t = sat(v r >> t_k) (cnt 2), spikes a_p = sat_act(t g_p >> k_p) (cnt 3 + p) for p < n_cons; S and r recorded
    into S_out, r_out [T, 1]. :func:`_k_norm_team` on a team of one (every barrier a no-op)."""
    _k_norm_team(v, m, k, t_k, g0, k0, g1, k1, g2, k2, n_cons, sq_lo, sq_hi, lo, hi, seed_lut, seed_bits,
                 newton_steps, a_lo, a_hi, a0, a1, a2, cnt, np.zeros((1, v.shape[0]), dtype=np.int64), 0, 1,
                 np.zeros(2, dtype=np.int64), S_out, r_out)


@njit(cache=True)
def _k_mlgru(acc_i, acc_f, acc_g, m_i, k_i, m_f, k_f, m_g, k_g, lo, hi, lb, one, gf, lut, half, top,
             s_i, s_f, s_h, i_shift, gz_shift, h0, f_out, hs, v_out, h_last, cnt, cnt_acc, j0, j1):
    """GoldenModel.mlgru over T tokens, channels j0..j1 (each channel is its own recurrence); counters: pre_i,
    pre_f, pre_g, silu_i, i, h, silu_h, gz. s_i, s_f, s_h: the sigmoid-index shifts (v_frac - lut_frac_bits) of
    x_i, x_f and h. Loops run over views of the channels from 0 (an index LLVM cannot prove >= 0 stops
    vectorising). The accumulators are saturated into the dendrite's register [lo, hi] here (counted in
    cnt_acc: i, f, g), so the whole-model kernel needs no pass of its own for it (already saturated ones count
    nothing)."""
    T = acc_i.shape[0]
    d = j1 - j0
    pi, pf, pg, p1 = _parts(k_i), _parts(k_f), _parts(k_g), _parts(gf)
    psi, psf, psh = _parts(s_i), _parts(s_f), _parts(s_h)
    pis, pgz = _parts(i_shift), _parts(gz_shift)
    x_i = np.empty(d, dtype=np.int64)
    x_g = np.empty(d, dtype=np.int64)
    idx_i = np.empty(d, dtype=np.int64)
    idx_f = np.empty(d, dtype=np.int64)
    sig_i = np.empty(d, dtype=np.int64)
    sig_f = np.empty(d, dtype=np.int64)
    lbv, hl = lb[j0:j1], h_last[j0:j1]
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = np.int64(0)
    d0 = d1 = d2 = np.int64(0)
    hl[:] = h0[j0:j1]
    for t in range(T):
        ai, af, ag = acc_i[t, j0:j1], acc_f[t, j0:j1], acc_g[t, j0:j1]
        fo, hst, vo = f_out[t, j0:j1], hs[t, j0:j1], v_out[t, j0:j1]
        for j in range(d):  # dendrites, pre-activations and their sigmoid indices
            wi, wf, wg = np.int64(ai[j]), np.int64(af[j]), np.int64(ag[j])
            d0 += _out(wi, lo, hi)
            d1 += _out(wf, lo, hi)
            d2 += _out(wg, lo, hi)
            a = _sh(_clamp(wi, lo, hi) * m_i, pi)
            c0 += _out(a, lo, hi)
            a = _clamp(a, lo, hi)
            x_i[j] = a
            idx_i[j] = _clamp(_sh(a, psi) + half, 0, top)
            b = _sh(_clamp(wf, lo, hi) * m_f, pf)
            c1 += _out(b, lo, hi)
            idx_f[j] = _clamp(_sh(_clamp(b, lo, hi), psf) + half, 0, top)
            g = _sh(_clamp(wg, lo, hi) * m_g, pg)
            c2 += _out(g, lo, hi)
            x_g[j] = _clamp(g, lo, hi)
        for j in range(d):
            sig_i[j] = lut[idx_i[j]]
            sig_f[j] = lut[idx_f[j]]
        for j in range(d):  # gates and the recurrence h_t = f h_{t-1} + i
            b = lbv[j]
            f = b + _sh((one - b) * sig_f[j], p1)
            fo[j] = f
            si = _sh(x_i[j] * sig_i[j], p1)
            c3 += _out(si, lo, hi)
            i = _sh(_clamp(si, lo, hi) * (one - f), pis)
            c4 += _out(i, lo, hi)
            h = _sh(f * hl[j], p1) + _clamp(i, lo, hi)
            c5 += _out(h, lo, hi)
            h = _clamp(h, lo, hi)
            hl[j] = h
            hst[j] = h
            idx_i[j] = _clamp(_sh(h, psh) + half, 0, top)
        for j in range(d):
            sig_i[j] = lut[idx_i[j]]
        for j in range(d):  # g SiLU(h)
            z = _sh(hst[j] * sig_i[j], p1)
            c6 += _out(z, lo, hi)
            o = _sh(x_g[j] * _clamp(z, lo, hi), pgz)
            c7 += _out(o, lo, hi)
            vo[j] = _clamp(o, lo, hi)
    _count(cnt, (c0, c1, c2, c3, c4, c5, c6, c7))
    _count(cnt_acc, (d0, d1, d2))


@njit(cache=True)
def _k_glu(acc, n_i, m_u, k_u, m_v, k_v, lo, hi, lut, half, top, s_u, gf, y_shift, y_out, cnt, cnt_acc, j0, j1):
    """GoldenModel.glu over acc [T, 2I], channels j0..j1 of the I; counters: u, v, silu_u, y; the accumulators
    saturated into the dendrite's register here (both halves counted in cnt_acc[0], as _k_mlgru)."""
    T = acc.shape[0]
    pu, pv, ps, p1, py = _parts(k_u), _parts(k_v), _parts(s_u), _parts(gf), _parts(y_shift)
    n = j1 - j0
    u = np.empty(n, dtype=np.int64)
    idx = np.empty(n, dtype=np.int64)
    cu = cv = cs = cy = cd = np.int64(0)
    for t in range(T):
        u_acc = acc[t, j0:j1]
        v_acc = acc[t, n_i + j0:n_i + j1]  # slices, not acc[t, n_i + j]: an index LLVM cannot prove >= 0 stops
        y_row = y_out[t, j0:j1]             # vectorising
        for j in range(n):
            w = np.int64(u_acc[j])
            cd += _out(w, lo, hi)
            a = _sh(_clamp(w, lo, hi) * m_u, pu)
            cu += _out(a, lo, hi)
            a = _clamp(a, lo, hi)
            u[j] = a
            idx[j] = _clamp(_sh(a, ps) + half, 0, top)
        for j in range(n):
            idx[j] = lut[idx[j]]  # now the sigmoid of u
        for j in range(n):
            w = np.int64(v_acc[j])
            cd += _out(w, lo, hi)
            b = _sh(_clamp(w, lo, hi) * m_v, pv)
            cv += _out(b, lo, hi)
            s = _sh(u[j] * idx[j], p1)
            cs += _out(s, lo, hi)
            y = _sh(_clamp(s, lo, hi) * _clamp(b, lo, hi), py)
            cy += _out(y, lo, hi)
            y_row[j] = _clamp(y, lo, hi)
    _count(cnt, (cu, cv, cs, cy))
    cnt_acc[0] += cd


@njit(cache=True)
def _k_residual(x, acc, m, k, lo, hi, out, cnt, cnt_acc, e0, e1):
    """out = sat(x + sat(sat(acc) m >> k)) elementwise over elements e0..e1 (flat arrays); both saturations of the
    residual counted in cnt[0], the dendrite's (acc into [lo, hi], as _k_mlgru) in cnt_acc[0]."""
    p = _parts(k)
    c = np.int64(0)
    cd = np.int64(0)
    xv, av, ov = x[e0:e1], acc[e0:e1], out[e0:e1]
    for e in range(e1 - e0):
        w = np.int64(av[e])
        cd += _out(w, lo, hi)
        o = _sh(_clamp(w, lo, hi) * m, p)
        c += _out(o, lo, hi)
        y = xv[e] + _clamp(o, lo, hi)
        c += _out(y, lo, hi)
        ov[e] = _clamp(y, lo, hi)
    cnt[0] += c
    cnt_acc[0] += cd


# ---- preconditions: the arrays and shifts a kernel takes --------------------------------------------------
def _shifts_ok(*shifts) -> bool:
    """Every shift within [-MAX_SHIFT, MAX_SHIFT] (numpy defines larger shifts, LLVM does not)."""
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

