"""Profile parameters: ``notebooks/params/<notebook>.<profile>.yaml``.

A notebook's ``parameters`` cell holds the core parameters (PROFILE, DATA_DIR, SEED,
DEVICE, OUTPUT_DIR) and one entry per tunable parameter whose default ``None`` means
"take the profile's value". ``resolve_params`` merges the two and remembers where
each value came from, so the rendered notebook can print it. It also keeps the core
parameters, so that ``Params.as_dict()`` (what results and figure sidecars record)
says which seed, data, device and output folder a run used.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
import yaml

from brainage_lib import paths
from brainage_lib.errors import BrainAgeError

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


def resolve_params(notebook: str, profile: str, core: dict[str, Any] | None = None, **overrides: Any) -> Params:
    """Merge a profile file with the notebook's non-None overrides; unknown names are an error.

    ``core`` gives the core parameters to record; by default they are read from the
    caller's globals (a notebook's ``parameters`` cell), so ``resolve_params(NB, PROFILE, ...)``
    in a notebook records its SEED, DATA_DIR, DEVICE and OUTPUT_DIR. PROFILE is recorded
    as resolved (``auto`` becomes ``paper`` or ``quick``).
    """
    prof = resolve_profile(profile)
    if core is None:
        caller = sys._getframe(1).f_globals
        core = {k: caller[k] for k in CORE if k in caller}
    unknown_core = set(core) - set(CORE)
    if unknown_core:
        raise BrainAgeError(f"Unknown core parameter(s) {sorted(unknown_core)}; core parameters are {', '.join(CORE)}.")
    core = {**core, "PROFILE": prof}
    base = load_profile(notebook, prof)
    unknown = set(overrides) - set(base)
    if unknown:
        raise BrainAgeError(f"Unknown parameter(s) {sorted(unknown)} for notebook {notebook}; known: {sorted(base)}.")
    values, sources = {}, {}
    for k, v in base.items():
        if overrides.get(k) is not None:
            values[k], sources[k] = overrides[k], "override"
        else:
            values[k], sources[k] = v, f"profile {prof}"
    return Params(notebook, prof, values, sources, {k: core[k] for k in CORE if k in core})
