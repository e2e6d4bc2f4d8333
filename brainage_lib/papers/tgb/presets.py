"""TGB's cohort for the simulator: ABIDE I+II, 6-24 y (SPEC §1)."""
from __future__ import annotations

import numpy as np

from brainage_lib.simulation.presets import Preset

# ABIDE-like counts per 1-year bin [5, 6) ... [23, 24) for one sex: few at 5-6 and
# 18-24, many at 9-12 (TGB paper: 6 images at 5-6, 86 at 9-10 after sex balancing).
ABIDE_BIN_WEIGHTS = np.array([3, 22, 30, 36, 43, 42, 40, 36, 32, 28, 24, 20, 17, 14, 12, 10, 8, 5, 3], float)

PRESETS = (
    Preset("abide_like", "TGB (ABIDE I+II, 6-24 y)", 1150, "abide", ("bins", 5.0, tuple(ABIDE_BIN_WEIGHTS)),
           n_sites=17, field_strength="3T", female_fraction=431 / 1150, sex_paired_bins=True,
           gap_sd=0.8, effect_region="frontal", effect_rate=0.015, deform_mm=1.0, head_scale_sd=0.0,
           reference_ages=(8.0, 20.0)),
)
