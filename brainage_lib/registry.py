"""The paper plug-in contract: each wing under ``brainage_lib/papers/`` declares one ``Paper``; shared code finds them here.

A wing's ``__init__.py`` holds ``PAPER = Paper(...)``: its notebook, input transforms, preprocessing
recipe, architectures for ``brainage predict``, simulator presets, benchmarks, gpu-check stages,
claims and deviations from the paper. The parts that import torch or build data are named as
``"module:attribute"`` strings and imported only when used, so that listing the papers (``brainage
--help``) stays cheap. Shared code never names a wing: it asks :func:`papers` (or one of the
merged views below), so a new paper is a new folder, a notebook and its parameter files, and no
shared file changes. ``docs/adding-a-paper.md`` walks through a minimal one.

The report notebook (:data:`REPORT_NOTEBOOK`) reads what every other notebook recorded, so it runs
last, whatever the names of the others.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from brainage_lib.errors import BrainAgeError

__all__ = ["PAPERS_PACKAGE", "REPORT_NOTEBOOK", "Paper", "architectures", "load", "paper_of_notebook", "papers",
           "preset_refs", "recipe_names", "transform_names", "transform_refs"]

PAPERS_PACKAGE = "brainage_lib.papers"
REPORT_NOTEBOOK = "04_summary"  # reads every other notebook's results: runs after them


def load(ref: str) -> Any:
    """The object a ``"package.module:attribute"`` reference names, or the module ``"package.module"`` (imported now)."""
    module, sep, attr = ref.partition(":")
    if not module or (sep and not attr):
        raise BrainAgeError(f"'{ref}' is not a 'package.module:attribute' or 'package.module' reference.")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError as exc:
        raise BrainAgeError(f"Cannot import {module} (named by '{ref}'): {exc}") from exc
    if not sep:
        return obj
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BrainAgeError(f"{module} has no attribute '{attr}' (named by '{ref}').")
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class Paper:
    """One paper's plug-in: what shared code needs to run, preprocess, predict, bench and report it.

    ``transforms`` maps a transform name (``brainage cache --transform``, model cards) to its class;
    the first is the paper's main input. ``recipe`` names the ``preprocess.recipes.Recipe`` of
    ``brainage preprocess --recipe <name>``. ``architectures`` maps the name a model card stores to
    ``(builder, config class or None)``: the network is ``builder(Config(**config))``, or
    ``builder(**config)`` without a class. ``presets`` names a sequence of simulator presets;
    ``bench`` a function ``(device) -> {measure: value}``; ``gpu_stages`` a function
    ``(paper: bool) -> [StageBench]``; ``claims`` the function that judges the paper's claims from
    recorded numbers (a list of ``metrics.verdicts.Claim``, which ``Recorder.record_claims`` records);
    ``deviations`` its list of deviations from the paper; ``numbers`` the module with the paper's
    reported numbers (the wing's ``paper.py``), whose ``PAPER`` dict (``short``, ``title``, ``tables``) heads the
    notebook's results (``brainage_lib.notebook.start`` reads it). ``device_check`` names a pair of
    functions ``(run, lines)``: ``run(device, paper_sizes: bool) -> dict`` (plain numbers) is the paper's own
    check on a lent GPU (``device/run.sh``: TGB compares bf16 with fp32 for its gradient penalty), ``lines(result)``
    the lines it adds to the device table.
    """

    name: str  # the wing's folder name; also its recipe name
    short: str  # as tables show it: TGB, DIFF, LSTM
    title: str
    notebook: str  # notebooks/<notebook>.py
    transforms: Mapping[str, str] = field(default_factory=dict)
    recipe: str | None = None
    architectures: Mapping[str, tuple[str, str | None]] = field(default_factory=dict)
    presets: str | None = None
    bench: str | None = None
    gpu_stages: str | None = None
    claims: str | None = None
    deviations: str | None = None
    numbers: str | None = None
    device_check: str | None = None

    def load(self, part: str) -> Any:
        """The imported object of one part (``"recipe"``, ``"bench"``, ...); None when the paper has none."""
        ref = getattr(self, part)
        return None if ref is None else load(ref)


@lru_cache(maxsize=1)
def papers() -> dict[str, Paper]:
    """Every wing's ``Paper``, by name, in the order of their notebooks."""
    pkg = importlib.import_module(PAPERS_PACKAGE)
    found: dict[str, Paper] = {}
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"{PAPERS_PACKAGE}.{info.name}")
        paper = getattr(module, "PAPER", None)
        if not isinstance(paper, Paper):
            raise BrainAgeError(f"brainage_lib/papers/{info.name}/__init__.py must declare PAPER = Paper(...) "
                                "(see docs/adding-a-paper.md).")
        if paper.name != info.name:
            raise BrainAgeError(f"brainage_lib/papers/{info.name}: its Paper is named '{paper.name}'; "
                                f"name it after its folder, '{info.name}'.")
        found[paper.name] = paper
    notebooks = [p.notebook for p in found.values()]
    if len(set(notebooks)) != len(notebooks) or REPORT_NOTEBOOK in notebooks:
        raise BrainAgeError(f"Each paper needs a notebook of its own (not {REPORT_NOTEBOOK}): {notebooks}.")
    return dict(sorted(found.items(), key=lambda kv: kv[1].notebook))


def paper_of_notebook(notebook: str) -> Paper | None:
    """The paper a notebook reproduces, or None (the cohorts and report notebooks)."""
    return next((p for p in papers().values() if p.notebook == notebook), None)


def _merged(part: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    owner: dict[str, str] = {}
    for p in papers().values():
        for name, ref in getattr(p, part).items():
            if name in out:
                raise BrainAgeError(f"Both '{owner[name]}' and '{p.name}' declare the {part[:-1]} '{name}'; "
                                    "rename one.")
            out[name], owner[name] = ref, p.name
    return out


def transform_names() -> list[str]:
    """Every declared input transform's name."""
    return list(_merged("transforms"))


def transform_refs() -> dict[str, str]:
    return _merged("transforms")


def architectures() -> dict[str, tuple[str, str | None]]:
    """Every architecture a model card may name -> (builder reference, config class reference or None)."""
    return _merged("architectures")


def recipe_names() -> list[str]:
    """The papers with a preprocessing recipe (``brainage preprocess --recipe``)."""
    return [name for name, p in papers().items() if p.recipe]


def preset_refs() -> list[str]:
    """References to each paper's sequence of simulator presets."""
    return [p.presets for p in papers().values() if p.presets]
