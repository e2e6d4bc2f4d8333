"""The README's layout section stays true: one line per library folder, and every listed folder exists."""
from __future__ import annotations

import re

from brainage_lib import paths


def test_readme_layout_lists_every_library_folder():
    root = paths.project_root()
    text = (root / "README.md").read_text()
    block = text[text.index("## Layout"):]
    block = block[block.index("```") + 3:]
    block = block[:block.index("```")]
    listed = {m.group(1).rstrip("/") for m in re.finditer(r"^(brainage_lib/\S*)", block, re.M)}
    lib = root / "brainage_lib"
    folders = {str(d.relative_to(root)) for d in [lib, *lib.rglob("*")] if d.is_dir() and (d / "__init__.py").is_file()}
    assert listed == folders, f"README layout: missing {sorted(folders - listed)}, stale {sorted(listed - folders)}"
