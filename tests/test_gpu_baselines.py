"""The GPU baselines (lava_matmulfree.loihi.gpu_baseline, gpu_runtimes, gpu_power, verdict): held against the H200
measurement in lava_matmulfree/data/gpu_h200.json, counted by hand, and the benchmark that measures them
(benchmarks/gpu_baseline.py) run where there is no CUDA."""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lava_matmulfree.config import load_config
from lava_matmulfree.loihi import calibration as cal
from lava_matmulfree.loihi.gpu_baseline import (BITLINEAR_QUANT_KERNELS, LLAMA_370M, QWEN25_05B, MatmulFreeShape,
                                                TransformerShape, eager_attention, forward_ops, matmulfree)
from lava_matmulfree.loihi.gpu_measured import measured_h200
from lava_matmulfree.loihi.gpu_power import board_energy
from lava_matmulfree.loihi.gpu_runtimes import BATCHES, DECODE_CONTEXTS, PREFILL_TOKENS, cell, run
from lava_matmulfree.loihi.hardware import EAGER_SCORE_PASSES, H200_SXM, JETSON_ORIN_NANO
from lava_matmulfree.loihi.report import build_report

REPO = Path(__file__).resolve().parents[1]
MEASURED = measured_h200()
DOC = REPO / "docs" / "gpu_baselines.md"
METRICS = ("tokens_per_s", "mj_per_token")
TINY = TransformerShape("t", hidden_size=8, num_layers=2, intermediate_size=16, vocab_size=16, num_heads=2,
                        num_kv_heads=2, head_dim=4, tied_embeddings=False)


def _length(c: dict) -> int:
    return c["tokens"] if c["phase"] == "prefill" else c["context"]


def _key(c: dict) -> tuple:
    return c["phase"], c["runtime"], _length(c), c.get("batch", 1)


def _excluded(c: dict) -> dict[str, str]:
    """metric -> reason, for a measured cell left out of the strict assertion."""
    out = {}
    for e in MEASURED["excluded"]:
        if _key(e) == _key(c):
            out.update({m: e["reason"] for m in e["metrics"]})
    return out


@pytest.fixture(scope="module")
def report():
    return build_report("370m", (500,), preset="paper")


@pytest.fixture(scope="module")
def h200_rows(report):
    """The estimate's H200 rows of the 370M Transformer++, by (phase, runtime, length, batch)."""
    return {_key(r): r for r in report["gpu_rows"] if r["gpu"] == "h200" and r["model"] == "transformer++"}


# ------------------------------------------------------------------------------------------- the measurement
def test_the_measurement_file_names_its_source():
    src = MEASURED["source"]
    for k in ("measurement", "date", "gpu", "driver", "torch", "transformers", "protocol"):
        assert src[k], k
    assert len(MEASURED["cells"]) == 20 and {c["runtime"] for c in MEASURED["cells"]} == {"eager", "sdpa",
                                                                                         "cuda-graph"}


@pytest.mark.parametrize("measured", MEASURED["cells"], ids=lambda c: "-".join(map(str, _key(c))))
def test_h200_rows_predict_the_measured_cell(measured, h200_rows):
    """Every measured cell within 25% on tokens/s and on mJ/token (model / measured - 1), except the metrics
    left out in the data file, each with its reason (docs/gpu_baselines.md says which and why)."""
    row = h200_rows[_key(measured)]
    skip = _excluded(measured)
    for m in METRICS:
        error = row[m] / measured[m] - 1
        if m in skip:
            assert len(skip[m]) > 40  # a written reason, not a flag
            continue
        assert abs(error) <= MEASURED["tolerance"], f"{m}: model {row[m]:.4g}, measured {measured[m]}"


def test_the_cells_left_out_are_few_and_said_in_the_docs():
    left_out = [(e, m) for e in MEASURED["excluded"] for m in e["metrics"]]
    assert len(left_out) <= 5
    text = DOC.read_text()
    for e in MEASURED["excluded"]:
        assert f"eager, {e['tokens']:,} tokens" in text, e


def test_idle_power_is_the_measured_one():
    lo, hi = MEASURED["idle_power_w"]["low"], MEASURED["idle_power_w"]["high"]
    assert lo <= H200_SXM.idle_power_w <= hi


def test_batch1_decode_board_power_is_far_from_the_limit(h200_rows):
    """The measurement's point: at batch 1 in eager PyTorch the board draws 130-170 W, not its 700 W."""
    lo, hi = MEASURED["board_power_w_batch1_eager_decode"]
    for c in MEASURED["cells"]:
        if c["phase"] == "decode" and c["runtime"] in ("eager", "sdpa"):
            assert lo * 0.9 <= h200_rows[_key(c)]["mean_power_w"] <= hi


def test_stored_h200_fits_match_a_fresh_fit():
    """The two fitted constants, re-fitted on their named cells, give the stored defaults."""
    gpu, rows = cal.fit_h200(MEASURED["cells"], dataclasses.replace(H200_SXM, host_op_overhead_s=20e-6,
                                                                     kernel_floor_s=3e-6))
    assert {r["constant"] for r in rows} == set(MEASURED["fitted_on"])
    assert gpu.host_op_overhead_s == pytest.approx(H200_SXM.host_op_overhead_s, rel=2e-3)
    assert gpu.kernel_floor_s == pytest.approx(H200_SXM.kernel_floor_s, rel=2e-3)
    fitted = [c for c in MEASURED["cells"] if cal.HOST_FIT_CELLS(c) or cal.FLOOR_FIT_CELLS(c)]
    assert len(fitted) == 8  # of 20 cells; the other 12 and every energy are predictions


def test_the_fit_recovers_known_constants():
    """Cells made by the model with known constants give those constants back."""
    truth = dataclasses.replace(H200_SXM, host_op_overhead_s=9e-6, kernel_floor_s=2.5e-6)
    made = [{**c, "tokens_per_s": cal.predicted_cell(c, truth)["tokens_per_s"]} for c in MEASURED["cells"]]
    gpu, _ = cal.fit_h200(made)
    assert gpu.host_op_overhead_s == pytest.approx(9e-6, rel=1e-4)
    assert gpu.kernel_floor_s == pytest.approx(2.5e-6, rel=1e-4)


# ------------------------------------------------------------------------------------------- the grid
def test_every_row_exists(report):
    rows = report["gpu_rows"]
    keys = {(r["gpu"], r["model"], r["runtime"], r["phase"], _length(r), r["batch"]) for r in rows}
    want = {(g, m, rt, "prefill", t, 1) for g in ("h200", "h100", "jetson-orin-nano")
            for m in ("transformer++", "qwen2.5-0.5b", "matmulfree") for rt in ("eager", "sdpa", "cuda-graph")
            for t in PREFILL_TOKENS}
    want |= {(g, m, rt, "decode", c, b) for g, m, rt, _, _, _ in want for c in DECODE_CONTEXTS for b in BATCHES}
    assert keys == want and len(rows) == len(want) == 486
    for r in rows:
        assert {"tokens_per_s", "mj_per_token", "mj_per_token_above_idle"} <= set(r)
        assert 0 < r["mj_per_token_above_idle"] < r["mj_per_token"]
    json.dumps(rows)


# ------------------------------------------------------------------------------------------- by hand
def test_llama_layer_ops_by_hand():
    """A LlamaDecoderLayer in eager attention: 2 RMSNorms of 8 kernels, q/k/v/o, rotary 5 + 5, the cache's two
    torch.cat, 7 attention kernels, 2 residual adds, gate/up/act/mul/down: 46 kernels; 64 host dispatches
    with the views (6 view/transpose of q, k, v; 2 unsqueeze and 4 slices of the rotary; the key's transpose,
    the mask's slice, dropout, the output's transpose; reshape and contiguous)."""
    _, layer, _, layers = forward_ops(LLAMA_370M, "eager", 1, 500, 1, H200_SXM)
    assert layers == 24
    assert sum(o.kernels for o in layer) == 46 and sum(o.host_ops for o in layer) == 64
    _, fused, _, _ = forward_ops(LLAMA_370M, "sdpa", 1, 500, 1, H200_SXM)
    assert sum(o.kernels for o in fused) == 46 - 7 + 2  # one SDPA kernel and the output's copy
    # Qwen's grouped keys and values: eager attention repeats them (expand + a copying reshape, for k and v)
    _, q, _, _ = forward_ops(QWEN25_05B, "eager", 1, 500, 1, H200_SXM)
    assert sum(o.kernels for o in q) == 46 + 2


def test_eager_score_traffic_by_hand():
    """12 passes over the scores (EAGER_SCORE_PASSES), the mask read once where it fits in the L2 and once per
    head where it does not, plus q, k, v and the output."""
    assert sum(EAGER_SCORE_PASSES.values()) == 12
    T, b, h = 10, 2, 2
    s = h * T * T * b
    io = (T + T) * 8 * b * 2 + 2 * T * 8 * b  # q k^T reads q, k; p v reads v, writes o; the output's copy
    big_l2 = dataclasses.replace(H200_SXM, l2_cache_bytes=1e9)
    small_l2 = dataclasses.replace(H200_SXM, l2_cache_bytes=10.0)
    assert sum(o.bytes for o in eager_attention(TINY, 1, T, T, big_l2)) == pytest.approx(12 * s + T * T * b + io)
    assert sum(o.bytes for o in eager_attention(TINY, 1, T, T, small_l2)) == pytest.approx(
        12 * s + h * T * T * b + io)


def test_flops_by_hand():
    """A prompt of T tokens: 2 x T x layer weights, the full T x T scores twice (Q K^T, P V) in eager, half of
    them in a fused causal kernel, the LM head at the last position only."""
    T, L, h, hd = 10, 2, 2, 4
    layer = 2 * 8 * 8 + 2 * 8 * 8 + 3 * 8 * 16  # q, o; k, v; gate, up, down
    head = 2 * 8 * 16
    eager = run(TINY, "eager", T, 0, 1, H200_SXM)["flops"]
    assert eager == L * (2 * T * layer + 2 * (2 * h * T * T * hd)) + head
    causal_pairs = T * (T + 1) / 2
    fused = run(TINY, "sdpa", T, 0, 1, H200_SXM)["flops"]
    assert fused == L * (2 * T * layer + 2 * (2 * h * causal_pairs * hd)) + head


def test_cuda_graph_step_by_hand():
    """One graph launch, then every kernel back to back: its floor plus its roofline time."""
    r = run(LLAMA_370M, "cuda-graph", 1, 500, 1, H200_SXM)
    assert r["wall_s"] == pytest.approx(H200_SXM.host_op_overhead_s + r["kernels"] * H200_SXM.kernel_floor_s
                                        + r["roofline_s"])
    # the layers' and the head's weights (682 MB; the embedding gives one row) and the cache (2 x 24 x 1024 x
    # 500 x 2 bytes) at 80% of 4.8 TB/s bound it below
    read = (LLAMA_370M.layer_params + LLAMA_370M.embedding_params) * 2 + 2 * 24 * 1024 * 500 * 2
    assert read / (0.8 * 4.8e12) <= r["roofline_s"] <= 1.1 * read / (0.8 * 4.8e12)


def test_overlap_of_host_and_gpu():
    """Eager: never faster than the host or the GPU, never slower than both one after the other."""
    for T in (16, 2048, 16384):
        r = run(LLAMA_370M, "eager", T, 0, 1, H200_SXM)
        assert max(r["host_s"], r["gpu_s"]) <= r["wall_s"] <= r["host_s"] + r["gpu_s"]


def test_power_model_by_hand():
    g = H200_SXM
    e = board_energy(g, wall_s=2.0, roofline_s=0.5)
    assert e["energy_j"] == pytest.approx(120 * 2.0 + 580 * 0.5) and e["above_idle_j"] == pytest.approx(290)
    assert board_energy(g, 1.0, 5.0)["mean_power_w"] == pytest.approx(700)  # capped at the limit
    # a discrete board leaves its host out; a Jetson module counts its dispatching CPU as busy
    assert board_energy(g, 1.0, 0.1, host_s=1.0)["mean_power_w"] == pytest.approx(120 + 58)
    j = JETSON_ORIN_NANO
    assert board_energy(j, 1.0, 0.1, host_s=1.0)["mean_power_w"] == pytest.approx(j.power_w)


def test_batch_reads_the_weights_once_per_step():
    one = cell(LLAMA_370M, H200_SXM, "cuda-graph", "decode", 500, 1)
    many = cell(LLAMA_370M, H200_SXM, "cuda-graph", "decode", 500, 64)
    assert many["time_s"] < 2 * one["time_s"] and many["tokens_per_s"] > 30 * one["tokens_per_s"]
    assert many["mj_per_token"] < one["mj_per_token"] / 10
    # the KV cache is per stream: 64 streams of 16k tokens do not fit in the H100's 80 GB
    from lava_matmulfree.loihi.hardware import H100_SXM
    assert not cell(LLAMA_370M, H100_SXM, "eager", "decode", 16384, 64)["fits_in_memory"]


def test_matmulfree_on_the_gpu_as_upstream_runs_it():
    """Its BitLinears (norm, 10 fake-quant kernels, an fp16 matmul of ternary values: 2 bytes a weight), 84
    kernels a layer in decode; no KV cache: a generated token costs the same at any context; the head at every
    prompt position."""
    shape = matmulfree(load_config("370m").model)
    assert isinstance(shape, MatmulFreeShape) and shape.params == LLAMA_370M.params  # same d, L, I, V
    assert BITLINEAR_QUANT_KERNELS == 10
    _, layer, _, _ = forward_ops(shape, "eager", 1, 500, 1, H200_SXM)
    assert sum(o.kernels for o in layer) == 6 * 12 + 12
    a = cell(shape, H200_SXM, "cuda-graph", "decode", 128)
    b = cell(shape, H200_SXM, "cuda-graph", "decode", 16384)
    assert a["time_s"] == pytest.approx(b["time_s"]) and a["mj_per_token"] == pytest.approx(b["mj_per_token"])
    read = run(shape, "cuda-graph", 1, 128, 1, H200_SXM)["bytes"]
    assert read >= 2 * (shape.layer_params + shape.embedding_params)  # layers and head, 2 bytes a weight
    # eager and sdpa are the same ops (no attention)
    assert cell(shape, H200_SXM, "eager", "prefill", 512) == {**cell(shape, H200_SXM, "sdpa", "prefill", 512),
                                                             "runtime": "eager"}


# ------------------------------------------------------------------------------------------- Loihi 2 and the verdict
def test_loihi_sequences_in_flight(report):
    flight = report["verdict"]["in_flight"]
    lp = report["platforms"]["loihi2"]
    assert flight[0]["streams"] == 1 and flight[0]["tokens_per_s"] == pytest.approx(lp["decode_tokens_per_s"])
    assert flight[0]["mj_per_token"] == pytest.approx(lp["decode_mj_per_token"])
    assert [r["streams"] for r in flight] == [1, 8, 24, 64, report["loihi"]["pipeline_depth"]]
    # more sequences: more tokens/s in all, fewer per stream (longer steps), less energy per token
    for a, b in zip(flight, flight[1:]):
        assert b["tokens_per_s"] > a["tokens_per_s"] and b["tokens_per_s_per_stream"] <= a["tokens_per_s_per_stream"]
        assert b["mj_per_token"] < a["mj_per_token"]
    # one per hop fills the pipeline as a prompt does, at its steady state
    assert flight[-1]["tokens_per_s"] == pytest.approx(lp["prefill_steady_tokens_per_s"], rel=0.02)


def test_verdict_ratios_and_claims(report):
    v = report["verdict"]
    pairs = [p for p in v["pairs"] if p["loihi"] == "preset 'paper'"]
    assert len(pairs) == 27
    lp = report["platforms"]["loihi2"]
    jet = next(p for p in pairs if (p["gpu"], p["model"], p["runtime"]) == ("jetson-orin-nano", "transformer++",
                                                                            "eager"))
    assert jet["decode_throughput_ratio"] == pytest.approx(lp["decode_tokens_per_s"] / jet["gpu_decode_tokens_per_s"])
    assert jet["decode_energy_ratio"] == pytest.approx(jet["gpu_decode_mj_per_token"] / lp["decode_mj_per_token"])
    # against the paper's own baseline (the Jetson, eager) the model's TTFT claim holds
    assert jet["ttft_ratio"] >= 6.6
    from lava_matmulfree.loihi.verdict import CLAIMS

    ratio = {key: r for key, _, r, _ in CLAIMS}
    for c in v["claims"]:
        assert len(c["holds_against"]) + len(c["fails_against"]) == 27
        assert not set(c["holds_against"]) & set(c["fails_against"])
        # the nearest miss is named with its ratio (3x failed against a Jetson at 2.99x, without a word why)
        mine = {f"{p['gpu']}/{p['model']}/{p['runtime']}": p[ratio[c["claim"]]] for p in v["pairs"]
                if p["loihi"] == c["loihi"]}
        miss = c["nearest_miss"]
        assert (miss is None) == (not c["fails_against"]), c
        if miss is not None:
            assert miss["ratio"] == max(mine[b] for b in c["fails_against"]) == mine[miss["baseline"]]
        assert max([mine[b] for b in c["fails_against"]] or [-math.inf]) < c["factor"] <= min(
            [mine[b] for b in c["holds_against"]] or [math.inf])
    # a tuned runtime on the H200 generates faster than Loihi 2 at batch 1
    h200 = next(p for p in pairs if (p["gpu"], p["model"], p["runtime"]) == ("h200", "transformer++", "cuda-graph"))
    assert h200["decode_throughput_ratio"] < 1 and h200["gpu_overtakes_at_batch"] in BATCHES


def test_the_verdict_sets_loihi_2_against_the_measured_h200_itself(report):
    """The verdict set Loihi 2 against the modelled H200 only (47.6 tok/s, 2,649 mJ for the eager decode), where
    the measured one is at hand (57.2 tok/s, 2,324 mJ): each deployment against the measured cells themselves."""
    from lava_matmulfree.loihi.report import PAPER_MEASURED
    from lava_matmulfree.loihi.report_text import format_report

    rows = report["verdict"]["against_measured_h200"]
    decode = {c["runtime"]: c for c in MEASURED["cells"] if c["phase"] == "decode" and c["context"] == 500}
    assert {r["runtime"] for r in rows} == set(decode) == {"eager", "sdpa", "cuda-graph"}
    loihi = report["verdict"]["deployments"]
    for r in rows:
        m, d = decode[r["runtime"]], loihi[r["loihi"]]
        assert r["gpu_decode_mj_per_token"] == m["mj_per_token"] and r["gpu_decode_tokens_per_s"] == m["tokens_per_s"]
        assert r["decode_energy_ratio"] == pytest.approx(m["mj_per_token"] / d["decode_mj_per_token"])
        assert r["decode_throughput_ratio"] == pytest.approx(d["decode_tokens_per_s"] / m["tokens_per_s"])
    paper = {r["runtime"]: r for r in rows if r["loihi"] == PAPER_MEASURED}
    assert paper["eager"]["decode_energy_ratio"] == pytest.approx(2324 / 405, rel=1e-3)  # measured against measured
    assert paper["cuda-graph"]["decode_energy_ratio"] < 1  # a tuned runtime spends less per token than Loihi 2
    assert "== Against the measured H200" in format_report(report)
    assert build_report("tiny", (16,))["verdict"]["against_measured_h200"] == []  # another model than measured


# ------------------------------------------------------------------------------------------- the benchmark
def test_benchmark_without_cuda_says_so_in_one_line(tmp_path):
    """On a machine without CUDA (or without torch or transformers) benchmarks/gpu_baseline.py exits with
    status 2 and one line, no traceback, and writes nothing."""
    out = tmp_path / "h.json"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_baseline.py"), "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    text = (p.stdout + p.stderr).strip()
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        pytest.skip("this machine has CUDA: the benchmark would run")
    assert p.returncode == 2, text
    assert len(text.splitlines()) == 1 and "Traceback" not in text, text
    assert any(w in text for w in ("CUDA", "torch", "transformers")) and not out.exists()


def test_benchmark_imports_without_torch():
    """The module is importable where torch is not (its imports are inside main)."""
    code = ("import sys; sys.modules['torch'] = None; sys.path.insert(0, 'benchmarks'); import gpu_baseline; "
            "print(gpu_baseline.PREFILL_TOKENS)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().replace("(", "[").replace(")", "]")) == list(PREFILL_TOKENS)
    assert math.isfinite(H200_SXM.kernel_floor_s)


def test_each_measured_row_names_its_own_context():
    """Where the runtimes' nearest measured contexts differ (cuda-graph was measured at 500 and 2048 only), the
    table named the first row's context (128) above the cuda-graph row's figures of context 500."""
    from lava_matmulfree.loihi.report_text import format_report

    short = build_report("370m", (16,), preset="paper", anchor_tokens=16)
    rows = short["verdict"]["against_measured_h200"]
    context = {r["runtime"]: r["context"] for r in rows}
    assert context["eager"] == 128 and context["cuda-graph"] == 500  # the case of the bug
    text = format_report(short)
    table = text[text.index("== Against the measured H200"):].split("\n\n")[0].splitlines()
    assert "at context 128" not in table[0]
    for runtime, c in context.items():
        line = next(x for x in table if x.startswith(runtime + " "))
        assert line.split()[1] == str(c), line


# ------------------------------------------------------------------------------------------- the benchmark on the CPU
@pytest.fixture(scope="module")
def bench():
    """benchmarks/gpu_baseline.py as a module, set for the CPU smoke run (fp32, tiny shapes)."""
    pytest.importorskip("torch", reason="the train extra (lava-dl, torch) is not installed")
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_baseline
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    gpu_baseline.Rig.set("cpu", tiny=True)
    yield gpu_baseline
    gpu_baseline.Rig.set("cuda", tiny=False)


def test_the_benchmarks_smoke_run_times_every_cell_after_its_checks(tmp_path):
    """`gpu_baseline.py --device cpu --tiny` runs the MatMul-free model's cells (the transformers need the
    transformers package, not installed here: docs/gpu_baselines.md gives their smoke run) after checking that its
    prompt pass computes what its decode steps compute."""
    pytest.importorskip("torch", reason="the train extra (lava-dl, torch) is not installed")
    out = tmp_path / "smoke.json"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_baseline.py"), "--device", "cpu", "--tiny",
                        "--models", "matmulfree", "--prefill", "16", "70", "--contexts", "20", "--batches", "1", "3",
                        "--min-seconds", "0.01", "--warmup", "0", "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    data = json.loads(out.read_text())
    assert data["source"]["device"] == "cpu" and data["source"]["dtype"] == "float32" and data["source"]["tiny"]
    assert data["complete"] is True
    (check,) = data["checks"]
    assert check["ok"] and check["finite"] and check["max_rel_diff"] < 1e-5 and check["fla"] is False, check
    cells = data["cells"]
    assert len(cells) == 2 + 2 + 2  # eager: 2 prompts and 2 batches; cuda-graph: 2 batches; sdpa is eager here
    assert {c["runtime"] for c in cells} == {"eager", "cuda-graph"} and "not measured again" in p.stdout
    assert not [c for c in cells if "error" in c]
    assert all(c["tokens_per_s"] > 0 and c["mj_per_token"] is None for c in cells)
    assert all(c.get("captured") is False for c in cells if c["runtime"] == "cuda-graph")
    assert "check matmulfree    ok" in p.stdout


@pytest.mark.parametrize("chunk", [7, 64])
def test_the_matmulfree_scan_is_finite_where_the_forget_gates_are_tiny(bench, monkeypatch, chunk):
    """The PyTorch prompt scan (no fla) took exp(-cumsum log f) within a 64-token chunk: fp32 overflows where f
    is small (64 tokens at f = 0.01 is exp(295)), and a gate rounded to 0 made log 0: the prompt's logits went NaN.
    Forget gates pushed to 0 and 1 by scaled-up f weights; a chunk that does not divide the 70 tokens too."""
    import torch

    monkeypatch.setattr(bench, "SCAN_CHUNK", chunk)
    made = bench.matmulfree_model

    def extreme(torch_, batch):
        model, fla = made(torch_, batch)
        with torch.no_grad():
            for layer in model.layers:
                layer.f_proj.weight.mul_(400.0)
        return model, fla

    monkeypatch.setattr(bench, "matmulfree_model", extreme)
    torch.manual_seed(3)
    c = bench.check_matmulfree_scan(torch)
    # finite, and close: the log-space sums reach -5,000 here, whose fp32 rounding (5e-4) shows in the decays, so
    # the check's own tolerance (for the benchmark's random gates, 3e-7 measured) is not met, 4-5e-3 is
    assert c["finite"] and c["agreement"] == 1.0 and c["max_rel_diff"] < 2e-2, c


def test_a_stopped_run_keeps_the_cells_it_measured(bench, tmp_path):
    """A lent GPU's command is killed at its time limit: the file is rewritten after every cell (whole, through a
    scratch file), marked incomplete until the end."""
    out = tmp_path / "run.json"
    cells = bench.Cells(out, {"gpu": "x"}, [{"check": "c", "ok": True}])
    cells.save()
    assert json.loads(out.read_text()) == {"source": {"gpu": "x"}, "complete": False,
                                           "checks": [{"check": "c", "ok": True}], "cells": []}
    cells.append({"model": "m", "tokens_per_s": 1.0})
    assert json.loads(out.read_text())["cells"] == [{"model": "m", "tokens_per_s": 1.0}]
    cells.save(complete=True)
    assert json.loads(out.read_text())["complete"] is True and [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_a_transformers_that_cannot_use_this_torch_is_said_in_one_line(tmp_path):
    """transformers 5 imports over torch 2.3 but builds no model: the smoke run died in its first check with
    'LlamaForCausalLM requires the PyTorch library'. A stand-in transformers package that says so, as 5.x does."""
    pytest.importorskip("torch", reason="the train extra (lava-dl, torch) is not installed")
    stub = tmp_path / "stub" / "transformers"
    (stub / "utils").mkdir(parents=True)
    (stub / "__init__.py").write_text("__version__ = '9.0.0'\nfrom . import utils\n")
    (stub / "utils" / "__init__.py").write_text("def is_torch_available():\n    return False\n")
    out = tmp_path / "x.json"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_baseline.py"), "--device", "cpu", "--tiny",
                        "--out", str(out)], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(tmp_path / "stub")})
    assert p.returncode == 2 and not out.exists(), p.stderr[-2000:]
    lines = (p.stdout + p.stderr).strip().splitlines()
    assert lines == [f"gpu_baseline: transformers 9.0.0 cannot use torch {_torch_version()} (its models need a "
                     "newer torch); nothing measured"], lines


def _torch_version() -> str:
    import torch

    return torch.__version__


def test_the_scan_check_holds_at_full_width(bench, monkeypatch):
    """At width 1024 BitLinear's int8 rounding turned the prompt pass's and the steps' last-bit differences into
    whole steps (0.005 relative at 1 layer, 0.1 at 24): the check, meant for the scan, said MISMATCH on every GPU
    run. It compares them with the rounding off."""
    import torch

    full = bench.SHAPES["matmulfree"]
    monkeypatch.setattr(bench.Rig, "shapes", {**bench.TINY_SHAPES, "matmulfree": {**full, "num_hidden_layers": 1}})
    torch.manual_seed(0)
    c = bench.check_matmulfree_scan(torch)
    assert c["ok"] and c["max_rel_diff"] < 1e-5, c
    assert bench.Rig.round_activations is True  # the cells round again


def test_a_check_that_cannot_run_is_recorded_and_the_cells_go_on(bench, monkeypatch, capsys):
    import torch

    def broken(torch_):
        raise AttributeError("'Cache' object has no attribute 'crop'\nmore")

    monkeypatch.setattr(bench, "check_matmulfree_scan", broken)
    c = bench.run_check(torch, None, "matmulfree")
    assert c == {"model": "matmulfree", "ok": False, "error": "AttributeError: 'Cache' object has no attribute 'crop'"}
    assert "check matmulfree    ERROR: AttributeError" in capsys.readouterr().out


def test_checks_only_times_no_cell(tmp_path):
    pytest.importorskip("torch", reason="the train extra (lava-dl, torch) is not installed")
    out = tmp_path / "checks.json"
    p = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_baseline.py"), "--device", "cpu", "--tiny",
                        "--models", "matmulfree", "--checks-only", "--out", str(out)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["complete"] and data["cells"] == [] and [c["model"] for c in data["checks"]] == ["matmulfree"]
    assert data["checks"][0]["ok"]
