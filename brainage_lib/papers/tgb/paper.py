"""The numbers the TGB paper reports (GAN with a task-guided branch, ABIDE I+II, 3D MRI), in one place.

The notebook records each beside this run's value (``paper=``), the claims and magnitudes compare
with them, and the summary shows ``PAPER``'s tables. Nothing here is this project's choice.
"""
from __future__ import annotations

__all__ = ["BINS_BELOW_MIN", "DIFFMAP_AGES", "N_BALANCED", "N_PER_SEX", "N_SUBJECTS", "N_SYNTHETIC",
           "N_TRAINING_TOTAL", "PAPER", "PAPER_DIFF_MAX", "PAPER_GROUP_MAE", "PAPER_TABLE1", "SPLIT", "WILCOXON_P"]

# What the summary and the index page show of this paper: its name and the titles of its record tables.
PAPER = {"short": "TGB", "title": "GAN with a task-guided branch for brain-age estimation (ABIDE, 3D)",
         "tables": {"table1": "Table 1: L1, MSE and MAE (mean and sd over test subjects)",
                    "wilcoxon": "Wilcoxon signed-rank tests between methods",
                    "group_mae": "MAE per age group (discussion)", "diffmap": "Fig. 3 difference maps",
                    "synthesis": "Synthesised training set (sec. 2.3)", "data": "Data", "split": "Split"}}

# Sec. 3.1: the cohort, balanced for sex per 1-year bin, and its split.
N_SUBJECTS = 1150  # ABIDE I+II subjects
N_BALANCED = 862  # after balancing sex per 1-year bin
N_PER_SEX = 431  # males and females each, after balancing
SPLIT = (640, 62, 160)  # train, validation, test

# Sec. 2.3: synthesis fills every 1-year bin of the training set.
N_SYNTHETIC = 300  # synthesised images
N_TRAINING_TOTAL = 940  # real + synthesised training images
BINS_BELOW_MIN = 0  # 1-year bins left below the minimum count

# Table 1 of the paper: mean and sd over the 160 test subjects.
PAPER_TABLE1: dict[str, dict[str, tuple[float, float] | None]] = {
    "REG": {"l1": None, "mse": (5.1922, 9.0424), "mae": (1.7060, 1.5153)},
    "REG-GAN": {"l1": (0.0168, 0.0044), "mse": (6.7092, 11.6758), "mae": (1.9356, 1.7266)},
    "REG-GAN-TGB": {"l1": (0.0264, 0.0066), "mse": (4.0699, 6.2613), "mae": (1.5415, 1.3055)},
}
# Sec. 3.2: REG-GAN-TGB better than both other methods by the Wilcoxon signed-rank test.
WILCOXON_P = "< 0.01"
# Sec. 4: MAE of REG-GAN-TGB per age group.
PAPER_GROUP_MAE = {"6-10": 1.32, "11-15": 1.37, "16-22": 2.11}
# Sec. 3.3, Fig. 3: the two age groups of the difference maps, and the maximum of each |age 20 - age 8| map
# (intensities in [0, 1]).
DIFFMAP_AGES = {"age8": 8.0, "age20": 20.0}
PAPER_DIFF_MAX = {"REG-GAN": 0.05, "REG-GAN-TGB": 0.49}
