"""Cohort presets mirroring the papers' cohorts (SPEC §1), and their demographics.

Each paper declares its own presets in its wing (``papers/<paper>/presets.py``); ``presets()``
(and ``PRESETS``) gathers them through ``brainage_lib.registry``.

A preset fixes who is in a cohort (ages, sexes, sites, groups), how far brain age
strays from chronological age, the region that loses extra GM with age and how fast,
and how the images are acquired. ``sample_demographics`` draws one cohort from a
preset; sites are drawn independently of age and sex.

``abide_like`` follows the TGB paper's data: ABIDE I's 17 sites, all scanned at 3T
(site contrast varies only by vendor and sequence, ``render.SITE_CONTRAST_SD``); after
nonlinear registration to MNI no head-size variation is left (``head_scale_sd=0``)
and the residual misalignment is under one 1 mm voxel (``deform_mm=1``: 0.8 mm on average).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from brainage_lib import registry
from brainage_lib.errors import BrainAgeError


@dataclass(frozen=True)
class Preset:
    """Everything the simulator needs to know about one kind of cohort."""

    name: str
    mirrors: str
    n: int
    id_prefix: str
    age_model: tuple  # ("bins", start, weights) | ("truncnorm", mean, sd, lo, hi) | ("uniform_mix", ...)
    n_sites: int
    field_strength: str  # "1.5T" | "3T" | "mixed"
    grade: str = "research"  # "research" | "clinical"
    female_fraction: float = 0.5
    sex_paired_bins: bool = False  # abide_like: a male partner in the same 1-y bin for every female
    gap_mean: float = 0.0
    gap_sd: float = 4.0  # years
    gap_sd_per_year: float = 0.0  # extra sd per year of age (children)
    unlabelled_fraction: float = 0.0
    group: str = "control"
    effect_region: str = "frontal"
    effect_rate: float = 0.01  # extra share of its GM the effect region loses to CSF per year of biological age
    effect_onset: float = 0.0  # biological age (years) from which that extra loss accumulates
    disease_region: str | None = None
    disease_strength: float = 0.0  # max extra GM loss in the disease region
    deform_mm: float = 1.0  # residual individual deformation after registration (sd, mm)
    head_scale_sd: float = 0.02  # sd of the individual head-size factor (0: brain volume removed by registration)
    reference_ages: tuple[float, float] = (8.0, 20.0)  # ages of ground_truth/expected_change
    site_offset: int = 0  # first site number: distinct presets get distinct sites
    extra: dict = field(default_factory=dict)


def presets() -> dict[str, Preset]:
    """Every paper's presets by name, in the papers' order (each wing declares its own in its ``Paper``)."""
    out: dict[str, Preset] = {}
    for ref in registry.preset_refs():
        for preset in registry.load(ref):
            if preset.name in out:
                raise BrainAgeError(f"Two papers declare the preset '{preset.name}'; rename one ({ref}).")
            out[preset.name] = preset
    return out


def __getattr__(name: str):
    if name == "PRESETS":  # the merged view, built when first asked for
        return presets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_preset(name: str, **overrides) -> Preset:
    """Look a preset up by name, optionally replacing some of its fields."""
    known = presets()
    if name not in known:
        raise BrainAgeError(f"Unknown preset '{name}'. Choose one of: {', '.join(known)}.")
    preset = known[name]
    unknown = set(overrides) - set(preset.__dataclass_fields__)
    if unknown:
        raise BrainAgeError(f"Unknown preset field(s) {sorted(unknown)} for '{name}'.")
    return replace(preset, **{k: v for k, v in overrides.items() if v is not None})


def _sample_ages(preset: Preset, n: int, rng: np.random.Generator) -> np.ndarray:
    kind = preset.age_model[0]
    if kind == "bins":
        start, weights = preset.age_model[1], np.asarray(preset.age_model[2])
        bins = rng.choice(len(weights), size=n, p=weights / weights.sum())
        return start + bins + rng.uniform(0, 1, n)
    if kind == "truncnorm":
        mean, sd, lo, hi = preset.age_model[1:]
        out = rng.normal(mean, sd, n * 4)
        out = out[(out >= lo) & (out <= hi)]
        while out.size < n:  # pragma: no cover - only for extreme truncation
            more = rng.normal(mean, sd, n * 4)
            out = np.concatenate([out, more[(more >= lo) & (more <= hi)]])
        return out[:n]
    if kind == "uniform_mix":
        # uniform over [lo, hi] with extra density over [dense_lo, dense_hi] (infant scans)
        lo, hi, dense_lo, dense_hi = preset.age_model[1:]
        dense = rng.uniform(0, 1, n) < 0.3
        return np.where(dense, rng.uniform(dense_lo, dense_hi, n), rng.uniform(lo, hi, n))
    raise BrainAgeError(f"Preset '{preset.name}' has an unknown age model '{kind}'.")


def sample_demographics(preset: Preset, n: int, rng: np.random.Generator) -> pd.DataFrame:
    """Draw ages, sexes, sites, groups and hidden brain-age gaps for ``n`` subjects."""
    if n < 1:
        raise BrainAgeError(f"Number of subjects must be at least 1, got {n}.")
    if preset.sex_paired_bins:
        # Every female gets a male partner in the same 1-y bin; remaining subjects are male.
        # Balancing by sex per 1-y bin then keeps exactly 2 x n_female subjects (TGB: 862 of 1150).
        n_f = int(round(n * preset.female_fraction))
        n_f = min(n_f, n // 2)
        age_f = _sample_ages(preset, n_f, rng)
        age_pair = np.floor(age_f) + rng.uniform(0, 1, n_f)
        age_extra = _sample_ages(preset, n - 2 * n_f, rng)
        ages = np.concatenate([age_f, age_pair, age_extra])
        sex = np.array(["F"] * n_f + ["M"] * (n - n_f))
        order = rng.permutation(n)
        ages, sex = ages[order], sex[order]
    else:
        ages = _sample_ages(preset, n, rng)
        sex = np.where(rng.uniform(0, 1, n) < preset.female_fraction, "F", "M")
    ages = np.round(ages, 2)
    site_weights = rng.dirichlet(np.full(preset.n_sites, 4.0))
    site_idx = rng.choice(preset.n_sites, size=n, p=site_weights)
    sites = np.array([f"site{preset.site_offset + i + 1:02d}" for i in site_idx])
    gap_sd = preset.gap_sd + preset.gap_sd_per_year * ages
    gaps = preset.gap_mean + rng.standard_normal(n) * gap_sd
    brain_age = np.maximum(ages + gaps, 0.0)
    labelled = rng.uniform(0, 1, n) >= preset.unlabelled_fraction
    return pd.DataFrame({
        "participant_id": [f"sub-{preset.id_prefix}{i + 1:04d}" for i in range(n)],
        "age": ages,
        "sex": sex,
        "site": sites,
        "group": preset.group,
        "brain_age": brain_age,
        "gap": brain_age - ages,
        "labelled": labelled,
    })
