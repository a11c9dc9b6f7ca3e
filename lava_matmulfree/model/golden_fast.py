"""Fast path of the golden model: the same integers through fused numba kernels.

Activity counters (``activity``, golden.py) count here too: the norm rounds then run the reference's numpy path,
the rest the kernels, and the whole-model kernel is not used.

Speed. The blocks run as fused numba kernels (golden_kernels.py), one call per stage (a whole norm round:
squares, aggregate, inverse sqrt and the spikes of every consumer; the MLGRU neurons with their recurrence; the
GLU neurons; a residual update), with the same integer operations in the same int64 arithmetic as the numpy
reference (``fixed_point.py``; the loops are written so that LLVM vectorises them). Integer results do not
depend on the order of elementwise work, and a saturation count is a sum over elements, so the kernels give the
same values and the same overflow counts bit for bit (golden.py's GoldenModel is the numpy reference;
tests/test_benchmarks_smoke.py proves them equal). Inside ``layer`` the spikes stay int8 (int16 for
``act_bits`` > 8) and the synaptic accumulators int32 (the synapse kernel's types, exact by its bounds); every
recorded probe is int64 as before. Each method falls back to the numpy reference where a kernel's
preconditions do not hold (another array rank, a shift outside [-62, 62], ``state_bits`` > 25 where the
inverse-sqrt seed index could leave its table, more than three consumers of one norm, LUTs of another size
than the config's).

Whole model (``ModelPlan``, model_plan.py, and its kernel, whole_model.py; the default of ``prefill`` and
``step`` when no probe records): one numba call runs every layer and the head for the T tokens, calling the same
stage kernels and the packed synapse kernel, with no Python between the 145 matrices of a 370M token; the weights
are stacked per projection kind once per network (the TernaryMatrix objects point into the stacks: the packed
codes exist once).
``parallel=True`` runs that call on a team of numba's threads in one parallel region (model/thread_team.py: each
thread takes its rows of every matrix and the channels they feed). Measured (benchmarks/bench_decode.py, 370M,
load ~1; docs/performance.md): 3.89 ms per decode token on 1 thread, 2.64 ms on 2 (against 8.60 ms stage by stage,
and a read bound of 2.44 ms on 1 thread, 1.16 ms on 2).
"""
from __future__ import annotations

import numpy as np

from lava_matmulfree.model.fixed_point import INT, int_range, lut_frac_bits
from lava_matmulfree.model.float_model import ternary_matrix
from lava_matmulfree.model.golden import GoldenModel, GoldenState, synapses
# the stage kernels and their preconditions (golden_kernels.py), named here as well: tests and benchmarks find
# the compiled kernels of this module by name
from lava_matmulfree.model.golden_kernels import (  # noqa: F401
    INT8_ACT_BITS, INT16_ACT_BITS, MAX_CONSUMERS, MAX_SHIFT, SEED_INDEX_SAFE_BITS, _acc, _channels, _i64,
    _int_array, _k_glu, _k_inv_sqrt, _k_mlgru, _k_norm_stage, _k_residual, _shifts_ok)
from lava_matmulfree.model.model_plan import ModelPlan
from lava_matmulfree.model.quantise import QLayer, QNorm, QuantisedNetwork


def _stage_acc_clips(n: int) -> np.ndarray:
    """The dendrite counters the neuron kernels also take (whole_model.py saturates the accumulators there): on
    this stage-by-stage path the synapses' output is saturated and counted before (golden.py), so they stay 0."""
    return np.zeros(n, dtype=INT)


def synapses32(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``synapses`` for spikes [T, in], left in the kernel's int32 (|acc| <= 32768 * in fits; the layer's fused
    kernels read int32 directly, which saves widening every accumulator array to int64)."""
    tm = ternary_matrix(w)
    if tm is None or np.ndim(a) != 2:
        return synapses(w, a)
    return tm.matmul(a)


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
        if self.whole_model and self.probes is None and self.activity is None and tok.ndim == 1 and tok.size:
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
                 int(s_i), int(s_f), int(s_h), int(i_shift), int(gz_shift), _i64(h0), f, hs, v, h, cnt,
                 _stage_acc_clips(3), 0, d)
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
               gf, int(y_shift), y, cnt, _stage_acc_clips(1), 0, I)
        self._count(cnt, lambda: [f"l{l}.u", f"l{l}.v", f"l{l}.silu_u", f"l{l}.y"])
        return self.record(f"l{l}.y", y)

    def norm_spikes(self, q: QNorm, v: np.ndarray, name: str) -> dict[str, np.ndarray]:
        """The fused kernel returns the spikes as int8 / int16 arrays (the reference as int64; same values)."""
        if self.activity is not None:  # counting: the reference's round (golden.py), which counts the fan-in
            return super().norm_spikes(q, v, name)
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
                        out.reshape(-1), cnt, _stage_acc_clips(1), 0, out.size)
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


def warm_kernels(net: QuantisedNetwork) -> None:
    """Compile, or load from numba's cache, in this process every kernel the Lava models call stage by stage (one
    token through the golden model with probes on, as the fused block and stack models run it), so that Lava's
    workers, forked from this process, share that machine code instead of each loading its own copy
    (docs/graph.md, "Memory"; benchmarks/bench_fork_memory.py measures it)."""
    g = FastGoldenModel(net, whole_model=False)
    g.probes = {}
    g.prefill([0])
    g.inv_rms(np.ones((1, 1), dtype=INT), "head")  # the fused LM head's aggregator (the blocks' rounds fuse it)
