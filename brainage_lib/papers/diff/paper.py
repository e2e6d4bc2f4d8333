"""The numbers the DIFF paper reports (semi-supervised diffusion model for brain age; ALS survival), in one place.

The notebook records each beside this run's value (``paper=``), ``evaluation.paper_magnitude`` derives
the magnitudes of the claims from Tables 1 and 2, and the summary shows ``PAPER``'s tables. Nothing here
is this project's choice.
"""
from __future__ import annotations

__all__ = ["DATA", "DIFFAE_PARAMS_M", "PAPER", "PAPER_TABLE1", "PAPER_TABLE2"]

# What the summary and the index page show of this paper: its name, the titles of its record tables, and the
# evaluation (rows of the predictions file) on which the models are compared by bootstrap.
PAPER = {"short": "DIFF", "title": "Semi-supervised diffusion model for brain age; ALS survival",
         "tables": {"table1": "Table 1: test r, MAE, R² and brain-PAD vs ALS survival",
                    "table2": "Table 2: ALS brain-PAD mean, sd and KS tests against ours", "data": "Data",
                    "model": "Model size",
                    "mag": "Magnitudes: the paper's number beside this run's (ours minus each baseline, or ours)"},
         "bootstrap_evaluations": ["test"]}

# The three cohorts by role: (N, age mean, age sd).
DATA = {"train": (4631, 56.0, 20.9), "test": (473, 68.0, 10.0), "als": (72, 61.0, 10.9)}
DIFFAE_PARAMS_M = 10.12  # the diffusion autoencoder's parameters (millions) at the paper's widths

# Paper table 1 (test set of 473 clinical-grade scans; ALS survival: 72 patients). Every test r has p < 0.001.
PAPER_TABLE1 = {
    "diffae": {"test_r": 0.83, "test_r_p": "<0.001", "test_mae": 5.0, "test_r2": 0.65, "survival_r": 0.24, "survival_p": "<0.05"},
    "densenet121": {"test_r": 0.83, "test_r_p": "<0.001", "test_mae": 8.63, "test_r2": 0.12, "survival_r": -0.05, "survival_p": 0.61},
    "brainager": {"test_r": 0.46, "test_r_p": "<0.001", "test_mae": 11.7, "test_r2": -1.14, "survival_r": 0.17, "survival_p": 0.14},
    "deepbrainnet": {"test_r": 0.81, "test_r_p": "<0.001", "test_mae": 5.55, "test_r2": 0.56, "survival_r": -0.12, "survival_p": 0.28},
}
# Paper table 2 (ALS brain-PADs; two-sample KS of ours vs each baseline).
PAPER_TABLE2 = {
    "diffae": {"pad_mean": -6.19, "pad_sd": 27.29},
    "densenet121": {"pad_mean": -1.60, "pad_sd": 7.74, "ks": 0.32, "ks_p": "<0.05"},
    "brainager": {"pad_mean": -19.17, "pad_sd": 10.97, "ks": 0.47, "ks_p": "<0.001"},
    "deepbrainnet": {"pad_mean": -1.13, "pad_sd": 8.06, "ks": 0.31, "ks_p": "<0.05"},
}
