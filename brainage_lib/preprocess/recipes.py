"""One preprocessing recipe per paper, from each paper's own description of its pipeline.

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

from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation.anatomy import Grid, resample_to_grid

DILATE_MM = 6.0  # margin of the registration mask around the template brain (head-to-brain registration)
SPACE = "MNI152NLin2009aSym"  # the template nilearn ships: mni_icbm152_t1_tal_nlin_sym_09a
STEPS = {
    "n4": "N4 bias-field correction (ANTsPy; inside the brain mask once there is one, else inside a head mask)",
    "bet": "brain extraction with deepbet (its weights ship in its wheel)",
    "register": "ANTsPy registration to the MNI152 brain template on the output grid (an affine one with the metric "
                "inside the template's brain mask dilated by 6 mm)",
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

    @property
    def grid(self) -> Grid:
        return Grid(self.shape)

    @property
    def definition(self) -> dict:
        """What decides a scan's output (kept in each scan's record; a scan made by another definition is redone)."""
        return {"steps": list(self.steps), "transform": self.transform, "shape": list(self.shape)}

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


RECIPES = {
    "tgb": Recipe(
        "tgb", "TGB (GAN with a task-guided branch, ABIDE)",
        "brain extraction, bias field correction and nonlinear registration to the MNI template space",
        ("bet", "n4", "register"), "SyN", (99, 117, 95),
        ("Output on the 2 mm MNI152 grid (99x117x95), the grid the simulator writes; the notebook resizes to 96^3.",)),
    "diff": Recipe(
        "diff", "DIFF (diffusion autoencoder, Appendix B)",
        "ANTs affine registration to the MNI152 brain template, resampling to 130x130x130, N4 bias field correction, "
        "HD-BET skull stripping; then the mid-axial slice at 128x128",
        ("n4", "register", "bet"), "Affine", (130, 130, 130),
        ("deepbet replaces HD-BET, whose weights are downloaded at run time.",
         ("N4 runs on the scanner-space image before the registration rather than on the resampled 130^3 head: the "
          "bias field is smooth, so the order changes little, and N4 fits it on a smaller image."),
         ("The head is registered to the brain template with the similarity metric restricted to the template's "
          "brain mask dilated by 6 mm (as in every affine recipe), so that the scalp does not pull the fit."),
         "The notebook takes the mid-axial slice; this folder holds the 130^3 volumes.")),
    "lstm": Recipe(
        "lstm", "LSTM (2D-ResNet18+LSTM, children)",
        "registered to the SRI24 atlas (image size 128x160x112)",
        ("n4", "bet", "register"), "Affine", (128, 160, 112),
        (("SRI24 cannot be had offline: the MNI152 2009 template's field of view sampled on the same 128x160x112 "
          "grid stands in for it (voxels 1.54x1.46x1.69 mm)."),
         ("The paper names no bias correction or brain extraction; N4 and deepbet are added so that the output "
          "matches the skull-stripped cohorts the notebook is built on."))),
}


def get_recipe(name: str) -> Recipe:
    """A recipe by name (``tgb``, ``diff``, ``lstm``)."""
    if name not in RECIPES:
        raise BrainAgeError(f"Unknown recipe '{name}'. Choose one of: {', '.join(RECIPES)} (one per paper).")
    return RECIPES[name]


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
