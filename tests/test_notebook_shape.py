"""Notebooks read like the papers: short code cells that call the library, one parameters cell."""
from __future__ import annotations

import jupytext
import pytest

from brainage_lib import paths
from brainage_lib.run.runner import notebook_names

MAX_CELL_LINES = 40  # about a screen


@pytest.mark.parametrize("nb", notebook_names())
def test_code_cells_fit_on_a_screen(nb):
    cells = jupytext.read(paths.notebooks_dir() / f"{nb}.py").cells
    long = [(i, len(c.source.splitlines())) for i, c in enumerate(cells)
            if c.cell_type == "code" and len(c.source.splitlines()) > MAX_CELL_LINES]
    assert not long, f"{nb}: code cells longer than {MAX_CELL_LINES} lines (cell index, lines): {long}"
    tagged = [c for c in cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{nb}: {len(tagged)} cells tagged 'parameters'"
