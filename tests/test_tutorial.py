"""docs/tutorial.ipynb runs as written: its code cells, in order, in one namespace (its own asserts compare the
hand-wired block with the golden model)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "tutorial.ipynb"


@pytest.mark.lava
@pytest.mark.timeout(300)
def test_tutorial_notebook_runs(capsys):
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(cells) >= 3
    namespace: dict = {"__name__": "tutorial"}
    for i, cell in enumerate(cells):
        exec(compile("".join(cell["source"]), f"{NOTEBOOK.name}[cell {i}]", "exec"), namespace)
    assert "equal the golden model" in capsys.readouterr().out
    assert namespace["leaving"].shape[1] == len(namespace["tokens"])
