"""TGB's preprocessing recipe for ``brainage preprocess --recipe tgb``."""
from __future__ import annotations

from brainage_lib.preprocess.recipes import Recipe

RECIPE = Recipe(
    "tgb", "TGB (GAN with a task-guided branch, ABIDE)",
    "brain extraction, bias field correction and nonlinear registration to the MNI template space",
    ("bet", "n4", "register"), "SyN", (99, 117, 95),
    ("Output on the 2 mm MNI152 grid (99x117x95), the grid the simulator writes; the notebook resizes to 96^3.",))
