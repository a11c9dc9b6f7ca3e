"""The plan of the fast golden model's whole-model kernel (whole_model.py): what it takes from a network.

:class:`ModelPlan` gathers the integer parameters, channel vectors and weights stacked per projection kind
([L, rows, bytes]; the TernaryMatrix objects of the network point into the stacks, so the packed codes exist
once), checks every precondition of the stage kernels (``build`` returns None where one fails: the caller then
runs stage by stage) and runs the kernel on one thread or on a team (``parallel``, thread_team.py), adding its
overflow counts to the model's counter. Used by FastGoldenModel.prefill (and so step) when no probe records.
"""
from __future__ import annotations

import numpy as np

from lava_matmulfree.model.fixed_point import INT
from lava_matmulfree.model.float_model import ternary_matrix
from lava_matmulfree.model.golden_kernels import INT8_ACT_BITS, MAX_CONSUMERS, _channels, _shifts_ok
from lava_matmulfree.model.quantised_network import QuantisedNetwork, release_freed_memory
from lava_matmulfree.model.ternary import MAX_IN_WIDE
from lava_matmulfree.model.ternary_kernels import FIELDS_PER_BYTE
from lava_matmulfree.model.thread_team import team_size
from lava_matmulfree.model.whole_model import (
    CH_ATTN_F, CH_ATTN_G, CH_ATTN_I, CH_ATTN_M, CH_DOWN_D, CH_DOWN_M, CH_GATE_M, CH_GATE_O, CH_LB, CH_MLP_GATE,
    CH_MLP_M, H_ACC, H_NORM, N_CH_D, N_CH_I, N_HEAD_SLOTS, N_PARAMS, N_SLOTS, P_GZ, P_ISH, P_KD, P_KF, P_KG, P_KI,
    P_KO, P_KU, P_KV, P_MD, P_MF, P_MG, P_MI, P_MO, P_MU, P_MV, P_NORM, P_SF, P_SH, P_SI, P_SU, P_YSH, NORM_COLS,
    S_ACC_DOWN, S_ACC_F, S_ACC_G, S_ACC_GATE, S_ACC_I, S_ACC_O, S_GLU, S_MLGRU, S_NORM, S_RESID, _k_model_parallel,
    _k_model_serial, _k_synapse_pass_parallel, _k_synapse_pass_serial)


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
    caller then runs stage by stage). ``g``: the FastGoldenModel (golden_fast.py) it serves."""

    @classmethod
    def build(cls, g, parallel: bool):
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
        if wide and max(d, I) > MAX_IN_WIDE:
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

    def synapse_inputs(self, seed: int = 0) -> tuple:
        """(x_d, xs_d, x_i, xs_i, acc_d, acc_uv, logits): random spikes of one token and the outputs of every matrix,
        the arguments of whole_model's synapse pass after the plan's arrays."""
        c_ifgo, c_gate, c_down, c_head = (self.arrays[k] for k in (3, 4, 5, 12))
        rng = np.random.default_rng(seed)
        x_d = rng.integers(-128, 128, (1, c_ifgo.shape[2] * FIELDS_PER_BYTE)).astype(np.int8)
        x_i = rng.integers(-128, 128, (1, c_down.shape[2] * FIELDS_PER_BYTE)).astype(np.int8)
        return (x_d, np.zeros(1, np.int32), x_i, np.zeros(1, np.int32), np.empty((1, c_ifgo.shape[1]), np.int32),
                np.empty((1, c_gate.shape[1]), np.int32), np.empty((1, c_head.shape[0]), np.int32))

    def synapse_pass(self, parallel: bool, seed: int = 0):
        """A callable running only the synapses of one token (every matrix, one numba call) on random spikes."""
        ins = self.synapse_inputs(seed)
        n = team_size(parallel)
        if n == 1:
            return lambda: _k_synapse_pass_serial(self.arrays, *ins)
        return lambda: _k_synapse_pass_parallel(self.arrays, *ins, n)

    def run(self, g, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """Logits [T, V] (int64) of the residual stream x [T, d] (int64; overwritten); h [L, d] int64, updated."""
        cnt = np.zeros((self.L, N_SLOTS), dtype=INT)
        cnt_head = np.zeros(N_HEAD_SLOTS, dtype=INT)
        logits = np.empty((x.shape[0], self.V), dtype=np.int32)
        n = team_size(self.parallel)
        if n == 1:
            _k_model_serial(x, h, self.arrays, self.scalars, cnt, cnt_head, logits)
        else:
            _k_model_parallel(x, h, self.arrays, self.scalars, cnt, cnt_head, logits, n)
        names_l, names_h = self.names
        for l, slot in zip(*np.nonzero(cnt)):       # only the slots that counted (most tokens: a few)
            g.ovf[names_l[l][slot]] += int(cnt[l, slot])
        for slot in np.flatnonzero(cnt_head):
            g.ovf[names_h[slot]] += int(cnt_head[slot])
        return logits.astype(INT)
