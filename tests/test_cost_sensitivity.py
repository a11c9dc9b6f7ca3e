"""The cost model's sensitivity to its low-confidence constants (lava_matmulfree.loihi.sensitivity)."""
from __future__ import annotations

import json

import pytest

from lava_matmulfree.loihi.hardware import JETSON_ORIN_NANO, CostModelError
from lava_matmulfree.loihi.outputs import sensitivity_main
from lava_matmulfree.loihi.report import build_report
from lava_matmulfree.loihi.sensitivity import QUANTITIES, format_sensitivity, scaled, sensitivity, varied_constants

LOIHI = [label for label, *_ in QUANTITIES if "Loihi" in label]


def test_varied_constants_are_the_low_confidence_numbers_of_the_calibrated_platforms():
    r = build_report("tiny", (500,), preset="project")
    names = varied_constants(r)
    by_name = {c["name"]: c for c in r["constants"]}
    assert names and all(by_name[n]["confidence"] == "low" for n in names)
    assert all(n.split(".")[0] in ("loihi2", "jetson") for n in names)
    assert not any(isinstance(by_name[n]["value"], bool) for n in names)
    assert "jetson.host_op_overhead_s" in names and "loihi2.loihi2_speedup" in names
    # fitted constants are refitted, never varied; the H100 is not calibrated
    assert "jetson.prefill_efficiency" not in names and not any(n.startswith("h100.") for n in names)
    low_bools = [c["name"] for c in r["constants"] if c["confidence"] == "low" and isinstance(c["value"], bool)]
    assert low_bools and not set(low_bools) & set(names)


def test_scaled_keeps_integers_integral():
    assert scaled(60, 0.5) == 30 and isinstance(scaled(7, 0.5), int) and scaled(1, 0.5) == 1
    assert scaled(4.5e-5, 2.0) == pytest.approx(9e-5)


def test_host_dispatch_sets_the_jetson_generation_rate_and_nothing_on_loihi():
    """Decode on the Jetson is host-bound (24 layers x 64 ops x 45 us = 70 ms per token against 16 ms of
    weight reads): halving the per-op time doubles the rate, doubling it halves the rate, but for the GPU's tail
    after the host's last dispatch (the LM head's weight read, ~2% of the step); no Loihi figure moves and the
    Qwen prefill cell stays to 0.5% (its TTFT follows the refitted efficiency; the GPU-bound prompt pass only
    waits for the host's first ops)."""
    s = sensitivity("tiny", ["jetson.host_op_overhead_s"])
    (row,) = s["rows"]
    assert row["value"] == JETSON_ORIN_NANO.host_op_overhead_s
    half, double = row["runs"]
    assert half["change"]["paper: Jetson generation tokens/s"] == pytest.approx(1.0, abs=0.05)
    assert double["change"]["paper: Jetson generation tokens/s"] == pytest.approx(-0.5, abs=0.02)
    for run in (half, double):
        assert all(run["change"][k] == pytest.approx(0, abs=1e-12) for k in LOIHI)
        assert run["change"]["paper: Jetson Qwen prefill mJ/token"] == pytest.approx(0, abs=5e-3)


def test_an_impossible_estimate_is_recorded_not_raised():
    s = sensitivity("tiny", ["loihi2.core_memory_bytes"], factors=(0.001, 0.5))
    fail, ok = s["rows"][0]["runs"]
    assert "core_memory_bytes" in fail["error"] and "change" not in fail
    assert ok["change"]["paper: Loihi TTFT"] > 0  # half the memory per core: the paper's blocks spill over
    text = format_sensitivity(s)
    assert "fail/" in text and "fail: loihi2.core_memory_bytes x0.001" in text


def test_unknown_constant_and_overrides():
    with pytest.raises(CostModelError, match="unknown constant"):
        sensitivity("tiny", ["loihi2.no_such_constant"])
    # a constant the user set is held, not varied
    s = sensitivity("tiny", ["jetson.host_op_overhead_s", "loihi2.host_round_trip_s"],
                    overrides={"jetson.host_op_overhead_s": 1e-5})
    assert [r["constant"] for r in s["rows"]] == ["loihi2.host_round_trip_s"]
    # a Loihi 2 field set by its plain name is held too
    s = sensitivity("tiny", ["loihi2.host_round_trip_s", "loihi2.chip_link_latency_s"],
                    overrides={"host_round_trip_s": 2e-4})
    assert [r["constant"] for r in s["rows"]] == ["loihi2.chip_link_latency_s"]


def test_sensitivity_main_writes_table_json_and_plot(tmp_path, capsys):
    s = sensitivity_main("tiny", tmp_path, names=["loihi2.host_round_trip_s"])
    out = capsys.readouterr().out
    assert "== Sensitivity (tiny" in out and "loihi2.host_round_trip_s" in out
    saved = json.loads((tmp_path / "sensitivity_tiny.json").read_text())
    assert saved["rows"][0]["constant"] == "loihi2.host_round_trip_s" and saved["base"] == s["base"]
    assert (tmp_path / "sensitivity_tiny.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_estimate_cli_sensitivity(tmp_path, capsys):
    from lava_matmulfree.cli import main

    assert main(["estimate", "--config", "tiny", "--out", str(tmp_path), "--sensitivity"]) == 0
    out = capsys.readouterr().out
    assert "== Calibration" in out and "== Sensitivity (tiny" in out
    saved = json.loads((tmp_path / "sensitivity_tiny.json").read_text())
    assert {r["constant"] for r in saved["rows"]} == set(
        varied_constants(build_report("tiny", (500,), preset="project")))


def test_each_figure_has_the_status_of_the_calibration_table():
    """The sensitivity table called the Loihi generation rate 'fitted' where the calibration table says it was
    fitted jointly with the prefill rate (one constant, two anchors)."""
    s = sensitivity("tiny", ["jetson.host_op_overhead_s"], factors=(0.5,))
    anchors = {a["anchor"]: a["status"] for a in build_report("tiny", (500,), preset="project")["calibration"]["anchors"]}
    assert s["status"]["paper: Loihi generation tokens/s"] == anchors["Loihi generation tokens/s"] == "fitted jointly"
    assert s["status"]["paper: Loihi TTFT"] == anchors["Loihi TTFT, 500 tokens"] == "predicted"
    assert all(s["status"][k] == "predicted" for k in s["status"] if k.startswith("project:"))
    assert "paper (joint fit)" in format_sensitivity(s)
