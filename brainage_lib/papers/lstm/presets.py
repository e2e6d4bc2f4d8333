"""LSTM's cohorts for the simulator: the NIH-PD-like discovery cohort (0-22 y) and the MGHBCH-like replication (0-6 y) (SPEC §1)."""
from __future__ import annotations

from brainage_lib.simulation.presets import Preset

PRESETS = (
    Preset("nihpd_like", "LSTM discovery (NIH-PD, 0-22 y, 1.5T)", 1200, "nihpd", ("uniform_mix", 0.0, 22.0, 0.25, 4.5),
           n_sites=12, field_strength="1.5T", gap_sd=0.2, gap_sd_per_year=0.08,
           effect_region="frontal+parietal", reference_ages=(2.0, 18.0), site_offset=50),
    Preset("mghbch_like", "LSTM replication (MGHBCH, 0-6 y, 3T MPRAGE)", 430, "mgh", ("uniform_mix", 0.0, 6.0, 0.0, 6.0),
           n_sites=1, field_strength="3T", gap_sd=0.1, gap_sd_per_year=0.08,
           effect_region="frontal+parietal", reference_ages=(0.5, 5.5), site_offset=70),
)
