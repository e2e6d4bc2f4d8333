"""LSTM's preprocessing recipe for ``brainage preprocess --recipe lstm``."""
from __future__ import annotations

from brainage_lib.preprocess.recipes import Recipe

RECIPE = Recipe(
    "lstm", "LSTM (2D-ResNet18+LSTM, children)",
    "registered to the SRI24 atlas (image size 128x160x112)",
    ("n4", "bet", "register"), "Affine", (128, 160, 112),
    (("SRI24 cannot be had offline: the MNI152 2009 template's field of view sampled on the same 128x160x112 "
      "grid stands in for it (voxels 1.54x1.46x1.69 mm)."),
     ("The paper names no bias correction or brain extraction; N4 and deepbet are added so that the output "
      "matches the skull-stripped cohorts the notebook is built on.")),
    stands_in_for="SRI24")
