"""Outputs checked before the work, and inputs that were accepted silently or named no culprit (issue 27, items
6, 7 and 8; docs/reliability.md): each gets one `error:` line naming the option, file, key or tensor, before
any work, and loses nothing."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from lava_matmulfree.cli import common as cli
from conftest import fails, files_in
from lava_matmulfree.cli import main
from lava_matmulfree.errors import BackendError, CheckpointError, OutputError
from lava_matmulfree.io.checkpoint import WEIGHTS_FILE, save_checkpoint
from lava_matmulfree.model.quantise import QuantisedNetwork
from lava_matmulfree.utils.atomic import atomic_outputs, temp_path

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def no_demo_model(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "DEMO_MODEL_DIR", tmp_path / "no_demo_model")
    monkeypatch.chdir(tmp_path)




@pytest.fixture(scope="module")
def net():
    from lava_matmulfree.evaluation.accuracy import build_evaluation

    return build_evaluation("tiny", seed=5, num_calib=1, calib_length=4).net


# ------------------------------------------------------------------------------------- item 6: train --out
@pytest.mark.parametrize("held", ["config.json", "model.safetensors"])
def test_train_keeps_a_model_its_out_folder_holds(held, capsys, tmp_path):
    """`train --out` into a folder holding a trained model replaced it without a word; now only with --overwrite
    (checked before training, without the train extra)."""
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / held).write_text("a trained model")
    fails(["train", "--steps", "1", "--out", "m"], capsys, "--out m holds a model already", held, "--overwrite")
    assert (tmp_path / "m" / held).read_text() == "a trained model"
    from lava_matmulfree.cli.train import _check_out

    _check_out(tmp_path / "m", overwrite=True)  # asked for: no refusal


@pytest.mark.parametrize("out, culprit", [("afile", "is a file"), ("/proc/model", "cannot write there"),
                                          ("afile/model", "not a folder")])
def test_train_checks_its_output_folder_before_training(out, culprit, capsys, tmp_path):
    """Issue 27: `train --out PATH` found a bad PATH only after the whole run (15 minutes at the defaults)."""
    (tmp_path / "afile").write_text("keep me")
    before = files_in(tmp_path)
    fails(["train", "--steps", "1", "--out", out], capsys, "--out", out, culprit)
    assert files_in(tmp_path) == before and (tmp_path / "afile").read_text() == "keep me"


def test_train_api_checks_its_output_folder_first(tmp_path):
    pytest.importorskip("torch")
    from lava_matmulfree.train.options import TrainConfig
    from lava_matmulfree.train.trainer import train

    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile: is a file"):
        train(TrainConfig(steps=1), tmp_path / "afile", progress=False)


# ------------------------------------------------------------------------------------- item 7: outputs
def test_compile_into_proc_is_one_line_naming_out(capsys):
    """Issue 27: a SafetensorError traceback (root may write anywhere by permissions; /proc still refuses)."""
    fails(["compile", "--config", "tiny", "--out", "/proc/x.safetensors"], capsys, "--out", "/proc/x.safetensors")


@pytest.mark.parametrize("out", ["adir/", "adir"])
def test_probe_into_a_folder_fails_before_the_run_naming_out(out, capsys, tmp_path):
    """Issue 27: `probe --out out/adir/` ran the whole probe, then `error: Format 'partial-2756' is not
    supported`."""
    (tmp_path / "adir").mkdir()
    fails(["probe", "--config", "tiny", "--backend", "reference", "--out", out], capsys, "--out", "adir",
          "prefix of file names")
    assert files_in(tmp_path) == {"adir"}


def test_a_dot_prefix_keeps_each_files_format(capsys, tmp_path):
    assert main(["probe", "--config", "tiny", "--backend", "reference", "--max-new-tokens", "1", "--out", ".p"]) == 0
    assert files_in(tmp_path) == {".p.npz", ".p.png"}
    assert (tmp_path / ".p.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name, temp", [("a.npz", ".a.partial-{pid}.npz"), (".npz", "..partial-{pid}.npz"),
                                        ("x.tar.gz", ".x.tar.partial-{pid}.gz"), ("plain", ".plain.partial-{pid}")])
def test_temporary_files_keep_the_real_extension(name, temp):
    assert temp_path(Path("d") / name) == Path("d") / temp.format(pid=os.getpid())


def test_a_writers_own_error_names_the_output(tmp_path):
    class WriterError(Exception):
        pass

    with pytest.raises(OutputError, match=r"out\.bin: cannot write \(disk full writing .*out\.bin\)"):
        with atomic_outputs(tmp_path / "out.bin") as (tmp,):
            raise WriterError(f"disk full writing {tmp}")
    assert files_in(tmp_path) == set()


# ------------------------------------------------------------------------------------- item 8: silent inputs
def test_an_extra_tensor_in_a_checkpoint_is_refused(capsys, tmp_path, tiny_cfg, tiny_params):
    p = dict(tiny_params)
    p["model.layers.0.attn.short_conv.weight"] = np.ones((72, 4), dtype=np.float32)
    save_checkpoint(tmp_path / "ckpt", tiny_cfg, p)
    fails(["generate", "--checkpoint", "ckpt", "--backend", "reference"], capsys,
          f"ckpt/{WEIGHTS_FILE}", "model.layers.0.attn.short_conv.weight")


def test_a_compiled_meta_with_a_million_fraction_bits_is_refused(capsys, tmp_path, net):
    net.save(tmp_path / "net.safetensors")
    with safe_open(str(tmp_path / "net.safetensors"), framework="numpy") as f:
        header = f.metadata()
    meta = json.loads(header["meta"])
    key = next(k for k in meta if k.endswith(".h_frac"))
    meta[key] = 1_000_000
    save_file(load_file(str(tmp_path / "net.safetensors")), str(tmp_path / "bad.safetensors"),
              metadata={**header, "meta": json.dumps(meta)})
    fails(["generate", "--checkpoint", "bad.safetensors", "--backend", "reference"], capsys, "bad.safetensors",
          key.replace("#", ""), "1000000")
    with pytest.raises(CheckpointError, match="1000000"):  # the Python API refuses it too, not only the CLI
        QuantisedNetwork.load(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("kind", ["folder", "loop", "dangling"])
def test_a_weights_file_that_is_not_a_file_is_not_called_missing(kind, capsys, tmp_path, tiny_cfg, tiny_params):
    folder = tmp_path / "ckpt"
    save_checkpoint(folder, tiny_cfg, tiny_params)
    (folder / WEIGHTS_FILE).unlink()
    if kind == "folder":
        (folder / WEIGHTS_FILE).mkdir()
        why = "is a folder"
    elif kind == "loop":
        os.symlink("other", folder / WEIGHTS_FILE)
        os.symlink(WEIGHTS_FILE, folder / "other")
        why = "symbolic links"
    else:
        os.symlink("gone.safetensors", folder / WEIGHTS_FILE)
        why = "does not exist"
    line = fails(["generate", "--checkpoint", "ckpt", "--backend", "reference"], capsys, f"ckpt/{WEIGHTS_FILE}",
                 why)
    assert "holds neither" not in line


def test_a_prompt_that_is_not_utf8_names_prompt(capsys):
    # the bytes b"ab\xff" as Python decodes a command line (surrogateescape)
    fails(["generate", "--config", "tiny", "--backend", "reference", "--prompt", "ab\udcff"], capsys, "--prompt",
          "UTF-8", "ff")


def test_eval_of_an_empty_text_names_the_file_before_calibrating(capsys, tmp_path):
    (tmp_path / "empty.txt").write_text("")
    fails(["eval", "--config", "tiny", "--text", "empty.txt"], capsys, "--text", "empty.txt")
    assert "calibrate" not in capsys.readouterr().err


def test_session_and_generate_refuse_what_generate_refuses(net):
    from lava_matmulfree.graph.backends import generate
    from lava_matmulfree.graph.session import Session

    with Session("sim-fused", net, capacity=8) as s:  # no request: no runtime is started
        with pytest.raises(ValueError, match=r"prompt\[0\] is 5\.5"):
            s.ask([5.5], 2)
        with pytest.raises(ValueError, match="max_new_tokens"):
            s.ask([5], 2.5)
        assert not s.closed  # refused requests leave the session usable
    for capacity in (0, 1, True, 2.5):
        with pytest.raises(ValueError, match="capacity must be an integer"):
            Session("sim-fused", net, capacity=capacity)
    with pytest.raises(Exception, match="capacity 1000000000000"):
        Session("sim-fused", net, capacity=10 ** 12)
    with pytest.raises(BackendError, match="compiled network"):
        Session("sim-fused", None, capacity=8)
    with pytest.raises(ValueError, match=r"probes\[0\] is 5 \(int\)"):
        generate("reference", net, [5, 6], 2, probes=(5,))
    with pytest.raises(BackendError, match="compiled network"):
        generate("reference", None, [5, 6], 2)
    # the request's numbers: one line naming each (numpy's own errors, or a sample of NaNs, before)
    for kw, name in ((dict(temperature=float("nan")), "temperature"), (dict(temperature="hot"), "temperature"),
                     (dict(seed=-1), "seed"), (dict(top_k=1.5), "top_k"), (dict(max_new_tokens=2.5), "max_new_tokens"),
                     (dict(max_new_tokens="4"), "max_new_tokens")):
        args = {"max_new_tokens": 2, **kw}
        with pytest.raises(ValueError, match=f"^{name} must be"):
            generate("reference", net, [5, 6], **args)
    assert len(generate("reference", net, [5, 6], np.int64(2), np.float32(0.5), seed=np.int64(3)).tokens) == 2
    # a run config made in Python: checked as a file's would be, and for the backend it is passed with (a run
    # config of sim ran on reference without a word, backend='nope' and a timeout of -1 s were taken)
    from lava_matmulfree.config import ConfigError, RunConfig

    with pytest.raises(BackendError, match="backend 'reference' but run.backend 'sim'"):
        generate("reference", net, [5, 6], 2, run=RunConfig(backend="sim"))
    with pytest.raises(BackendError, match="backend 'sim-fused' but run.backend 'sim'"):
        Session("sim-fused", net, capacity=8, run=RunConfig(backend="sim"))
    for bad, field in ((dict(backend="nope"), "backend"), (dict(backend="reference", timeout_s=-1), "timeout_s"),
                       (dict(backend="reference", dense_model="fast"), "dense_model")):
        with pytest.raises(ConfigError, match=f"^run: {field} must be"):
            generate("reference", net, [5, 6], 2, run=RunConfig(**bad))
    with pytest.raises(BackendError, match="run must be a RunConfig"):
        generate("reference", net, [5, 6], 2, run={"backend": "reference"})
    assert len(generate("reference", net, [5, 6], 2, run=RunConfig(backend="reference", threads=1)).tokens) == 2
    from lava_matmulfree.graph.builder import build_graph

    with pytest.raises(BackendError, match="compiled network"):
        build_graph(None, "fused", 8)
    with pytest.raises(ValueError, match="capacity must be an integer >= 2"):
        build_graph(net, "fused", 0)
    with pytest.raises(Exception, match="capacity 1000000000000"):  # not a MemoryError for 7 TiB of buffers
        build_graph(net, "fused", 10 ** 12)


def test_a_compiled_file_in_a_checkpoint_folder_that_is_a_folder_is_an_error(capsys, tmp_path, tiny_cfg, tiny_params):
    save_checkpoint(tmp_path / "ckpt", tiny_cfg, tiny_params)
    (tmp_path / "ckpt" / "compiled.safetensors").mkdir()
    fails(["generate", "--checkpoint", "ckpt", "--backend", "reference"], capsys, "compiled.safetensors", "folder")


def test_checkpoint_errors_name_the_file(tmp_path, tiny_cfg, tiny_params):
    from lava_matmulfree.io.checkpoint import load_checkpoint

    save_checkpoint(tmp_path, tiny_cfg, {**tiny_params, "extra": np.zeros(2, np.float32)})
    with pytest.raises(CheckpointError, match=f"{tmp_path / WEIGHTS_FILE}: 1 tensor"):
        load_checkpoint(tmp_path)
