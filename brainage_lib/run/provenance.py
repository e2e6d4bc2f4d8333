"""Where a result came from: git revision, package versions, device."""
from __future__ import annotations

import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata

import torch

from brainage_lib import paths

PACKAGES = ("brainage-companion", "torch", "monai", "nibabel", "nilearn", "numpy", "scipy", "pandas",
            "scikit-learn", "statsmodels", "matplotlib", "seaborn", "papermill", "jupytext")


@lru_cache(maxsize=1)
def git_revision() -> str:
    """Short git sha of the project, with ``-dirty`` if tracked files changed; ``unknown`` outside git."""
    root = paths.project_root()
    try:
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """The installed version of each package in ``names`` ("not installed" where it is missing)."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def device_description(device: torch.device | str | None = None) -> str:
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(dev)}"
    return f"cpu: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


def provenance(device: torch.device | str | None = None) -> dict:
    """Everything needed to tell where a number or figure came from."""
    return {
        "git": git_revision(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "device": device_description(device),
        "packages": package_versions(),
    }


def provenance_text(device: torch.device | str | None = None) -> str:
    p = provenance(device)
    pk = ", ".join(f"{k} {v}" for k, v in p["packages"].items() if v != "not installed")
    return f"git {p['git']} | python {p['python']} | {p['device']}\n{pk}"
