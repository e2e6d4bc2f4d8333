"""Profile parameters: ``notebooks/params/<notebook>.<profile>.yaml``.

A notebook's ``parameters`` cell is the one list of its tunables: the core parameters
(PROFILE, DATA_DIR, SEED, DEVICE, OUTPUT_DIR) with their defaults, then one annotated
entry per tunable whose default ``None`` means "take the profile's value". The YAML
profiles hold values only, for exactly the cell's tunables. The next cell calls
``resolve_params(NB, globals())``, which gathers the cell's names once from the
notebook's namespace (the annotated upper-case names), refuses a YAML key the cell
lacks and a cell name the YAML lacks, and merges the two, remembering where each
value came from so the rendered notebook can print it.
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
CORE = ("PROFILE", "DATA_DIR", "SEED", "DEVICE", "OUTPUT_DIR")


def resolve_profile(profile: str) -> str:
    """``auto`` becomes ``paper`` where CUDA is available, else ``quick``; anything else must be a known profile."""
    if profile == "auto":
        return "paper" if torch.cuda.is_available() else "quick"
    if profile not in PROFILES:
        raise BrainAgeError(f"Unknown profile '{profile}'. Choose one of: {', '.join(PROFILES)} (or auto).")
    return profile


def profile_file(notebook: str, profile: str):
    return paths.params_dir() / f"{notebook}.{profile}.yaml"


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
    (PROFILE, DATA_DIR, SEED, DEVICE, OUTPUT_DIR) the run was given.
    """

    notebook: str
    profile: str
    values: dict[str, Any]
    sources: dict[str, str] = field(default_factory=dict)
    core: dict[str, Any] = field(default_factory=dict)

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
    def checkpoint_dir(self):
        """Where this notebook's checkpoints and other trained artefacts go (``checkpoints/<notebook>``)."""
        return paths.checkpoints_dir(self.notebook, self.output_dir)

    def recorder(self, data: str, device: Any = None, paper: dict | None = None) -> Recorder:
        """The run's :class:`Recorder`: this notebook, profile, parameters and output folder."""
        return Recorder(self.notebook, self.profile, data, params=self.as_dict(), output_dir=self.output_dir,
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
        if self.profile == "paper":
            head = f"PROFILE = paper: the papers' sizes, architectures and schedules ({self.notebook})."
        else:
            head = (f"PROFILE = {self.profile}: a REDUCED run (fewer subjects, smaller images, fewer epochs). "
                    "Numbers are not comparable with the papers' beyond direction and order of magnitude.")
        paper, differs = self.paper_values(), self.deviations()
        detail = ("Parameters that differ from the paper profile: "
                  + ", ".join(f"`{k}` = {self.values[k]!r} (paper profile: {paper.get(k)!r})" for k in differs) + "."
                  if differs else "Every parameter equals the paper profile's.")
        return f"**{head}**\n\n{detail}"


def cell_parameters(namespace: dict[str, Any]) -> list[str]:
    """Names declared in a notebook's ``parameters`` cell: the annotated upper-case names of its namespace."""
    return [k for k in namespace.get("__annotations__", {}) if k.isupper()]


def check_profile_keys(notebook: str, profile: str, cell_names: list[str]) -> dict[str, Any]:
    """The profile's values, refusing a YAML key the parameters cell lacks and a cell tunable the YAML lacks."""
    base = load_profile(notebook, profile)
    tunables = [k for k in cell_names if k not in CORE]
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
    values, sources = {}, {}
    for k, v in base.items():
        given = namespace.get(k)
        values[k], sources[k] = (given, "override") if given is not None else (v, f"profile {prof}")
    core = {k: namespace[k] for k in CORE}
    core["PROFILE"] = prof
    return Params(notebook, prof, values, sources, core)
