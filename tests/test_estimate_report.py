"""The estimate report's inputs and wording (docs/cost_model.md, docs/activity.md, docs/gpu_baselines.md):
``--set`` values type- and range-checked with one error line and recorded; user-set constants marked so; prefill
compared over the whole prompt on both sides of the verdict; the LM head on the host said; a profile labelled by
the model and the spike width it was measured on, and refused below 64 tokens; the paper's claims and its Qwen
baseline for its 370M only; tables of three significant figures."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lava_matmulfree.cli import main
from lava_matmulfree.loihi.activity import MIN_PROFILE_TOKENS, shipped_profile_path
from lava_matmulfree.loihi.hardware import LOIHI2, CostModelError, coerce
from lava_matmulfree.loihi.presets import PAPER
from lava_matmulfree.loihi.report import build_report
from lava_matmulfree.loihi.report_text import format_report
from lava_matmulfree.loihi.verdict import HEAD_ON_HOST, fmt_sig, format_verdict

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = Path(__file__).parent / "data" / "activity_example.json"  # the tiny shape, 8-bit spikes, 256 tokens


def one_error_line(capsys, argv) -> str:
    """Run the CLI; it must exit with status 2 and print exactly one ``error:`` line and no traceback."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def paper370():
    return build_report("370m", (500, 16384), preset="paper")


@pytest.fixture(scope="module")
def project370():
    return build_report("370m", (500,), preset="project")


# ------------------------------------------------------------------------------------------- 1. --set values
@pytest.mark.parametrize("item, named", [
    ("act_bits=abc", "act_bits must be an integer"), ("cores_per_block=abc", "cores_per_block must be an integer"),
    ("system_chips=abc", "system_chips must be an integer"), ("zero_fraction=abc", "zero_fraction must be a"),
    ("max_synapses_per_core=abc", "max_synapses_per_core must be an integer"),
    ("cores_per_block=1.5", "cores_per_block must be an integer"), ("act_bits=8.5", "act_bits must be an integer"),
    ("head_on_chip=off", "head_on_chip must be true or false"), ("head_on_chip=maybe", "head_on_chip must be true"),
    ("cores_per_block=-1", "cores_per_block must be >= 0"), ("cores_per_block=-3", "cores_per_block must be >= 0"),
    ("act_bits=20", "act_bits must be in [2, 16]"), ("zero_fraction=nan", "zero_fraction must be a finite number"),
    ("loihi2.cores_per_chip=abc", "cores_per_chip must be an integer"),
    ("jetson.host_on_board=maybe", "host_on_board must be true or false"),
    ("anchor_tokens=abc", "anchor_tokens must be an integer"), ("anchor_tokens=0", "anchor_tokens must be >= 1"),
])
def test_a_bad_set_value_is_one_error_line(capsys, tmp_path, item, named):
    """They gave a TypeError traceback, a numpy cast error, or were taken (cores_per_block=-1, the presets' hidden
    'one chip', act_bits=8.5, head_on_chip=maybe as True)."""
    line = one_error_line(capsys, ["estimate", "--config", "tiny", "--out", str(tmp_path / "o"), "--set", item])
    assert named in line
    assert not (tmp_path / "o").exists()  # nothing partial


def test_booleans_take_the_documented_words_only():
    words = {"true": True, "YES": True, "1": True, "false": False, "No": False, "0": False}
    assert {w: coerce("bool", w, "x") for w in words} == words
    for bad in ("off", "on", "maybe", "2", ""):
        with pytest.raises(CostModelError, match="true or false"):
            coerce("bool", bad, "x")
    assert "`true`/`false`, `yes`/`no` or `1`/`0`" in (ROOT / "docs" / "cost_model.md").read_text()


def test_what_is_set_is_what_is_computed_and_printed():
    """head_on_chip=no was taken as True ('no' is a non-empty string), fold_norms=no printed 'fold=no'."""
    r = build_report("tiny", (16,), preset="project", head_on_chip="no", fold_norms="no")
    assert r["options"]["head_on_chip"] is False and r["options"]["fold_norms"] is False
    assert not r["layers"][-1]["rows"]  # no group of the head on chip
    assert r["loihi"]["hops_per_layer"] == 18  # without the dual-norm fold: 18 hops a layer (docs/cost_model.md)
    header = format_report(r).splitlines()[1]
    assert "head_on_chip=False" in header and "fold_norms=False" in header


def test_a_system_smaller_than_its_mapping_is_refused_and_a_larger_one_described(capsys, tmp_path):
    line = one_error_line(capsys, ["estimate", "--config", "tiny", "--out", str(tmp_path), "--set", "system_chips=2"])
    assert "system_chips=2" in line and "3 chips" in line  # the paper preset puts tiny's 3 blocks on 3 chips
    r = build_report("tiny", (16,), preset="paper", system_chips="40")
    assert r["platforms"]["loihi2"]["system_chips"] == 40 and "a 40-chip system" in r["preset_description"]
    per_chip = next(c["value"] for c in r["constants"] if c["name"] == "loihi2.static_power_per_chip_w")
    assert r["platforms"]["loihi2"]["static_power_w"] == pytest.approx(40 * per_chip)


# ------------------------------------------------------------------------------------------- 4. provenance
def test_overrides_are_recorded_and_their_constants_read_user_set():
    r = build_report("tiny", (16,), preset="paper", act_bits="8", **{"loihi2.static_power_per_chip_w": "1"})
    assert r["overrides"] == {"options.act_bits": 8, "loihi2.static_power_per_chip_w": 1.0}
    assert r["preset_changed"] == {"options.act_bits": {"preset": 16, "set": 8}}  # the paper preset's W8A16
    c = next(c for c in r["constants"] if c["name"] == "loihi2.static_power_per_chip_w")
    assert c["value"] == 1.0 and c["confidence"] == "user-set" and "set by the user" in c["source"]
    assert "fitted" in c["note"]  # the default it replaced was fitted
    assert "loihi2.static_power_per_chip_w" not in {f["constant"] for f in r["calibration"]["fitted"]}
    line = next(ln for ln in format_report(r).splitlines() if "set by the user" in ln)
    assert "options.act_bits=8 (preset 'paper': 16)" in line
    assert "loihi2.static_power_per_chip_w=1.0 (fitted by default, kept as given)" in line
    plain = build_report("tiny", (16,), preset="paper")
    assert plain["overrides"] == {} and "user-set" not in {c["confidence"] for c in plain["constants"]}


def test_a_hardware_files_fitted_constant_is_kept_and_user_set(tmp_path):
    """A hardware file's board_sync_s was refitted over (only --set was held) and still read 'fitted'."""
    f = tmp_path / "hw.toml"
    f.write_text("[loihi2]\nboard_sync_s = 2e-5\n")
    r = build_report("tiny", (16,), preset="paper", hw_file=str(f))
    c = next(c for c in r["constants"] if c["name"] == "loihi2.board_sync_s")
    assert c["value"] == 2e-5 and c["confidence"] == "user-set"
    assert "loihi2.board_sync_s" not in {x["constant"] for x in r["calibration"]["fitted"]}
    assert r["hw_file"] == str(f)


def test_the_h200_fits_and_the_sparse_ratio_cite_where_they_come_from():
    r = build_report("tiny", (16,), preset="project")
    by_name = {c["name"]: c for c in r["constants"]}
    for name in ("h200.host_op_overhead_s", "h200.kernel_floor_s"):
        assert "H200 measurement" in by_name[name]["source"] and "paper's anchors" not in by_name[name]["source"]
    ratio = by_name["loihi2.sparse_to_dense_ratio"]
    assert "docs/cost_model.md, section 1 ('The sparse encoding')" in ratio["source"]
    doc = (ROOT / "docs" / "cost_model.md").read_text()
    section = doc[doc.index("**The sparse encoding.**"):doc.index("## 2. Time")]
    # the derivation written there gives the constants: (10 + 8 + 4.5) bits per non-zero, 2/3 of them, / 2 bits
    assert "10-bit input index" in section and "8-bit weight field" in section and "4.5" in section
    assert (10 + 8 + 4.5) * (1 - LOIHI2.sparse_reference_zero_fraction) / LOIHI2.sparse_reference_dense_bits == (
        pytest.approx(LOIHI2.sparse_to_dense_ratio))
    assert LOIHI2.sparse_bits_per_nonzero == pytest.approx(10 + 8 + 4.5)


# ------------------------------------------------------------------------------------------- 3. prefill
def test_the_verdict_compares_whole_prompts_on_both_sides(paper370):
    """Loihi 2's prefill energy was steady-state (3.28 mJ) against the GPUs' whole-prompt energy / 500."""
    T = paper370["prompt_tokens"]
    lp = paper370["platforms"]["loihi2"]
    swept = next(row["loihi2"] for row in paper370["sweep"] if row["prompt_tokens"] == T)
    assert lp["prefill_mj_per_token"] == pytest.approx(swept["prefill_mj_per_token"])  # a whole prompt, as swept
    assert lp["prefill_mj_per_token"] > lp["prefill_steady_mj_per_token"]  # the pipeline fill costs static power
    pair = next(p for p in paper370["verdict"]["pairs"] if p["loihi"] == "preset 'paper'"
                and (p["gpu"], p["model"], p["runtime"]) == ("jetson-orin-nano", "transformer++", "eager"))
    jetson = paper370["platforms"]["jetson/llama370m"]
    assert pair["gpu_prefill_mj_per_token"] == pytest.approx(jetson["prefill_mj_per_token"])
    assert pair["prefill_energy_ratio"] == pytest.approx(jetson["prefill_mj_per_token"] / lp["prefill_mj_per_token"])
    assert pair["prefill_throughput_ratio"] == pytest.approx((T / lp["ttft_s"]) / (T / jetson["ttft_s"]))
    # the paper published its steady-state prefill energy only: no whole-prompt ratio is made up for it
    measured = [p for p in paper370["verdict"]["pairs"] if p["loihi"] == "paper's measurement, 24 chips"]
    assert measured and all(p["prefill_energy_ratio"] is None for p in measured)
    assert measured[0]["prefill_throughput_ratio"] == pytest.approx(
        (PAPER.prompt_tokens / PAPER.loihi_ttft_s) / measured[0]["gpu_prefill_tokens_per_s"])
    text = format_verdict(paper370["verdict"])
    assert f"energy per token of the whole {T}-token prompt" in text


def test_the_api_and_the_printed_report_name_one_prefill_figure(project370):
    """The CLI printed 1.85 mJ/tok (steady) for the project preset where summary(500) gave 2.087 mJ (whole)."""
    from lava_matmulfree.loihi import estimate

    s = project370["loihi"]  # LoihiCostModel.summary of the preset
    lp = project370["platforms"]["loihi2"]
    assert lp["prefill_mj_per_token"] == pytest.approx(1e3 * s["prefill_energy_per_token_j"])
    assert lp["prefill_steady_mj_per_token"] == pytest.approx(1e3 * s["prefill_steady_energy_per_token_j"])
    assert s["prefill_tokens_per_s"] == pytest.approx(500 / s["ttft_s"])
    assert s["prefill_steady_tokens_per_s"] == pytest.approx(1 / s["prefill_step_s"])
    api = estimate("370m").summary(500)
    assert api["prefill_tokens_per_s"] == pytest.approx(500 / api["ttft_s"])
    row = next(ln for ln in format_report(project370).splitlines() if ln.startswith("Loihi 2, preset 'project'"))
    cells = row.split()
    assert fmt_sig(lp["prefill_mj_per_token"]) in cells and fmt_sig(lp["prefill_steady_mj_per_token"]) in cells
    assert cells.index(fmt_sig(lp["prefill_mj_per_token"])) < cells.index(fmt_sig(lp["prefill_steady_mj_per_token"]))
    assert "prefill: the whole 500-token prompt on every platform" in format_report(project370)


# ------------------------------------------------------------------------------------------- 5. the LM head
def test_the_verdict_says_where_the_lm_head_is_not_costed(paper370, project370):
    deployments = paper370["verdict"]["deployments"]
    assert deployments["preset 'paper'"]["head_on_chip"] is False
    assert deployments["variant: LM head on chip (8-bit)"]["head_on_chip"] is True
    text = format_verdict(paper370["verdict"])
    heading = text.index("== Verdict: Loihi 2 (preset 'paper')")
    assert HEAD_ON_HOST in text[heading:text.index("\n== ", heading + 1)]
    assert "variant: LM head on chip (8-bit) *" not in text and "preset 'paper' *" in text
    project = format_verdict(project370["verdict"])
    assert f"Loihi 2 (preset 'project'): {HEAD_ON_HOST}" not in project


# ------------------------------------------------------------------------------------------- 6. other models
def test_another_model_is_not_held_to_the_papers_claims_nor_to_qwen():
    r = build_report("demo", (500,), preset="project")
    assert r["verdict"]["claims"] == [] and not r["verdict"]["paper_claims"]
    assert not any(p["model"] == "qwen2.5-0.5b" for p in r["verdict"]["pairs"])
    assert not any("qwen" in k for k in r["platforms"])
    text = format_report(r)
    assert "not evaluated for this 3-layer model" in text and "holds against" not in text
    # the platform table's columns line up whatever the length of a baseline's name
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("platform"))
    table = lines[start:start + 1 + len(r["platforms"])]
    assert any("lava-matmulfree-demo" in ln for ln in table)
    assert len({len(ln) for ln in table}) == 1


def test_the_370m_keeps_qwen_and_the_claims(paper370):
    assert {c["claim"] for c in paper370["verdict"]["claims"]} == {"throughput", "energy", "ttft"}
    assert "jetson/qwen0.5b" in paper370["platforms"]


# ------------------------------------------------------------------------------------------- 2, 8. profiles
def _profile(tmp_path, name="p", **changes) -> Path:
    raw = json.loads(EXAMPLE.read_text())
    raw.update(changes)
    f = tmp_path / f"{name}.json"
    f.write_text(json.dumps(raw))
    return f


def test_a_profiles_spike_width_is_labelled_where_it_differs(tmp_path):
    wide = _profile(tmp_path, act_bits=16)  # the tiny shape, measured at 16-bit spikes
    r = build_report("tiny", (500,), preset="paper", activity=str(wide))
    rows = {(x["preset"], x["activity"]): x for x in r["activity"]["rows"]}
    assert rows[("paper", "measured")]["caveats"] == []  # the paper preset sends 16-bit spikes too
    assert rows[("project", "measured")]["caveats"] == ["16-bit spikes measured, 8-bit spikes costed"]
    assert r["platforms"]["loihi2"]["activity"] == "measured profile"
    narrow = build_report("tiny", (500,), preset="paper", activity=str(EXAMPLE))  # 8-bit on the 16-bit preset
    label = narrow["platforms"]["loihi2"]["activity"]
    assert label == "measured profile (8-bit spikes measured, 16-bit spikes costed)"
    assert narrow["verdict"]["deployments"]["preset 'paper'"]["activity"] == label
    assert label in format_verdict(narrow["verdict"]) and label in format_report(narrow)
    activity_rows = [ln for ln in format_report(narrow).splitlines() if ln.startswith("paper    measured")]
    assert activity_rows and "8!" in activity_rows[0]


def test_the_370m_stand_in_says_its_model_and_its_spike_width(paper370):
    rows = {(x["preset"], x["activity"]): x for x in paper370["activity"]["rows"]}
    paper = rows[("paper", "stand-in")]["caveats"]
    assert any(c.startswith("measured on another model (deep model: d 128, 12 layers") for c in paper)
    assert "8-bit spikes measured, 16-bit spikes costed" in paper
    assert "8-bit spikes measured" not in " ".join(rows[("project", "stand-in")]["caveats"])
    doc = (ROOT / "docs" / "activity.md").read_text()
    assert "In both presets, the measured activity removes" not in doc  # it held at 8-bit spikes only


def test_a_profile_of_another_model_is_a_stand_in():
    """A 3-layer profile given for the 370M was labelled 'measured'."""
    r = build_report("370m", (500,), activity=str(EXAMPLE))
    assert r["activity"]["headline"] == "stand-in" and not r["activity"]["of_this_model"]
    assert r["platforms"]["loihi2"]["activity"].startswith("stand-in profile (measured on another model")
    own = build_report("tiny", (500,), preset="project", activity=str(EXAMPLE))
    assert own["activity"]["headline"] == "measured" and own["platforms"]["loihi2"]["activity"] == "measured profile"


def test_a_profile_of_too_few_tokens_is_refused(tmp_path, capsys):
    short = _profile(tmp_path, tokens=MIN_PROFILE_TOKENS - 1)
    with pytest.raises(CostModelError, match=rf"tokens: {MIN_PROFILE_TOKENS - 1} measured, fewer than"):
        build_report("tiny", (16,), activity=str(short))
    line = one_error_line(capsys, ["estimate", "--config", "tiny", "--out", str(tmp_path / "o"),
                                   "--activity", str(short)])
    assert "p.json: tokens" in line
    build_report("tiny", (16,), activity=str(_profile(tmp_path, "enough", tokens=MIN_PROFILE_TOKENS)))


def test_the_profile_command_refuses_an_empty_text_and_notes_a_short_one(tmp_path, capsys):
    line = one_error_line(capsys, ["profile", "--config", "tiny", "--prompt", "", "--out", str(tmp_path / "e")])
    assert "--prompt holds no token" in line and not (tmp_path / "e.json").exists()
    assert main(["profile", "--config", "tiny", "--prompt", "abc", "--no-plot", "--out", str(tmp_path / "s")]) == 0
    assert f"fewer than the {MIN_PROFILE_TOKENS}" in capsys.readouterr().err


@pytest.mark.skipif(not shipped_profile_path("deep").is_file(), reason="the deep model is not installed")
def test_sixty_four_tokens_are_enough_and_thirty_two_are_not(tmp_path):
    """The minimum's reason (docs/activity.md, section 4): every per-layer density of the deep model measured over
    64 tokens is within 6% of its 256-token profile; over 32 tokens some is not (13%)."""
    shipped = json.loads(shipped_profile_path("deep").read_text())

    def worst(tokens):
        assert main(["profile", "--model", "deep", "--tokens", str(tokens), "--no-plot",
                     "--out", str(tmp_path / f"d{tokens}")]) == 0
        short = json.loads((tmp_path / f"d{tokens}.json").read_text())
        return max(abs(a["connections"][k]["density"] / b["connections"][k]["density"] - 1)
                   for a, b in zip(short["layers"], shipped["layers"]) for k in b["connections"])

    assert worst(64) <= 0.06 < worst(32) <= 0.13
    assert MIN_PROFILE_TOKENS == 64


# ------------------------------------------------------------------------------------------- 7, 9. docs, tables
def test_activity_doc_says_what_the_code_counts_for_zero_weights():
    assert LOIHI2.dense_skips_zero_weights
    doc = (ROOT / "docs" / "activity.md").read_text()
    section = doc[doc.index("## 2."):doc.index("## 3.")]
    assert "the non-zero weights (1 - `zero_fraction` of them) in either encoding" in section
    assert "every stored weight in the dense encoding" not in section


def test_tables_print_three_significant_figures():
    assert [fmt_sig(x) for x in (405.0, 3.2789, 0.012345, 1064.3, 0.99999, None)] == [
        "405", "3.28", "0.0123", "1,064", "1.00", "-"]
    r = build_report("demo", (500,), preset="project")  # a small model: mJ figures below 0.1
    lp = r["platforms"]["loihi2"]
    assert lp["decode_mj_per_token"] < 0.1
    row = next(ln for ln in format_report(r).splitlines() if ln.startswith("Loihi 2, preset 'project'"))
    for key in ("decode_mj_per_token", "prefill_mj_per_token", "prefill_steady_mj_per_token"):
        cell = fmt_sig(lp[key])
        assert cell in row.split() and len(re.sub(r"^[0.,]+", "", cell).replace(".", "")) == 3


def test_the_sensitivity_table_gives_its_units():
    """The base TTFT was printed in seconds (0.09835) under a heading without a unit, beside figures in ms."""
    from lava_matmulfree.loihi.sensitivity import QUANTITIES, format_sensitivity

    base = {label: 0.0983 if "TTFT" in label else 405.0 for label, *_ in QUANTITIES}
    s = {"config": "370m", "factors": [0.5, 2.0], "base": base,
         "status": {label: "predicted" for label, *_ in QUANTITIES}, "rows": []}
    text = format_sensitivity(s)
    headings, base_line = text.splitlines()[2], text.splitlines()[3]
    assert "TTFT ms" in headings and "98.3" in base_line.split() and "0.0983" not in base_line


def test_estimate_costs_a_checkpoint_folder(capsys, tmp_path, monkeypatch, tiny_cfg):
    """`estimate --config <checkpoint folder>` was 'is a folder, not a config file', and its config.json 'not valid
    TOML'; an HF config naming its repo ('org/name') broke the plots. Now both cost the folder's model."""
    from lava_matmulfree.config import replace

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "my-ckpt"
    folder.mkdir()
    hf = replace(tiny_cfg, name="someone/MMfreeLM-tiny").to_hf()
    (folder / "config.json").write_text(json.dumps(hf))
    for given in ("my-ckpt", "my-ckpt/config.json"):
        assert main(["estimate", "--config", given, "--out", "est"]) == 0
        out = capsys.readouterr().out
        assert f"== Loihi 2 mapping: {given} (L=3, d=72, I=200, V=259)" in out
        report = json.loads((tmp_path / "est" / "cost_my-ckpt_paper.json").read_text())
        assert report["model"]["hidden_size"] == tiny_cfg.hidden_size
        assert {p.split("/", 1)[0] for p in report["platforms"]} == {"loihi2", "jetson", "h100", "h200"}
    assert "config.json" in one_error_line(capsys, ["estimate", "--config", "my-ckpt", "--json",
                                                    "my-ckpt/config.json"])
    (folder / "config.json").write_text("{not json")
    assert "my-ckpt/config.json: not valid JSON" in one_error_line(
        capsys, ["estimate", "--config", "my-ckpt", "--out", "est"])


def test_estimate_names_a_misspelled_config_json_key_as_loading_the_checkpoint_does(capsys, tmp_path, monkeypatch,
                                                                                   tiny_cfg):
    """`estimate --config <folder>` read config.json itself: a misspelled optional key was defaulted without a word
    (the checkpoint loader warns), a misspelled shape key said only that the key was missing."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "my-ckpt"
    folder.mkdir()
    hf = tiny_cfg.to_hf()
    hf["rms_norm_epsilon"] = hf.pop("rms_norm_eps")
    (folder / "config.json").write_text(json.dumps(hf))
    assert main(["estimate", "--config", "my-ckpt", "--out", "est"]) == 0
    err = capsys.readouterr().err
    assert "unknown key 'rms_norm_epsilon' is ignored: did you mean 'rms_norm_eps'?" in err, err
    hf["hidden_sise"] = hf.pop("hidden_size")
    (folder / "config.json").write_text(json.dumps(hf))
    line = one_error_line(capsys, ["estimate", "--config", "my-ckpt/config.json", "--out", "est"])
    assert "'hidden_sise'" in line and "did you mean 'hidden_size'" in line, line


def test_the_mapping_table_names_the_layers_laid_out_as_each_shown_layer():
    """The table printed "(layers 1..23 as layer 0)" where layer 0 shares its block's cores with the input neurons
    (370M paper: 26 cores for i, f, g against 28 in the other layers; the project preset has three layouts)."""
    from lava_matmulfree.loihi.report_text import _layer_layouts, _ranges

    assert _ranges([1, 2, 3, 5, 7, 8]) == "1..3, 5, 7..8" and _ranges([4]) == "4"
    for preset in ("paper", "project"):
        r = build_report("370m", (500,), preset=preset)
        layouts = _layer_layouts(r["layers"], 24)
        assert sorted(l for first, same in layouts.items() for l in (first, *same)) == list(range(24))
        cores = {lay["layer"]: [row["cores"] for row in lay["rows"]] for lay in r["layers"]}
        for first, same in layouts.items():
            assert all(l > first and cores[l] == cores[first] for l in same)
        firsts = sorted(layouts)
        text = format_report(r)
        for first in firsts:
            assert f"L{first}.ifg " in text, (preset, first)
        if preset == "paper":
            assert cores[0] != cores[1] and "(layers 2..23 as layer 1)" in text, text


def test_an_unknown_config_names_what_estimate_takes_besides_the_toml_configs(capsys):
    """`estimate --config 999m` listed the TOML configs only, though estimate takes the shipped models too."""
    line = one_error_line(capsys, ["estimate", "--config", "999m"])
    assert "no model config named '999m'" in line and "estimate also takes demo, deep" in line, line


def test_the_constants_list_gives_the_values_the_preset_ran_with():
    """The paper preset ran with 8-bit weights, and the report's constants said 2 (the default)."""
    for preset, bits, source in (("paper", 8, "preset 'paper'"), ("project", 2, None)):
        r = build_report("370m", (500,), preset=preset)
        c = next(c for c in r["constants"] if c["name"] == "loihi2.dense_weight_bits")
        assert c["value"] == bits == r["loihi"]["dense_weight_bits"], c
        assert (c["source"] == source) if source else "preset" not in c["source"], c
    r = build_report("370m", (500,), preset="paper", **{"loihi2.dense_weight_bits": 4})  # a user's value says so
    c = next(c for c in r["constants"] if c["name"] == "loihi2.dense_weight_bits")
    assert c["value"] == 4 and "preset" not in c["source"], c

