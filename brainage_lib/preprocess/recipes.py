"""Preprocessing recipes: one per paper (declared in its wing, ``papers/<paper>/recipe.py``), from its own description.

A recipe is an ordered list of steps (``n4``, ``bet``, ``register``) and an output grid. The
registration target is the MNI152 2009 brain template that ships in the nilearn wheel
(ICBM 2009a symmetric, brain only), sampled on the recipe's output grid, which always spans
that template's field of view; so every output is in MNI space and passes ``brainage validate``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage

from brainage_lib import registry
from brainage_lib.errors import BrainAgeError
from brainage_lib.run.jsonable import to_jsonable
from brainage_lib.simulation.anatomy import DEFAULT_SHAPE, Grid, resample_to_grid

DILATE_MM = 6.0  # margin of the registration mask around the template brain (head-to-brain registration)
REGISTRATION_GRID = DEFAULT_SHAPE  # the template's 2 mm grid: every recipe registers there, then resamples onto its own
# SyN (tgb) starts from an affine of the brain with a short schedule (no full-resolution level, a tenth of the voxels
# sampled); ANTsPy's own "SyN" runs a fixed 2100x1200x1200 affine first, about as long as the SyN itself. SyN's
# Mattes metric then uses 16 histogram bins (ANTsPy: 32). On hard heads: 23 -> 16-18 CPU s per scan, the same Dice
SYN_AFFINE = {"aff_iterations": (1000, 500, 100), "aff_shrink_factors": (6, 4, 2), "aff_smoothing_sigmas": (3, 2, 1),
              "aff_random_sampling_rate": 0.1}
SYN_BINS = 16
SPACE = "MNI152NLin2009aSym"  # the template nilearn ships: mni_icbm152_t1_tal_nlin_sym_09a
STEPS = {
    "n4": "N4 bias-field correction (ANTsPy; inside the brain mask once there is one, else inside a head mask)",
    "bet": "brain extraction with deepbet (its weights ship in its wheel)",
    "register": "ANTsPy registration to the MNI152 brain template on its 2 mm grid (an affine one with the metric "
                "inside the template's brain mask dilated by 6 mm; a whole head starts from its brain's affine, with "
                "the metric inside its coarse brain mask dilated by 6 mm too; SyN starts from a short affine of the brain "
                "and uses a 16-bin Mattes metric), then one resampling onto the output grid",
}


@dataclass(frozen=True)
class Recipe:
    """A paper's preprocessing: its steps in order, the ANTs transform type and the output grid."""

    name: str
    paper: str
    stated: str  # the paper's own words on its preprocessing
    steps: tuple[str, ...]  # keys of STEPS, in order
    transform: str  # ANTsPy ``type_of_transform``
    shape: tuple[int, int, int]  # output grid over the MNI152 field of view
    notes: tuple[str, ...] = ()  # where this recipe departs from the paper, and why
    stands_in_for: str = ""  # the paper's template, where the MNI152 grid of this recipe stands in for it

    @property
    def grid(self) -> Grid:
        return Grid(self.shape)

    @property
    def res(self) -> str:
        """The ``res-`` label of the output names: the grid's shape (a label of this project, not a TemplateFlow
        resolution index), e.g. ``99x117x95``."""
        return "x".join(map(str, self.shape))

    def resolution(self) -> str:
        """The grid in words, for the sidecars' ``Resolution``."""
        mm = "x".join(f"{v:.3g}" for v in self.grid.voxel_size)
        return (f"res-{self.res}: {self.res} voxels of {mm} mm spanning the {SPACE} field of view (a grid of this "
                "project, named by its shape; not a TemplateFlow resolution index)")

    @property
    def definition(self) -> dict:
        """What decides a scan's output (kept in each scan's record; a scan made by another definition is redone)."""
        out = {"steps": list(self.steps), "transform": self.transform, "shape": list(self.shape),
               "registration_grid": list(REGISTRATION_GRID)}
        if self.transform == "SyN":
            out["syn"] = to_jsonable({**SYN_AFFINE, "bins": SYN_BINS})  # as a scan's JSON record holds it
        return out

    def describe(self) -> list[str]:
        """The steps as sentences, in order."""
        out = []
        for s in self.steps:
            text = STEPS[s]
            if s == "register":
                kind = "affine + SyN (nonlinear)" if self.transform == "SyN" else "affine"
                text += f": {kind}, resampled to {'x'.join(map(str, self.shape))}"
            out.append(text)
        return out


def recipes() -> dict[str, Recipe]:
    """Every paper's recipe by name (each wing declares its own ``Recipe`` in its ``Paper``)."""
    return {name: registry.papers()[name].load("recipe") for name in registry.recipe_names()}


def __getattr__(name: str):
    if name == "RECIPES":  # the merged view, built when first asked for
        return recipes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_recipe(name: str) -> Recipe:
    """A recipe by name (``tgb``, ``diff``, ``lstm``)."""
    names = registry.recipe_names()
    if name not in names:
        raise BrainAgeError(f"Unknown recipe '{name}'. Choose one of: {', '.join(names)} (one per paper).")
    return registry.papers()[name].load("recipe")


@lru_cache(maxsize=4)
def template(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Brain template (float32, 0 outside the brain), its brain mask, and that mask dilated by ``DILATE_MM``, on a grid."""
    from nilearn import datasets

    grid = Grid(shape)
    t1, mask = (np.clip(resample_to_grid(np.asarray(img.get_fdata(dtype=np.float32)), 1.0, grid), 0.0, 1.0)
                for img in (datasets.load_mni152_template(resolution=1), datasets.load_mni152_brain_mask(resolution=1)))
    mask = mask > 0.5
    radius = np.maximum(np.round(DILATE_MM / grid.voxel_size).astype(int), 1)
    axes = np.meshgrid(*[np.arange(-r, r + 1) * v for r, v in zip(radius, grid.voxel_size)], indexing="ij")
    ball = sum(a**2 for a in axes) <= DILATE_MM**2
    dilated = ndimage.binary_dilation(mask, structure=ball)
    return (t1 * mask).astype(np.float32), mask, dilated
