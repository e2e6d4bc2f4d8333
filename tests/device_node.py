"""A stand-in for the reference GPU node on this machine: an interpreter that sees only the node's packages.

``node_interpreter(folder)`` makes a virtual environment of this machine's base Python without pip or any
package of its own, and links into it, from this environment, every installed distribution that
``device/node-packages.txt`` names, with what those need (their installed requirements). The
notebooks' other dependencies (MONAI, nibabel, nilearn, papermill, jupytext, ipykernel and theirs) are not
there: the device bundle must bring them.
"""
from __future__ import annotations

import importlib.metadata as md
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

from packaging.requirements import Requirement

from brainage_lib import paths


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def node_distributions() -> dict[str, md.Distribution]:
    """Installed distributions the node has: those it lists, and (recursively) what they require."""
    listed = [_norm(line) for line in (paths.project_root() / "device" / "node-packages.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    out: dict[str, md.Distribution] = {}
    stack = list(listed)
    while stack:
        name = stack.pop()
        if name in out:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            continue
        out[name] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                stack.append(_norm(req.name))
    return out


def node_interpreter(folder: Path) -> Path:
    """The stand-in's ``python`` (see the module docstring)."""
    base = Path(getattr(sys, "_base_executable", sys.executable))
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(folder)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(folder), "platbase": str(folder)}))
    here = Path(sysconfig.get_path("purelib"))
    for dist in node_distributions().values():
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src, dst = here / top, site / top
            if (src.exists() or src.is_symlink()) and not (dst.exists() or dst.is_symlink()) and top != "__pycache__":
                dst.symlink_to(src)
    return folder / "bin" / "python"
