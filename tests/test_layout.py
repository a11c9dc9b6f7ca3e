"""The package's layout (docs/architecture.md): imports flow one way between its parts, no module imports
itself through a circle, and files stay short enough to read in a sitting.

Read from the source with ``ast`` (every ``import`` statement, those inside functions included), so a lazy
import that closes a circle counts as much as one at the top of a file.
"""
from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PKG = "lava_matmulfree"
# where each installed package lives in the repository (pyproject.toml's package-dir)
ROOTS = {PKG: REPO / PKG, f"{PKG}.processes": REPO / "processes", f"{PKG}.microcode": REPO / "microcode"}

# Which part may import which (docs/architecture.md draws this). A part is a subpackage of lava_matmulfree
# or one of its three top-level modules.
ALLOWED = {
    "errors": set(),
    "events": set(),
    "config": {"errors"},
    "utils": {"errors"},
    "io": {"errors", "config", "utils"},
    "model": {"errors", "config", "utils", "io"},
    "microcode": {"errors", "events", "model"},
    "processes": {"errors", "config", "events", "utils", "model", "microcode"},
    "graph": {"errors", "config", "events", "utils", "io", "model", "microcode", "processes", "loihi"},
    "loihi": {"errors", "config", "utils", "io", "microcode"},
    "evaluation": {"errors", "config", "utils", "io", "model", "graph"},
    "train": {"errors", "config", "utils", "io", "model", "evaluation"},
    "cli": {"errors", "config", "events", "utils", "io", "model", "microcode", "processes", "graph", "loihi",
            "evaluation", "train"},
    "__init__": {"errors", "config", "utils", "io", "model", "evaluation", "graph", "loihi", "processes"},
    "__main__": {"cli"},
}
MAX_LINES = 500
WHOLE_MARKER = "Kept whole:"  # a module docstring that says why a longer file reads better as one


def _modules() -> dict[str, Path]:
    mods = {}
    for name, root in ROOTS.items():
        for path in root.rglob("*.py"):
            rel = path.relative_to(root).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            mods[".".join([name, *parts])] = path
    return mods


def _imports(mod: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``mod`` imports (a name imported from a package counts as its module
    when it is one, else as the package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")
                base = base[: len(base) - (node.level - (1 if is_pkg else 0))]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in known else target for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t and t != mod:
                out.add(t)
    return out


def _part(mod: str) -> str:
    rest = mod[len(PKG) + 1:] if mod != PKG else "__init__"
    return rest.split(".")[0]


@pytest.fixture(scope="module")
def graph():
    mods = _modules()
    return mods, {m: _imports(m, p, set(mods)) for m, p in mods.items()}


def test_every_part_is_declared(graph):
    mods, _ = graph
    assert {_part(m) for m in mods} <= set(ALLOWED), "a new part of the package: add it to ALLOWED and the docs"


def test_imports_flow_one_way_between_parts(graph):
    _, edges = graph
    wrong = sorted(f"{m} imports {t}" for m, ts in edges.items() for t in ts
                   if _part(t) != _part(m) and _part(t) not in ALLOWED[_part(m)]
                   and t != PKG)  # the package itself (its __version__) is everyone's
    assert not wrong, "imports against the layering of docs/architecture.md:\n" + "\n".join(wrong)


def test_allowed_parts_form_no_circle():
    seen, done = [], set()

    def visit(p):
        assert p not in seen, f"ALLOWED has a circle: {' -> '.join(seen + [p])}"
        if p in done:
            return
        seen.append(p)
        for q in ALLOWED[p]:
            visit(q)
        seen.pop()
        done.add(p)

    for p in ALLOWED:
        visit(p)


def test_no_module_imports_itself_through_a_circle(graph):
    _, edges = graph
    # Tarjan's strongly connected components; the package __init__ files re-export downwards, so a
    # module importing its own package (for the version) is not a circle of code.
    index, low, stack, on, comps = {}, {}, [], set(), []

    def strong(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w == PKG:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    assert not comps, "import circles: " + "; ".join(" <-> ".join(c) for c in comps)


def test_files_are_short_or_say_why_they_are_whole():
    long = []
    for path in [*REPO.glob(f"{PKG}/**/*.py"), *REPO.glob("processes/**/*.py"), *REPO.glob("microcode/*.py"),
                 *REPO.glob("benchmarks/*.py")]:
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > MAX_LINES and WHOLE_MARKER not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(REPO)} ({text.count(chr(10))} lines)")
    assert not long, f"files over {MAX_LINES} lines whose docstring does not say '{WHOLE_MARKER} ...':\n" + \
        "\n".join(sorted(long))


def test_architecture_page_draws_the_same_table():
    """docs/architecture.md's table of which part may import which is ALLOWED, row for row."""
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        parts = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(parts) == 2 and parts[0].startswith("`") and parts[0].strip("`") in ALLOWED:
            rows[parts[0].strip("`")] = set() if parts[1] == "nothing" else {p.strip() for p in parts[1].split(",")}
    assert rows == ALLOWED


def test_a_second_checkout_on_pythonpath_runs_as_itself_not_mixed(tmp_path):
    """A checkout put first on PYTHONPATH imported its own lava_matmulfree but the installed checkout's processes
    and microcode (pyproject's package-dir maps them), without a word: now it takes its own; a package folder with
    no checkout around it is refused, naming both."""
    import shutil
    import subprocess
    import sys

    def run(root):
        code = ("import lava_matmulfree.processes.block.process as b, lava_matmulfree.microcode as m; "
                "print(b.__file__); print(m.__file__)")
        return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(root)}, timeout=120)

    ignore = shutil.ignore_patterns("data", "__pycache__")
    shutil.copytree(REPO / PKG, tmp_path / "bare" / PKG, ignore=ignore)
    bare = run(tmp_path / "bare")
    assert bare.returncode != 0, bare.stdout
    last = bare.stderr.strip().splitlines()[-1]
    assert (f"ImportError: lava_matmulfree comes from {tmp_path / 'bare' / PKG}, but lava_matmulfree.processes "
            "from ") in last and "no checkout that holds its own" in last, last  # from the installed checkout
    for part in (PKG, "processes", "microcode"):
        shutil.copytree(REPO / part, tmp_path / "checkout" / part, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "checkout")
    checkout = run(tmp_path / "checkout")
    assert checkout.returncode == 0, checkout.stderr[-2000:]
    block, microcode = checkout.stdout.split()
    assert block == str(tmp_path / "checkout" / "processes" / "block" / "process.py")
    assert microcode == str(tmp_path / "checkout" / "microcode" / "__init__.py")


def test_the_package_installs_the_files_it_reads():
    """The shipped configs lay beside the package, outside what `pip install .` installs: an installed package had
    no `--config tiny`. Every file under the folders it reads lies in the package and matches its package-data."""
    import fnmatch

    import tomli

    from lava_matmulfree.config import CONFIG_DIR, DATA_DIR

    globs = tomli.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][PKG]
    for folder in (CONFIG_DIR, DATA_DIR):
        assert folder.is_relative_to(REPO / PKG), folder
        files = [p.relative_to(REPO / PKG).as_posix() for p in folder.rglob("*") if p.is_file()]
        assert files and not [f for f in files if not any(fnmatch.fnmatch(f, g) for g in globs)], files

