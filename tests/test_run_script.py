"""The README's set-up (./run): Python 3.10 discovery and its one clear message when there is none."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


TOOLS = ("bash", "dirname", "cat", "ls", "sort", "sha256sum", "cut", "rm", "mkdir")  # what ./run calls


def run_script(args, env_extra, tmp_path):
    """./run with a PATH holding only the shell tools it needs (so no python3.10 is on it)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for tool in TOOLS:
        link = bin_dir / tool
        if not link.exists():
            link.symlink_to(shutil.which(tool))
    env = {"PATH": str(bin_dir), "HOME": str(tmp_path), "PYENV_ROOT": str(tmp_path / "no_pyenv"),
           "VENV": str(tmp_path / "venv")}
    env.update(env_extra)
    return subprocess.run([str(bin_dir / "bash"), str(ROOT / "run"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_a_python_override_that_is_not_3_10_is_refused(tmp_path):
    res = run_script(["setup"], {"PYTHON": "/bin/false"}, tmp_path)
    assert res.returncode != 0
    assert "PYTHON=/bin/false is not a working Python 3.10" in res.stderr
    assert not (tmp_path / "venv").exists()  # nothing was created


def test_no_python_3_10_anywhere_gives_one_clear_message(tmp_path):
    res = run_script(["test"], {}, tmp_path)
    assert res.returncode != 0
    assert "no Python 3.10 found" in res.stderr and "PYTHON=" in res.stderr
    assert "Traceback" not in res.stderr


def test_pyenv_versions_are_searched(tmp_path):
    """A 3.10 under $PYENV_ROOT/versions/3.10.*/bin is found (here: a shim to this interpreter)."""
    if sys.version_info[:2] != (3, 10):
        return
    shim_dir = tmp_path / "no_pyenv" / "versions" / "3.10.99" / "bin"
    shim_dir.mkdir(parents=True)
    shim = shim_dir / "python3.10"
    shim.write_text(f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")
    shim.chmod(0o755)
    res = run_script(["which-python"], {}, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(shim)
