"""Outputs on a full disk and outputs that are the command's own inputs (docs/reliability.md, "Outputs"): one
`error:` line naming the file, nothing else on stderr, no partial file or partial set, an older file kept whole;
an output path that is one of the command's inputs refused before any work, naming both options.

A full disk is simulated in process: a writer made to fail with ENOSPC midway, or a real write error from the
real writers (Python, numpy's zip writer, the safetensors Rust writer) under an ``RLIMIT_FSIZE`` that makes
writes past a size fail with EFBIG, the way a full file system fails them with ENOSPC.
"""
from __future__ import annotations

import contextlib
import errno
import gc
import os
import signal
import sys
from pathlib import Path

import pytest

from conftest import fails, files_in
from lava_matmulfree.cli import common as cli
from lava_matmulfree.cli import main
from lava_matmulfree.errors import OutputError
from lava_matmulfree.utils.atomic import atomic_outputs, writing

NO_SPACE = os.strerror(errno.ENOSPC)  # 'No space left on device'
TOO_LARGE = os.strerror(errno.EFBIG)  # 'File too large'


@pytest.fixture(autouse=True)
def no_demo_model(monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "DEMO_MODEL_DIR", tmp_path / "no_demo_model")
    monkeypatch.chdir(tmp_path)


@contextlib.contextmanager
def file_size_limit(nbytes: int):
    """Writes past ``nbytes`` of a file fail (EFBIG) in this process while the block runs."""
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the error, not the signal that would end the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)


def only_error_line(argv, capsys, expected: str) -> None:
    """The CLI exits 2, and its stderr holds the one ``error:`` line ``expected`` and nothing else (progress
    bars aside); no exception is left for the interpreter to report when its objects are collected."""
    seen, hook = [], sys.unraisablehook
    sys.unraisablehook = seen.append
    try:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        del e
        gc.collect()
    finally:
        sys.unraisablehook = hook
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith("calibrate:")]
    assert lines == [f"error: {expected}"], err
    assert not seen, [str(u.exc_value) for u in seen]


# ------------------------------------------------------------------------------- finding 1: estimate's outputs
def test_estimate_on_a_full_disk_keeps_the_old_report_and_names_it(capsys, tmp_path, monkeypatch):
    """`estimate --json x.json` on a full disk printed `[Errno 28] ...` naming no file and left x.json cut off
    (its plots written already); now the old report stays whole and nothing else is written."""
    (tmp_path / "x.json").write_text('{"old": "report"}')

    def full_disk(self, data, *args, **kwargs):  # the first bytes reach the file, then the disk is full
        with open(self, "w", encoding="utf-8") as f:
            f.write(data[:100])
        raise OSError(errno.ENOSPC, NO_SPACE)

    monkeypatch.setattr(Path, "write_text", full_disk)
    only_error_line(["estimate", "--config", "tiny", "--out", "est", "--json", "x.json"], capsys,
                    f"x.json: cannot write ({NO_SPACE})")
    assert (tmp_path / "x.json").read_text() == '{"old": "report"}'
    assert files_in(tmp_path) == {"x.json"}  # no plot, no temporary file, not even the new --out folder


def test_estimate_writes_its_set_of_files_all_or_none(capsys, tmp_path, monkeypatch):
    """A plot failing midway (a full disk) left the plots drawn before it: a partial set. Now none of the set is
    written, the error names the plot, and the old report in --out is kept; a later run writes all four."""
    from lava_matmulfree.loihi import cost_plots

    est = tmp_path / "est"
    est.mkdir()
    (est / "cost_tiny_paper.json").write_text("old")

    def full_disk(report, path):
        Path(path).write_bytes(b"\x89PNG half a plot")
        raise OSError(errno.ENOSPC, NO_SPACE)

    with monkeypatch.context() as m:
        m.setattr(cost_plots, "plot_energy", full_disk)
        only_error_line(["estimate", "--config", "tiny", "--out", "est"], capsys,
                        f"{Path('est') / 'energy_tiny_paper.png'}: cannot write ({NO_SPACE})")
    assert files_in(tmp_path) == {"est", "est/cost_tiny_paper.json"}
    assert (est / "cost_tiny_paper.json").read_text() == "old"
    assert main(["estimate", "--config", "tiny", "--out", "est"]) == 0
    assert files_in(est) == {f"{kind}_tiny_paper.{ext}" for kind, ext in
                             (("cost", "json"), ("ttft", "png"), ("energy", "png"), ("efficiency", "png"))}


def test_a_plot_that_cannot_be_saved_leaves_no_figure_open(capsys, tmp_path, monkeypatch):
    """The real plotter failing in savefig (a full disk) closed nothing: each failed estimate left its figures open
    in a process that went on (the Python API, a notebook)."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, NO_SPACE)

    plt.close("all")
    with monkeypatch.context() as m:
        m.setattr(Figure, "savefig", full_disk)
        with pytest.raises(SystemExit):
            main(["estimate", "--config", "tiny", "--out", "est"])
    capsys.readouterr()
    assert plt.get_fignums() == []


def test_estimate_out_that_is_a_file_names_the_option(capsys, tmp_path):
    (tmp_path / "est").write_text("a file")
    only_error_line(["estimate", "--config", "tiny", "--out", "est"], capsys,
                    "--out est: is a file, not an output folder")


# ------------------------------------------------------------------------------- finding 3: full disk, one line
def test_compile_on_a_full_disk_is_one_line_and_keeps_the_old_file(capsys, tmp_path, monkeypatch):
    """The safetensors writer's own error (`SafetensorError: ... I/O error`) came out as a traceback."""
    import lava_matmulfree.model.quantised_network as qn

    real = qn.save_file

    def on_a_full_disk(*args, **kwargs):
        with file_size_limit(4096):
            return real(*args, **kwargs)

    monkeypatch.setattr(qn, "save_file", on_a_full_disk)
    (tmp_path / "net.safetensors").write_text("OLD")
    only_error_line(["compile", "--config", "tiny", "--calib-length", "4", "--out", "net.safetensors"], capsys,
                    f"net.safetensors: cannot write ({TOO_LARGE})")
    assert files_in(tmp_path) == {"net.safetensors"} and (tmp_path / "net.safetensors").read_text() == "OLD"


def test_probe_on_a_full_disk_is_one_line_and_nothing_else(capsys, tmp_path, monkeypatch):
    """The error line was followed by `Exception ignored in: <function ZipFile.__del__> ... seek of closed file`
    (numpy's zip writer left half-open on the failed file), and named both files for the one that failed."""
    from lava_matmulfree.cli import probe

    real = probe.atomic_outputs

    @contextlib.contextmanager
    def on_a_full_disk(*paths):
        with real(*paths) as temps, file_size_limit(0):
            yield temps

    monkeypatch.setattr(probe, "atomic_outputs", on_a_full_disk)
    (tmp_path / "p.npz").write_text("OLD")
    only_error_line(["probe", "--config", "tiny", "--backend", "reference", "--max-new-tokens", "2", "--out", "p"],
                    capsys, f"p.npz: cannot write ({TOO_LARGE})")
    assert files_in(tmp_path) == {"p.npz"} and (tmp_path / "p.npz").read_text() == "OLD"


def test_a_write_error_without_a_file_name_names_the_file_of_the_set_it_is_about(tmp_path):
    """atomic_outputs named every file of a set for an OSError that carries no file name (a full disk seen on
    close); `writing` tags it with the file being written. A folder made for the set is removed again."""
    with pytest.raises(OutputError) as e:
        with atomic_outputs(tmp_path / "new" / "a.json", tmp_path / "new" / "b.png") as (ta, tb):
            with writing(ta):
                ta.write_text("a")
            with writing(tb):
                raise OSError(errno.ENOSPC, NO_SPACE)
    assert str(e.value) == f"{tmp_path / 'new' / 'b.png'}: cannot write ({NO_SPACE})"
    assert files_in(tmp_path) == set()


# ------------------------------------------------------------------------------- finding 2: an input as output
@pytest.fixture
def no_work(monkeypatch):
    """Calibrating, evaluating or costing anything fails the test: a refusal must come before any work."""
    import lava_matmulfree.evaluation.accuracy as accuracy
    import lava_matmulfree.loihi.outputs as outputs

    def work(*args, **kwargs):
        raise AssertionError("the command started its work")

    for module, name in ((accuracy, "build_evaluation"), (accuracy, "evaluate"), (outputs, "estimate_main")):
        monkeypatch.setattr(module, name, work)


def _link(kind: str, target: Path, link: Path) -> Path:
    (os.symlink if kind == "symlink" else os.link)(target, link)
    return link


@pytest.mark.parametrize("out", ["model.safetensors", "config.json", "symlink", "hardlink"])
def test_compile_refuses_to_overwrite_its_checkpoint(out, capsys, tmp_path, tiny_checkpoint, no_work):
    """`compile --checkpoint ck --out ck/model.safetensors` replaced the trained weights with the compiled
    network; a link to them (symbolic or hard) is the same file."""
    weights = tiny_checkpoint / "model.safetensors"
    path = (_link(out, weights, tmp_path / "link.safetensors") if out.endswith("link")
            else tiny_checkpoint / out)
    held = {f: (tiny_checkpoint / f).read_bytes() for f in ("model.safetensors", "config.json")}
    before = files_in(tmp_path)
    fails(["compile", "--checkpoint", str(tiny_checkpoint), "--out", str(path)], capsys,
          f"--out {path}", f"--checkpoint {tiny_checkpoint}", "overwrite that input")
    assert files_in(tmp_path) == before
    assert {f: (tiny_checkpoint / f).read_bytes() for f in held} == held


@pytest.mark.parametrize("argv, out_option, in_option", [
    (["compile", "--config", "tiny", "--calib-text", "in.txt", "--out", "in.txt"], "--out", "--calib-text"),
    (["eval", "--config", "tiny", "--text", "in.txt", "--json", "in.txt"], "--json", "--text"),
    (["eval", "--config", "tiny", "--text", "in.txt", "--json", "in_link.txt"], "--json", "--text"),
    (["profile", "--config", "tiny", "--text", "in.json", "--out", "in"], "--out", "--text"),
    (["estimate", "--config", "tiny", "--activity", "in.json", "--json", "in.json"], "--json", "--activity"),
    (["estimate", "--config", "tiny", "--activity", "est/cost_tiny_paper.json", "--out", "est"], "--out",
     "--activity"),
    (["estimate", "--config", "model.toml", "--json", "model.toml"], "--json", "--config"),
])
def test_an_output_that_is_an_input_is_refused_before_any_work(argv, out_option, in_option, capsys, tmp_path,
                                                              no_work):
    """`compile --calib-text calib.txt --out calib.txt` and `eval --text t.txt --json t.txt` replaced their input;
    every command that writes files now refuses it, naming both options."""
    from lava_matmulfree.config import CONFIG_DIR

    text = "some calibration text, long enough to measure. " * 20
    for name in ("in.txt", "in.json"):
        (tmp_path / name).write_text(text)
    (tmp_path / "in_link.txt").symlink_to(tmp_path / "in.txt")
    (tmp_path / "est").mkdir()
    (tmp_path / "est" / "cost_tiny_paper.json").write_text(text)
    (tmp_path / "model.toml").write_text((CONFIG_DIR / "tiny.toml").read_text())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    fails(argv, capsys, out_option, in_option, "overwrite that input")
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before


def test_compiling_into_the_checkpoints_own_compiled_file_is_allowed(capsys, tiny_checkpoint):
    """compile does not read a folder's compiled.safetensors: writing it there is the documented way to make one."""
    out = tiny_checkpoint / "compiled.safetensors"
    assert main(["compile", "--checkpoint", str(tiny_checkpoint), "--calib-length", "4", "--out", str(out)]) == 0
    assert out.is_file()
