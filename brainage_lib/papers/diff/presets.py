"""DIFF's cohorts for the simulator: the lifespan training set, the clinical test set and the ALS cohort (SPEC §1)."""
from __future__ import annotations

from brainage_lib.simulation.presets import Preset

PRESETS = (
    Preset("lifespan_train", "DIFF training (8 research datasets)", 4600, "life", ("truncnorm", 56.0, 20.9, 18.0, 95.0),
           n_sites=8, field_strength="mixed", gap_sd=5.0, unlabelled_fraction=0.2,
           effect_region="medial_temporal+frontal", effect_rate=0.005,
           effect_onset=25.0, reference_ages=(30.0, 80.0), site_offset=30),
    Preset("clinical_test", "DIFF test (clinical grade)", 470, "clin", ("truncnorm", 68.0, 10.0, 35.0, 95.0),
           n_sites=2, field_strength="1.5T", grade="clinical", gap_sd=5.0,
           effect_region="medial_temporal+frontal", effect_rate=0.005,
           effect_onset=25.0, reference_ages=(55.0, 80.0), site_offset=40),
    Preset("als_like", "DIFF ALS cohort", 72, "als", ("truncnorm", 61.0, 10.9, 30.0, 85.0),
           n_sites=1, field_strength="3T", grade="clinical", gap_mean=3.0, gap_sd=5.0, group="ALS",
           effect_region="medial_temporal+frontal", effect_rate=0.005, effect_onset=25.0,
           disease_region="motor+frontal+temporal",
           disease_strength=0.15, reference_ages=(50.0, 75.0), site_offset=45),
)
