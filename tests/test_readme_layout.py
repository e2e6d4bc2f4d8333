"""README.md and docs/*.md stay true to the project they describe.

- docs/layout.md lists every library folder (one with an ``__init__.py``) and no folder that is gone;
- every relative Markdown link points to a file or folder that exists;
- every `make <target>` written in code is a rule of the Makefile;
- every `brainage <subcommand>` written in code is a subcommand of the CLI;
- every path under brainage_lib/, notebooks/, tests/, params/ or docs/ written in code exists.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from brainage_lib import cli, paths

ROOT = paths.project_root()
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)
INLINE = re.compile(r"`([^`]+)`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
MAKE = re.compile(r"\bmake\s+([A-Za-z0-9_][\w.-]*)(?![\w.-]*=)")
BRAINAGE = re.compile(r"(?<![\w/.-])brainage\s+([a-z][\w-]*)")
# the toy paper that docs/adding-a-paper.md walks through: files the reader creates (tests/test_toy_paper.py
# adds them to a copy of the project), so they are examples, not paths of this project
EXAMPLES = ("brainage_lib/papers/toy/", "notebooks/05_toy.", "notebooks/params/05_toy.")
PATH = re.compile(r"(?<![\w./<>{}*-])((?:brainage_lib|notebooks|tests|params|docs)/[^\s`'\"(),;:|\]]*)")


def _ids(pages):
    return [str(p.relative_to(ROOT)) for p in pages]


def _split(text: str) -> tuple[list[str], str]:
    """(every code block and inline code span, the prose around them)."""
    blocks = [m.group(1) for m in FENCE.finditer(text)]
    prose = FENCE.sub("", text)
    spans = [m.group(1) for m in INLINE.finditer(prose)]
    return blocks + spans, INLINE.sub("", prose)


def _makefile_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    targets = {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_][\w.-]*)\s*:(?!=)", makefile, re.M)}
    # one rule per notebook: `$(NOTEBOOKS): ...` with NOTEBOOKS the notebooks/NN_*.py sources
    assert re.search(r"^\$\(NOTEBOOKS\)\s*:", makefile, re.M)
    targets |= {p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py")}
    return targets


def _subcommands() -> set[str]:
    parser = cli.build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return set(sub.choices)


def test_pages_exist():
    names = {p.name for p in PAGES}
    assert "README.md" in names and "layout.md" in names, names


def test_layout_lists_every_library_folder():
    text = (ROOT / "docs" / "layout.md").read_text()
    (block,) = [b for b in (m.group(1) for m in FENCE.finditer(text)) if re.search(r"^brainage_lib/", b, re.M)]
    listed = {m.group(1).rstrip("/") for m in re.finditer(r"^(brainage_lib/\S*)", block, re.M)}
    lib = ROOT / "brainage_lib"
    folders = {str(d.relative_to(ROOT)) for d in [lib, *lib.rglob("*")] if d.is_dir() and (d / "__init__.py").is_file()}
    assert listed == folders, f"docs/layout.md: missing {sorted(folders - listed)}, stale {sorted(listed - folders)}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_relative_links_point_to_files(page: Path):
    _, prose = _split(page.read_text())
    targets = [a or b for a, b in LINK.findall(prose)]
    broken = []
    for target in targets:
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # http(s), mailto, and anchors within the page
        if not (page.parent / target.split("#")[0]).exists():
            broken.append(target)
    assert not broken, f"{page.name}: links to missing files {broken}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_make_targets_exist(page: Path):
    code, _ = _split(page.read_text())
    unknown = sorted({t for piece in code for t in MAKE.findall(piece)} - _makefile_targets())
    assert not unknown, f"{page.name}: make targets not in the Makefile: {unknown}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_brainage_subcommands_exist(page: Path):
    code, _ = _split(page.read_text())
    unknown = sorted({s for piece in code for s in BRAINAGE.findall(piece)} - _subcommands())
    assert not unknown, f"{page.name}: not subcommands of brainage: {unknown}"


@pytest.mark.parametrize("page", PAGES, ids=_ids(PAGES))
def test_paths_in_code_exist(page: Path):
    code, _ = _split(page.read_text())
    missing = []
    for path in (p for piece in code for p in PATH.findall(piece)):
        path = path.rstrip(".")
        if any(c in path for c in "<*{") or "..." in path or path.startswith(EXAMPLES):
            continue  # a pattern or an example, not a path
        if not (ROOT / path).exists():
            missing.append(path)
    assert not missing, f"{page.name}: paths that do not exist: {sorted(set(missing))}"
