"""docs/api.md and the README's Python example: every example runs as it stands, in a fresh interpreter (the examples that start a Lava
runtime under the same hard timeout as every Lava test), and the names it documents are the package's."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
API_DOC = REPO / "docs" / "api.md"
README = REPO / "README.md"
README_MARK = "<!-- api-example -->"
EXAMPLE_TIMEOUT_S = 240


def _examples() -> list[tuple[str, str]]:
    text = API_DOC.read_text(encoding="utf-8")
    out, heading = [], ""
    for m in re.finditer(r"^## ([^\n]+)$|^```python\n(.*?)^```", text, flags=re.M | re.S):
        if m.group(1):
            heading = m.group(1).strip()
        else:
            out.append((heading, m.group(2)))
    return out


def _readme_example() -> tuple[str, str]:
    text = README.read_text(encoding="utf-8")
    m = re.search(re.escape(README_MARK) + r"\n```python\n(.*?)^```", text, flags=re.M | re.S)
    assert m, f"README.md has no python block after {README_MARK}"
    return ("README", m.group(1))


EXAMPLES = [*_examples(), _readme_example()]


def test_every_section_has_an_example_and_the_names_exist():
    import lava_matmulfree as lmf

    assert len(EXAMPLES) >= 6
    for name in lmf.API:
        assert getattr(lmf, name) is not None, name
        assert f"`{name}`" in API_DOC.read_text(encoding="utf-8"), f"{name} is exported but not in docs/api.md"
    with pytest.raises(AttributeError, match="no_such_name"):
        lmf.no_such_name  # noqa: B018


def test_import_is_light():
    code = ("import sys, lava_matmulfree; "
            "print([m for m in sys.modules if m.split('.')[0] in ('lava', 'numba', 'matplotlib', 'torch')])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout


@pytest.mark.lava
@pytest.mark.parametrize("heading,code", EXAMPLES, ids=[h for h, _ in EXAMPLES])
def test_example_runs(heading, code, tmp_path):
    # its own interpreter: a deadlocked Lava runtime is killed with it (no orphans: runtime.py's teardown)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       timeout=EXAMPLE_TIMEOUT_S)
    assert r.returncode == 0, f"docs/api.md, '{heading}':\n{r.stderr[-3000:]}"
    assert r.stdout.strip(), f"docs/api.md, '{heading}' printed nothing"
