"""Every path the project uses, from one place.

The project root is found from ``BRAINAGE_ROOT`` if set, else by walking up from
this file to the folder holding ``pyproject.toml`` and ``notebooks/``. Generated
outputs (``results/``, ``figures/``, ``rendered/``) live under an output root that
defaults to the project root and can be moved with ``BRAINAGE_OUTPUT_DIR`` or a
notebook's ``OUTPUT_DIR`` parameter.
"""
from __future__ import annotations

import os
from pathlib import Path


def project_root() -> Path:
    """Return the repository root (the folder with ``pyproject.toml``)."""
    env = os.environ.get("BRAINAGE_ROOT")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent
    for cand in [here, *here.parents]:
        if (cand / "pyproject.toml").is_file() and (cand / "notebooks").is_dir():
            return cand
    return Path.cwd().resolve()


def output_root(output_dir: str | os.PathLike | None = None) -> Path:
    """Root of generated outputs: ``output_dir`` if given, else ``$BRAINAGE_OUTPUT_DIR``, else the project root."""
    if output_dir:
        return Path(output_dir).expanduser().resolve()
    env = os.environ.get("BRAINAGE_OUTPUT_DIR")
    return Path(env).expanduser().resolve() if env else project_root()


def notebooks_dir() -> Path:
    return project_root() / "notebooks"


def params_dir() -> Path:
    return notebooks_dir() / "params"


def results_dir(output_dir: str | os.PathLike | None = None) -> Path:
    return output_root(output_dir) / "results"


def figures_dir(notebook: str, output_dir: str | os.PathLike | None = None) -> Path:
    return output_root(output_dir) / "figures" / notebook


def checkpoints_dir(notebook: str, output_dir: str | os.PathLike | None = None) -> Path:
    """Model checkpoints and other trained artefacts of a notebook: ``<output root>/checkpoints/<notebook>``."""
    return output_root(output_dir) / "checkpoints" / notebook


def rendered_dir(output_dir: str | os.PathLike | None = None) -> Path:
    return output_root(output_dir) / "rendered"


def data_dir() -> Path:
    """Where simulated cohorts are written (``$BRAINAGE_DATA``, default ``<root>/data``)."""
    env = os.environ.get("BRAINAGE_DATA")
    return Path(env).expanduser().resolve() if env else project_root() / "data"


def cache_dir() -> Path:
    """Where preprocessed arrays are cached (``$BRAINAGE_CACHE``, default ``<root>/cache``)."""
    env = os.environ.get("BRAINAGE_CACHE")
    return Path(env).expanduser().resolve() if env else project_root() / "cache"
