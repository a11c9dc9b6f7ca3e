"""The golden fixed-point model: the integer arithmetic Loihi 2 runs, as one small numpy forward pass.

Every Lava ``fixed_pt`` model must match this bit for bit. Integer formats are named at each line
(Q(n) = n fraction bits; see quantise.py for how each is chosen). All data are int64 arrays holding
values of at most ``state_bits`` (24) bits; every register write saturates and counts. No float
operation touches the data path (tests check every recorded intermediate is an integer array).

One token through one layer (after the dual RMSNorm fold):

    attn norm     S = sum (w1 x)^2 -> r = invsqrt(S) -> a_p = sat_act(G_p * x * r)  for p in i, f, g
    synapses      acc_p = sat24(W_p a_p)      (the dendritic accumulator, counted as l{l}.p.acc)
    MLGRU         f = lb + (1-lb) sigma(acc_f); i = SiLU(acc_i) (1-f); h = f h + i
    gate norm     v = g SiLU(h); S = sum (w_gn v)^2 -> r -> a_o = sat_act(G_o v r)
    residual      x += W_o a_o                (rescaled into the residual format)
    mlp norm      a = sat_act(G x r) ; [u, v] = W_gate a
    GLU           y = SiLU(u) v ; down norm S = sum y^2 -> r -> a_d = sat_act(G_d y r)
    residual      x += W_down a_d

sat_act saturates to act_bits graded spikes (int8 by default, up to int16: W8A16).

golden_fast.py runs the same integers through fused numba kernels (FastGoldenModel, tested equal bit for
bit); this file stays the readable reference.

Activity: ``model.activity = ActivityRecorder()`` (model/activity.py; None, off, by default) counts, from the
integers computed here, the spikes, bits and synaptic events of every connection and the updates and aggregator
rounds of every neuron group (docs/graph.md, "Activity counters"); the integers do not change.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lava_matmulfree.model.activity import NORM_GROUP
from lava_matmulfree.model.fixed_point import INT, OverflowCounter, inv_sqrt, mul_shift, saturate, sigmoid_index
from lava_matmulfree.model.float_model import ternary_matrix
from lava_matmulfree.model.quantise import QLayer, QNorm, QuantisedNetwork
from lava_matmulfree.model.ternary import TernaryMatrix


@dataclass
class GoldenState:
    """MLGRU hidden state h of every layer, each in its layer's Q(h_frac), int64 [L, d]."""

    h: np.ndarray

    def copy(self) -> "GoldenState":
        return GoldenState(self.h.copy())


def synapses(w: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Ternary synaptic accumulation acc = W a over the last axis (exact integers; ternary.py's packed
    2-bit kernel, built once per weight matrix and shared with the float model: float_model.ternary_matrix)."""
    tm = ternary_matrix(w)
    if tm is None:
        TernaryMatrix(w)  # raises the validation error that says what is wrong with w
    a = np.asarray(a)
    return tm.matmul(a.reshape(-1, a.shape[-1])).reshape(a.shape[:-1] + (w.shape[0],)).astype(INT)


class GoldenModel:
    def __init__(self, net: QuantisedNetwork):
        self.net = net
        self.fp = net.fp
        self.ovf = OverflowCounter()  # saturation events per tensor, accumulated over calls
        self.probes: dict | None = None  # set to a dict to record every intermediate (by name)
        self.activity = None  # set to an ActivityRecorder (model/activity.py) to count spikes, SynOps, updates

    # ------------------------------------------------------------------ primitives bound to the config
    def reg(self, x, name: str) -> np.ndarray:
        """Write to a state_bits-wide register: saturate and count."""
        return saturate(x, self.fp.state_bits, self.ovf, name)

    def record(self, name: str, value: np.ndarray) -> np.ndarray:
        if self.probes is not None:
            self.probes.setdefault(name, []).append(value)
        return value

    def arrive(self, group: str, neurons: int, tokens: int) -> None:
        """Activity: a token's input arrives at ``neurons`` neurons of ``group`` (one update each), if counting."""
        if self.activity is not None:
            self.activity.neuron(group, neurons, tokens)

    def sigmoid(self, v, v_frac: int) -> np.ndarray:
        """sigma(v) in Q(gate_frac_bits) by LUT, v in Q(v_frac)."""
        fp = self.fp
        return self.net.sigmoid_lut[sigmoid_index(v, v_frac, fp.sigmoid_lut_size, fp.sigmoid_lut_range)]

    def silu(self, v, v_frac: int, name: str) -> np.ndarray:
        """v * sigma(v), in the format of v."""
        return self.reg(mul_shift(v, self.sigmoid(v, v_frac), self.fp.gate_frac_bits), name)

    # ------------------------------------------------------------------ blocks
    def norm_squares(self, q: QNorm, v: np.ndarray, name: str) -> np.ndarray:
        """Channel side of a norm: the graded message u^2 each neuron sends to the aggregator."""
        u = saturate(mul_shift(v, q.inner_m, q.inner_k), self.fp.norm_square_bits, self.ovf, f"{name}.u")  # Q(u_frac)
        return u * u  # < 2**(2 norm_square_bits - 2) <= 2**22: a 24-bit payload

    def aggregate(self, sq: np.ndarray, name: str) -> np.ndarray:
        """The aggregator's dendrite: S = sum u^2 in a 24-bit accumulator, Q(2 u_frac)."""
        return self.record(f"{name}.sum_sq", self.reg(np.sum(sq, axis=-1, keepdims=True), f"{name}.sum_sq"))

    def inv_rms(self, S: np.ndarray, name: str) -> np.ndarray:
        """The aggregator's soma: r ~ 2**22 / sqrt(S) (Q22 of 1/sqrt(S)), broadcast back."""
        fp = self.fp
        r = inv_sqrt(S, self.net.invsqrt_lut, fp.invsqrt_seed_bits, fp.invsqrt_newton_steps)
        return self.record(f"{name}.inv_rms", r)

    def rms_aggregator(self, sq: np.ndarray, name: str) -> np.ndarray:
        """The aggregator neuron: sum the u^2 messages, return the inverse RMS."""
        return self.inv_rms(self.aggregate(sq, name), name)

    def spikes_from_inv_rms(self, q: QNorm, v: np.ndarray, r: np.ndarray, name: str) -> dict[str, np.ndarray]:
        """Channel side again: the int8 graded spikes of every consumer, from v and the broadcast r."""
        t = self.reg(mul_shift(v, r, q.t_k), f"{name}.unit")  # Q(t_frac): v / sqrt(sum (w1 v)^2)
        spikes = {}
        for p in q.gain_m:
            a = saturate(mul_shift(t, q.gain_m[p], q.gain_k[p]), self.fp.act_bits, self.ovf, f"{name}.{p}.clip")
            spikes[p] = self.record(f"{name}.{p}.spikes", a)  # act_bits-wide graded spikes
        return spikes

    def norm_spikes(self, q: QNorm, v: np.ndarray, name: str) -> dict[str, np.ndarray]:
        """A whole norm stage: channel values v in Q(v_frac) -> int8 spikes per consumer."""
        sq = self.norm_squares(q, v, name)
        r = self.rms_aggregator(sq, name)
        if self.activity is not None:
            self.count_norm(sq, r, name)
        return self.spikes_from_inv_rms(q, v, r, name)

    def count_norm(self, sq: np.ndarray, r: np.ndarray, name: str) -> None:
        """Activity of one norm round: u^2 through the fan-in (n -> 1), the aggregator's update, r through the
        broadcast (1 -> n), the channels' update on r; both messages are state_bits wide."""
        act, n, bits = self.activity, sq.shape[-1], self.fp.state_bits
        tokens = sq.size // n
        where, _, stage = name.rpartition(".")
        where = where or stage  # the head's norm is named "head"
        act.connection(f"{name}.fan_in", sq, np.ones((1, n), dtype=np.int8), bits)
        act.neuron(f"{where}.rms_aggregator", 1, tokens, rounds=1)
        act.connection(f"{name}.broadcast", r, np.ones((n, 1), dtype=np.int8), bits)
        act.neuron(f"{where}.{NORM_GROUP[stage]}", n, tokens, rounds=1)

    def mlgru(self, q: QLayer, acc_i, acc_f, acc_g, h0, l: int):
        """MLGRU neurons over T tokens: returns (gated output v = g SiLU(h) in Q(gz_frac) [T, d], h_T)."""
        gf = self.fp.gate_frac_bits
        one = 1 << gf
        x_i = self.reg(mul_shift(acc_i, q.i.out_m, q.i.out_k), f"l{l}.pre_i")  # Q(pre_frac[i])
        x_f = self.reg(mul_shift(acc_f, q.f.out_m, q.f.out_k), f"l{l}.pre_f")  # Q(pre_frac[f])
        x_g = self.reg(mul_shift(acc_g, q.g.out_m, q.g.out_k), f"l{l}.pre_g")  # Q(pre_frac[g])
        f = q.lb + mul_shift(one - q.lb, self.sigmoid(x_f, q.pre_frac["f"]), gf)  # Q(gf), lb + (1-lb) sigma
        silu_i = self.silu(x_i, q.pre_frac["i"], f"l{l}.silu_i")  # Q(pre_frac[i])
        i = self.reg(mul_shift(silu_i, one - f, gf + q.pre_frac["i"] - q.h_frac), f"l{l}.i")  # Q(h_frac)
        hs = np.empty_like(i)
        h = h0
        for t in range(i.shape[0]):  # the only sequential part: h_t = f_t h_{t-1} + i_t
            h = self.reg(mul_shift(f[t], h, gf) + i[t], f"l{l}.h")  # Q(h_frac)
            hs[t] = h
        z = self.silu(hs, q.h_frac, f"l{l}.silu_h")  # Q(h_frac)
        v = self.reg(mul_shift(x_g, z, q.pre_frac["g"] + q.h_frac - q.gz_frac), f"l{l}.gz")  # Q(gz_frac)
        self.record(f"l{l}.f", f)
        self.record(f"l{l}.h", hs)
        return v, h

    def glu(self, q: QLayer, acc_uv, l: int) -> np.ndarray:
        """GLU neurons: y = SiLU(u) * v in Q(y_frac)."""
        I = q.gate_w.shape[0] // 2
        u = self.reg(mul_shift(acc_uv[..., :I], q.u_m, q.u_k), f"l{l}.u")  # Q(u_frac)
        v = self.reg(mul_shift(acc_uv[..., I:], q.v_m, q.v_k), f"l{l}.v")  # Q(v_frac)
        silu_u = self.silu(u, q.u_frac, f"l{l}.silu_u")  # Q(u_frac)
        y = self.reg(mul_shift(silu_u, v, q.u_frac + q.v_frac - q.y_frac), f"l{l}.y")  # Q(y_frac)
        return self.record(f"l{l}.y", y)

    def residual(self, x, acc, proj, name: str) -> np.ndarray:
        """x + W a rescaled into the residual format Q(x_frac). The rescaled term is a register of its own
        (saturated before the add), as on the 24-bit neuron (microcode/residual.ucode)."""
        return self.reg(x + self.reg(mul_shift(acc, proj.out_m, proj.out_k), name), name)

    def synapses(self, w: np.ndarray, a: np.ndarray) -> np.ndarray:
        """The ternary synapses inside a layer: W a (act_bits-wide spikes in, exact integer sums out)."""
        return synapses(w, a)

    def dendrite(self, acc: np.ndarray, name: str) -> np.ndarray:
        """The dendritic accumulator of a projection's neurons: the synaptic sum in a state_bits register,
        saturated and counted as NAME.acc. Spikes of <= 8 bits cannot saturate it (the worst case fits);
        wider spikes rely on the calibrated maximum (quantise.dendrite_fits)."""
        return self.reg(acc, f"{name}.acc")

    def project(self, w: np.ndarray, a: np.ndarray, name: str) -> np.ndarray:
        """Spikes through one ternary projection into its neurons' dendrites."""
        if self.activity is not None:
            self.activity.connection(name, a, w, self.fp.act_bits)
        return self.dendrite(self.synapses(w, a), name)

    def layer(self, q: QLayer, x: np.ndarray, h0: np.ndarray, l: int):
        proj, arrive, T, d = self.project, self.arrive, x.shape[0], x.shape[-1]  # arrive: activity only
        self.record(f"l{l}.x", x)  # the residual stream entering the block
        arrive(f"l{l}.residual", d, T)  # x arrives (the norms count the r phases)
        a = self.norm_spikes(q.attn, x, f"l{l}.attn")
        acc_i, acc_f, acc_g = (proj(getattr(q, p).w, a[p], f"l{l}.{p}") for p in ("i", "f", "g"))
        arrive(f"l{l}.mlgru", d, T)  # the i, f, g sums arrive together
        gz, h = self.mlgru(q, acc_i, acc_f, acc_g, h0, l)
        a_o = self.norm_spikes(q.gate, gz, f"l{l}.gate")["o"]
        arrive(f"l{l}.residual", d, T)  # o arrives
        r = self.record(f"l{l}.r", self.residual(x, proj(q.o.w, a_o, f"l{l}.o"), q.o, f"l{l}.resid"))  # Q(x_frac)
        a_gate = self.norm_spikes(q.mlp, r, f"l{l}.mlp")["gate"]
        acc_uv = proj(q.gate_w, a_gate, f"l{l}.gate")
        arrive(f"l{l}.glu", q.gate_w.shape[0] // 2, T)  # u and v arrive together
        y = self.glu(q, acc_uv, l)
        a_d = self.norm_spikes(q.down_norm, y, f"l{l}.down")["down"]
        arrive(f"l{l}.residual", d, T)  # down arrives
        return self.residual(r, proj(q.down.w, a_d, f"l{l}.down"), q.down, f"l{l}.resid"), h

    # ------------------------------------------------------------------ model
    def init_state(self) -> GoldenState:
        return GoldenState(np.zeros((self.net.cfg.num_layers, self.net.cfg.hidden_size), dtype=INT))

    def prefill(self, tokens, state: GoldenState | None = None):
        """Integer logits [T, V] of a token sequence and the state after it (the input is not modified)."""
        state = self.init_state() if state is None else state.copy()
        x = self.record("embed", self.net.embed[np.asarray(tokens, dtype=np.int64)].astype(INT))  # Q(x_frac)
        for l, q in enumerate(self.net.layers):
            x, state.h[l] = self.layer(q, x, state.h[l], l)
        self.arrive("head.final_norm", x.shape[-1], x.shape[0])  # x arrives at the final norm
        a = self.norm_spikes(self.net.head, self.record("head.x", x), "head")["lm_head"]
        logits = self.record("logits", self.project(self.net.lm_head, a, "head.lm_head").astype(INT))  # logit_scale units
        return logits, state

    def step(self, token: int, state: GoldenState | None = None):
        logits, state = self.prefill([token], state)
        return logits[0], state

    def dequantise_logits(self, logits: np.ndarray) -> np.ndarray:
        """Real-valued logits (for sampling and accuracy reports only; off the integer path)."""
        return logits.astype(np.float64) * self.net.logit_scale
