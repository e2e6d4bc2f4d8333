"""DIFF's preprocessing recipe for ``brainage preprocess --recipe diff``."""
from __future__ import annotations

from brainage_lib.preprocess.recipes import Recipe

RECIPE = Recipe(
    "diff", "DIFF (diffusion autoencoder, Appendix B)",
    "ANTs affine registration to the MNI152 brain template, resampling to 130x130x130, N4 bias field correction, "
    "HD-BET skull stripping; then the mid-axial slice at 128x128",
    ("n4", "register", "bet"), "Affine", (130, 130, 130),
    ("deepbet replaces HD-BET, whose weights are downloaded at run time.",
     ("N4 runs on the scanner's image before the registration (the paper: after resampling to 130^3). A bias field "
      "is smooth, so an affine carries it along: correcting it first costs less on the scanner's coarser grid, and "
      "the corrected head registers better."),
     ("The head is registered to the brain template with the similarity metric restricted to the template's "
      "brain mask dilated by 6 mm (as in every affine recipe), so that the scalp does not pull the fit."),
     "The notebook takes the mid-axial slice; this folder holds the 130^3 volumes."))
