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

Whole model (``ModelPlan``, the default of ``prefill`` and ``step`` when no probe records): one numba call runs
every layer and the head for the T tokens, calling the same stage kernels and the packed synapse kernel, with no
Python between the 145 matrices of a 370M token; the weights are stacked per projection kind once per network
(the TernaryMatrix objects point into the stacks: the packed codes exist once). ``parallel=True`` splits each
matrix's row tiles over numba's threads (one parallel region per matrix, inside the same call). Measured
(benchmarks/bench_decode.py, 370M, load ~1): 7.9 ms per decode token on 1 thread, 5.2 ms on 2 (against 42.9 ms
stage by stage with the generic kernel, and a read bound of 3.7 ms on 2 threads).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from lava_matmulfree.model.fixed_point import (INT, INVSQRT_NORM_LO_BITS, INVSQRT_OUT_FRAC, INVSQRT_P_FRAC, INVSQRT_Q_FRAC,
                          INVSQRT_Y_FRAC, int_range, lut_frac_bits)
from lava_matmulfree.model.float_model import ternary_matrix
from lava_matmulfree.model import ternary as _tr
from lava_matmulfree.model.golden import GoldenModel, GoldenState, synapses
from lava_matmulfree.model.quantise import QLayer, QNorm, QuantisedNetwork, release_freed_memory


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

    def __init__(self, net: QuantisedNetwork, parallel: bool = False, whole_model: bool = True):
        super().__init__(net)
        self.whole_model = bool(whole_model)  # False: always stage by stage (per-stage timing, comparisons)
        self._consts = None  # (fp, LUTs, ...) for the fused kernels, rebuilt when fp or a LUT is replaced
        self.parallel = bool(parallel)  # the whole-model kernel's synapses on numba's threads (ternary.py)
        self._plan = None  # (fp, LUTs, ModelPlan or None): built at the first prefill without probes

    def model_plan(self):
        """The whole-model kernel's plan for this network (None where a stage kernel's precondition fails). Built
        once per model: parameters edited in the network after the first call are not seen (build a new model);
        the weights are stacked once per network."""
        fp, net = self.fp, self.net
        c = self._plan
        if c is None or c[0] is not fp or c[1] is not net.sigmoid_lut or c[2] is not net.invsqrt_lut:
            c = self._plan = (fp, net.sigmoid_lut, net.invsqrt_lut, ModelPlan.build(self, self.parallel))
        return c[3]

    def prefill(self, tokens, state: GoldenState | None = None):
        """Without probes, one numba call for every layer and the head (ModelPlan); else stage by stage."""
        tok = np.asarray(tokens, dtype=np.int64)
        if self.whole_model and self.probes is None and tok.ndim == 1 and tok.size:
            plan = self.model_plan()
            st = self.init_state() if state is None else state.copy()
            if plan is not None and st.h.dtype == INT and st.h.flags.c_contiguous:
                x = np.ascontiguousarray(self.net.embed[tok], dtype=INT)
                return plan.run(self, x, st.h), st
        return super().prefill(tokens, state)

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


# ----------------------------------------------------------------------------------------- whole-model kernel
# One numba call runs every layer and the head for T tokens (no Python between the 145 matrices of a 370M
# token): the fused stage kernels above, the packed synapse kernel (ternary.py) and the dendrite's saturate-and-
# count, on weights stacked per projection kind ([L, rows, bytes], the TernaryMatrix objects of the network
# point into the stacks, so the packed codes exist once). Used by FastGoldenModel.prefill (and so step) when no
# probe records and every precondition of the stage kernels holds; the stage-by-stage path otherwise.

# columns of the per-layer integer parameters (ModelPlan.params [L, N_PARAMS])
NORM_STAGES = ("attn", "gate", "mlp", "down")          # the four norm rounds of a layer, in order
NORM_COLS = 5                                          # inner_k, t_k, k of consumers 0, 1, 2
P_NORM = 0                                             # + NORM_COLS * stage index
P_MI, P_KI, P_MF, P_KF, P_MG, P_KG, P_SI, P_SF, P_SH, P_ISH, P_GZ = range(20, 31)   # MLGRU
P_MO, P_KO, P_MD, P_KD = range(31, 35)                 # o and down requantisation into the residual
P_MU, P_KU, P_MV, P_KV, P_SU, P_YSH = range(35, 41)    # GLU
N_PARAMS = 41
# channel vectors [L, N_CH_D, d] and [L, N_CH_I, I]
CH_ATTN_M, CH_ATTN_I, CH_ATTN_F, CH_ATTN_G, CH_GATE_M, CH_GATE_O, CH_MLP_M, CH_MLP_GATE, CH_LB = range(9)
N_CH_D = 9
CH_DOWN_M, CH_DOWN_D = range(2)
N_CH_I = 2
# overflow-count slots per layer [L, N_SLOTS]: norm stages (3 + MAX_CONSUMERS each), dendrites, MLGRU, GLU, residuals
S_NORM = 0                                             # + (3 + MAX_CONSUMERS) * stage index
S_ACC_I, S_ACC_F, S_ACC_G, S_ACC_O, S_ACC_GATE, S_ACC_DOWN = range(24, 30)
S_MLGRU = 30                                           # 8 slots
S_GLU = 38                                             # 4 slots
S_RESID = 42                                           # both residual updates of a layer count under one name
N_SLOTS = 43
H_NORM, H_ACC = 0, 3 + MAX_CONSUMERS                   # head slots: its norm round, the LM head's dendrite
N_HEAD_SLOTS = H_ACC + 1
WIDE_BYTE_RADIX, WIDE_LO_BIAS = 256, 128               # ternary.BYTE_RADIX / LO_BIAS (int16 spikes in two bytes)


@njit(inline="always")
def _matmul(codes, xpad, xsum, out):
    """The packed synapse kernel compiled for this CPU (ternary.host_dot_mode). Inlined (numba IR) into the two
    entry points below, so its prange is a parallel loop in the parallel one and a plain loop in the serial one
    (a cached function calling a separately compiled parallel one crashes when numba reloads it from its cache)."""
    n_rows, n_tok = codes.shape[0], xpad.shape[0]
    for t0 in range(0, n_tok, _tr.TOKEN_TILE):
        t1 = min(n_tok, t0 + _tr.TOKEN_TILE)
        for tile in prange((n_rows + _tr.ROW_TILE - 1) // _tr.ROW_TILE):
            _tr.host_rows(codes, xpad[t0:t1], xsum[t0:t1], out[t0:t1], tile * _tr.ROW_TILE,
                          min(n_rows, (tile + 1) * _tr.ROW_TILE))


@njit(cache=True)
def _k_spike_rows(a, n_in, n_pad, wide):
    """The synapse kernel's input: spikes a [T, n_in] as int8 rows zero-padded to n_pad and their sums; int16
    spikes (``wide``) as 2T rows, high bytes then low bytes - LO_BIAS (ternary.split_bytes)."""
    T = a.shape[0]
    n = 2 * T if wide else T
    xpad = np.zeros((n, n_pad), dtype=np.int8)
    xsum = np.zeros(n, dtype=np.int32)
    for t in range(T):
        if not wide:
            s = np.int32(0)
            for j in range(n_in):
                v = np.int8(a[t, j])
                xpad[t, j] = v
                s += np.int32(v)
            xsum[t] = s
        else:
            sh = np.int32(0)
            sl = np.int32(0)
            for j in range(n_in):
                v = np.int32(a[t, j])
                vh = np.int8(v >> 8)
                vl = np.int8((v & 255) - WIDE_LO_BIAS)
                xpad[t, j] = vh
                xpad[T + t, j] = vl
                sh += np.int32(vh)
                sl += np.int32(vl)
            xsum[t] = sh
            xsum[T + t] = sl
    return xpad, xsum


@njit(cache=True)
def _k_dendrite(both, wide, row_sums, lo, hi, acc, cnt, slot):
    """acc = sat(W a) into the dendrite register, counted in cnt[slot]; with ``wide``, W a is first recombined from
    the bytes' products in ``both`` [2T, rows] (ternary.TernaryMatrix._matmul_wide)."""
    T, n_rows = acc.shape
    if wide:
        for t in range(T):
            for r in range(n_rows):
                acc[t, r] = np.int32(WIDE_BYTE_RADIX * np.int64(both[t, r]) + np.int64(both[T + t, r])
                                     + WIDE_LO_BIAS * row_sums[r])
    c = np.int64(0)
    for t in range(T):
        for r in range(n_rows):
            v = np.int64(acc[t, r])
            c += _out(v, lo, hi)
            acc[t, r] = _clamp(v, lo, hi)
    cnt[slot] += c


@njit(inline="always")
def _k_project(codes, a, n_in, wide, row_sums, lo, hi, acc, cnt, slot):
    """acc [T, rows] int32 = the dendrite register sat(W a) (count into cnt[slot]); a: spikes [T, n_in] (int8, or
    int16 with ``wide``: both bytes through the int8 kernel in one pass over the weights)."""
    xpad, xsum = _k_spike_rows(a, n_in, codes.shape[1] * _tr.FIELDS_PER_BYTE, wide)
    both = np.empty((xpad.shape[0], acc.shape[1]), dtype=np.int32) if wide else acc
    _matmul(codes, xpad, xsum, both)
    _k_dendrite(both, wide, row_sums, lo, hi, acc, cnt, slot)


@njit(cache=True)
def _k_norm(v, params, chans, l, stage, ci_m, ci_g0, ci_g1, ci_g2, n_cons, sq_lo, sq_hi, lo, hi, seed, seed_bits,
            newton, a_lo, a_hi, a0, a1, a2, cnt, slot):
    b = P_NORM + NORM_COLS * stage
    S = np.empty((v.shape[0], 1), dtype=np.int64)
    r = np.empty((v.shape[0], 1), dtype=np.int64)
    _k_norm_stage(v, chans[l, ci_m], params[l, b], sq_lo, sq_hi, lo, hi, seed, seed_bits, newton, params[l, b + 1],
                  chans[l, ci_g0], params[l, b + 2], chans[l, ci_g1], params[l, b + 3], chans[l, ci_g2],
                  params[l, b + 4], n_cons, a_lo, a_hi, S, r, a0, a1, a2, cnt[slot:slot + 3 + MAX_CONSUMERS])


@njit(inline="always")
def _k_model(x, h, arrays, scalars, cnt, cnt_head, logits):
    """Every layer then the head on x [T, d] (int64, overwritten with the last residual), h [L, d] (int64, the
    state, updated); logits [T, V] int32. Arithmetic and counts: FastGoldenModel's stage methods, in order."""
    (params, chans_d, chans_i, c_ifgo, c_gate, c_down, rs_ifgo, rs_gate, rs_down, head_m, head_g, head_k, c_head,
     rs_head, seed, lut, spike_proto) = arrays
    lo, hi, sq_lo, sq_hi, seed_bits, newton, a_lo, a_hi, wide, half, top, gf = scalars
    T, d = x.shape
    L = params.shape[0]
    n_i = chans_i.shape[2]
    a_i = np.empty((T, d), dtype=spike_proto.dtype)
    a_f = np.empty((T, d), dtype=spike_proto.dtype)
    a_g = np.empty((T, d), dtype=spike_proto.dtype)
    a_n = np.empty((T, n_i), dtype=spike_proto.dtype)
    acc_i = np.empty((T, d), dtype=np.int32)
    acc_f = np.empty((T, d), dtype=np.int32)
    acc_g = np.empty((T, d), dtype=np.int32)
    acc_uv = np.empty((T, 2 * n_i), dtype=np.int32)
    f = np.empty((T, d), dtype=np.int64)
    hs = np.empty((T, d), dtype=np.int64)
    gz = np.empty((T, d), dtype=np.int64)
    r = np.empty((T, d), dtype=np.int64)
    y = np.empty((T, n_i), dtype=np.int64)
    h_new = np.empty(d, dtype=np.int64)
    for l in range(L):
        p = params[l]
        c = cnt[l]
        _k_norm(x, params, chans_d, l, 0, CH_ATTN_M, CH_ATTN_I, CH_ATTN_F, CH_ATTN_G, 3, sq_lo, sq_hi, lo, hi, seed,
                seed_bits, newton, a_lo, a_hi, a_i, a_f, a_g, c, S_NORM)
        _k_project( c_ifgo[4 * l], a_i, d, wide, rs_ifgo[4 * l], lo, hi, acc_i, c, S_ACC_I)
        _k_project( c_ifgo[4 * l + 1], a_f, d, wide, rs_ifgo[4 * l + 1], lo, hi, acc_f, c, S_ACC_F)
        _k_project( c_ifgo[4 * l + 2], a_g, d, wide, rs_ifgo[4 * l + 2], lo, hi, acc_g, c, S_ACC_G)
        _k_mlgru(acc_i, acc_f, acc_g, p[P_MI], p[P_KI], p[P_MF], p[P_KF], p[P_MG], p[P_KG], lo, hi, chans_d[l, CH_LB],
                 np.int64(1) << gf, gf, lut, half, top, p[P_SI], p[P_SF], p[P_SH], p[P_ISH], p[P_GZ], h[l], f, hs, gz,
                 h_new, c[S_MLGRU:S_MLGRU + 8])
        h[l, :] = h_new
        _k_norm(gz, params, chans_d, l, 1, CH_GATE_M, CH_GATE_O, CH_GATE_O, CH_GATE_O, 1, sq_lo, sq_hi, lo, hi, seed,
                seed_bits, newton, a_lo, a_hi, a_i, a_i, a_i, c, S_NORM + (3 + MAX_CONSUMERS))
        _k_project( c_ifgo[4 * l + 3], a_i, d, wide, rs_ifgo[4 * l + 3], lo, hi, acc_i, c, S_ACC_O)
        _k_residual(x.reshape(-1), acc_i.reshape(-1), p[P_MO], p[P_KO], lo, hi, r.reshape(-1),
                    c[S_RESID:S_RESID + 1])
        _k_norm(r, params, chans_d, l, 2, CH_MLP_M, CH_MLP_GATE, CH_MLP_GATE, CH_MLP_GATE, 1, sq_lo, sq_hi, lo, hi,
                seed, seed_bits, newton, a_lo, a_hi, a_i, a_i, a_i, c, S_NORM + 2 * (3 + MAX_CONSUMERS))
        _k_project( c_gate[l], a_i, d, wide, rs_gate[l], lo, hi, acc_uv, c, S_ACC_GATE)
        _k_glu(acc_uv, n_i, p[P_MU], p[P_KU], p[P_MV], p[P_KV], lo, hi, lut, half, top, p[P_SU], gf, p[P_YSH], y,
               c[S_GLU:S_GLU + 4])
        _k_norm(y, params, chans_i, l, 3, CH_DOWN_M, CH_DOWN_D, CH_DOWN_D, CH_DOWN_D, 1, sq_lo, sq_hi, lo, hi,
                seed, seed_bits, newton, a_lo, a_hi, a_n, a_n, a_n, c, S_NORM + 3 * (3 + MAX_CONSUMERS))
        _k_project( c_down[l], a_n, n_i, wide, rs_down[l], lo, hi, acc_i, c, S_ACC_DOWN)
        _k_residual(r.reshape(-1), acc_i.reshape(-1), p[P_MD], p[P_KD], lo, hi, x.reshape(-1),
                    c[S_RESID:S_RESID + 1])
    S = np.empty((T, 1), dtype=np.int64)
    rr = np.empty((T, 1), dtype=np.int64)
    _k_norm_stage(x, head_m, head_k[0], sq_lo, sq_hi, lo, hi, seed, seed_bits, newton, head_k[1], head_g,
                  head_k[2], head_g, head_k[2], head_g, head_k[2], 1, a_lo, a_hi, S, rr, a_i, a_i, a_i,
                  cnt_head[H_NORM:H_NORM + 3 + MAX_CONSUMERS])
    _k_project( c_head, a_i, d, wide, rs_head, lo, hi, logits, cnt_head, H_ACC)


# numba's parallel loops only for prange (the synapse row tiles): no array expression becomes a parallel region
PRANGE_ONLY = {"prange": True, "numpy": False, "comprehension": False, "reduction": False, "setitem": False,
               "stencil": False, "fusion": False, "inplace_binop": False}


@njit(cache=True)
def _k_model_serial(x, h, arrays, scalars, cnt, cnt_head, logits):
    """The whole model on one thread."""
    _k_model(x, h, arrays, scalars, cnt, cnt_head, logits)


@njit(cache=True, parallel=PRANGE_ONLY)
def _k_model_parallel(x, h, arrays, scalars, cnt, cnt_head, logits):
    """The whole model, each matrix's row tiles on numba's threads (one parallel region per matrix)."""
    _k_model(x, h, arrays, scalars, cnt, cnt_head, logits)


@njit(inline="always")
def _k_synapse_pass(arrays, x_d, x_i, acc_d, acc_uv, logits):
    """Only the ternary synapses of a token, every matrix in layer order (int8 spikes x_d, x_i padded [1, cols]):
    what the whole-model kernel reads from memory, without the neurons (benchmarks/bench_decode.py)."""
    c_ifgo, c_gate, c_down, c_head = arrays[3], arrays[4], arrays[5], arrays[12]
    xs_d = np.zeros(1, dtype=np.int32)
    xs_i = np.zeros(1, dtype=np.int32)
    for l in range(c_gate.shape[0]):
        for k in range(4):
            _matmul(c_ifgo[4 * l + k], x_d, xs_d, acc_d)
        _matmul(c_gate[l], x_d, xs_d, acc_uv)
        _matmul(c_down[l], x_i, xs_i, acc_d)
    _matmul(c_head, x_d, xs_d, logits)


@njit(cache=True)
def _k_synapse_pass_serial(arrays, x_d, x_i, acc_d, acc_uv, logits):
    _k_synapse_pass(arrays, x_d, x_i, acc_d, acc_uv, logits)


@njit(cache=True, parallel=PRANGE_ONLY)
def _k_synapse_pass_parallel(arrays, x_d, x_i, acc_d, acc_uv, logits):
    _k_synapse_pass(arrays, x_d, x_i, acc_d, acc_uv, logits)


_WEIGHT_STACKS: dict = {}   # id(net) -> (weakref to net, ids of its ternary arrays, stacks): one per network


def _weight_stacks(net: QuantisedNetwork):
    """The packed codes of every projection stacked per kind (ifgo [4L, d, .], gate [L, 2I, .], down [L, d, .],
    head), with their row sums; None when a matrix is not a valid ternary one or the shapes differ. Built once
    per network: each matrix's TernaryMatrix then points into its stack (no second copy of the codes)."""
    import weakref

    ws = [w for q in net.layers for w in (q.i.w, q.f.w, q.g.w, q.o.w)]
    gates = [q.gate_w for q in net.layers]
    downs = [q.down.w for q in net.layers]
    ids = tuple(id(w) for w in ws + gates + downs + [net.lm_head])
    hit = _WEIGHT_STACKS.get(id(net))
    if hit is not None and hit[0]() is net and hit[1] == ids:
        return hit[2]
    stacks = []
    for group in (ws, gates, downs, [net.lm_head]):
        tms = [ternary_matrix(w) for w in group]
        if any(tm is None for tm in tms) or len({tm.codes.shape for tm in tms}) != 1:
            return None
        codes = np.stack([tm.codes for tm in tms])
        for k, tm in enumerate(tms):
            tm.codes = codes[k]                  # the stack is the only copy of the packed weights
        stacks += [codes, np.stack([tm.row_sums for tm in tms])]
    out = (stacks[0], stacks[2], stacks[4], stacks[1], stacks[3], stacks[5], stacks[6][0], stacks[7][0])
    release_freed_memory()  # the per-matrix codes just replaced by the stacks
    try:
        _WEIGHT_STACKS[id(net)] = (weakref.ref(net, lambda _, k=id(net): _WEIGHT_STACKS.pop(k, None)), ids, out)
    except TypeError:
        pass
    return out



class ModelPlan:
    """Everything the whole-model kernel takes from a network: integer parameters [L, N_PARAMS], channel
    vectors, the stacked weights. ``build`` returns None where any stage kernel's precondition fails (the
    caller then runs stage by stage)."""

    @classmethod
    def build(cls, g: "FastGoldenModel", parallel: bool):
        net, fp = g.net, g.fp
        lo, hi, lut, half, top, lfb, seed, norm_ok = g._kernel_consts()
        if lut is None or seed is None or not norm_ok:
            return None
        L, d, I = net.cfg.num_layers, net.cfg.hidden_size, net.cfg.intermediate_size
        if len(net.layers) != L:
            return None
        stacks = _weight_stacks(net)
        if stacks is None:
            return None
        wide = fp.act_bits > INT8_ACT_BITS
        if wide and max(d, I) > _tr.MAX_IN_WIDE:
            return None
        gf = fp.gate_frac_bits
        params = np.zeros((L, N_PARAMS), dtype=INT)
        chans_d = np.zeros((L, N_CH_D, d), dtype=INT)
        chans_i = np.zeros((L, N_CH_I, I), dtype=INT)
        shifts = [gf]
        expected = (("attn", ("i", "f", "g"), (CH_ATTN_I, CH_ATTN_F, CH_ATTN_G), CH_ATTN_M, chans_d, d),
                    ("gate", ("o",), (CH_GATE_O,), CH_GATE_M, chans_d, d),
                    ("mlp", ("gate",), (CH_MLP_GATE,), CH_MLP_M, chans_d, d),
                    ("down_norm", ("down",), (CH_DOWN_D,), CH_DOWN_M, chans_i, I))
        for l, q in enumerate(net.layers):
            p = params[l]
            for s, (attr, cons, cols, col_m, chans, n) in enumerate(expected):
                qn = getattr(q, attr)
                if tuple(qn.gain_m) != cons:
                    return None
                m = _channels(qn.inner_m, n)
                gains = [_channels(qn.gain_m[c], n) for c in cons]
                if m is None or any(x is None for x in gains):
                    return None
                chans[l, col_m] = m
                for c, col, gv in zip(cons, cols, gains):
                    chans[l, col] = gv
                b = P_NORM + NORM_COLS * s
                ks = [qn.gain_k[c] for c in cons]
                p[b:b + 2] = qn.inner_k, qn.t_k
                p[b + 2:b + 2 + len(ks)] = ks
                shifts += [qn.inner_k, qn.t_k, *ks]
            lb = _channels(q.lb, d)
            if lb is None:
                return None
            chans_d[l, CH_LB] = lb
            pf = q.pre_frac
            i_shift, gz_shift = gf + pf["i"] - q.h_frac, pf["g"] + q.h_frac - q.gz_frac
            s_i, s_f, s_h = pf["i"] - lfb, pf["f"] - lfb, q.h_frac - lfb
            p[[P_MI, P_KI, P_MF, P_KF, P_MG, P_KG, P_SI, P_SF, P_SH, P_ISH, P_GZ]] = (
                q.i.out_m, q.i.out_k, q.f.out_m, q.f.out_k, q.g.out_m, q.g.out_k, s_i, s_f, s_h, i_shift, gz_shift)
            p[[P_MO, P_KO, P_MD, P_KD]] = q.o.out_m, q.o.out_k, q.down.out_m, q.down.out_k
            y_shift, s_u = q.u_frac + q.v_frac - q.y_frac, q.u_frac - lfb
            p[[P_MU, P_KU, P_MV, P_KV, P_SU, P_YSH]] = q.u_m, q.u_k, q.v_m, q.v_k, s_u, y_shift
            shifts += [q.i.out_k, q.f.out_k, q.g.out_k, i_shift, gz_shift, s_i, s_f, s_h, q.o.out_k, q.down.out_k,
                       q.u_k, q.v_k, y_shift, s_u]
        hq = net.head
        if tuple(hq.gain_m) != ("lm_head",):
            return None
        head_m, head_g = _channels(hq.inner_m, d), _channels(hq.gain_m["lm_head"], d)
        if head_m is None or head_g is None or not _shifts_ok(*shifts, hq.inner_k, hq.t_k, hq.gain_k["lm_head"]):
            return None
        plan = cls()
        a_hi = (1 << (fp.act_bits - 1)) - 1
        sq_hi = (1 << (fp.norm_square_bits - 1)) - 1
        plan.names = cls._slot_names(L)
        plan.arrays = (params, chans_d, chans_i, *stacks[:6], head_m, head_g,
                       np.array([hq.inner_k, hq.t_k, hq.gain_k["lm_head"]], dtype=INT), stacks[6], stacks[7], seed,
                       lut, np.zeros(0, np.int16 if wide else np.int8))
        plan.scalars = (int(lo), int(hi), -sq_hi - 1, sq_hi, int(fp.invsqrt_seed_bits), int(fp.invsqrt_newton_steps),
                        -a_hi - 1, a_hi, bool(wide), int(half), int(top), int(gf))
        plan.parallel = bool(parallel)
        plan.L, plan.V = L, net.cfg.vocab_size
        return plan

    @staticmethod
    def _slot_names(L: int):
        """Overflow-counter names of the count slots, as the stage-by-stage path names them."""
        layers = []
        for l in range(L):
            names = [None] * N_SLOTS
            for s, (stage, cons) in enumerate((("attn", ("i", "f", "g")), ("gate", ("o",)), ("mlp", ("gate",)),
                                               ("down", ("down",)))):
                b = S_NORM + (3 + MAX_CONSUMERS) * s
                names[b:b + 3] = [f"l{l}.{stage}.u", f"l{l}.{stage}.sum_sq", f"l{l}.{stage}.unit"]
                for k, c in enumerate(cons):
                    names[b + 3 + k] = f"l{l}.{stage}.{c}.clip"
            for slot, p in zip((S_ACC_I, S_ACC_F, S_ACC_G, S_ACC_O, S_ACC_GATE, S_ACC_DOWN),
                               ("i", "f", "g", "o", "gate", "down")):
                names[slot] = f"l{l}.{p}.acc"
            names[S_MLGRU:S_MLGRU + 8] = [f"l{l}.{n}" for n in ("pre_i", "pre_f", "pre_g", "silu_i", "i", "h",
                                                                  "silu_h", "gz")]
            names[S_GLU:S_GLU + 4] = [f"l{l}.u", f"l{l}.v", f"l{l}.silu_u", f"l{l}.y"]
            names[S_RESID] = f"l{l}.resid"
            layers.append(names)
        head = [None] * N_HEAD_SLOTS
        head[H_NORM:H_NORM + 4] = ["head.u", "head.sum_sq", "head.unit", "head.lm_head.clip"]
        head[H_ACC] = "head.lm_head.acc"
        return layers, head

    @property
    def weight_bytes(self) -> int:
        """Bytes of packed weights one token reads (every matrix once)."""
        return int(sum(self.arrays[k].nbytes for k in (3, 4, 5, 12)))

    def synapse_pass(self, parallel: bool, seed: int = 0):
        """A callable running only the synapses of one token (every matrix, one numba call) on random spikes."""
        c_ifgo, c_gate, c_down, c_head = (self.arrays[k] for k in (3, 4, 5, 12))
        rng = np.random.default_rng(seed)
        x_d = rng.integers(-128, 128, (1, c_ifgo.shape[2] * _tr.FIELDS_PER_BYTE)).astype(np.int8)
        x_i = rng.integers(-128, 128, (1, c_down.shape[2] * _tr.FIELDS_PER_BYTE)).astype(np.int8)
        acc_d = np.empty((1, c_ifgo.shape[1]), np.int32)
        acc_uv = np.empty((1, c_gate.shape[1]), np.int32)
        logits = np.empty((1, c_head.shape[0]), np.int32)
        if parallel:
            _tr.start_threads()
        kernel = _k_synapse_pass_parallel if parallel else _k_synapse_pass_serial
        return lambda: kernel(self.arrays, x_d, x_i, acc_d, acc_uv, logits)

    def run(self, g: "FastGoldenModel", x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Logits [T, V] (int64) of the residual stream x [T, d] (int64; overwritten); h [L, d] int64, updated."""
        cnt = np.zeros((self.L, N_SLOTS), dtype=INT)
        cnt_head = np.zeros(N_HEAD_SLOTS, dtype=INT)
        logits = np.empty((x.shape[0], self.V), dtype=np.int32)
        if self.parallel:
            _tr.start_threads()
        kernel = _k_model_parallel if self.parallel else _k_model_serial
        kernel(x, h, self.arrays, self.scalars, cnt, cnt_head, logits)
        if cnt.any() or cnt_head.any():
            names_l, names_h = self.names
            for names, row in list(zip(names_l, cnt)) + [(names_h, cnt_head)]:
                for name, c in zip(names, row.tolist()):
                    if c:
                        g.ovf[name] += c
        return logits.astype(INT)


def warm_kernels(net: QuantisedNetwork) -> None:
    """Compile, or load from numba's cache, in this process every kernel the Lava models call stage by stage (one
    token through the golden model with probes on, as the fused block and stack models run it), so that Lava's
    workers, forked from this process, share that machine code instead of each loading its own copy
    (docs/graph.md, "Memory"; benchmarks/bench_fork_memory.py measures it)."""
    g = FastGoldenModel(net, whole_model=False)
    g.probes = {}
    g.prefill([0])
