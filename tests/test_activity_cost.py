"""The cost model with a measured activity profile (docs/activity.md): the loader and its one-line errors, the
density per connection type and layer in place of the one scalar, traffic per core and link, the report's dense
and measured columns, ``estimate --activity`` and Lava's profiler interface on the simulator."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lava_matmulfree.config import load_config
from lava_matmulfree.loihi import activity as act
from lava_matmulfree.loihi.activity import default_activity, load_activity, shipped_profile_path as act_path
from lava_matmulfree.loihi.core_groups import MappingOptions
from lava_matmulfree.loihi.cost_model import LoihiCostModel
from lava_matmulfree.loihi.hardware import CostModelError
from lava_matmulfree.loihi.mapping import build_mapping
from lava_matmulfree.loihi.traffic import mean_core_model, slowest_vs_mean, traffic

EXAMPLE = Path(__file__).parent / "data" / "activity_example.json"  # hand-written, densities like issue 25's
INS = {"residual": 12, "mlgru": 30, "glu": 20, "rms_aggregator": 25, "requant": 5}
TINY = load_config("tiny").model  # 3 layers: the example profile's per-layer densities apply
M370 = load_config("370m").model  # 24 layers: the per-type averages apply


def raw():
    return json.loads(EXAMPLE.read_text())


def model(cfg, activity=None, **opts) -> LoihiCostModel:
    return LoihiCostModel(build_mapping(cfg, options=MappingOptions(activity=activity, **opts)), INS)


def uniform(d: float) -> dict:
    """The example profile with every density set to ``d``."""
    r = raw()
    for conns in [r["connections"], r["head"]["connections"], *(lay["connections"] for lay in r["layers"])]:
        for e in conns.values():
            e["density"] = d
    return r


# ------------------------------------------------------------------------------------------- loader
def test_example_profile_loads():
    p = load_activity(EXAMPLE)
    assert p.per_layer(3) and not p.per_layer(24)
    assert p.density("down_proj", 2, 3) == 0.62  # layer 2's own
    assert p.density("down_proj", 2, 24) == pytest.approx(np.mean([0.74, 0.68, 0.62]), abs=1e-4)  # average
    assert p.density("lm_head", 3, 3) == 0.98


@pytest.mark.parametrize("edit, key", [
    (lambda r: r.update(format="other"), "format"),
    (lambda r: r.update(tokens=0), "tokens"),
    (lambda r: r["connections"].pop("down_proj"), "connections.down_proj"),
    (lambda r: r["connections"]["o_proj"].update(density=1.5), "connections.o_proj.density"),
    (lambda r: r["connections"]["o_proj"].update(density="high"), "connections.o_proj.density"),
    (lambda r: r["connections"].update(q_proj={"density": 1.0}), "connections.q_proj"),
    (lambda r: r["layers"][1].update(layer=5), "layers[1].layer"),
    (lambda r: r["layers"][2]["connections"]["gate_proj"].pop("density"), "layers[2].connections.gate_proj.density"),
    (lambda r: r["head"]["connections"]["lm_head"].update(weight_nonzero_fraction=2), "lm_head.weight_nonzero"),
])
def test_bad_profile_is_one_line_naming_file_and_key(tmp_path, edit, key):
    r = raw()
    edit(r)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(r))
    with pytest.raises(CostModelError) as ei:
        load_activity(f)
    msg = str(ei.value)
    assert "\n" not in msg and str(f) in msg and key in msg, msg


def test_missing_or_unreadable_profile(tmp_path):
    with pytest.raises(CostModelError, match="no such activity profile"):
        load_activity(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(CostModelError, match="x.json: not a JSON"):
        load_activity(tmp_path / "x.json")
    with pytest.raises(CostModelError, match="activity"):
        MappingOptions(activity=str(tmp_path / "none.json")).check()  # checked when the mapping is built


# ------------------------------------------------------------------------------------------- cost model
def test_all_ones_profile_is_the_dense_assumption():
    dense, ones = model(M370), model(M370, uniform(1.0))
    assert ones.totals() == dense.totals()
    assert ones.decode_token_s == dense.decode_token_s and ones.prefill_step_s == dense.prefill_step_s


def test_uniform_profile_equals_the_scalar_density():
    scalar, prof = model(TINY, activation_density=0.5), model(TINY, uniform(0.5))
    assert prof.totals()["ternary_synops_per_token"] == pytest.approx(scalar.totals()["ternary_synops_per_token"])
    assert prof.totals()["messages_per_token"] == pytest.approx(scalar.totals()["messages_per_token"])
    assert prof.decode_token_s == pytest.approx(scalar.decode_token_s)


def test_each_connection_gets_its_own_layers_density():
    """Only the synaptic hops change, each by its connection's measured density of its layer."""
    dense, meas = model(TINY), model(TINY, str(EXAMPLE))
    prof = load_activity(EXAMPLE)
    for d, m in zip(dense.hop_costs, meas.hop_costs):
        if d.kind != "synaptic":
            assert m.synops == d.synops and m.messages == d.messages
            continue
        hop = meas.mapping.hops[d.index]
        dens = [prof.density(n, d.layer, TINY.num_layers) for n in hop.matrix.split("+")]
        assert len(set(dens)) == 1  # i, f, g share their input in the example
        assert m.synops == pytest.approx(dens[0] * d.synops)
        # the logits read out by the host are sent whatever the input density
        assert m.messages - hop.readout == pytest.approx(dens[0] * (d.messages - hop.readout))
    down = [c for c in meas.hop_costs if "down_proj" in c.name]
    assert [c.synops / dd.synops for c, dd in zip(down, [c for c in dense.hop_costs if "down_proj" in c.name])] \
        == pytest.approx([0.74, 0.68, 0.62])


def test_measured_activity_costs_less_but_keeps_the_mapping():
    dense, meas = model(M370), model(M370, str(EXAMPLE))
    assert meas.mapping.cores == dense.mapping.cores and meas.mapping.chips == dense.mapping.chips
    assert meas.dynamic_energy_per_token_j < dense.dynamic_energy_per_token_j
    assert meas.decode_token_s <= dense.decode_token_s and meas.prefill_step_s <= dense.prefill_step_s


# ------------------------------------------------------------------------------------------- traffic
def test_traffic_busiest_core_and_link():
    cm = model(M370, str(EXAMPLE))
    t = traffic(cm)
    assert t["busiest_core"]["messages_per_core"] == max(r["messages_per_core"] for r in t["per_group"])
    assert len(t["chip_links"]) == cm.mapping.chips - 1
    # the link time the step waits for is the messages over it times the message time
    assert cm.link_work[:-1].sum() == pytest.approx(cm.link_messages.sum() * cm.hw.chip_link_message_s)
    assert t["busiest_link"]["messages_per_token"] == pytest.approx(cm.link_messages.sum(axis=1).max())
    one_chip = traffic(model(TINY))
    assert one_chip["chip_links"] == [] and one_chip["busiest_link"] is None


def test_slowest_core_sets_the_step():
    cm = model(M370)
    mean = mean_core_model(cm)
    assert mean.prefill_step_s <= cm.prefill_step_s and mean.decode_token_s <= cm.decode_token_s
    assert mean.dynamic_energy_per_token_j == pytest.approx(cm.dynamic_energy_per_token_j)  # same work in all
    s = slowest_vs_mean(cm, 500)
    assert s["change"]["decode_tokens_per_s"] <= 0 and s["most_unbalanced"]["busiest"] >= s["most_unbalanced"]["mean"]


# ------------------------------------------------------------------------------------------- defaults, report
def test_default_profile_of_a_shipped_shape_and_the_370m_stand_in(tmp_path):
    shipped = tmp_path / "deep_model"
    shipped.mkdir()
    (shipped / "config.json").write_text(json.dumps({"hidden_size": TINY.hidden_size, "num_hidden_layers": 3,
                                                     "intermediate_size": TINY.intermediate_size,
                                                     "vocab_size": TINY.vocab_size}))
    prof, why, headline = default_activity(TINY, tmp_path)
    assert prof is None and not headline and "no profile yet" in why
    (shipped / "activity.json").write_text(EXAMPLE.read_text())
    prof, why, headline = default_activity(TINY, tmp_path)
    assert headline and prof.per_layer(3) and "deep model's measured profile" in why
    prof, why, headline = default_activity(M370, tmp_path)  # no trained weights: the deep model stands in
    assert not headline and not prof.layers and "stand in" in why


@pytest.fixture(scope="module")
def reports():
    from lava_matmulfree.loihi.report import build_report

    return (build_report("370m", (500,), activity="dense"),
            build_report("370m", (500,), activity=str(EXAMPLE)))


def test_report_dense_and_measured_side_by_side(reports):
    dense, meas = reports
    assert meas["options"]["activity"].startswith(str(EXAMPLE)) and dense["options"]["activity"] == "dense"
    rows = {(r["preset"], r["activity"]): r for r in meas["activity"]["rows"]}
    # the example was measured on the tiny shape: on the 370M it stands in (docs/activity.md, section 4)
    assert set(rows) == {(p, a) for p in ("paper", "project") for a in ("dense", "stand-in")}
    # the dense column is the dense report's own headline; the profile's the headline with the profile
    for k in ("ttft_s", "decode_tokens_per_s", "decode_mj_per_token", "prefill_mj_per_token"):
        assert rows[("paper", "dense")][k] == pytest.approx(dense["platforms"]["loihi2"][k])
        assert rows[("paper", "stand-in")][k] == pytest.approx(meas["platforms"]["loihi2"][k])
    assert rows[("paper", "stand-in")]["synops_per_token"] < rows[("paper", "dense")]["synops_per_token"]
    assert meas["activity"]["densities"]["down_proj"]["mean"] == pytest.approx(0.68, abs=1e-3)


def test_profile_leaves_the_calibration_on_the_dense_assumption(reports):
    dense, meas = reports
    assert meas["calibration"]["fitted"] == dense["calibration"]["fitted"]
    assert meas["calibration"]["anchors"] == dense["calibration"]["anchors"]


def test_report_prints_activity_and_traffic(reports):
    from lava_matmulfree.loihi.report import report_json
    from lava_matmulfree.loihi.report_text import format_report

    text = format_report(reports[1])
    assert "== Activity" in text and "measured" in text and "busiest core" in text and "busiest chip link" in text
    json.loads(report_json(reports[1]))  # JSON-ready


# ------------------------------------------------------------------------------------------- command line
def test_estimate_activity_option_reaches_the_cost_model(tmp_path, monkeypatch):
    import lava_matmulfree.loihi.outputs as outputs
    from lava_matmulfree.cli import main

    calls = []
    monkeypatch.setattr(outputs, "estimate_main", lambda name, out, **kw: calls.append(kw))
    assert main(["estimate", "--config", "tiny", "--out", str(tmp_path), "--activity", str(EXAMPLE)]) == 0
    assert calls[-1]["activity"] == str(EXAMPLE)
    assert main(["estimate", "--config", "tiny", "--out", str(tmp_path)]) == 0
    assert "activity" not in calls[-1]  # 'auto': the report chooses (docs/activity.md)


def test_estimate_with_a_bad_profile_is_one_error_line(tmp_path, capsys):
    from lava_matmulfree.cli import main

    bad = tmp_path / "bad.json"
    r = raw()
    r["connections"]["i_proj"]["density"] = -1
    bad.write_text(json.dumps(r))
    with pytest.raises(SystemExit) as ei:
        main(["estimate", "--config", "tiny", "--out", str(tmp_path / "o"), "--activity", str(bad)])
    assert ei.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("error: ")]
    assert len(err) == 1 and "bad.json" in err[0] and "connections.i_proj.density" in err[0]


# ------------------------------------------------------------------------------------------- Lava's profiler
def test_lava_profiler_interface_on_the_simulator():
    from lava.magma.core.run_configs import Loihi2SimCfg

    from lava_matmulfree.graph.profiler import Loihi2SimProfiler  # registers it (and hushes lava's warning)
    from lava.utils.profiler import Profiler  # noqa: I001

    profiler = Profiler.init(Loihi2SimCfg(select_tag="fixed_pt"))
    assert isinstance(profiler, Loihi2SimProfiler) and profiler.is_estimate
    with pytest.raises(RuntimeError, match="workload"):
        profiler.execution_time_probe(num_steps=10)
        profiler.execution_time  # noqa: B018
    profiler.workload("tiny", activity=str(EXAMPLE), prompt_tokens=4, new_tokens=3)
    cm = profiler.cost_model
    steps = 4 + cm.pipeline_depth - 1 + 2 * cm.pipeline_depth  # the request's chip steps
    profiler.execution_time_probe(num_steps=steps)
    profiler.energy_probe(num_steps=steps)
    # the steps sum to TTFT and two generated tokens; the energy to the prefill's and two tokens'
    assert len(profiler.execution_time) == steps
    assert profiler.execution_time.sum() == pytest.approx(cm.ttft_s(4) + 2 * cm.decode_token_s)
    assert profiler.energy == pytest.approx(cm.prefill_energy_j(4) + 2 * cm.decode_energy_per_token_j)
    assert profiler.power == pytest.approx(profiler.energy / profiler.execution_time.sum())
    # a longer run idles at the barrier after the request; a window picks steps as on hardware
    profiler.execution_time_probe(num_steps=steps + 10, t_start=steps + 1)
    assert profiler.execution_time == pytest.approx(np.full(10, cm.barrier_s))
    profiler.energy_probe(num_steps=steps + 10)
    assert profiler.energy == pytest.approx(cm.prefill_energy_j(4) + 2 * cm.decode_energy_per_token_j
                                            + 10 * cm.barrier_s * cm.static_power_w)
    assert cm.activity is not None and cm.activity.per_layer(3)
    # the activity it rests on is labelled as the estimate labels it
    profiler.activity_probe()
    assert profiler.activity["profile"] == "measured profile"
    profiler.workload("370m", activity=str(EXAMPLE))
    assert profiler.activity["profile"].startswith("stand-in profile (measured on another model")
    profiler.workload("370m", activity="dense")
    assert profiler.activity["profile"] == "dense assumption"


def test_default_keeps_the_370m_headline_dense(reports):
    """Without a profile the 370M's figures are the dense assumption's, whatever stands in beside them."""
    from lava_matmulfree.loihi.report import build_report

    auto = build_report("370m", (500,))
    assert auto["platforms"]["loihi2"] == reports[0]["platforms"]["loihi2"]
    assert auto["options"]["activity"] == "dense"
    assert {r["activity"] for r in auto["activity"]["rows"]} <= {"dense", "stand-in"}


@pytest.mark.parametrize("key", ["activity", "options.activity"])
def test_activity_as_an_override(key):
    from lava_matmulfree.loihi.report import build_report

    r = build_report("tiny", (16,), **{key: str(EXAMPLE)})
    assert r["options"]["activity"].startswith(str(EXAMPLE))
    assert r["activity"]["densities"]["down_proj"]["per_layer"]  # tiny has the example's 3 layers


@pytest.mark.skipif(not act_path("deep").is_file(), reason="the deep model's profile is written by `profile`")
def test_a_shipped_model_is_costed_with_its_measured_profile_by_default():
    from lava_matmulfree.loihi.report import build_report

    r = build_report("deep", (16,), preset="project")
    assert r["options"]["activity"].startswith(str(act_path("deep")))
    rows = {(x["preset"], x["activity"]): x for x in r["activity"]["rows"]}
    assert rows[("project", "measured")]["decode_tokens_per_s"] == pytest.approx(
        r["platforms"]["loihi2"]["decode_tokens_per_s"])
    assert rows[("project", "dense")]["synops_per_token"] > rows[("project", "measured")]["synops_per_token"]


@pytest.mark.skipif(not act_path("deep").is_file(), reason="the deep model's profile is written by `profile`")
def test_by_default_8_bit_densities_are_not_spent_on_16_bit_spikes():
    """The paper preset (16-bit spikes) of a shipped model took its 8-bit profile for the headline: 11% fewer SynOps
    and 22% fewer messages than dense, where its spikes measured at 16 bits are nearly all non-zero (docs/activity.md,
    section 5). The headline stays dense there, the profile beside it; a profile given by name is still used."""
    from lava_matmulfree.loihi.report import build_report

    r = build_report("deep", (16,), preset="paper")
    assert r["options"]["activity"] == "dense" and r["platforms"]["loihi2"]["activity"] == "dense assumption"
    assert "16-bit spikes" in r["activity"]["why"] and str(act_path("deep")) in r["activity"]["why"]
    assert ("paper", "measured") in {(x["preset"], x["activity"]) for x in r["activity"]["rows"]}
    project = build_report("deep", (16,), preset="project")
    assert project["platforms"]["loihi2"]["activity"] == "measured profile"
    assert {v["activity"] for v in project["variants"] if "error" not in v} == {"dense assumption"}  # 16-bit
    given = build_report("deep", (16,), preset="paper", activity=str(act_path("deep")))
    assert given["platforms"]["loihi2"]["activity"] == "measured profile (8-bit spikes measured, 16-bit spikes costed)"


def test_estimate_takes_a_shipped_model_name(tmp_path, monkeypatch):
    import lava_matmulfree.loihi.outputs as outputs
    from lava_matmulfree.cli import main

    calls = []
    monkeypatch.setattr(outputs, "estimate_main", lambda name, out, **kw: calls.append(name))
    assert main(["estimate", "--config", "deep", "--out", str(tmp_path)]) == 0 and calls == ["deep"]
    cfg = act.model_config("deep")
    assert (cfg.hidden_size, cfg.num_layers) == (128, 12)


def test_a_profile_of_another_depth_says_its_averages_apply():
    """A 3-layer profile given for the 24-layer 370M: the report says that its per-type averages apply, where the
    same profile on a 3-layer model applies per layer and says nothing of it."""
    from lava_matmulfree.loihi.report import build_report

    deep = build_report("370m", (16,), activity=str(EXAMPLE))["activity"]["why"]
    assert "measured on 3 layers, this model has 24: its per-type averages over layers apply" in deep
    same = build_report("tiny", (16,), activity=str(EXAMPLE))["activity"]["why"]
    assert "measured on" not in same
