"""The speed benchmarks run end to end on tiny shapes, and the pieces they rely on compute the right thing:
the PyTorch outside reference is the float model's architecture, and the golden model's fused kernels give
the numpy reference path's integers. No test looks at a time."""
from __future__ import annotations

import copy
import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lava_matmulfree.evaluation.accuracy import build_evaluation
from lava_matmulfree.model.golden import GoldenModel
from lava_matmulfree.model.golden_fast import FastGoldenModel
from lava_matmulfree.model.quantise import compile_network

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def load_bench(name: str):
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # bench_decode imports bench_lava_overhead
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny():
    return build_evaluation("tiny", seed=0)


# ---------------------------------------------------------------------------------- the outside reference
def test_torch_reference_is_the_float_model(tiny):
    """In float64 the PyTorch reference and FloatModel agree to summation order, over a prefill and a decode
    step with the state carried (with and without the activation quantiser: both use the same int8 grid)."""
    torch = pytest.importorskip("torch")
    from lava_matmulfree.model.float_model import FloatModel
    from lava_matmulfree.io.params import random_params

    bd = load_bench("bench_decode")
    fm = FloatModel(tiny.cfg, random_params(tiny.cfg, seed=3), dtype=np.float64)
    ref = bd.TorchReference(fm, act_quant=True, dtype=torch.float64)
    tokens = [5, 100, 258, 0, 17]
    want, fs = fm.prefill(tokens)
    got, ts = ref.prefill(tokens)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ts.numpy(), fs.h, rtol=1e-9, atol=1e-12)
    w1, _ = fm.step(42, fs)
    g1, _ = ref.step(42, ts)
    np.testing.assert_allclose(g1.numpy(), w1, rtol=1e-9, atol=1e-9)
    plain = bd.TorchReference(fm, act_quant=False, dtype=torch.float64).prefill(tokens)[0].numpy()
    assert np.all(np.isfinite(plain)) and not np.allclose(plain, want)  # the quantiser matters


# ---------------------------------------------------------------------------------- golden kernels
def _run(net, use_kernels: bool, seqs):
    g = FastGoldenModel(net) if use_kernels else GoldenModel(net)
    g.probes = {}
    outs, st = [], None
    for s in seqs:
        lg, st = g.prefill(s, st)
        outs.append(lg)
    for t in (3, 7):
        lg, st = g.step(t, st)
        outs.append(lg)
    return g, outs, st


def _nets(setup):
    net = setup.net
    yield "base", net
    bad = copy.deepcopy(net)  # rescales pushed up: residual, pre-activation, u and down saturate
    for q in bad.layers:
        q.o.out_m, q.i.out_m = int(q.o.out_m) << 12, int(q.i.out_m) << 6
        q.u_m, q.down.out_m = int(q.u_m) << 8, int(q.down.out_m) << 10
    yield "overflowing", bad
    # the last: the widest registers, multipliers and gates a config allows (the products' operands near 2**24)
    for kw in ({"act_bits": 4}, {"invsqrt_newton_steps": 0}, {"sigmoid_lut_size": 16}, {"norm_square_bits": 6},
               {"gate_frac_bits": 10}, {"state_bits": 25, "mantissa_bits": 24, "gate_frac_bits": 23}):
        yield str(kw), compile_network(setup.float_model, setup.calibration, dataclasses.replace(setup.fp, **kw))


@pytest.mark.parametrize("seed", [0, 1])
def test_fused_kernels_equal_the_numpy_reference(seed):
    """Same logits (dtype included), states, probes (every intermediate, dtype included) and overflow counts
    with the numba kernels and with the numpy reference path, on normal, saturating and re-configured nets."""
    setup = build_evaluation("tiny", seed=seed)
    rng = np.random.default_rng(seed)
    V = setup.cfg.vocab_size
    seqs = [rng.integers(0, V, 9).tolist(), rng.integers(0, V, 1).tolist(), rng.integers(0, V, 4).tolist()]
    for tag, net in _nets(setup):
        g1, o1, s1 = _run(net, True, seqs)
        g2, o2, s2 = _run(net, False, seqs)
        for a, b in zip(o1, o2):
            assert a.dtype == b.dtype and np.array_equal(a, b), tag
        assert np.array_equal(s1.h, s2.h), tag
        assert dict(g1.ovf) == dict(g2.ovf), tag
        assert list(g1.probes) == list(g2.probes), tag
        for k in g1.probes:
            for a, b in zip(g1.probes[k], g2.probes[k]):
                assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), (tag, k)
        if tag == "overflowing":
            assert g1.ovf.total() > 1000  # the saturation paths were exercised


def _decode(g, seqs):
    outs, st = [], None
    for s in seqs:
        lg, st = g.prefill(s, st)
        outs.append(lg)
    for t in (3, 7, 258):
        lg, st = g.step(t, st)
        outs.append(lg)
    return outs, st


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.timeout(600, method="thread")  # a team stuck at its spin barrier is machine code: no signal reaches it
def test_whole_model_kernel_equals_the_numpy_reference(seed, parallel):
    """The one-call whole-model kernel (no probes) gives the numpy reference's logits, states and overflow counts,
    on normal, saturating and re-configured nets, int8 and int16 spikes (act_bits 12, 16), weights held as int8
    or only packed; prefill chunks of several lengths, then single steps."""
    setup = build_evaluation("tiny", seed=seed)
    rng = np.random.default_rng(seed + 10)
    V = setup.cfg.vocab_size
    seqs = [rng.integers(0, V, 9).tolist(), rng.integers(0, V, 1).tolist(), rng.integers(0, V, 5).tolist()]
    nets = list(_nets(setup))
    for bits in (12, 16):
        nets.append((f"act_bits={bits}", compile_network(setup.float_model, setup.calibration,
                                                         dataclasses.replace(setup.fp, act_bits=bits))))
    nets.append(("packed", copy.deepcopy(setup.net).pack_weights()))
    for tag, net in nets:
        fast = FastGoldenModel(net, parallel=parallel)
        o1, s1 = _decode(fast, seqs)
        assert fast.model_plan() is not None, tag  # the whole-model path really ran
        ref = GoldenModel(net)
        o2, s2 = _decode(ref, seqs)
        for a, b in zip(o1, o2):
            assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), tag
        assert np.array_equal(s1.h, s2.h), tag
        assert dict(fast.ovf) == dict(ref.ovf), tag
        if tag == "overflowing":
            assert fast.ovf.total() > 1000


def test_whole_model_kernel_on_extreme_states(tiny):
    """Full-range 24-bit states and a saturating network through the whole-model kernel and the reference."""
    net = copy.deepcopy(tiny.net)
    for q in net.layers:
        q.o.out_m = int(q.o.out_m) << 14
    rng = np.random.default_rng(3)
    lo, hi = -(1 << 23), (1 << 23) - 1
    fast, ref = FastGoldenModel(net), GoldenModel(net)
    st = fast.init_state()
    st.h[:] = rng.integers(lo, hi + 1, st.h.shape)
    st.h[0, :5] = [lo, hi, 0, lo, hi]
    h_in = st.h.copy()
    a, sa = fast.prefill([1, 2, 3], st)
    b, sb = ref.prefill([1, 2, 3], st)
    assert np.array_equal(a, b) and np.array_equal(sa.h, sb.h) and dict(fast.ovf) == dict(ref.ovf)
    assert fast.ovf.total() > 0 and np.array_equal(st.h, h_in)  # the caller's state is not modified
    assert fast.model_plan() is not None


def test_fused_methods_on_extreme_inputs(tiny):
    """The per-method kernels against the numpy path on full-range 24-bit inputs (products wrap in int64
    exactly as numpy's do) and int32 accumulators."""
    net = tiny.net
    q = net.layers[1]
    rng = np.random.default_rng(7)
    lo, hi = -(1 << 23), (1 << 23) - 1
    d, I = net.cfg.hidden_size, net.cfg.intermediate_size
    acc = [rng.integers(lo, hi + 1, (3, d)) for _ in range(3)]
    h0 = rng.integers(lo, hi + 1, d)
    uv = rng.integers(lo, hi + 1, (3, 2 * I))
    x = rng.integers(lo, hi + 1, (3, d))
    fast, ref = FastGoldenModel(net), GoldenModel(net)
    for g in (fast, ref):
        g.probes = {}
    for cast in (np.int64, np.int32):
        a = [c.astype(cast) if cast == np.int64 else np.clip(c, -(1 << 20), 1 << 20).astype(cast) for c in acc]
        v1, h1 = fast.mlgru(q, *a, h0, 1)
        v2, h2 = ref.mlgru(q, *a, h0, 1)
        assert np.array_equal(v1, v2) and np.array_equal(h1, h2)
        u = uv.astype(cast) if cast == np.int64 else np.clip(uv, -(1 << 20), 1 << 20).astype(cast)
        assert np.array_equal(fast.glu(q, u, 1), ref.glu(q, u, 1))
        assert np.array_equal(fast.residual(x, a[0], q.o, "r"), ref.residual(x, a[0], q.o, "r"))
    other = FastGoldenModel(net)  # the fused kernels take these inputs (not the reference's fallback)
    assert other._mlgru_fused(q, *acc, h0, 1) is not None and other._glu_fused(q, uv, 1) is not None
    assert other._norm_spikes_fused(q.attn, x, "n") is not None
    for qn in (q.attn, q.gate, q.mlp, net.head):
        s1 = fast.norm_spikes(qn, x, "n")
        s2 = ref.norm_spikes(qn, x, "n")
        assert s1.keys() == s2.keys() and all(np.array_equal(s1[p], s2[p]) for p in s1)
    S = np.concatenate([rng.integers(0, 1 << 23, 200), [0, 1, 2, (1 << 23) - 1, (1 << 22), (1 << 22) - 1]])
    assert np.array_equal(fast.inv_rms(S, "s"), ref.inv_rms(S, "s"))
    assert dict(fast.ovf) == dict(ref.ovf) and fast.ovf.total() > 0
    assert list(fast.probes) == list(ref.probes)


# ---------------------------------------------------------------------------------- the scripts
@pytest.mark.timeout(300)
def test_bench_decode_runs_on_tiny(tmp_path):
    pytest.importorskip("torch")
    bd = load_bench("bench_decode")
    out = tmp_path / "bench_decode.json"
    assert bd.main(["--config", "tiny", "--prompt", "8", "--decode", "3", "--decode-ramp", "4", "--repeats", "2",
                    "--no-lava", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["rows"]) == {"float", "golden", "golden-2t", "golden-before", "torch", "torch-plain"}
    for row in res["rows"].values():
        assert row["decode_tokens_per_s"] > 0 and row["prefill_tokens_per_s"] > 0 and row["resident_mib"] > 0
    assert set(res["targets"]) == {"golden_decode_tokens_per_s", "golden_over_torch_decode",
                                   "golden_prefill_tokens_per_s", "golden_prefill_over_before",
                                   "kernel_1t_fraction_of_1t_bound", "kernel_fraction_of_2t_bound",
                                   "golden_fraction_of_2t_bound", "golden_held_over_packed_plus_embed"}
    assert res["golden_rows_agree"]
    b = res["bandwidth_bound"]
    assert b["read_gb_s_1t"] > 0 and b["read_gb_s_2t"] > 0 and b["weight_bytes_per_token"] > 0
    assert 0 < b["kernel_1t_fraction_of_1t_bound"] and 0 < b["golden_fraction_of_2t_bound"]
    # the bound is a bound: no kernel read faster, and 2 threads are bounded by at least the 1-thread bound
    assert b["bound_gb_s_1t"] >= max(b["read_gb_s_1t"], b["kernel-1t_gb_s_best"])
    assert b["bound_gb_s_2t"] >= max(b["read_gb_s_2t"], b["kernel-2t_gb_s_best"], b["bound_gb_s_1t"])
    assert b["kernel_1t_fraction_of_1t_bound"] <= 1 + 1e-9 and b["kernel_2t_fraction_of_2t_bound"] <= 1 + 1e-9
    # each kernel paired with the reader repeat by repeat: the repeat's best read pass over its best kernel pass
    per = res["protocol"]["passes_per_repeat"]
    for th in (1, 2):
        reads, kms = b[f"read_gb_s_{th}t_all"], b[f"kernel-{th}t_ms_per_token_all"]
        want = [b["weight_bytes_per_token"] / (max(reads[i:i + per]) * 1e9) * 1e3 / min(kms[i:i + per])
                for i in range(0, len(reads), per)]
        assert len(want) == 2 and b[f"kernel_{th}t_fraction_by_repeat"] == pytest.approx(want)
        assert f"over 2 repeats" in bd.render_table(res)
    for st in (res["rows"]["golden"]["decode_stats"], b["read_1t_stats"], b["kernel-2t_stats"]):
        assert st["best"] > 0 and st["median"] > 0 and st["n"] >= 2 and isinstance(st["noisy"], bool)
    gp = res["memory"]["golden_process"]
    assert gp["pss_mib"] > gp["pss_before_load_mib"] > 0 and gp["model_held_mib"] >= gp["packed_mib"] > 0
    assert "| golden |" in bd.render_table(res)
    assert len(res["load_start"]) == 3
    assert res["torch_agreement"]["torch_vs_float_top1"] == 1.0
    assert set(res["golden_stages"]) == {"prefill", "decode"}
    # the untimed steps before the timed ones: each one's time, and the table prints them
    ramp = res["rows"]["golden-2t"]["decode_ramp_ms"]
    assert len(ramp) == 4 and all(x > 0 for x in ramp) and res["protocol"]["decode_ramp_steps"] == 4
    assert "golden-2t: " + " ".join(f"{x:.2f}" for x in ramp) in bd.render_table(res)
    # --table prints a written report again (it was parsed outside argparse, and a missing file was a traceback)
    assert bd.main(["--table", str(out)]) == 0
    with pytest.raises(SystemExit, match="--table .*nope.json: No such file"):
        bd.main(["--table", str(tmp_path / "nope.json")])


def test_a_bad_out_path_is_refused_before_any_work(tmp_path, capsys):
    """A benchmark's --out that cannot become its JSON file (a folder, a file where its folder should be) ends the
    run while its arguments are read, naming --out, not after minutes of measuring; every benchmark that writes a
    JSON report takes --out that way."""
    bd = load_bench("bench_decode")
    blocker = tmp_path / "a_file"
    blocker.write_text("kept")
    for bad, why in ((tmp_path, "is a directory"), (blocker / "r.json", "is not a folder")):
        with pytest.raises(SystemExit) as e:
            bd.main(["--config", "370m", "--out", str(bad)])
        assert e.value.code == 2
        assert "--out" in (err := capsys.readouterr().err) and why in err
    assert blocker.read_text() == "kept" and sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]
    takers = [f.name for f in sorted(BENCH.glob("*.py")) if '"--out"' in (src := f.read_text())
              and "type=json_out" not in src]
    assert takers == ["cost_estimate.py", "gpu_baseline.py"]   # a folder of outputs; the GPU box has no project


@pytest.mark.timeout(300)
def test_bench_decode_runs_without_torch(tmp_path, monkeypatch, capsys):
    """Without the train extra (``import torch`` fails) the torch rows and their target are skipped with one
    line saying why; every other row, the bound and the table still come."""
    monkeypatch.setitem(sys.modules, "torch", None)
    bd = load_bench("bench_decode")
    out = tmp_path / "bench_decode.json"
    assert bd.main(["--config", "tiny", "--prompt", "8", "--decode", "2", "--repeats", "1", "--no-lava",
                    "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["rows"]) == {"float", "golden", "golden-2t", "golden-before"}
    assert "golden_over_torch_decode" not in res["targets"] and "PyTorch is not installed" in res["torch_skipped"]
    assert res["torch_agreement"] is None and res["environment"]["torch"] is None
    assert "torch rows skipped: PyTorch is not installed" in capsys.readouterr().out


def test_read_bound_readers_and_noisy_figures(monkeypatch):
    """membw's C reader (compiled at run time; plain and two prefetching reads) and its numpy fallback read every
    byte (a checksum) on 1 and 2 threads; a figure whose repeats spread more than 2x is noisy."""
    mb = load_bench("membw")
    assert mb.buffer_bytes() >= max(4 * mb.llc_bytes(), mb.MIN_BUFFER_BYTES)
    assert mb.buffer_bytes(1) == mb.ALIGN                 # the weights' own bytes, whatever the cache holds
    w = (3 << 30) + 5      # the weights' own size, to the page
    assert w <= mb.buffer_bytes(w) < w + mb.ALIGN and mb.buffer_bytes(w) % mb.ALIGN == 0
    methods = []
    for no_c in ("", "1"):
        monkeypatch.setenv("MEMBW_NO_C", no_c)
        r = mb.Reader(4 << 20)
        assert all(v > 0 for th in (1, 2) for v in r.passes(th, 2))
        if r.lib is not None:   # each pass: every read of READS, each checksummed, the best one counted
            assert set(r.wins) == set(mb.READS) and sum(r.wins.values()) == 4
            r.warm(2, 3)        # untimed passes are not counted
            assert sum(r.wins.values()) == 4
        methods.append(r.method)
    assert methods[1].startswith("numpy") and (methods[0].startswith("C (") or "not used" in methods[0])
    h = load_bench("_harness")
    assert not h.robust([1.0, 1.5, 1.9])["noisy"] and h.robust([1.0, 2.5])["noisy"]
    st = h.robust([3.0, 1.0, 2.0], higher_is_better=True)
    assert st["best"] == 3.0 and st["median"] == 2.0 and st["spread"] == 3.0


def test_read_pass_is_the_fastest_read(monkeypatch):
    """Each pass of the bound is the fastest of that pass's reads (plain, the kernels' prefetch, L2 a page ahead,
    two streams), whichever wins, and ``wins`` names the read that gave it."""
    mb = load_bench("membw")
    r = mb.Reader(1 << 20)
    r.lib = r.lib or object()        # the choice among the reads, whether or not this host compiled the reader
    rates = {mb.READS["plain"]: [5.0, 1.0, 2.0, 1.0], mb.READS["prefetch"]: [1.0, 7.0, 2.0, 1.0],
             mb.READS["prefetch-l2-4k"]: [2.0, 3.0, 9.0, 1.0], mb.READS["two-streams"]: [1.0, 1.0, 1.0, 4.0]}
    monkeypatch.setattr(r, "_c_passes", lambda threads, n, pf: rates[pf][:n])
    r.wins = dict.fromkeys(mb.READS, 0)
    assert r.passes(1, 4) == [5.0, 7.0, 9.0, 4.0]
    assert r.wins == {"plain": 1, "prefetch": 1, "prefetch-l2-4k": 1, "two-streams": 1}


def test_compare_reads_interleaves_every_read(monkeypatch):
    """membw.py --compare: each read in turn, every round, one untimed pass before its timed ones."""
    mb = load_bench("membw")
    r = mb.Reader(1 << 20)
    r.lib = r.lib or object()
    calls = []
    monkeypatch.setattr(r, "_c_passes", lambda threads, n, pf: calls.append((threads, n, pf)) or [float(pf[1])] * n)
    reads = {"a": (0, 0), "b": (0, 2048)}
    got = mb.compare_reads(r, reads, 2, rounds=2, passes=3)
    assert got == {"a": [0.0] * 6, "b": [2048.0] * 6}
    assert calls == [(2, 1, (0, 0)), (2, 3, (0, 0)), (2, 1, (0, 2048)), (2, 3, (0, 2048))] * 2
    assert mb._prefetch_pair("256,4096") == (256, 4096)
    r.lib = None
    with pytest.raises(RuntimeError, match="needs the C reader"):
        mb.compare_reads(r, reads, 1, rounds=1)


@pytest.mark.lava
@pytest.mark.timeout(600)
def test_bench_decode_sim_fused_on_tiny(tmp_path):
    """The sim-fused worker: chunked Lava runs, the decode chunk, start-up and the run_spk profile."""
    pytest.importorskip("torch")
    bd = load_bench("bench_decode")
    out = tmp_path / "bench_decode.json"
    assert bd.main(["--config", "tiny", "--prompt", "8", "--decode", "2", "--repeats", "1", "--no-torch-plain",
                    "--lava-prompt", "6", "--lava-tokens", "3", "--lava-repeats", "1", "--lava-backends", "sim-fused",
                    "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    lava = res["sim_fused"]
    assert lava["leaf_processes"] == 6 and lava["steps_per_decode_token"] == 1  # 3 blocks, the fused head
    assert lava["decode_ms_per_token"] > 0 and lava["startup_s"] > 0
    assert "PyFusedBlockFixed" in lava["decode_compute_by_model_ms_per_step"]
    assert "sim_fused_decode_tokens_per_s" in res["targets"] and "sim_fused_pss_over_golden_pss" in res["targets"]
    assert res["rows"]["sim-fused"]["process_pss_mib"] > 0 and set(res["lava"]) == {"sim-fused"}
    # Lava's own CPU is a difference of /proc readings in clock ticks: its resolution goes with it (2 ticks per
    # worker and step, utime and stime each rounded down; 6 workers over 1 decode step here); below it the table
    # says ~0, not -2.4 ms
    tick_ms = 1e3 / os.sysconf("SC_CLK_TCK")
    assert lava["decode_lava_cpu_resolution_ms_per_step"] == pytest.approx(2 * 6 * tick_ms / 1, rel=0.5)
    own, resolution = lava["decode_lava_cpu_ms_per_step"], lava["decode_lava_cpu_resolution_ms_per_step"]
    assert ("Lava's own CPU ~0 (+-" in bd.render_table(res)) == (abs(own) < resolution)


def test_a_figure_below_its_resolution_reads_as_zero():
    within = load_bench("_harness").within
    assert within(-2.4, 3.0) == "~0 (+-3.0)" and within(2.9, 3.0) == "~0 (+-3.0)"
    assert within(3.2, 3.0) == "3.2" and within(-4.0, 3.0) == "-4.0" and within(0.125, 0.01, 2) == "0.12"


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_bench_large_runs_on_tiny(tmp_path):
    """bench_large's pipeline (build, golden worker, Lava worker, each in its own process) on the tiny config."""
    bl = load_bench("bench_large")
    out = tmp_path / "large.json"
    assert bl.main(["--configs", "tiny", "--decode", "2", "--out", str(out)]) == 0
    e = json.loads(out.read_text())["configs"]["tiny"]
    assert "error" not in e and "skipped" not in e
    assert e["golden"]["decode_ms_per_token"] > 0 and e["golden"]["pss_mib"] > e["golden"]["pss_before_load_mib"]
    assert e["lava"]["backend"] == "sim-stack" and e["lava"]["decode_ms_per_token"] > 0
    assert e["lava"]["pss_peak_mib"] > 0 and e["lava"]["process_pss_mib"]["children"]


@pytest.mark.lava
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_bench_fork_memory_runs_on_tiny(tmp_path):
    """bench_fork_memory's two workers (with and without build_graph's kernel warm-up) on the tiny config: every
    process of each run is read, grouped by its model."""
    bf = load_bench("bench_fork_memory")
    out = tmp_path / "fork.json"
    assert bf.main(["--config", "tiny", "--prompt", "6", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    for run in ("warm", "no_warm"):
        r = res[run]
        assert r["processes"] == 1 + sum(m["processes"] for m in r["by_model"].values())
        assert r["by_model"]["PyFusedBlockFixed"]["processes"] == 3 and r["total_pss_mib"] > 0


def test_lava_chunks_cover_a_request():
    bd = load_bench("_decode_workers")
    for P, N, D in ((48, 5, 3), (6, 3, 39), (30, 2, 3)):
        first, prefill, drain, decode = bd.lava_chunks(D, P, N)
        assert first + prefill + drain + decode == P + N * D  # the steps the runner runs for a request
        assert first + prefill == P and decode == (N - 1) * D  # whole decoded tokens only


@pytest.mark.lava
@pytest.mark.timeout(300)
def test_bench_lava_overhead_runs(tmp_path):
    lo = load_bench("bench_lava_overhead")
    out = tmp_path / "lo.json"
    assert lo.main(["--leaves", "2", "4", "--repeats", "1", "--steps", "5", "15", "--no-real", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["leaf_processes"] for r in res["chains"]] == [2, 4]
    for r in res["chains"]:
        assert r["ms_per_step"] > 0 and r["create_runtime_s"] > 0 and r["steps_timed"] == 10
    left = [p for p in lo.child_pids() if b"resource_tracker" not in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert not left  # every Lava process was stopped (multiprocessing's resource tracker is not one)


# ---------------------------------------------------------------------------------- cost estimates
def test_cost_estimate_scaling_table(tmp_path, capsys):
    """benchmarks/cost_estimate.py over two configs ends with the scaling table the README quotes: a Loihi row
    per preset and the Jetson's Transformer++ of each config's own shape."""
    bench = load_bench("cost_estimate")
    assert bench.main(["--configs", "tiny", "370m", "--presets", "paper", "project", "--out", str(tmp_path),
                       "--prompt-lengths", "16", "64"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("| config | deployment"):].splitlines()
    rows = [r for r in table if r.startswith("| tiny") or r.startswith("| 370m")]
    assert len(rows) == 6
    assert "Llama-style tiny" in rows[2] and "Llama-style 370M" in rows[5]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) >= {"tiny/paper", "tiny/project", "370m/paper", "370m/project"}
    assert (tmp_path / "scaling.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.lava
@pytest.mark.timeout(600)
def test_bench_lava_cuts_on_tiny(tmp_path, capsys):
    """bench_lava_cuts with and without graph/channels.py's direct ports: the same tokens, both timed; the workers'
    CPU of each row carries what /proc resolves of it."""
    bc = load_bench("bench_lava_cuts")
    out = tmp_path / "cuts.json"
    assert bc.main(["--config", "tiny", "--prompt", "6", "--tokens", "3", "--repeats", "1", "--variants", "sim-fused",
                    "sim-stack", "sim-fused/lava-channels", "sim-stack/lava-channels", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert set(res["sim_fused_over_sim_stack"]) == {"fused head", "Lava's channels"}
    assert all(r["tokens_per_s"] > 0 for r in res["rows"].values())
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| sim-")]
    assert len(rows) == 4
    for line, r in zip(rows, res["rows"].values()):
        assert f"+-{r['lava_cpu_resolution_ms_per_step']:.1f} (" in line.split("|")[7]


def test_ab_whole_model_refuses_what_is_not_a_kernel(tmp_path, capsys):
    """ab_whole_model's B must be a whole_model.py that imports: each failure is one clear line, nothing built."""
    ab = load_bench("ab_whole_model")
    broken = tmp_path / "broken.py"
    broken.write_text("def f(:\n")
    for path, says in ((tmp_path / "missing.py", "no such file"), (broken, "cannot be imported (SyntaxError"),
                       (BENCH / "_harness.py", "lacks _k_model_serial")):
        assert ab.main([str(path), "--config", "tiny", "--out", str(tmp_path / "ab.json")]) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "ab.json").exists()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ab_whole_model_times_a_copy_and_refuses_a_different_kernel(tmp_path, capsys):
    """A copy of the kernel gives its integers and is timed against it; a kernel whose state update is off by one
    is caught (state h) and nothing is timed."""
    ab = load_bench("ab_whole_model")
    src = (BENCH.parent / "lava_matmulfree" / "model" / "whole_model.py").read_text()
    same, off = tmp_path / "same.py", tmp_path / "off.py"
    same.write_text(src)
    update = "h[l, jd0:jd1] = h_new[jd0:jd1]"
    assert src.count(update) == 1
    off.write_text(src.replace(update, update + " + 1"))
    out = tmp_path / "ab.json"
    flags = ["--config", "tiny", "--rounds", "2", "--warm", "1", "--steps", "2", "--out", str(out)]
    assert ab.main([str(same), *flags]) == 0
    # a second process loads B's kernels from numba's disk cache, which imports B's module by its name
    again = subprocess.run([sys.executable, str(BENCH / "ab_whole_model.py"), str(same), *flags],
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    res = json.loads(out.read_text())
    t = res["threads"]["2"]
    assert t["A_ms"]["n"] == t["B_ms"]["n"] == 2 and t["A_ms"]["best"] > 0 and t["B_over_A_median"] > 0
    out.unlink()
    assert ab.main([str(off), *flags]) == 1
    assert "state h" in capsys.readouterr().err and not out.exists()
    # B may lay the plan's arrays out its own way: the channel vectors as int32 give the same integers
    narrow = tmp_path / "narrow.py"
    narrow.write_text(src + "\n\ndef plan_arrays(arrays, scalars):\n"
                      "    return (arrays[0], arrays[1].astype(np.int32), arrays[2].astype(np.int32), *arrays[3:]), "
                      "scalars\n")
    assert ab.main([str(narrow), *flags]) == 0
    assert "B gives A's integers" in capsys.readouterr().out
    # ... and the kernel runs on them: channel vectors of zeros change the integers
    zeroed = tmp_path / "zeroed.py"
    zeroed.write_text(src + "\n\ndef plan_arrays(arrays, scalars):\n"
                      "    return (arrays[0], np.zeros_like(arrays[1]), *arrays[2:]), scalars\n")
    assert ab.main([str(zeroed), *flags]) == 1
    # --synapses: the synapse pass alone, timed in both after its outputs were compared; a B whose synapses skip a
    # matrix's rows is caught there
    capsys.readouterr()
    assert ab.main([str(same), *flags, "--synapses"]) == 0
    res = json.loads(out.read_text())
    assert res["timed"] == "the synapses of a token alone" and res["threads"]["2"]["B_ms"]["best"] > 0
    assert "the synapse pass" in capsys.readouterr().out
    skip = tmp_path / "skip.py"
    call = "        team_rows(c_down[l], x_i, xs_i, acc_d, tid, n)\n"       # the last matrix to write acc_d
    assert src.count(call) == 1
    skip.write_text(src.replace(call, ""))
    assert ab.main([str(skip), *flags, "--synapses"]) == 1
    assert "synapses: d-row matrices" in capsys.readouterr().err


def test_bench_gaps_runs_on_tiny(tmp_path):
    """bench_gaps times the plain synapse pass, the gaps alone and the pass with them, per spin and prefetch."""
    bg = load_bench("bench_gaps")
    out = tmp_path / "gaps.json"
    assert bg.main(["--config", "tiny", "--repeats", "2", "--warm", "1", "--spins", "0", "50", "--prefetch", "0",
                    "512", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["gaps_per_token"] == 4 * 3 and res["plain_pass_ms"]["best"] > 0
    assert [(r["spin"], r["prefetch_bytes"]) for r in res["rows"]] == [(0, 0), (0, 512), (50, 0), (50, 512)]
    for r in res["rows"]:
        assert r["with_gaps_ms"]["median"] > 0
    assert res["rows"][0]["gap_us"] == res["rows"][0]["gaps_alone_ms"] == 0   # spin 0: no gap to take away
    assert res["rows"][0]["pass_ms"] == res["rows"][0]["with_gaps_ms"]["median"]


def test_kernel_vs_reader_runs_on_tiny(tmp_path):
    """kernel_vs_reader times the synapse pass and the reader on 1 and 2 threads and gives their ratio."""
    kv = load_bench("kernel_vs_reader")
    out = tmp_path / "kv.json"
    assert kv.main(["--config", "tiny", "--rounds", "2", "--warm", "1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    for th in ("1", "2"):
        fig = res["threads"][th]
        assert fig["reader_gb_s"]["n"] == fig["kernel_gb_s"]["n"] == 2 * kv.PASSES
        assert fig["kernel_over_reader_best"] == fig["kernel_gb_s"]["best"] / fig["reader_gb_s"]["best"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", [[], ["--cache"], ["--wide"]])
def test_bench_ternary_writes_where_out_says_in_every_mode(tmp_path, mode):
    """--cache wrote into the checkout's out/ whatever --out said."""
    out = tmp_path / "t.json"
    argv = ["--model", "tiny", "--repeats", "1", "--tokens", "1", "--ref-repeats", "1", "--out", str(out), *mode]
    assert load_bench("bench_ternary").main(argv) == 0
    assert json.loads(out.read_text())


@pytest.mark.lava
@pytest.mark.timeout(600)
def test_plan_fit_on_tiny(tmp_path):
    """plan_fit times a prompt's steady prefill and the decode of one backend and sets the plan's estimate beside
    each."""
    pf = load_bench("plan_fit")
    out = tmp_path / "fit.json"
    assert pf.main(["--config", "tiny", "--prompt", "30", "--new", "3", "--backends", "sim-fused",
                    "--out", str(out)]) == 0
    r = json.loads(out.read_text())["backends"]["sim-fused"]
    assert r["prefill_ms"] > 0 and r["decode_ms"] > 0
    assert r["prefill_estimate_over_measured"] == pytest.approx(r["prefill_estimate_ms"] / r["prefill_ms"])
    assert pf.main(["--config", "tiny", "--new", "1", "--out", str(out)]) == 2


def test_demo_figures_refuses_one_validation_window_before_rewriting_the_shipped_network():
    """demo_figures.py --val-windows 1 rewrote the shipped compiled.safetensors, then died with an IndexError (its
    speed rows' prompt is the second window)."""
    shipped = BENCH.parent / "lava_matmulfree" / "data" / "demo_model" / "compiled.safetensors"
    before = shipped.stat().st_mtime_ns
    p = subprocess.run([sys.executable, str(BENCH / "demo_figures.py"), "--val-windows", "1"], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "--val-windows must be 0 (all) or at least 2" in p.stderr, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and shipped.stat().st_mtime_ns == before
