"""The whole-model kernel of the fast golden model (golden_fast.py): every layer and the head in one numba call.

One call runs every layer and the head for T tokens (no Python between the 145 matrices of a 370M token): the fused
stage kernels (golden_kernels.py), the packed synapse kernel (ternary_kernels.host_rows) and the dendrite's
saturate-and-count (for int8 spikes inside the neuron kernels that read the accumulators; a pass of its own only
where int16 spikes' bytes are recombined, and for the LM head), on the arrays model_plan.ModelPlan gathers (their
layout: the constants below). On one thread, or on a team of numba's threads in one parallel region
(thread_team.py): each thread takes its rows of every matrix and the channels they feed, and the team meets at a
spin barrier where a stage reads another thread's channels (docs/cpu_tuning.md, "One region per token").

numba caches each kernel by the stamp of its own source file, and the cached whole-model kernel holds the
machine code of the stage kernels and of the synapse kernel it calls: after editing golden_kernels.py,
ternary_kernels.py or thread_team.py, delete ``__pycache__/whole_model.*.nb?`` (or touch this file) before
measuring.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from lava_matmulfree.model.golden_kernels import (MAX_CONSUMERS, _clamp, _k_glu, _k_mlgru, _k_norm_team,
                                                  _k_residual, _out)
from lava_matmulfree.model.ternary_kernels import FIELDS_PER_BYTE
from lava_matmulfree.model.thread_team import barrier, share, team_rows

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


@njit(cache=True)
def _k_spikes_into(a, j0, j1, wide, xpad, xs_part):
    """Channels j0..j1 of the synapse kernel's input, written into the team's buffers: spikes a [T, n] as int8
    (xpad's columns past n stay zero) and their sum over these channels into xs_part (the team adds the parts);
    int16 spikes (``wide``) as 2T rows, high bytes then low bytes - LO_BIAS (ternary.split_bytes)."""
    T = a.shape[0]
    for t in range(T):
        av, hi_row = a[t, j0:j1], xpad[t, j0:j1]
        if not wide:
            s = np.int32(0)
            for j in range(j1 - j0):
                v = np.int8(av[j])
                hi_row[j] = v
                s += np.int32(v)
            xs_part[t] = s
        else:
            lo_row = xpad[T + t, j0:j1]
            sh = np.int32(0)
            sl = np.int32(0)
            for j in range(j1 - j0):
                v = np.int32(av[j])
                vh = np.int8(v >> 8)
                vl = np.int8((v & 255) - WIDE_LO_BIAS)
                hi_row[j] = vh
                lo_row[j] = vl
                sh += np.int32(vh)
                sl += np.int32(vl)
            xs_part[t] = sh
            xs_part[T + t] = sl


@njit(inline="always")
def _k_team_rows(codes, xpad, xs_parts, xsum, out, tid, n):
    """This thread's rows of W xpad, after adding up the team's parts of the spike sums into its own xsum."""
    for t in range(xsum.shape[0]):
        s = np.int32(0)
        for q in range(n):
            s += xs_parts[q, t]
        xsum[t] = s
    team_rows(codes, xpad, xsum, out, tid, n)


@njit(cache=True)
def _k_dendrite(both, wide, row_sums, lo, hi, acc, cnt, slot, r0, r1):
    """Rows r0..r1 of acc = sat(W a) into the dendrite register, counted in cnt[slot]; with ``wide``, W a is first
    recombined from the bytes' products in ``both`` [2T, rows] (ternary.TernaryMatrix._matmul_wide)."""
    T = acc.shape[0]
    rsv = row_sums[r0:r1]
    c = np.int64(0)
    for t in range(T):
        av = acc[t, r0:r1]
        if wide:
            hv, lv = both[t, r0:r1], both[T + t, r0:r1]
            for r in range(r1 - r0):
                av[r] = np.int32(WIDE_BYTE_RADIX * np.int64(hv[r]) + np.int64(lv[r]) + WIDE_LO_BIAS * rsv[r])
        for r in range(r1 - r0):
            v = np.int64(av[r])
            c += _out(v, lo, hi)
            av[r] = _clamp(v, lo, hi)
    cnt[slot] += c


@njit(inline="always")
def _k_norm(v, params, chans, l, stage, ci_m, ci_g0, ci_g1, ci_g2, n_cons, sq_lo, sq_hi, lo, hi, seed, seed_bits,
            newton, a_lo, a_hi, a0, a1, a2, cnt, slot, part, tid, n, bar):
    """Norm round ``stage`` of layer l on the team, its parameters taken from the plan's arrays."""
    b = P_NORM + NORM_COLS * stage
    _k_norm_team(v, chans[l, ci_m], params[l, b], params[l, b + 1], chans[l, ci_g0], params[l, b + 2],
                 chans[l, ci_g1], params[l, b + 3], chans[l, ci_g2], params[l, b + 4], n_cons, sq_lo, sq_hi, lo, hi,
                 seed, seed_bits, newton, a_lo, a_hi, a0, a1, a2, cnt[slot:slot + 3 + MAX_CONSUMERS], part, tid, n,
                 bar, part[:0], part[:0])                                  # no S, r records


@njit(inline="always")
def _k_team_buffers(T, d, n_i, V, pad_d, pad_i, wide, n, L):
    """What more than one thread of the team touches, allocated before the team starts: the synapses' inputs
    (xpad [rows, pad] int8, zero past the spikes: one per consumer i, f, g, the rest reuse i's, one for the down
    projection; each thread's part of their sums, and the sums each thread adds up), their outputs (the dendrite
    registers acc, and with ``wide`` the products of both bytes [2T, rows] the dendrites recombine; empty
    otherwise), the norm rounds' parts of sum u^2 and each thread's overflow counts."""
    m = 2 * T if wide else T
    mb = m if wide else 0
    xp = np.zeros((3, m, pad_d), dtype=np.int8)
    xp_n = np.zeros((m, pad_i), dtype=np.int8)
    xs_part = np.zeros((4, n, m), dtype=np.int32)      # consumers i, f, g (and o, gate, head), down
    xs = np.zeros((n, m), dtype=np.int32)
    acc = np.empty((3, T, d), dtype=np.int32)
    acc_uv = np.empty((T, 2 * n_i), dtype=np.int32)
    both = np.empty((3, mb, d), dtype=np.int32)
    both_uv = np.empty((mb, 2 * n_i), dtype=np.int32)
    both_head = np.empty((mb, V), dtype=np.int32)
    part = np.zeros((n, T), dtype=np.int64)
    cnt = np.zeros((n, L, N_SLOTS), dtype=np.int64)
    cnt_head = np.zeros((n, N_HEAD_SLOTS), dtype=np.int64)
    return xp, xp_n, xs_part, xs, acc, acc_uv, both, both_uv, both_head, part, cnt, cnt_head


@njit(cache=True)
def _k_model_thread(tid, n, bar, x, h, arrays, scalars, logits, bufs):
    """Thread ``tid`` of a team of ``n`` (thread_team.py) running every layer then the head on x [T, d] (int64,
    overwritten with the last residual), h [L, d] (int64, the state, updated); logits [T, V] int32. Each thread
    takes the rows of every matrix and the channels of every neuron that :func:`thread_team.share` gives it (the
    same split for a matrix's rows and the channels they feed), so the team meets only where a stage reads another
    thread's channels: inside each norm round (the sum over channels), before each matrix (its spikes), before the
    GLU (u and v rows). Arithmetic and counts: FastGoldenModel's stage methods, in order. A team of one is the
    serial model (every barrier a no-op)."""
    (params, chans_d, chans_i, c_ifgo, c_gate, c_down, rs_ifgo, rs_gate, rs_down, head_m, head_g, head_k, c_head,
     rs_head, seed, lut, spike_proto) = arrays
    lo, hi, sq_lo, sq_hi, seed_bits, newton, a_lo, a_hi, wide, half, top, gf = scalars
    xp, xp_n, xs_part, xs_all, acc, acc_uv, both, both_uv, both_head, part, cnt_all, cnt_head_all = bufs
    T, d = x.shape
    L = params.shape[0]
    n_i = chans_i.shape[2]
    cnt, cnt_head, xs = cnt_all[tid], cnt_head_all[tid], xs_all[tid]
    out = both if wide else acc                  # where the synapses write: the products, or the registers
    out_uv = both_uv if wide else acc_uv
    out_head = both_head if wide else logits
    jd0, jd1 = share(d, tid, n)                  # this thread's channels of d (= rows of every d-row matrix)
    ji0, ji1 = share(n_i, tid, n)
    ju0, ju1 = share(2 * n_i, tid, n)
    jv0, jv1 = share(logits.shape[1], tid, n)
    a_i = np.zeros((T, d), dtype=spike_proto.dtype)
    a_f = np.zeros((T, d), dtype=spike_proto.dtype)
    a_g = np.zeros((T, d), dtype=spike_proto.dtype)
    a_n = np.zeros((T, n_i), dtype=spike_proto.dtype)
    f = np.empty((T, d), dtype=np.int64)
    hs = np.empty((T, d), dtype=np.int64)
    gz = np.zeros((T, d), dtype=np.int64)
    r = np.zeros((T, d), dtype=np.int64)
    y = np.zeros((T, n_i), dtype=np.int64)
    h_new = np.empty(d, dtype=np.int64)
    for l in range(L):
        p = params[l]
        c = cnt[l]
        _k_norm(x, params, chans_d, l, 0, CH_ATTN_M, CH_ATTN_I, CH_ATTN_F, CH_ATTN_G, 3, sq_lo, sq_hi, lo, hi, seed,
                seed_bits, newton, a_lo, a_hi, a_i, a_f, a_g, c, S_NORM, part, tid, n, bar)
        _k_spikes_into(a_i, jd0, jd1, wide, xp[0], xs_part[0, tid])
        _k_spikes_into(a_f, jd0, jd1, wide, xp[1], xs_part[1, tid])
        _k_spikes_into(a_g, jd0, jd1, wide, xp[2], xs_part[2, tid])
        barrier(bar, n)
        for k, slot in ((0, S_ACC_I), (1, S_ACC_F), (2, S_ACC_G)):
            _k_team_rows(c_ifgo[4 * l + k], xp[k], xs_part[k], xs, out[k], tid, n)
            if wide:
                _k_dendrite(both[k], wide, rs_ifgo[4 * l + k], lo, hi, acc[k], c, slot, jd0, jd1)
        _k_mlgru(acc[0], acc[1], acc[2], p[P_MI], p[P_KI], p[P_MF], p[P_KF], p[P_MG], p[P_KG], lo, hi,
                 chans_d[l, CH_LB], np.int64(1) << gf, gf, lut, half, top, p[P_SI], p[P_SF], p[P_SH], p[P_ISH],
                 p[P_GZ], h[l], f, hs, gz, h_new, c[S_MLGRU:S_MLGRU + 8], c[S_ACC_I:S_ACC_G + 1], jd0, jd1)
        h[l, jd0:jd1] = h_new[jd0:jd1]
        _k_norm(gz, params, chans_d, l, 1, CH_GATE_M, CH_GATE_O, CH_GATE_O, CH_GATE_O, 1, sq_lo, sq_hi, lo, hi,
                seed, seed_bits, newton, a_lo, a_hi, a_i, a_i, a_i, c, S_NORM + (3 + MAX_CONSUMERS), part, tid, n,
                bar)
        _k_spikes_into(a_i, jd0, jd1, wide, xp[0], xs_part[0, tid])
        barrier(bar, n)
        _k_team_rows(c_ifgo[4 * l + 3], xp[0], xs_part[0], xs, out[0], tid, n)     # o
        if wide:
            _k_dendrite(both[0], wide, rs_ifgo[4 * l + 3], lo, hi, acc[0], c, S_ACC_O, jd0, jd1)
        for t in range(T):
            _k_residual(x.reshape(-1), acc[0].reshape(-1), p[P_MO], p[P_KO], lo, hi, r.reshape(-1),
                        c[S_RESID:S_RESID + 1], c[S_ACC_O:S_ACC_O + 1], t * d + jd0, t * d + jd1)
        _k_norm(r, params, chans_d, l, 2, CH_MLP_M, CH_MLP_GATE, CH_MLP_GATE, CH_MLP_GATE, 1, sq_lo, sq_hi, lo,
                hi, seed, seed_bits, newton, a_lo, a_hi, a_i, a_i, a_i, c, S_NORM + 2 * (3 + MAX_CONSUMERS), part,
                tid, n, bar)
        _k_spikes_into(a_i, jd0, jd1, wide, xp[0], xs_part[0, tid])
        barrier(bar, n)
        _k_team_rows(c_gate[l], xp[0], xs_part[0], xs, out_uv, tid, n)              # gate and up
        if wide:
            _k_dendrite(both_uv, wide, rs_gate[l], lo, hi, acc_uv, c, S_ACC_GATE, ju0, ju1)
        barrier(bar, n)                                                            # u and v of a channel
        _k_glu(acc_uv, n_i, p[P_MU], p[P_KU], p[P_MV], p[P_KV], lo, hi, lut, half, top, p[P_SU], gf, p[P_YSH], y,
               c[S_GLU:S_GLU + 4], c[S_ACC_GATE:S_ACC_GATE + 1], ji0, ji1)
        _k_norm(y, params, chans_i, l, 3, CH_DOWN_M, CH_DOWN_D, CH_DOWN_D, CH_DOWN_D, 1, sq_lo, sq_hi, lo, hi,
                seed, seed_bits, newton, a_lo, a_hi, a_n, a_n, a_n, c, S_NORM + 3 * (3 + MAX_CONSUMERS), part, tid,
                n, bar)
        _k_spikes_into(a_n, ji0, ji1, wide, xp_n, xs_part[3, tid])
        barrier(bar, n)
        _k_team_rows(c_down[l], xp_n, xs_part[3], xs, out[0], tid, n)                # down
        if wide:
            _k_dendrite(both[0], wide, rs_down[l], lo, hi, acc[0], c, S_ACC_DOWN, jd0, jd1)
        for t in range(T):
            _k_residual(r.reshape(-1), acc[0].reshape(-1), p[P_MD], p[P_KD], lo, hi, x.reshape(-1),
                        c[S_RESID:S_RESID + 1], c[S_ACC_DOWN:S_ACC_DOWN + 1], t * d + jd0, t * d + jd1)
    _k_norm_team(x, head_m, head_k[0], head_k[1], head_g, head_k[2], head_g, head_k[2], head_g, head_k[2], 1, sq_lo,
                 sq_hi, lo, hi, seed, seed_bits, newton, a_lo, a_hi, a_i, a_i, a_i,
                 cnt_head[H_NORM:H_NORM + 3 + MAX_CONSUMERS], part, tid, n, bar, part[:0], part[:0])
    _k_spikes_into(a_i, jd0, jd1, wide, xp[0], xs_part[0, tid])
    barrier(bar, n)
    _k_team_rows(c_head, xp[0], xs_part[0], xs, out_head, tid, n)
    _k_dendrite(both_head, wide, rs_head, lo, hi, logits, cnt_head, H_ACC, jv0, jv1)


@njit(inline="always")
def _k_model(x, h, arrays, scalars, cnt, cnt_head, logits, n):
    """The whole model on a team of ``n`` threads, one chunk of ``prange(n)`` each (thread_team.py); the
    threads' overflow counts added into cnt [L, N_SLOTS] and cnt_head."""
    c_ifgo, c_down, wide = arrays[3], arrays[5], scalars[8]
    T, d = x.shape
    bufs = _k_team_buffers(T, d, arrays[2].shape[2], logits.shape[1], c_ifgo.shape[2] * FIELDS_PER_BYTE,
                           c_down.shape[2] * FIELDS_PER_BYTE, wide, n, cnt.shape[0])
    bar = np.zeros(2, dtype=np.int64)
    for tid in prange(n):
        _k_model_thread(tid, n, bar, x, h, arrays, scalars, logits, bufs)
    cnt_t, cnt_head_t = bufs[10], bufs[11]
    for q in range(n):
        cnt += cnt_t[q]
        cnt_head += cnt_head_t[q]


# numba's parallel loops only for prange (the team): no array expression becomes a parallel region
PRANGE_ONLY = {"prange": True, "numpy": False, "comprehension": False, "reduction": False, "setitem": False,
               "stencil": False, "fusion": False, "inplace_binop": False}


@njit(cache=True)
def _k_model_serial(x, h, arrays, scalars, cnt, cnt_head, logits):
    """The whole model on one thread."""
    _k_model(x, h, arrays, scalars, cnt, cnt_head, logits, 1)


@njit(cache=True, parallel=PRANGE_ONLY)
def _k_model_parallel(x, h, arrays, scalars, cnt, cnt_head, logits, n):
    """The whole model on a team of ``n`` numba threads (one parallel region per call)."""
    _k_model(x, h, arrays, scalars, cnt, cnt_head, logits, n)


@njit(cache=True)
def _k_synapse_pass_thread(tid, n, bar, arrays, x_d, xs_d, x_i, xs_i, acc_d, acc_uv, logits):
    """Thread ``tid``'s share of only the ternary synapses of a token, every matrix in layer order, meeting the
    team where the model does between dependent matrices (i, f, g | o | gate+up | down | head): what the
    whole-model kernel reads from memory, without the neurons (benchmarks/bench_decode.py)."""
    c_ifgo, c_gate, c_down, c_head = arrays[3], arrays[4], arrays[5], arrays[12]
    for l in range(c_gate.shape[0]):
        for k in range(3):
            team_rows(c_ifgo[4 * l + k], x_d, xs_d, acc_d, tid, n)
        barrier(bar, n)
        team_rows(c_ifgo[4 * l + 3], x_d, xs_d, acc_d, tid, n)
        barrier(bar, n)
        team_rows(c_gate[l], x_d, xs_d, acc_uv, tid, n)
        barrier(bar, n)
        team_rows(c_down[l], x_i, xs_i, acc_d, tid, n)
        barrier(bar, n)
    team_rows(c_head, x_d, xs_d, logits, tid, n)
    barrier(bar, n)


@njit(cache=True)
def _k_synapse_pass_serial(arrays, x_d, xs_d, x_i, xs_i, acc_d, acc_uv, logits):
    _k_synapse_pass_thread(0, 1, np.zeros(2, dtype=np.int64), arrays, x_d, xs_d, x_i, xs_i, acc_d, acc_uv, logits)


@njit(cache=True, parallel=PRANGE_ONLY)
def _k_synapse_pass_parallel(arrays, x_d, xs_d, x_i, xs_i, acc_d, acc_uv, logits, n):
    bar = np.zeros(2, dtype=np.int64)
    for tid in prange(n):
        _k_synapse_pass_thread(tid, n, bar, arrays, x_d, xs_d, x_i, xs_i, acc_d, acc_uv, logits)
