"""Atomic output files: a command either writes all of its outputs whole or leaves none (docs/reliability.md).

Each output is written to a temporary file beside it and renamed over it at the end (``os.replace``
is atomic within a file system), so an error, Ctrl-C or a signal midway never leaves a partial file,
and every path is checked before the work starts so that a bad one costs nothing.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from lava_matmulfree.errors import LmfError, OutputError

TEMP_TAG = ".partial-"  # temporary files are named .<stem>.partial-<pid><extension>, beside the target
PROBE_TAG = ".lmf-write-check-"  # the file made and removed to prove a folder writable


def extension(path: Path) -> str:
    """The file's last extension with its dot (``.npz`` of ``a.npz`` and of the dot-file ``.npz``), or ''. Writers
    that choose a format by extension (matplotlib, numpy) must see it on the temporary file too."""
    name = path.name
    body = name[1:] if name.startswith(".") else name
    return "." + body.rsplit(".", 1)[1] if "." in body else ("" if not name.startswith(".") else name)


def temp_path(path: Path) -> Path:
    """Where the output ``path`` is written before it is renamed over it: beside it, same extension."""
    ext = extension(path)
    stem = path.name[: len(path.name) - len(ext)]
    return path.parent / f".{stem}{TEMP_TAG}{os.getpid()}{ext}"


def _why(e: OSError) -> str:
    return e.strerror or str(e)


def check_output_file(path: str | Path, option: str | None = None, inputs=()) -> Path:
    """Fail early, naming the path (after ``option``, the command-line option that gave it, where given), when
    ``path`` cannot become a regular file: it is a directory, its folder is a file, or the folder is not writable;
    or it is one of the command's ``inputs`` (:func:`check_not_input`)."""
    path = Path(path)
    with _naming(option):
        if path.is_dir():
            raise OutputError(f"{path}: is a directory, not a file to write")
        if path.exists() and not path.is_file():
            raise OutputError(f"{path}: is not a regular file")
        check_not_input(path, inputs)
        _check_writable_ancestor(path, path.parent, "cannot write there")
    return path


@contextlib.contextmanager
def _naming(option: str | None):
    """An OutputError raised inside starts with ``option`` (the command-line option that gave the path)."""
    try:
        yield
    except OutputError as e:
        raise (OutputError(f"{option} {e}") if option else e) from None


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether ``a`` and ``b`` are one file (symbolic and hard links followed); False where either is missing."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def check_not_input(path: str | Path, inputs) -> None:
    """An OutputError naming both options when the output ``path`` is one of the command's input files:
    ``inputs`` holds (option, value, file) for each file it reads (``--checkpoint``, ``DIR``, ``DIR/config.json``).
    Writing it would replace what the command reads (a checkpoint's trained weights, a calibration text)."""
    for option, value, file in inputs:
        if same_file(path, file):
            what = (f"the input file of {option} {value}" if same_file(file, value)
                    else f"{file}, an input file of {option} {value}")
            raise OutputError(f"{path}: is {what}; writing it would overwrite that input: give another path")


def check_output_dir(path: str | Path, option: str | None = None) -> Path:
    """Fail early, naming the path (after ``option``, the command-line option that gave it, where given), when
    ``path`` cannot be (or become) a writable folder."""
    path = Path(path)
    with _naming(option):
        if path.exists() and not path.is_dir():
            raise OutputError(f"{path}: is a file, not an output folder")
        _check_writable_ancestor(path, path, "cannot create the folder")
    return path


def _check_writable_ancestor(path: Path, start: Path, what: str) -> None:
    """The nearest existing part of ``start`` must be a folder where a file can be made (tried: permissions
    alone do not tell for root, /proc or a read-only mount), else an OutputError naming ``path``."""
    for up in (start, *start.parents):
        if up.exists():
            if not up.is_dir():
                raise OutputError(f"{path}: {what} ({up} is not a folder)")
            if not os.access(up, os.W_OK | os.X_OK):
                raise OutputError(f"{path}: cannot write there ({up} is not writable)")
            try:
                fd, probe = tempfile.mkstemp(prefix=PROBE_TAG, dir=up)
            except OSError as e:
                raise OutputError(f"{path}: cannot write there ({up}: {_why(e)})") from None
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
            return


@contextlib.contextmanager
def atomic_outputs(*paths: str | Path):
    """Yield one temporary path per output path; when the block ends without an exception, rename each
    over its output, else remove them all. Every path is checked first; errors name the path."""
    targets = [check_output_file(p) for p in paths]
    temps = [temp_path(t) for t in targets]
    made = []  # the folders made here: removed again (when still empty) if the outputs are not all written
    done = False
    try:
        for t in targets:
            made += [d for d in reversed((t.parent, *t.parent.parents)) if not d.exists() and d not in made]
            try:
                t.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise OutputError(f"{t}: cannot create its folder ({_why(e)})") from None
        try:
            yield temps
        except OSError as e:
            name = e.filename if e.filename is not None else ", ".join(map(str, targets))
            for tmp, t in zip(temps, targets):  # name the output, not its temporary file
                if str(e.filename) == str(tmp):
                    name = t
            raise OutputError(f"{name}: cannot write ({_why(e)})") from None
        except LmfError:
            raise
        except Exception as e:  # a writer's own error type (safetensors, matplotlib) about one of the files
            text = str(e)
            for tmp, t in zip(temps, targets):
                if str(tmp) in text or tmp.name in text:
                    raise OutputError(f"{t}: cannot write ({text.replace(str(tmp), str(t))})") from None
            raise
        for tmp, t in zip(temps, targets):
            try:
                os.replace(tmp, t)
            except OSError as e:
                raise OutputError(f"{t}: cannot write ({_why(e)})") from None
        done = True
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink()
        for d in reversed(made) if not done else ():
            with contextlib.suppress(OSError):
                d.rmdir()


@contextlib.contextmanager
def writing(tmp: Path):
    """Tag the errors of the writes of ``tmp`` in the block with its name where they carry none (a full disk
    seen by a writer that opened the file itself, or on close), so that :func:`atomic_outputs` names its
    output alone rather than every file of the set."""
    try:
        yield tmp
    except OSError as e:
        if e.filename is None:
            raise OSError(e.errno, _why(e), str(tmp)) from None
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_outputs(path) as (tmp,), writing(tmp):
        tmp.write_text(text, encoding="utf-8")
