"""Profile parameters: ``notebooks/params/<notebook>.<profile>.yaml``.

A notebook's ``parameters`` cell is the one list of its tunables: the core parameters
(PROFILE, DATA_DIR, DATA_SEED, SEED, DEVICE, DEVICES, FORCE, OUTPUT_DIR, and COMPILE in a
notebook that trains) with their defaults, then one annotated
entry per tunable whose default ``None`` means "take the profile's value". The YAML
profiles hold values only, for exactly the cell's tunables. The next cell calls
``resolve_params(NB, globals())``, which gathers the cell's names once from the
notebook's namespace (the annotated upper-case names), refuses a YAML key the cell
lacks and a cell name the YAML lacks, and merges the two, remembering where each
value came from so the rendered notebook can print it.

``DRY_RUN=True`` rehearses a profile: ``<notebook>.dryrun.yaml`` shrinks the cohorts (and the
evaluation loops) while architectures and input sizes stay the profile's, and every training
stage stops after ``DRY_RUN_STEPS`` optimiser steps. A notebook without ``DRY_RUN`` in its
cell (no training) still takes the parameter and its dry-run values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
import yaml

from brainage_lib import paths
from brainage_lib.errors import BrainAgeError
from brainage_lib.run.results import Recorder

PROFILES = ("smoke", "quick", "paper")
CORE = ("PROFILE", "DATA_DIR", "DATA_SEED", "SEED", "DEVICE", "DEVICES", "FORCE", "OUTPUT_DIR")
TRAINING_CORE = ("COMPILE",)  # core parameters of the notebooks that train (in their cell, never in a profile file)
DRY_RUN = "DRY_RUN"
DRY_RUN_STEPS = 2  # optimiser steps per training stage in a dry run


def resolve_profile(profile: str) -> str:
    """``auto`` becomes ``paper`` where CUDA is available, else ``quick``; anything else must be a known profile."""
    if profile == "auto":
        return "paper" if torch.cuda.is_available() else "quick"
    if profile not in PROFILES:
        raise BrainAgeError(f"Unknown profile '{profile}'. Choose one of: {', '.join(PROFILES)} (or auto).")
    return profile


def profile_file(notebook: str, profile: str):
    return paths.params_dir() / f"{notebook}.{profile}.yaml"


def dry_run_file(notebook: str):
    return paths.params_dir() / f"{notebook}.dryrun.yaml"


def load_dry_run(notebook: str) -> dict[str, Any]:
    """The values a dry run puts over the profile's (``<notebook>.dryrun.yaml``; empty if there is none)."""
    f = dry_run_file(notebook)
    data = yaml.safe_load(f.read_text()) if f.is_file() else {}
    if not isinstance(data or {}, dict):
        raise BrainAgeError(f"{f}: expected a mapping of PARAMETER: value.")
    return data or {}


def load_profile(notebook: str, profile: str) -> dict[str, Any]:
    """The profile's parameter values for a notebook."""
    profile = resolve_profile(profile)
    f = profile_file(notebook, profile)
    if not f.is_file():
        have = sorted(p.name for p in paths.params_dir().glob(f"{notebook}.*.yaml"))
        raise BrainAgeError(f"No parameter file {f}. Found: {', '.join(have) or 'none'}.")
    data = yaml.safe_load(f.read_text()) or {}
    if not isinstance(data, dict):
        raise BrainAgeError(f"{f}: expected a mapping of PARAMETER: value.")
    return data


@dataclass
class Params:
    """Resolved parameters with attribute access and the source of each value.

    ``values`` holds the notebook's own (profile) parameters, ``core`` the core ones
    (PROFILE, DATA_DIR, DATA_SEED, SEED, DEVICE, DEVICES, FORCE, OUTPUT_DIR) the run was given.
    """

    notebook: str
    profile: str
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    core: dict[str, Any] = field(default_factory=dict)
    dry_run: bool = False

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    @property
    def output_dir(self) -> str | None:
        """The run's OUTPUT_DIR (None: the default output root)."""
        return self.core.get("OUTPUT_DIR") or None

    @property
    def max_steps(self) -> int | None:
        """Optimiser steps after which every training stage stops: ``DRY_RUN_STEPS`` in a dry run, else None."""
        return DRY_RUN_STEPS if self.dry_run else None

    @property
    def label(self) -> str:
        """The profile as results and the summary show it: ``paper (dry run)`` for a dry run."""
        return f"{self.profile} (dry run)" if self.dry_run else self.profile

    @property
    def checkpoint_dir(self):
        """Where this notebook's checkpoints and other trained artefacts go (``checkpoints/<notebook>``)."""
        return paths.checkpoints_dir(self.notebook, self.output_dir)

    def recorder(self, data: str, device: Any = None, paper: dict | None = None) -> Recorder:
        """The run's :class:`Recorder`: this notebook, profile, parameters and output folder."""
        return Recorder(self.notebook, self.label, data, params=self.as_dict(), output_dir=self.output_dir,
                        device=device, paper=paper)

    def as_dict(self) -> dict[str, Any]:
        """Core and notebook parameters together: what results and figures record."""
        return {**self.core, **self.values}

    def paper_values(self) -> dict[str, Any]:
        """The notebook's ``paper`` profile values, the reference every other profile is compared with."""
        return load_profile(self.notebook, "paper")

    def deviations(self) -> list[str]:
        """Names of the parameters whose value differs from the paper profile's."""
        paper = self.paper_values()
        return [k for k, v in self.values.items() if v != paper.get(k)]

    def table(self) -> pd.DataFrame:
        """One row per parameter: value, where it came from, the paper profile's value, whether it differs."""
        paper, differs = self.paper_values(), set(self.deviations())
        return pd.DataFrame({"value": [repr(v) for v in self.values.values()],
                             "source": [self.sources.get(k, "") for k in self.values],
                             "paper profile": [repr(paper.get(k)) for k in self.values],
                             "differs": [k in differs for k in self.values]}, index=list(self.values))

    def banner(self) -> str:
        """Markdown: the profile and, for a reduced run, every parameter that differs from the paper profile."""
        if self.dry_run:
            head = (f"DRY RUN of PROFILE = {self.profile}: its architectures and input sizes on a tiny cohort, "
                    f"at most {DRY_RUN_STEPS} optimiser steps per training stage. A rehearsal that the code runs end "
                    "to end; NO number in this notebook is a result.")
        elif self.profile == "paper":
            head = f"PROFILE = paper: the papers' sizes, architectures and schedules ({self.notebook})."
        else:
            head = (f"PROFILE = {self.profile}: a REDUCED run (fewer subjects, smaller images, fewer epochs). "
                    "Numbers are not comparable with the papers' beyond direction and order of magnitude.")
        paper, differs = self.paper_values(), self.deviations()
        detail = ("Parameters that differ from the paper profile: "
                  + ", ".join(f"`{k}` = {self.values[k]!r} (paper profile: {paper.get(k)!r})" for k in differs) + "."
                  if differs else "Every parameter equals the paper profile's.")
        return ("## DRY RUN\n\n" if self.dry_run else "") + f"**{head}**\n\n{detail}"


def cell_parameters(namespace: dict[str, Any]) -> list[str]:
    """Names declared in a notebook's ``parameters`` cell: the annotated upper-case names of its namespace."""
    return [k for k in namespace.get("__annotations__", {}) if k.isupper()]


def check_profile_keys(notebook: str, profile: str, cell_names: list[str]) -> dict[str, Any]:
    """The profile's values, refusing a YAML key the parameters cell lacks and a cell tunable the YAML lacks."""
    base = load_profile(notebook, profile)
    tunables = [k for k in cell_names if k not in CORE + TRAINING_CORE]
    f = profile_file(notebook, resolve_profile(profile))
    extra = [k for k in base if k not in tunables]
    if extra:
        raise BrainAgeError(f"{f}: {', '.join(extra)} not in the parameters cell of notebooks/{notebook}.py; "
                            "add them to the cell (with a comment) or remove them from the file.")
    missing = [k for k in tunables if k not in base]
    if missing:
        raise BrainAgeError(f"{f} has no value for {', '.join(missing)} of the parameters cell of "
                            f"notebooks/{notebook}.py; add one.")
    return base


def resolve_params(notebook: str, namespace: dict[str, Any]) -> Params:
    """Merge the notebook's parameters cell (read from ``namespace``, its ``globals()``) with its profile.

    Every tunable left at ``None`` takes the profile's value; any other value is an
    override. The core parameters are recorded as given, PROFILE as resolved (``auto``
    becomes ``paper`` or ``quick``).
    """
    names = cell_parameters(namespace)
    if not names:
        raise BrainAgeError("resolve_params found no parameters: call resolve_params(NB, globals()) in the cell "
                            "after the notebook's parameters cell, whose entries are annotated (NAME: type = value).")
    lacking = [k for k in CORE if k not in names]
    if lacking:
        raise BrainAgeError(f"The parameters cell of {notebook} lacks the core parameter(s) {', '.join(lacking)}.")
    prof = resolve_profile(namespace["PROFILE"])
    base = check_profile_keys(notebook, prof, names)
    given_dry = namespace.get(DRY_RUN)  # injected by papermill also where the cell lacks it (no training)
    dry = bool(base.get(DRY_RUN) if given_dry is None else given_dry)
    overlay = load_dry_run(notebook) if dry else {}
    stray = set(overlay) - set(base)
    if stray:
        raise BrainAgeError(f"{dry_run_file(notebook)}: {', '.join(sorted(stray))} not in the parameters cell of "
                            f"notebooks/{notebook}.py.")
    values, sources = {}, {}
    for k, v in base.items():
        given = namespace.get(k)
        if given is not None:
            values[k], sources[k] = given, "override"
        else:
            values[k], sources[k] = (overlay[k], "dry run") if k in overlay else (v, f"profile {prof}")
    core = {k: namespace[k] for k in CORE + TRAINING_CORE if k in names}
    core["PROFILE"] = prof
    if dry and DRY_RUN not in values:
        core[DRY_RUN] = True  # recorded with the results of a notebook whose cell lacks it
    return Params(notebook, prof, values, sources, core, dry_run=dry)
