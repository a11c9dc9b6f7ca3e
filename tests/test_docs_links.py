"""The book holds together: every relative link of the README and docs/ reaches a file, every section that code or
docs cite by name (``docs/graph.md, "Memory"``) is a heading of that page, and every page of docs/ is listed on the
front page and in docs/architecture.md."""

import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
BOOK = [REPO / "README.md", *PAGES]
SOURCES = sorted(p for part in ("lava_matmulfree", "processes", "microcode", "benchmarks", "tests")
                 for p in (REPO / part).rglob("*.py"))

LINK = re.compile(r"\]\(([^)\s]+)\)")
# a page cited with a section: `docs/NAME.md, "Section"` in code, `[NAME.md](NAME.md), "Section"` in the docs
CITED_IN_CODE = re.compile(r'docs/([a-z_0-9]+\.md)[,;]?\s*"([^"\n]+)"')
CITED_IN_DOCS = re.compile(r'\]\(([a-z_0-9]+\.md)\),?\s*"([^"\n]+)"')


@functools.lru_cache(maxsize=None)
def _prose(page: Path) -> str:
    """The page without its fenced code blocks (a ``# comment`` inside one is not a heading)."""
    return re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)


def _headings(page: Path) -> list[str]:
    return [line.lstrip("#").strip() for line in _prose(page).splitlines() if line.startswith("#")]


def _sections(page: Path) -> list[str]:
    """What a citation may name: a heading without its number ("2. Power" is "Power"), or a paragraph that opens
    with its name in bold (``**Tags.** Every ...``), as the pages' smaller sections do."""
    heads = [re.sub(r"^\d+\.\s+", "", h) for h in _headings(page)]
    return heads + re.findall(r"^\*\*([^*]+?)\.?\*\*", _prose(page), flags=re.M)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


@pytest.mark.parametrize("page", BOOK, ids=lambda p: p.name)
def test_every_relative_link_reaches_a_file(page):
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve()
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in {_slug(h) for h in _headings(dest)}:
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)} links to what is not there: {broken}"


def _citations():
    for src in SOURCES:
        for page, section in CITED_IN_CODE.findall(src.read_text(encoding="utf-8")):
            yield src, page, section
    for src in BOOK:
        for page, section in CITED_IN_DOCS.findall(src.read_text(encoding="utf-8")):
            yield src, page, section


def test_every_cited_section_is_a_heading_of_its_page():
    cited = list(_citations())
    assert len(cited) > 20  # the patterns still find what the files cite
    missing = []
    for src, page, section in cited:
        target = DOCS / page
        if not target.exists() or not any(h.startswith(section) for h in _sections(target)):
            missing.append(f'{src.relative_to(REPO)}: docs/{page}, "{section}"')
    assert not missing, "sections cited that the page does not have:\n" + "\n".join(missing)


def test_every_page_is_listed_on_the_front_page_and_in_architecture():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    architecture = (DOCS / "architecture.md").read_text(encoding="utf-8")
    every_page = architecture[architecture.index("Every page of `docs/`"):]
    pages = [p.name for p in PAGES] + [p.name for p in DOCS.glob("*.ipynb")]
    assert len(pages) > 10
    unlisted = [name for name in pages if f"(docs/{name})" not in readme and name != "architecture.md"]
    assert not unlisted, f"pages of docs/ missing from the README's table: {unlisted}"
    unlisted = [name for name in pages if f"({name})" not in every_page and name != "architecture.md"]
    assert not unlisted, f"pages of docs/ missing from architecture.md's 'Every page': {unlisted}"
