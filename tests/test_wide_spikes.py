"""Spikes wider than 8 bits (act_bits 9..16, the paper's W8A16) through the golden models.

The reference (golden.py) and the fused fast path (golden_fast.py) must agree bit for bit, overflow counts
included; wide spikes must really leave the int8 range (so the int16 synapse path is exercised); and where
the dendritic accumulator's worst case does not fit, it is sized by calibration and saturations are counted.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

from lava_matmulfree.evaluation.accuracy import accuracy_report
from lava_matmulfree.model.calibration import Calibration, calibrate, random_calibration_sequences
from lava_matmulfree.config import FixedPointConfig, load_config
from lava_matmulfree.model.float_model import FloatModel
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.io.params import random_params
from lava_matmulfree.model.quantise import compile_network, dendrite_fits

NARROW = dict(state_bits=16, gate_frac_bits=12, norm_square_bits=8)  # a 16-bit machine: accumulators overflow


@lru_cache(maxsize=None)
def tiny_model(seed: int):
    cfg = load_config("tiny").model
    model = FloatModel(cfg, random_params(cfg, seed=seed))
    return model, calibrate(model, random_calibration_sequences(cfg.vocab_size), FixedPointConfig())


def tokens(seed: int, n: int = 23) -> list[int]:
    return np.random.default_rng(500 + seed).integers(0, 259, size=n).tolist()


def run_both(net, seq):
    ref, fast = GoldenModel(net), FastGoldenModel(net)
    ref.probes, fast.probes = {}, {}
    a, sa = ref.prefill(seq)
    b, sb = fast.prefill(seq)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(sa.h, sb.h)
    assert dict(ref.ovf) == dict(fast.ovf)
    return ref


@pytest.mark.parametrize("act_bits", [9, 12, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_wide_spikes_reference_equals_fast(act_bits, seed):
    model, cal = tiny_model(seed)
    net = compile_network(model, cal, FixedPointConfig(act_bits=act_bits))
    ref = run_both(net, tokens(seed))
    lo, hi = -(1 << (act_bits - 1)), (1 << (act_bits - 1)) - 1
    spikes = [v for k, vs in ref.probes.items() if k.endswith(".spikes") for v in vs]
    assert all(v.min() >= lo and v.max() <= hi for v in spikes)
    assert max(int(np.abs(v).max()) for v in spikes) > 128  # the int16 path really runs
    # chunked prefill == one prefill, with the state carried
    g = FastGoldenModel(net)
    seq = tokens(seed)
    full, _ = g.prefill(seq)
    first, st = g.prefill(seq[:9])
    second, _ = g.prefill(seq[9:], st)
    np.testing.assert_array_equal(np.concatenate([first, second]), full)


def test_wider_spikes_do_not_lose_accuracy():
    """Relative residual error at 16 bits is no worse than at 8 (quantisation noise of the spikes shrinks)."""
    model, cal = tiny_model(0)
    seqs = [tokens(s) for s in range(2)]
    errs = {}
    for bits in (8, 16):
        rep = accuracy_report(model, compile_network(model, cal, FixedPointConfig(act_bits=bits)), seqs)
        errs[bits] = rep.max_resid_err
        assert rep.num_accumulator_saturations == 0 and all(d["guaranteed"] for d in rep.dendrites)
    assert errs[16] <= errs[8]


def test_accumulator_sized_by_calibration_and_saturations_counted():
    """16-bit spikes into a 16-bit accumulator: the worst case never fits, so the compiler widens spike
    scales to keep the calibrated maximum headroom_bits below the limit. A calibration that saw 64x smaller
    outputs than the text really gives makes the accumulators saturate: each is clipped and counted, the
    reference and the fast path alike, and the report lists them."""
    model, cal = tiny_model(0)
    fp = FixedPointConfig(act_bits=16, **NARROW)
    net = compile_network(model, cal, fp)
    fits = dendrite_fits(net)
    assert not any(f.guaranteed for f in fits)
    assert any(f.widened for f in fits)
    # gate_proj's accumulator unit is read back from its mantissa (15 bits): equal up to ~2**-14
    assert all(f.headroom_bits >= fp.headroom_bits - 1e-4 for f in fits)
    run_both(net, tokens(0))

    out_stats = ("pre_i", "pre_f", "pre_g", "out_o", "u", "v", "out_down")
    shrunk = {k: (v / 64 if k == "logits" or k.split(".")[-1] in out_stats else v) for k, v in cal.stats.items()}
    bad = compile_network(model, dataclasses.replace(cal, stats=shrunk), fp)
    ref = run_both(bad, tokens(0))
    acc = {k: v for k, v in ref.ovf.items() if k.endswith(".acc")}
    assert acc, "expected saturated accumulators"
    limit = (1 << (fp.state_bits - 1)) - 1
    g = GoldenModel(bad)
    ls = g.project(bad.layers[0].gate_w, np.full((1, 72), -(1 << 15)), "probe")
    assert np.abs(ls).max() <= limit + 1 and g.ovf["probe.acc"] > 0
    rep = accuracy_report(model, bad, [tokens(0)])
    assert rep.num_accumulator_saturations > 0
    assert set(rep.accumulator_saturations) <= set(rep.state_overflows)
    assert "saturations" in rep.table()


def test_old_calibration_without_output_maxima_is_refused_only_when_needed():
    model, cal = tiny_model(0)
    old = Calibration(stats={k: v for k, v in cal.stats.items() if "out_" not in k and k != "logits"},
                      num_tokens=cal.num_tokens, percentile=cal.percentile)
    compile_network(model, old, FixedPointConfig(act_bits=16))  # the worst case fits d = 72: nothing needed
    with pytest.raises(ValueError, match="no 'l0.out_o' statistic"):
        compile_network(model, old, FixedPointConfig(act_bits=16, **NARROW))


@pytest.mark.lava
@pytest.mark.timeout(600)
@pytest.mark.parametrize("backend", ["sim-fused", "sim"])
def test_lava_backends_equal_golden_at_16_bits(backend):
    """act_bits 16 through the Lava simulator (fused blocks and decomposed processes): the same logits and
    tokens as the golden model, bit for bit (greedy, 2 new tokens after a 4-token prompt), and the same activity
    counts: 16 bits a spike (the decomposed graph's Dense connections declared 8-bit messages, so counted half)."""
    from lava_matmulfree.graph.backends import generate

    model, cal = tiny_model(1)
    net = compile_network(model, cal, FixedPointConfig(act_bits=16))
    prompt = tokens(1, 4)
    ref = generate("reference", net, prompt, 2, 0.0, 0, 0, activity=True)
    sim = generate(backend, net, prompt, 2, 0.0, 0, 0, activity=True)
    assert sim.tokens == ref.tokens
    np.testing.assert_array_equal(np.asarray(sim.logits), np.asarray(ref.logits))
    for name in ("l0.i", "l1.down", "head.lm_head"):
        got = sim.activity.connections[name]
        assert got["spikes"] > 0 and got["bits"] == 16 * got["spikes"], (name, got)
    assert sim.activity.counts() == ref.activity.counts()
