"""Bad inputs and faults get one clear `error:` line naming the culprit, no traceback, and no partial file
(the table in docs/reliability.md lists each case). Signals and parent death: tests/test_signals.py."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from lava_matmulfree.cli import common as cli
from lava_matmulfree.utils.atomic import atomic_outputs
from lava_matmulfree.graph.backends import generate
from lava_matmulfree.io.checkpoint import save_checkpoint
from conftest import fails, files_in
from lava_matmulfree.cli import main
from lava_matmulfree.errors import CheckpointError, NumericalError, OutputError
from lava_matmulfree.model.float_model import FloatModel
from lava_matmulfree.utils.limits import SizeError
from lava_matmulfree.model.quantise import QuantisedNetwork

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "lava_matmulfree" / "data" / "demo_model"
HUGE = str(10 ** 12)


@pytest.fixture(autouse=True)
def no_demo_model(request, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "DEMO_MODEL_DIR", tmp_path / "no_demo_model")
    monkeypatch.chdir(tmp_path)




# ------------------------------------------------------------------------------------- outputs
def test_probe_into_an_unwritable_place_names_it_and_writes_nothing(capsys, tmp_path):
    fails(["probe", "--config", "tiny", "--backend", "reference", "--max-new-tokens", "1", "--out", "/proc/p"],
          capsys, "/proc/p")
    assert not Path("/proc/p.npz").exists()


def test_probe_whose_png_is_a_folder_leaves_no_npz(capsys, tmp_path):
    (tmp_path / "p.png").mkdir()
    before = files_in(tmp_path)
    fails(["probe", "--config", "tiny", "--backend", "reference", "--max-new-tokens", "1", "--out", "p"],
          capsys, "p.png")
    assert files_in(tmp_path) == before


@pytest.mark.parametrize("argv, culprit", [
    (["estimate", "--config", "tiny", "--out", "afile"], "afile"),
    (["compile", "--config", "tiny", "--out", "adir"], "adir"),
    (["eval", "--config", "tiny", "--sequences", "1", "--length", "4", "--json", "adir"], "adir"),
    (["compile", "--config", "tiny", "--out", "afile/x.safetensors"], "afile"),
])
def test_output_path_of_the_wrong_kind(argv, culprit, capsys, tmp_path):
    (tmp_path / "afile").write_text("keep me")
    (tmp_path / "adir").mkdir()
    before = files_in(tmp_path)
    fails(argv, capsys, culprit)
    assert files_in(tmp_path) == before
    assert (tmp_path / "afile").read_text() == "keep me"


def test_atomic_outputs_leave_nothing_on_failure_and_keep_the_old_file(tmp_path):
    old = tmp_path / "a.txt"
    old.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_outputs(old, tmp_path / "b.txt") as (ta, tb):
            ta.write_text("new")
            tb.write_text("half")
            raise RuntimeError("midway")
    assert files_in(tmp_path) == {"a.txt"} and old.read_text() == "old"
    with atomic_outputs(old, tmp_path / "b.txt") as (ta, tb):
        ta.write_text("new")
        tb.write_text("b")
    assert files_in(tmp_path) == {"a.txt", "b.txt"} and old.read_text() == "new"


def test_atomic_write_error_names_the_output_not_the_temporary_file(tmp_path):
    with pytest.raises(OutputError, match=r"^/proc/x\.bin: cannot write"):
        with atomic_outputs("/proc/x.bin") as (t,):
            t.write_bytes(b"1")


def test_compile_writes_a_whole_file(capsys, tmp_path):
    assert main(["compile", "--config", "tiny", "--calib-length", "4", "--out", "net.safetensors"]) == 0
    assert files_in(tmp_path) == {"net.safetensors"}
    QuantisedNetwork.load(tmp_path / "net.safetensors")


# ------------------------------------------------------------------------------------- compiled networks
@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """A compiled tiny network: its file, tensors and header."""
    from lava_matmulfree.evaluation.accuracy import build_evaluation

    path = tmp_path_factory.mktemp("net") / "net.safetensors"
    build_evaluation("tiny", seed=5, num_calib=1, calib_length=4).net.save(path)
    with safe_open(str(path), framework="numpy") as f:
        header = f.metadata()
    return path, load_file(str(path)), header


def rewrite(tmp_path, compiled, tensors=None, meta=None, raw_meta=None) -> Path:
    path, t0, h0 = compiled
    header = dict(h0)
    if meta is not None:
        header["meta"] = json.dumps(meta)
    if raw_meta is not None:
        header["meta"] = raw_meta
    out = tmp_path / "bad.safetensors"
    save_file(tensors if tensors is not None else t0, str(out), metadata=header)
    return out


def loads_with(path, *culprits):
    with pytest.raises(CheckpointError) as e:
        QuantisedNetwork.load(path)
    msg = str(e.value)
    assert msg.startswith(str(path)), msg
    for c in culprits:
        assert c in msg, msg
    return msg


def test_missing_tensor(tmp_path, compiled):
    t = dict(compiled[1])
    del t["layers.1.f.w"]
    loads_with(rewrite(tmp_path, compiled, tensors=t), "layers.1.f.w", "missing")


def test_missing_meta_key(tmp_path, compiled):
    meta = json.loads(compiled[2]["meta"])
    del meta["layers.2.h_frac"]
    loads_with(rewrite(tmp_path, compiled, meta=meta), "layers.2.h_frac")


@pytest.mark.parametrize("name, shape", [("layers.0.gate_w", (399, 72)), ("embed", (259, 71)),
                                         ("head.inner_m", (70,))])
def test_mis_shaped_tensor(tmp_path, compiled, name, shape):
    t = dict(compiled[1])
    t[name] = np.zeros(shape, dtype=t[name].dtype)
    loads_with(rewrite(tmp_path, compiled, tensors=t), name, str(shape))


def test_wrong_dtype_and_out_of_range_values(tmp_path, compiled):
    t = dict(compiled[1])
    t["lm_head"] = t["lm_head"].astype(np.float32)
    loads_with(rewrite(tmp_path, compiled, tensors=t), "lm_head", "float32")
    t = dict(compiled[1])
    w = t["layers.2.o.w"].copy()
    w[3, 5] = 2
    t["layers.2.o.w"] = w
    loads_with(rewrite(tmp_path, compiled, tensors=t), "layers.2.o.w", "[-1, 2]")
    t = dict(compiled[1])
    lut = t["sigmoid_lut"].copy()
    lut[7] += 1
    t["sigmoid_lut"] = lut
    loads_with(rewrite(tmp_path, compiled, tensors=t), "sigmoid_lut")


def test_meta_vocab_that_disagrees_with_the_embedding(tmp_path, compiled):
    meta = json.loads(compiled[2]["meta"])
    meta["cfg"]["vocab_size"] = 300
    loads_with(rewrite(tmp_path, compiled, meta=meta), "embed", "vocab_size=300")


def test_truncated_meta_json(tmp_path, compiled):
    loads_with(rewrite(tmp_path, compiled, raw_meta=compiled[2]["meta"][:-40]), "JSON")


def test_bad_compiled_file_through_the_cli(tmp_path, compiled, capsys):
    t = dict(compiled[1])
    del t["embed"]
    bad = rewrite(tmp_path, compiled, tensors=t)
    fails(["generate", "--checkpoint", str(bad), "--backend", "reference", "--max-new-tokens", "1"], capsys,
          bad, "embed")


def test_compiled_file_of_another_checkpoint_is_not_trusted(tmp_path, tiny_checkpoint, capsys):
    """The demo's compiled network (hidden 192) copied into a tiny checkpoint (hidden 72): the tiny weights
    are compiled instead, with a warning; a matching compiled file is used without one."""
    shutil.copy(DEMO / "compiled.safetensors", tiny_checkpoint / "compiled.safetensors")
    argv = ["generate", "--checkpoint", str(tiny_checkpoint), "--backend", "reference", "--max-new-tokens", "3",
            "--temperature", "0"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "compiled from other weights" in err and str(tiny_checkpoint) in err
    assert "[checkpoint" in err  # compiled from the weights, not "[compiled network ...]"
    assert main(["compile", "--checkpoint", str(tiny_checkpoint), "--calib-length", "4",
                 "--out", str(tiny_checkpoint / "compiled.safetensors")]) == 0
    capsys.readouterr()
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "warning" not in err and "[compiled network" in err


def test_shipped_demo_compiled_file_matches_its_weights():
    from lava_matmulfree.io.checkpoint import fingerprint, load_checkpoint

    net = QuantisedNetwork.load(DEMO / "compiled.safetensors")
    assert net.fingerprint == fingerprint(*load_checkpoint(DEMO))


def test_fingerprint_sees_one_changed_weight(tiny_cfg, tiny_params):
    from lava_matmulfree.io.checkpoint import fingerprint

    a = fingerprint(tiny_cfg, tiny_params)
    tiny_params["model.layers.1.attn.o_proj.weight"][4, 4] += 1e-3
    assert fingerprint(tiny_cfg, tiny_params) != a


# ------------------------------------------------------------------------------------- sizes
def test_huge_max_new_tokens(capsys):
    fails(["generate", "--config", "tiny", "--backend", "reference", "--max-new-tokens", HUGE], capsys,
          "--max-new-tokens", HUGE)


@pytest.mark.parametrize("backend", ["reference", "float", "sim-fused"])
def test_generation_larger_than_memory_fails_before_running(backend, tiny_cfg, tiny_params):
    from lava_matmulfree.evaluation.accuracy import build_evaluation
    from lava_matmulfree.utils.limits import MAX_NEW_TOKENS

    setup = build_evaluation("tiny", seed=1, num_calib=1, calib_length=4)
    with pytest.raises(SizeError, match="max_new_tokens"):
        generate(backend, setup.net, [1, 5], 10 ** 12, float_model=setup.float_model)
    big = type(tiny_cfg)(**{**tiny_cfg.__dict__, "vocab_size": 10 ** 7})  # logits of 80 MB per token
    with pytest.raises(SizeError, match="GiB"):
        from lava_matmulfree.utils.limits import check_generation

        check_generation(big, 1, MAX_NEW_TOKENS)


def test_a_long_generation_is_sized_by_what_decoding_keeps(capsys, monkeypatch):
    """Decoding keeps logits and a probe row per layer, not the sequence activations of an evaluation: the bound
    lies above the measured peak (390 MB for 50,000 new tokens on the demo model's reference backend) but not
    40x above it (the old bound said 7.1 GiB and refused 200,000 tokens); the CLI names --max-new-tokens before
    it echoes the prompt."""
    from lava_matmulfree.config import ModelConfig
    from lava_matmulfree.utils import limits

    demo = ModelConfig(hidden_size=192, num_layers=3, intermediate_size=512, vocab_size=259)
    assert 390e6 < 50_000 * limits.new_token_bytes(demo) < 2 * 390e6
    monkeypatch.setattr(limits, "available_memory", lambda: 2 ** 30)
    limits.check_generation(demo, 19, 100_000)  # 0.8 GiB: fits in 1 GiB
    monkeypatch.setattr(limits, "available_memory", lambda: 20 * 2 ** 20)  # the tiny model builds in 4 MiB
    with pytest.raises(SystemExit):
        main(["generate", "--config", "tiny", "--backend", "reference", "--max-new-tokens", "5000"])
    out = capsys.readouterr()
    assert out.out == "" and "error: --max-new-tokens 5000 (after" in out.err and "GiB" not in out.err


@pytest.mark.parametrize("argv, culprits", [
    (["eval", "--config", "tiny", "--length", HUGE], ["--length", HUGE, "GiB"]),
    (["eval", "--config", "tiny", "--sequences", HUGE], ["--sequences", HUGE]),
    (["compile", "--config", "tiny", "--out", "x.safetensors", "--calib-length", HUGE], ["--calib-length"]),
    (["eval", "--config", "tiny", "--set", f"sigmoid_lut_size={2 ** 40}"], ["sigmoid_lut_size", str(2 ** 40)]),
])
def test_huge_sizes(argv, culprits, capsys, tmp_path):
    fails(argv, capsys, *culprits)
    assert files_in(tmp_path) == set()


# ------------------------------------------------------------------------------------- train
@pytest.mark.parametrize("argv, culprit", [(["--steps", "-5"], "--steps"), (["--hidden-size", "0"], "--hidden-size"),
                                           (["--batch-size", "0"], "--batch-size"), (["--seq-len", "0"], "seq_len"),
                                           (["--lr", "nan"], "--lr")])
def test_train_refuses_nonsense_before_training(argv, culprit, capsys, tmp_path):
    fails(["train", "--out", "m", *argv], capsys, culprit)
    assert not (tmp_path / "m").exists()


def run_without_torch(code: str) -> subprocess.CompletedProcess:
    """Python with torch unimportable, as on an install without the train extra."""
    return subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None\n" + code],
                          capture_output=True, text=True, timeout=120)


def test_train_help_without_the_training_extra():
    r = run_without_torch("from lava_matmulfree.cli import main; main(['train', '--help'])")
    assert r.returncode == 0, r.stderr
    assert "--hidden-size" in r.stdout and "--steps" in r.stdout
    r = run_without_torch("from lava_matmulfree.cli import main; main(['train', '--steps', '3'])")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "pip install" in r.stderr


# ------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("text, culprit", [("", "[model]"), ("[run]\nbackend = 'sim'\n", "[model]"),
                                           ("[fixed_point]\nact_bits = 6\n", "[model]")])
def test_model_config_without_a_model_section(text, culprit, capsys, tmp_path):
    (tmp_path / "c.toml").write_text(text)
    fails(["generate", "--config", "c.toml", "--backend", "float", "--max-new-tokens", "1"], capsys, "c.toml", culprit)
    fails(["eval", "--config", "c.toml"], capsys, "c.toml", culprit)


def test_estimate_of_a_run_config(capsys, tmp_path):
    fails(["estimate", "--config", "sim", "--out", "est"], capsys, "sim.toml", "[model]")
    assert files_in(tmp_path) == set()


def test_run_config_without_a_run_section(capsys):
    fails(["generate", "--config", "tiny", "--run-config", "tiny"], capsys, "tiny.toml", "[run]")


def test_config_that_is_a_folder_or_binary(capsys, tmp_path):
    (tmp_path / "d.toml").mkdir()
    fails(["generate", "--config", "d.toml"], capsys, "d.toml")
    (tmp_path / "b.toml").write_bytes(bytes(range(128, 256)) * 4)
    fails(["generate", "--config", "b.toml"], capsys, "b.toml")


def test_empty_calibration_text(capsys, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    fails(["compile", "--config", "tiny", "--out", "x.safetensors", "--calib-text", "empty.txt"], capsys,
          "empty.txt")
    assert not (tmp_path / "x.safetensors").exists()


# ------------------------------------------------------------------------------------- smaller cases
def test_negative_seed_names_the_option(capsys):
    fails(["generate", "--config", "tiny", "--seed", "-1"], capsys, "--seed")


def test_missing_checkpoint_is_not_called_a_tokenizer_folder(capsys):
    line = fails(["generate", "--checkpoint", "no/such/model", "--backend", "reference"], capsys,
                 "no/such/model", "--checkpoint")
    assert "tokenizer" not in line


def test_tokenizer_larger_than_the_model_names_tokenizer_json(capsys, tiny_checkpoint):
    from tokenizers import Tokenizer, models

    tok = Tokenizer(models.WordLevel({f"w{i}": i for i in range(300)}, unk_token="w0"))
    tok.save(str(tiny_checkpoint / "tokenizer.json"))
    fails(["generate", "--checkpoint", str(tiny_checkpoint), "--backend", "float"], capsys,
          tiny_checkpoint / "tokenizer.json", "300", "259")


@pytest.mark.parametrize("prompt, culprit", [([1, 2.0, 3], "prompt[1]"), ([1, "7"], "prompt[1]"),
                                             ([True, 4], "prompt[0]"), ([1, 900], "prompt[1]")])
def test_api_refuses_token_ids_that_are_not_integers(prompt, culprit, tiny_cfg, tiny_params):
    model = FloatModel(tiny_cfg, tiny_params)
    with pytest.raises(ValueError, match=culprit.replace("[", r"\[")):
        generate("float", None, prompt, 2, float_model=model)
    assert generate("float", None, [np.int64(1), 7], 2, float_model=model).tokens  # numpy integers are fine


def test_overflowing_weights_on_the_float_backend(capsys, tmp_path, tiny_cfg, tiny_params):
    save_checkpoint(tmp_path / "big", tiny_cfg, {k: v * 1e30 for k, v in tiny_params.items()})
    fails(["generate", "--checkpoint", "big", "--backend", "float", "--max-new-tokens", "2"], capsys,
          "not finite", "float32", "model.")
    with pytest.raises(NumericalError):
        FloatModel(tiny_cfg, {k: v * 1e30 for k, v in tiny_params.items()}, dtype=np.float32).prefill([1, 2])


def test_stats_line_shows_whole_steps():
    from types import SimpleNamespace

    line = cli._lava_stats(SimpleNamespace(steps=30, steps_per_layer=0, leaf_processes=8))  # sim-stack, sim-fused
    assert "; 30 time steps, 0 step(s) per token per layer (fused blocks: " in line
    assert line.endswith(", 8 leaf processes")
    line = cli._lava_stats(SimpleNamespace(steps=39, steps_per_layer=12, leaf_processes=73))
    assert "12 step(s) per token per layer, 73 leaf processes" in line and "fused" not in line


def test_python_dash_m():
    r = subprocess.run([sys.executable, "-m", "lava_matmulfree", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "generate" in r.stdout


def test_license_is_an_spdx_string():
    import tomli

    project = tomli.loads((REPO / "pyproject.toml").read_text())["project"]
    assert isinstance(project["license"], str)
