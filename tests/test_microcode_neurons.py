"""The neuron programs (microcode/*.ucode) against the golden model, bit for bit.

Each program runs through the interpreter with the values microcode/bindings.py binds from a network, and is
compared, step after step, with the golden model's functions on the same inputs (the delays of the pipeline
replayed with plain Python lists). The networks are random: random formats, shifts and per-channel mantissas
within what quantise.py produces, several fixed-point configs, neuron counts that are not powers of two, and
inputs over the whole 24-bit range with the extremes (register limits, zero, all-saturating rows) mixed in.
The inverse square root is checked on every 24-bit input. The whole decomposed Lava graph, whose neuron
models now run these programs, is checked against the golden model's logits, tokens and probed state.
"""
from __future__ import annotations

import dataclasses
import inspect
import types

import numpy as np
import pytest

from lava_matmulfree import events as pl  # the structural latencies
from lava_matmulfree.config import FixedPointConfig
from lava_matmulfree.errors import MicrocodeError
from lava_matmulfree.model.fixed_point import inv_sqrt, invsqrt_seed_lut, lut_frac_bits, sigmoid_lut
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.microcode import bindings, instruction_counts, isa, load_program
from lava_matmulfree.model.quantise import QLayer, QNorm, QProj

LO, HI = isa.REG_MIN, isa.REG_MAX
SEEDS = (0, 1, 2)
STEPS = 9  # updates per program run: longer than every delay line, so every delayed value is used
SIZES = (1, 7, 72, 333)  # neurons per process (72: the tiny config's d)
MANTISSA_BITS = FixedPointConfig().mantissa_bits
NEG_SHIFT_MAX = 8  # formats are drawn so that no left shift of a product leaves int64 in the golden model
EXTREMES = np.array([LO, LO + 1, -1, 0, 1, HI - 1, HI], dtype=np.int64)
#: Fixed-point configs: the default one and variations of every knob the programs depend on.
CONFIGS = (
    FixedPointConfig(),
    FixedPointConfig(act_bits=4, norm_square_bits=8, gate_frac_bits=12, sigmoid_lut_size=256, sigmoid_lut_range=4.0),
    FixedPointConfig(act_bits=12, norm_square_bits=12, gate_frac_bits=20, sigmoid_lut_size=4096,
                     sigmoid_lut_range=16.0, invsqrt_seed_bits=9, invsqrt_newton_steps=4),
    FixedPointConfig(gate_frac_bits=22, invsqrt_seed_bits=2, invsqrt_newton_steps=6),
)


# ================================================================================ random networks
def _mantissas(rng, n):
    m = rng.integers(-(1 << MANTISSA_BITS) + 1, 1 << MANTISSA_BITS, n)
    m[: min(n, 2)] = [(1 << MANTISSA_BITS) - 1, -(1 << MANTISSA_BITS) + 1][: min(n, 2)]
    return m.astype(np.int64)


def _qnorm(rng, n, consumers):
    return QNorm(v_frac=0, u_frac=0, inner_m=_mantissas(rng, n), inner_k=int(rng.integers(0, 41)), t_frac=0,
                 t_k=int(rng.integers(-NEG_SHIFT_MAX, 31)),
                 gain_m={p: _mantissas(rng, n) for p in consumers},
                 gain_k={p: int(rng.integers(4, 41)) for p in consumers})


def _qproj(rng):
    return QProj(w=np.zeros((1, 1), np.int8), out_m=int(_mantissas(rng, 1)[0]), out_k=int(rng.integers(-4, 21)),
                 scale=1.0)


def _frac(rng, low=0, high=26):
    return int(rng.integers(low, high + 1))


def random_net(rng, d: int, inter: int, fp: FixedPointConfig):
    """A stand-in QuantisedNetwork of one layer with random formats: all that bindings.py and GoldenModel read."""
    gf = fp.gate_frac_bits
    pre = {p: _frac(rng) for p in "ifg"}
    h_frac = _frac(rng, max(0, gf + pre["i"] - 30), min(26, gf + pre["i"] + NEG_SHIFT_MAX))
    gz_frac = _frac(rng, max(0, pre["g"] + h_frac - 40), pre["g"] + h_frac + NEG_SHIFT_MAX)
    u_frac, v_frac = _frac(rng), _frac(rng)
    y_frac = _frac(rng, max(0, u_frac + v_frac - 40), u_frac + v_frac + NEG_SHIFT_MAX)
    lb = rng.integers(0, (1 << gf) + 1, d)
    lb[: min(d, 2)] = [0, 1 << gf][: min(d, 2)]
    layer = QLayer(attn=_qnorm(rng, d, "ifg"), i=_qproj(rng), f=_qproj(rng), g=_qproj(rng), pre_frac=pre, lb=lb,
                   h_frac=h_frac, gz_frac=gz_frac, gate=_qnorm(rng, d, ["o"]), o=_qproj(rng),
                   mlp=_qnorm(rng, d, ["gate"]), gate_w=np.zeros((2 * inter, 1), np.int8),
                   u_m=int(_mantissas(rng, 1)[0]), u_k=int(rng.integers(-4, 21)),
                   v_m=int(_mantissas(rng, 1)[0]), v_k=int(rng.integers(-4, 21)), u_frac=u_frac, v_frac=v_frac,
                   y_frac=y_frac, down_norm=_qnorm(rng, inter, ["down"]), down=_qproj(rng))
    return types.SimpleNamespace(
        cfg=types.SimpleNamespace(hidden_size=d, intermediate_size=inter), fp=fp, layers=[layer],
        head=_qnorm(rng, d, ["lm_head"]),
        sigmoid_lut=sigmoid_lut(fp.sigmoid_lut_size, fp.sigmoid_lut_range, gf),
        invsqrt_lut=invsqrt_seed_lut(fp.invsqrt_seed_bits))


def inputs24(rng, n, scale=None):
    """n 24-bit inputs: a mix of uniform over the whole range, small (realistic) values and the extremes; one
    step in four is an all-extreme row (every neuron saturating together)."""
    if rng.random() < 0.25:
        return rng.choice(EXTREMES[[0, 1, 5, 6]], n)
    small = scale if scale is not None else 1 << 14
    kind = rng.integers(0, 3, n)
    out = np.where(kind == 0, rng.integers(LO, HI + 1, n), rng.integers(-small, small + 1, n))
    return np.where(kind == 2, rng.choice(EXTREMES, n), out).astype(np.int64)


def r_signal(rng, n):
    """Inverse RMS values: mostly the aggregator's range [0, 2^22], sometimes anything."""
    return np.where(rng.random(n) < 0.8, rng.integers(0, (1 << 22) + 1, n), inputs24(rng, n)).astype(np.int64)


def nets():
    for seed in SEEDS:
        for k, fp in enumerate(CONFIGS):
            d = SIZES[(seed + k) % len(SIZES)]
            inter = SIZES[(seed + k + 1) % len(SIZES)] + 2
            yield pytest.param(seed, fp, d, inter, id=f"seed{seed}-cfg{k}-d{d}-I{inter}")


def make(seed, fp, d, inter):
    rng = np.random.default_rng(seed)
    return rng, random_net(rng, d, inter, fp)


def check_step(res, want: dict, step: int):
    """Each port in ``want``: None = nothing sent (event-driven: no token in its lane), else the payload."""
    for port, value in want.items():
        if value is None:
            assert not res.sent[port].any(), f"port {port} sent without a token at step {step}"
            continue
        np.testing.assert_array_equal(res.outputs[port], value, err_msg=f"port {port}, step {step}")
        assert res.sent[port].all(), f"port {port} not sent at step {step}"


def token_steps(rng, steps: int) -> list[int]:
    """Which steps carry a token: mostly yes, with gaps and runs (prefill streams, decode gaps)."""
    return [int(v) for v in (rng.random(steps) < 0.7)]


# ================================================================================ programs vs golden
@pytest.mark.parametrize("seed,fp,d,inter", list(nets()))
def test_mlgru_program_matches_golden(seed, fp, d, inter):
    """A token in the acc lane updates h and sends u^2; the aggregator's answer (lane r_in_tok, a round trip
    later) sends the spikes of that token's gz. Without a token h persists and nothing is sent."""
    rng, net = make(seed, fp, d, inter)
    q, g = net.layers[0], GoldenModel(net)
    machine = bindings.mlgru(net, 0).machine()
    h = inputs24(rng, d)
    machine.state["h"] = h.copy()
    RT = pl.AGGREGATOR_ROUND_TRIP
    toks = token_steps(rng, STEPS)
    gz_past = [np.zeros(d, np.int64)] * RT
    for step in range(STEPS):
        acc = [inputs24(rng, d) for _ in range(3)]
        tok = toks[step]
        answer = int(step >= RT and toks[step - RT])
        r = r_signal(rng, d)
        res = machine.step({"acc_i": acc[0], "acc_f": acc[1], "acc_g": acc[2], "acc_f_tok": tok, "r_in": r,
                            "r_in_tok": answer})
        if tok:
            gz, h = g.mlgru(q, *(a[None] for a in acc), h, 0)
            gz = gz[0]
        else:
            gz = np.zeros(d, np.int64)
        want = {"sq_out": g.norm_squares(q.gate, gz, "gate") if tok else None,
                "a_out": g.spikes_from_inv_rms(q.gate, gz_past[-RT], r, "gate")["o"] if answer else None}
        check_step(res, want, step)
        np.testing.assert_array_equal(res.state["h"], h, err_msg=f"h, step {step}")
        gz_past.append(gz)


@pytest.mark.parametrize("seed,fp,d,inter", list(nets()))
def test_glu_program_matches_golden(seed, fp, d, inter):
    rng, net = make(seed, fp, d, inter)
    q, g = net.layers[0], GoldenModel(net)
    machine = bindings.glu(net, 0).machine()
    RT = pl.AGGREGATOR_ROUND_TRIP
    toks = token_steps(rng, STEPS)
    y_past = [np.zeros(inter, np.int64)] * RT
    for step in range(STEPS):
        acc, r = inputs24(rng, 2 * inter), r_signal(rng, inter)
        tok, answer = toks[step], int(step >= RT and toks[step - RT])
        res = machine.step({"u_in": acc[:inter], "v_in": acc[inter:], "u_in_tok": tok, "r_in": r,
                            "r_in_tok": answer})
        y = g.glu(q, acc[None], 0)[0] if tok else np.zeros(inter, np.int64)
        want = {"sq_out": g.norm_squares(q.down_norm, y, "down") if tok else None,
                "a_out": g.spikes_from_inv_rms(q.down_norm, y_past[-RT], r, "down")["down"] if answer else None}
        check_step(res, want, step)
        np.testing.assert_array_equal(res.scratch["y"], y, err_msg=f"y, step {step}")
        y_past.append(y)


@pytest.mark.parametrize("seed,fp,d,inter", list(nets()))
def test_residual_program_matches_golden(seed, fp, d, inter):
    """Tokens enter at random steps; the norms answer a round trip later; the mixers answer in order after a
    random latency (1 to 7 steps), so x and r wait in the program's queues: every output equals golden.py."""
    rng, net = make(seed, fp, d, inter)
    q, g = net.layers[0], GoldenModel(net)
    machine = bindings.residual(net, 0).machine()
    RT = pl.AGGREGATOR_ROUND_TRIP
    total = STEPS + 2 * 8 + 2  # then the last tokens drain
    x_at, r_at = {}, {}  # step -> the x entering / r formed then
    o_due, down_due = {}, {}  # step -> (the x / r it answers)
    last_o = last_down = 0
    for step in range(total):
        x_tok = int(step < STEPS and rng.random() < 0.7)
        x, o, down = inputs24(rng, d), inputs24(rng, d), inputs24(rng, d)
        r_attn, r_mlp = r_signal(rng, d), r_signal(rng, d)
        o_tok, down_tok = int(step in o_due), int(step in down_due)
        attn_tok, mlp_tok = int(step - RT in x_at), int(step - RT in r_at)
        res = machine.step({"x_in": x, "x_in_tok": x_tok, "r_attn": r_attn, "r_attn_tok": attn_tok,
                            "o_in": o, "o_in_tok": o_tok, "r_mlp": r_mlp, "r_mlp_tok": mlp_tok,
                            "down_in": down, "down_in_tok": down_tok})
        want = {"sq_attn": None, "a_i": None, "a_f": None, "a_g": None, "sq_mlp": None, "a_gate": None,
                "x_out": None}
        if down_tok:
            want["x_out"] = g.residual(down_due.pop(step), down, q.down, "resid")
        if o_tok:
            r = g.residual(o_due.pop(step), o, q.o, "resid")
            want["sq_mlp"] = g.norm_squares(q.mlp, r, "mlp")
            np.testing.assert_array_equal(res.scratch["r"], r, err_msg=f"r, step {step}")
            r_at[step] = r
            last_down = max(last_down + 1, step + int(rng.integers(1, 8)))  # in order, 1 to 7 steps
            down_due[last_down] = r
        if x_tok:
            want["sq_attn"] = g.norm_squares(q.attn, x, "attn")
            x_at[step] = x
            last_o = max(last_o + 1, step + int(rng.integers(1, 8)))
            o_due[last_o] = x
        if attn_tok:
            a = g.spikes_from_inv_rms(q.attn, x_at[step - RT], r_attn, "attn")
            want.update(a_i=a["i"], a_f=a["f"], a_g=a["g"])
        if mlp_tok:
            want["a_gate"] = g.spikes_from_inv_rms(q.mlp, r_at[step - RT], r_mlp, "mlp")["gate"]
        check_step(res, want, step)
        assert res.state["xn"].max() <= pl.MIXER_QUEUE_DEPTH and res.state["rn"].max() <= pl.MIXER_QUEUE_DEPTH
    assert not o_due and not down_due  # every token left the block


@pytest.mark.parametrize("seed,fp,d,inter", list(nets()))
def test_final_norm_program_matches_golden(seed, fp, d, inter):
    rng, net = make(seed, fp, d, inter)
    g = GoldenModel(net)
    machine = bindings.final_norm(net).machine()
    RT = pl.AGGREGATOR_ROUND_TRIP
    toks = token_steps(rng, STEPS)
    x_past = [np.zeros(d, np.int64)] * RT
    for step in range(STEPS):
        x, r = inputs24(rng, d), r_signal(rng, d)
        tok, answer = toks[step], int(step >= RT and toks[step - RT])
        res = machine.step({"x_in": x, "x_in_tok": tok, "r_in": r, "r_in_tok": answer})
        x = x if tok else np.zeros(d, np.int64)
        want = {"sq_out": g.norm_squares(net.head, x, "head") if tok else None,
                "a_out": g.spikes_from_inv_rms(net.head, x_past[-RT], r, "head")["lm_head"] if answer else None}
        check_step(res, want, step)
        x_past.append(x)


def _aggregator(fp: FixedPointConfig, n: int):
    net = types.SimpleNamespace(fp=fp, invsqrt_lut=invsqrt_seed_lut(fp.invsqrt_seed_bits),
                                sigmoid_lut=np.zeros(fp.sigmoid_lut_size, np.int64))
    binding = bindings.rms_aggregator(net)
    return binding.assembled().bind(n, imms=binding.imms, luts=binding.luts), net


def sum_samples(rng):
    """Sums of squares: every bin edge of the normalisation and the seed table, both ends of the 24-bit range,
    saturating sums (recv clips them), and random values at every scale."""
    powers = 1 << np.arange(isa.REGISTER_BITS, dtype=np.int64)
    edges = np.concatenate([powers - 1, powers, powers + 1, 3 * powers[:-2] // 2])
    scales = rng.integers(0, isa.REGISTER_BITS, 4000)
    rand = rng.integers(0, 1 << 62, 4000) >> (62 - scales)
    over = np.array([HI + 1, 1 << 30, 72 * (1 << 22), -1, LO], dtype=np.int64)
    return np.concatenate([edges, rand, over, np.arange(0, 4096)]).astype(np.int64)


@pytest.mark.parametrize("seed_bits", [2, 3, 6, 9, 12])
@pytest.mark.parametrize("steps", list(range(7)))
def test_rms_aggregator_program_matches_golden(seed_bits, steps):
    fp = FixedPointConfig(invsqrt_seed_bits=seed_bits, invsqrt_newton_steps=steps)
    rng = np.random.default_rng(seed_bits * 10 + steps)
    S = sum_samples(rng)
    machine, net = _aggregator(fp, S.size)
    res = machine.run({"sq_in": S, "sq_in_tok": 1})
    g = GoldenModel(net)
    S24 = np.clip(S, LO, HI)
    want = g.inv_rms(g.aggregate(S24[:, None], "agg")[:, 0], "agg")
    np.testing.assert_array_equal(res.scratch["s"], S24)
    np.testing.assert_array_equal(res.outputs["r_out"], want)
    # no intermediate of the inverse square root saturates: only recv clips (the sums beyond 24 bits)
    np.testing.assert_array_equal(res.overflows, (S != S24).astype(np.int64))


#: Instructions of the aggregator outside the Newton steps: the token lane (recv, branch), recv, max, 5 x 4
#: normalisation, 2 for the exponent, 3 for the seed, 2 to denormalise and send (restated from
#: rms_aggregator.ucode).
AGGREGATOR_FIXED_COST = 2 + 2 + 5 * 4 + 2 + 3 + 2


def _exhaustive(fp: FixedPointConfig, chunk: int = 1 << 20):
    """Every sum of squares a 24-bit dendrite can hold, [0, 2^23), through the program and inv_sqrt."""
    machine, net = _aggregator(fp, chunk)
    executed = set()
    for start in range(0, HI + 1, chunk):
        S = np.arange(start, start + chunk, dtype=np.int64)
        res = machine.run({"sq_in": S, "sq_in_tok": 1})
        want = inv_sqrt(S, net.invsqrt_lut, fp.invsqrt_seed_bits, fp.invsqrt_newton_steps)
        assert np.array_equal(res.outputs["r_out"], want), f"first mismatch at S={start}"
        assert not res.overflows.any()
        executed |= set(np.unique(res.executed).tolist())
    return executed


def test_rms_aggregator_exhaustive_default_config():
    """All 2^23 non-negative 24-bit sums, default config: identical to fixed_point.inv_sqrt, no saturation, and
    one executed count for every S (the normalisation is branch-free), below the static worst case by the
    disabled Newton steps."""
    fp = FixedPointConfig()
    executed = _exhaustive(fp)
    program = load_program(bindings.RMS_AGGREGATOR)
    unrolled = sum(1 for name in program.imms if name.startswith(bindings.NEWTON_ENABLE_PREFIX))
    step = (program.static_count() - AGGREGATOR_FIXED_COST) // unrolled  # a Newton step and its guard
    skip = int(fp.invsqrt_newton_steps < unrolled)  # the guard that skips the disabled steps
    assert executed == {AGGREGATOR_FIXED_COST + step * fp.invsqrt_newton_steps + skip}


@pytest.mark.slow
@pytest.mark.parametrize("seed_bits", [2, 4, 8, 12])
@pytest.mark.parametrize("steps", [0, 1, 3, 6])
def test_rms_aggregator_exhaustive(seed_bits, steps):
    _exhaustive(FixedPointConfig(invsqrt_seed_bits=seed_bits, invsqrt_newton_steps=steps))


# ================================================================================ golden contract details
def test_residual_rescaled_term_saturates_in_its_register():
    """golden.residual saturates the rescaled mixer output in its own 24-bit register before the add (a
    24-bit machine has no wider register to hold it); the program does the same. With x at the bottom of the
    range and a term beyond the top, the exact sum would be in range; both give x + (2^23 - 1)."""
    rng = np.random.default_rng(5)
    fp = FixedPointConfig()
    net = random_net(rng, 4, 3, fp)
    q = net.layers[0]
    q.o = dataclasses.replace(q.o, out_m=(1 << MANTISSA_BITS) - 1, out_k=0)
    x = np.array([LO, LO, HI, -5], dtype=np.int64)
    o = np.array([1 << 9, -(1 << 9), -(1 << 9), 0], dtype=np.int64)  # |o m| ~ 2^24 > 2^23
    got = GoldenModel(net).residual(x, o, q.o, "resid")
    np.testing.assert_array_equal(got, np.clip(x + np.clip(o * q.o.out_m, LO, HI), LO, HI))
    assert got[0] == LO + HI and got[2] == HI + LO  # the exact sum would differ by the clipped part
    machine = bindings.residual(net, 0).machine()
    machine.step({"x_in": x, "x_in_tok": 1})  # x waits in the queue for o
    res = machine.step({"o_in": o, "o_in_tok": 1})
    np.testing.assert_array_equal(res.scratch["r"], got)


def test_sigmoid_index_left_shift_saturation_agrees():
    """A pre-activation format coarser than the LUT grid makes the index shift a left shift: golden shifts
    without saturation, the program saturates in 24 bits; both clamp to the same table end."""
    rng = np.random.default_rng(9)
    fp = FixedPointConfig()
    net = random_net(rng, 6, 5, fp)
    q = net.layers[0]
    grid = lut_frac_bits(fp.sigmoid_lut_size, fp.sigmoid_lut_range)
    q.pre_frac.update(i=0, f=0)  # index shift = -grid: a left shift
    g = GoldenModel(net)
    acc = np.array([LO, -1, 0, 1, HI, 1 << 20], dtype=np.int64)
    binding = bindings.mlgru(net, 0)
    assert binding.imms["sig_k_i"] == binding.imms["sig_k_f"] == -grid
    machine = binding.machine()
    res = machine.step({"acc_i": acc, "acc_f": acc, "acc_g": acc, "acc_f_tok": 1})
    index_lines = {ins.line for ins in machine.program.entries["update"]
                   if ins.op == "shr" and str(ins.operands[2]) in ("sig_k_i", "sig_k_f")}
    assert index_lines & set(res.overflow_sites), "the case does not saturate an index shift"
    gz, h = g.mlgru(q, acc[None], acc[None], acc[None], np.zeros(6, np.int64), 0)
    np.testing.assert_array_equal(res.state["h"], h)
    np.testing.assert_array_equal(res.scratch["gz"], gz[0])


def test_shift_immediates_beyond_the_isa_range_do_not_change_results():
    """Shifts outside [-MAX_LSHIFT, MAX_RSHIFT] are clamped at binding; results still equal golden's."""
    rng = np.random.default_rng(3)
    net = random_net(rng, 5, 4, FixedPointConfig())
    net.head.inner_k, net.head.t_k = isa.MAX_RSHIFT + 9, -(isa.MAX_LSHIFT + 3)
    b = bindings.final_norm(net)
    assert b.imms["w1_k"] == isa.MAX_RSHIFT and b.imms["t_k"] == -isa.MAX_LSHIFT
    g = GoldenModel(net)
    machine = b.machine()
    x = np.array([-3, -1, 0, 1, 7], dtype=np.int64)  # small: golden's unsaturated left shift stays in int64
    r = np.array([1, 2, 5, 3, 0], dtype=np.int64)
    machine.step({"x_in": x, "x_in_tok": 1})
    machine.step({})
    res = machine.step({"r_in": r, "r_in_tok": 1})
    np.testing.assert_array_equal(res.outputs["a_out"], g.spikes_from_inv_rms(net.head, x, r, "head")["lm_head"])
    x1 = np.array([LO, -3, 0, 7, HI], dtype=np.int64)
    np.testing.assert_array_equal(machine.run({"x_in": x1, "x_in_tok": 1}).outputs["sq_out"], g.norm_squares(net.head, x1, "head"))


# ================================================================================ bindings
def test_bindings_check_the_program_constants():
    """The programs' algorithm constants equal the Python names they restate (checked on every load)."""
    for name, consts in bindings.ALGORITHM_CONSTANTS.items():
        program = load_program(name)
        for const, want in consts.items():
            assert program.consts[const].value == want, (name, const)


def test_bindings_reject_unsupported_configs(tmp_path):
    rng = np.random.default_rng(0)
    net = random_net(rng, 3, 2, FixedPointConfig())
    wide = types.SimpleNamespace(**{**vars(net), "fp": dataclasses.replace(net.fp, state_bits=32)})
    with pytest.raises(MicrocodeError, match="24-bit registers"):
        bindings.mlgru(wide, 0)
    net.layers[0].lb = np.array([0, 1 << net.fp.gate_frac_bits, (1 << net.fp.gate_frac_bits) + 1])
    with pytest.raises(MicrocodeError, match="lower bounds"):
        bindings.mlgru(net, 0)
    with pytest.raises(MicrocodeError, match="NOPE"):
        bindings.specialise(bindings.GLU, {"NOPE": 1})


def test_specialised_programs_follow_the_config():
    net = random_net(np.random.default_rng(1), 3, 2, CONFIGS[1])
    program = bindings.glu(net, 0).assembled()
    assert program.out_ports["a_out"].bits == CONFIGS[1].act_bits
    assert program.luts["sigmoid"].size == CONFIGS[1].sigmoid_lut_size
    agg = bindings.rms_aggregator(net)
    assert agg.assembled().luts["seed"].size == net.invsqrt_lut.size
    assert sum(agg.imms[k] for k in agg.imms if k.startswith(bindings.NEWTON_ENABLE_PREFIX)) == \
        CONFIGS[1].invsqrt_newton_steps


def test_instruction_counts_cover_every_neuron_program():
    counts = instruction_counts()
    for name in bindings.NEURON_PROGRAMS:
        assert counts[name] == load_program(name).static_count() > 0


def test_python_models_run_the_microcode():
    """The fixed_pt model of each of the five neuron processes is the generic microcode model bound to that
    process's program: it binds the program once (at its first step) and never calls the golden model."""
    import importlib

    from lava_matmulfree.processes import neuron

    code = "\n".join(line for line in inspect.getsource(neuron).splitlines()
                     if line.strip().startswith(("import", "from")) or "golden" in line.split("#")[0].split('"')[0])
    assert "golden" not in code  # no import or call of the golden model (docstrings may name it)
    assert ".bind(" not in inspect.getsource(neuron.PyMicrocodedFixedModel.run_spk).replace("self._bind()", "")
    for name in bindings.NEURON_PROGRAMS:
        module = importlib.import_module(f"lava_matmulfree.processes.{name}.models")
        (fixed,) = [v for v in vars(module).values() if isinstance(v, type)
                    and issubclass(v, neuron.PyMicrocodedFixedModel) and v is not neuron.PyMicrocodedFixedModel]
        assert fixed.PROCESS.PROGRAM == name
        assert "import golden" not in inspect.getsource(module) and "golden_fast" not in inspect.getsource(module)


# ================================================================================ the Lava graph
PROMPT = [5, 17, 99, 3, 250, 7]
NEW_TOKENS = 4


@pytest.fixture(scope="module")
def tiny_net(tiny_cfg, _tiny_params_session):
    from lava_matmulfree.model.calibration import calibrate, random_calibration_sequences
    from lava_matmulfree.model.float_model import FloatModel
    from lava_matmulfree.model.quantise import compile_network

    fp = FixedPointConfig()
    fm = FloatModel(tiny_cfg, _tiny_params_session)
    return compile_network(fm, calibrate(fm, random_calibration_sequences(tiny_cfg.vocab_size), fp), fp)


@pytest.mark.lava
@pytest.mark.timeout(300)
def test_decomposed_graph_equals_golden(tiny_net):
    """The decomposed graph (22 leaf processes per block: the neuron processes running their microcode, every
    connection Lava's own Dense with Lava's own bit-accurate model, as plain Loihi2SimCfg selects them) gives the
    golden model's logits and tokens, and its probed h, residual stream and aggregator sums."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.models import PyDenseModelBitAcc

    from lava_matmulfree.graph.builder import build_graph
    from lava_matmulfree.graph.runner import GraphRunner

    graph = build_graph(tiny_net, "decomposed", capacity=len(PROMPT) + NEW_TOKENS)
    probes = ["l0.h", "l2.h", "l1.x", "l1.r", "l2.y", "l0.gate_sum_sq", "head.x"]
    with GraphRunner(graph, Loihi2SimCfg(select_tag="fixed_pt", select_sub_proc_model=True), timeout=200) as run:
        res = run.generate(PROMPT, NEW_TOKENS, probes=probes)
        lm_head = [p for p in graph.head.procs if p.name == "lm_head"]  # the head decomposed: its LM head Dense
        assert len(lm_head) == 1 and lm_head[0].model_class is PyDenseModelBitAcc
    gm = GoldenModel(tiny_net)
    gm.probes = {}
    logits, state = gm.prefill(PROMPT)
    rows, tokens = [logits], [int(np.argmax(logits[-1]))]
    for _ in range(NEW_TOKENS - 1):
        step_logits, state = gm.step(tokens[-1], state)
        rows.append(step_logits[None])
        tokens.append(int(np.argmax(step_logits)))
    assert res.tokens == tokens
    np.testing.assert_array_equal(res.logits, np.concatenate(rows))
    golden_names = {"l0.h": "l0.h", "l2.h": "l2.h", "l1.x": "l1.x", "l1.r": "l1.r", "l2.y": "l2.y",
                    "l0.gate_sum_sq": "l0.gate.sum_sq", "head.x": "head.x"}
    for probe, name in golden_names.items():
        want = np.concatenate(gm.probes[name]).reshape(res.probes[probe].shape)
        np.testing.assert_array_equal(res.probes[probe], want, err_msg=probe)
