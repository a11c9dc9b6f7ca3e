"""Loihi 2 mapping: partitioning onto cores/chips, memory accounting, encodings (pure numpy, fast)."""
from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pytest

from lava_matmulfree.config import ModelConfig, load_config
from lava_matmulfree.loihi.core_groups import MappingOptions, group_memory_bytes
from lava_matmulfree.loihi.hardware import (GAUSSIAN_ZERO_FRACTION, LOIHI2, CostModelError, load_hardware, provenance,
                                      with_overrides)
from lava_matmulfree.loihi.mapping import build_mapping

HAND = ModelConfig(name="hand", vocab_size=16, hidden_size=8, num_layers=1, intermediate_size=16)
PACKED = MappingOptions(allocation="packed")


def test_gaussian_zero_fraction_matches_sampling():
    # P(|w| < mean|w| / 2) for Gaussian w: absmean ternarisation rounds those to 0
    assert GAUSSIAN_ZERO_FRACTION == pytest.approx(math.erf(1 / (2 * math.sqrt(math.pi))))
    assert 0.30 < GAUSSIAN_ZERO_FRACTION < 0.32
    w = np.random.default_rng(0).standard_normal(400_000)
    t = np.clip(np.round(w / np.abs(w).mean()), -1, 1)
    assert (t == 0).mean() == pytest.approx(GAUSSIAN_ZERO_FRACTION, abs=0.005)


def test_sparse_bits_derived_from_the_7_5x_ratio():
    assert LOIHI2.sparse_bits_per_nonzero == pytest.approx(22.5)  # 7.5 * 2 / (2/3)
    cfg = ModelConfig(name="m", vocab_size=64, hidden_size=1024, num_layers=1, intermediate_size=1024)
    m = build_mapping(cfg, options=MappingOptions(zero_fraction=1 / 3, allocation="packed"))
    o = next(mm for g, mm in m.matrices() if mm.name == "o_proj")
    assert o.weight_bits(LOIHI2, "sparse") / o.weight_bits(LOIHI2, "dense") == pytest.approx(7.5)
    # with the per-core overheads the whole group still costs about 7.5x
    g = m.by_name["L0.o"]
    dense = group_memory_bytes(g, LOIHI2)
    sparse_map = build_mapping(cfg, options=MappingOptions(zero_fraction=1 / 3, allocation="packed",
                                                           encoding="sparse"))
    sparse = group_memory_bytes(sparse_map.by_name["L0.o"], LOIHI2)
    assert 6.5 < sparse / dense < 8.0


def test_hand_model_partition():
    """1 layer, d=8, I=16, V=16: everything fits one core per group; check counts by hand."""
    m = build_mapping(HAND, options=PACKED)
    names = [g.name for g in m.groups]
    assert names == ["input.resid", "L0.agg0", "L0.ifg", "L0.o", "L0.gate", "L0.down", "head.agg0", "head.lm"]
    assert all(g.cores == 1 for g in m.groups)
    assert m.cores == 8 and m.chips == 1
    # four aggregators (fan-in 8, 8, 8, 16) packed on one core
    agg = m.by_name["L0.agg0"]
    assert agg.neurons == 4 and sum(f for _, f in agg.aggregators) == 40
    assert m.by_name["L0.ifg"].weights == 3 * 64
    assert m.by_name["L0.gate"].weights == 2 * 16 * 8
    assert m.by_name["L0.down"].weights == 8 * 16
    assert m.by_name["head.lm"].weights == 16 * 8
    # hops: embedding injection + 12 per layer + 3 head hops
    assert m.hops_per_layer == 12 and m.head_hops == 3 and m.pipeline_depth == 16
    # memory of the ifg core: 8 neurons x (3 rows x 8 inputs x 2 bits + 72 state bits) + 2048 B microcode
    # reserve + 8 input axons x 32 bits
    expect = (8 * (3 * 8 * 2 + 72)) / 8 + 2048 + 8 * 32 / 8
    assert group_memory_bytes(m.by_name["L0.ifg"], LOIHI2) == pytest.approx(expect)


def test_fold_hops_and_aggregators():
    on = build_mapping(HAND, options=PACKED)
    off = build_mapping(HAND, options=dataclasses.replace(PACKED, fold_norms=False))
    assert on.hops_per_layer == 12 and off.hops_per_layer == 18
    assert sum(g.neurons for g in on.groups if g.role == "aggregator" and g.layer == 0) == 4
    assert sum(g.neurons for g in off.groups if g.role == "aggregator" and g.layer == 0) == 7
    assert off.head_hops == 5


def test_memory_sums_over_layers_equal_total():
    cfg = load_config("370m").model
    m = build_mapping(cfg)
    per_layer = [m.layer_totals(l) for l in range(-1, cfg.num_layers + 1)]
    assert sum(t["memory_bytes"] for t in per_layer) == pytest.approx(m.memory_bytes, abs=cfg.num_layers + 2)
    assert sum(t["cores"] for t in per_layer) == m.cores
    assert sum(t["weights"] for t in per_layer) == (
        cfg.num_layers * (4 * 1024 ** 2 + 3 * 1024 * cfg.intermediate_size) + cfg.vocab_size * 1024)
    # packed, every layer but the last (whose residual neurons also fan out to the big LM head) is the same
    packed = build_mapping(cfg, options=PACKED)
    same = [packed.layer_totals(l) for l in range(cfg.num_layers - 1)]
    assert len({(t["cores"], t["memory_bytes"]) for t in same}) == 1
    assert packed.layer_totals(cfg.num_layers - 1)["cores"] > same[0]["cores"]


def test_core_limits_hold_370m():
    m = build_mapping(load_config("370m").model)
    hw = m.hw
    assert m.chips == math.ceil(m.cores / hw.cores_per_chip)
    for g in m.groups:
        assert g.cores >= 1
        if g.role == "synapses":
            per_core = group_memory_bytes(g, hw) / g.cores
            assert per_core <= hw.core_memory_bytes
            assert g.neurons_per_core <= hw.neurons_per_core
            assert g.d_in_per_core <= hw.max_fan_in
        if g.role != "aggregator":
            assert g.neurons_per_core * g.fanout_cores <= hw.max_fan_out, g.name
        else:
            assert sum(f for _, f in g.aggregators) <= hw.max_fan_in * g.cores


def test_balanced_uses_the_spare_cores_packed_does_not():
    cfg = load_config("370m").model
    packed = build_mapping(cfg, options=PACKED)
    bal = build_mapping(cfg)
    assert bal.chips == packed.chips
    assert packed.cores <= bal.cores <= bal.chips * LOIHI2.cores_per_chip
    assert sum(g.min_cores for g in bal.groups) == packed.cores


def test_dense_sparse_choice_flips_at_the_break_even_zero_fraction():
    # sparse costs 22.5 b per non-zero, dense 2 b per weight: break-even at 1 - 2/22.5 = 91.1% zeros
    cfg = ModelConfig(name="m", vocab_size=64, hidden_size=1024, num_layers=1, intermediate_size=1024)
    z_even = 1 - LOIHI2.dense_weight_bits / LOIHI2.sparse_bits_per_nonzero
    assert z_even == pytest.approx(0.9111, abs=1e-4)
    for z, want in ((GAUSSIAN_ZERO_FRACTION, "dense"), (0.85, "dense"), (0.95, "sparse"), (0.99, "sparse")):
        m = build_mapping(cfg, options=MappingOptions(zero_fraction=z, allocation="packed"))
        encs = {mm.encoding for _, mm in m.matrices()}
        assert encs == {want}, (z, encs)
        assert all(mm.reason.startswith(want) for _, mm in m.matrices())
    # forced encodings are obeyed and say so
    m = build_mapping(cfg, options=MappingOptions(encoding="sparse"))
    assert all(mm.encoding == "sparse" and "forced" in mm.reason for _, mm in m.matrices())


def test_each_encoding_reason_names_its_matrix_and_a_real_trade():
    """The reasons said "sparse would take 1 cores for the group instead of 1 ...: memory (chips) binds first" and
    named no matrix: now each names its matrix, and where the cores are equal, what else sparse would cost."""
    from lava_matmulfree.loihi.presets import PRESETS, apply

    for cfg in (load_config("370m").model, load_config("tiny").model):
        hw, opts = apply(LOIHI2, MappingOptions(), PRESETS["project"])
        for g in build_mapping(cfg, hw, opts).groups:
            for m in g.matrices:
                assert f"for {m.name} " in m.reason or m.reason.startswith("sparse"), m.reason
                for sparse, dense in re.findall(r"take (\d+) cores instead of (\d+)", m.reason):
                    assert int(sparse) > int(dense), m.reason
                assert "binds first" not in m.reason


def test_sparse_encoding_needs_about_7_5x_the_cores():
    cfg = load_config("370m").model
    dense = build_mapping(cfg, options=MappingOptions(encoding="dense", allocation="packed"))
    sparse = build_mapping(cfg, options=MappingOptions(encoding="sparse", allocation="packed"))
    assert 6 < sparse.cores / dense.cores < 8.5


def test_monotone_in_model_size():
    maps = [build_mapping(load_config(n).model) for n in ("370m", "1.3b", "2.7b")]
    for a, b in zip(maps, maps[1:]):
        assert a.cores < b.cores and a.chips < b.chips and a.memory_bytes < b.memory_bytes


def test_fan_in_above_the_limit_splits_and_adds_hops():
    # 1.3B: I = 5632 > 4096 input axons: down_proj splits in two input ranges (+1 partial-sum hop) and the
    # down-norm aggregator becomes a two-level tree (+1 hop)
    cfg = load_config("1.3b").model
    assert cfg.intermediate_size > LOIHI2.max_fan_in
    m = build_mapping(cfg)
    assert m.by_name["L0.down"].fan_in_splits == 2
    assert m.hops_per_layer == 14
    kinds = [h.kind for h in m.hops if h.layer == 0]
    assert kinds.count("partial") == 1


def test_cores_per_chip_is_a_parameter():
    cfg = load_config("370m").model
    m120 = build_mapping(cfg, options=PACKED)
    m128 = build_mapping(cfg, dataclasses.replace(LOIHI2, cores_per_chip=128), PACKED)
    assert m120.cores == m128.cores
    assert m128.chips == math.ceil(m128.cores / 128) <= m120.chips


def test_option_and_hardware_validation(tmp_path):
    with pytest.raises(CostModelError, match="encoding"):
        build_mapping(HAND, options=MappingOptions(encoding="csr"))
    with pytest.raises(CostModelError, match="zero_fraction"):
        build_mapping(HAND, options=MappingOptions(zero_fraction=1.5))
    with pytest.raises(CostModelError, match="unknown Loihi2Spec field"):
        with_overrides(LOIHI2, {"cores_per_chipp": 3})
    with pytest.raises(CostModelError, match="exceeds"):
        with_overrides(LOIHI2, {"cores_per_chip": 200})
    with pytest.raises(CostModelError, match="overhead"):
        build_mapping(HAND, dataclasses.replace(LOIHI2, core_memory_bytes=2049))
    with pytest.raises(CostModelError, match="do not fit"):
        build_mapping(HAND, dataclasses.replace(LOIHI2, core_memory_bytes=2090))
    f = tmp_path / "hw.toml"
    f.write_text("[loihi2]\ncores_per_chip = 128\nstatic_power_per_chip_w = 2\n[jetson]\ndtype = 'fp32'\n"
                 "[h100]\npower_w = 350\n")
    specs = load_hardware(f)
    assert specs["loihi2"].cores_per_chip == 128 and specs["loihi2"].static_power_per_chip_w == 2.0
    assert specs["jetson"].dtype == "fp32" and specs["h100"].power_w == 350.0
    f.write_text("[loihi3]\nx = 1\n")
    with pytest.raises(CostModelError, match="unknown section"):
        load_hardware(f)


def test_shipped_hardware_file_loads():
    from lava_matmulfree.config import CONFIG_DIR

    assert load_hardware(CONFIG_DIR / "loihi2_hw.toml")["loihi2"] == LOIHI2


def test_every_constant_has_source_and_confidence():
    from lava_matmulfree.loihi.hardware import H100_NOTES, H100_SXM, JETSON_ORIN_NANO

    rows = provenance(LOIHI2) + provenance(JETSON_ORIN_NANO) + provenance(H100_SXM, "h100", H100_NOTES)
    for row in rows:
        assert row["source"], row
        assert row["confidence"] in ("high", "medium", "low", "fitted"), row
    # at most three constants are fitted
    assert len([r for r in rows if r["confidence"] == "fitted"]) == 3
