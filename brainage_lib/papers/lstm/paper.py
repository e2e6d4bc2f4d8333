"""The numbers the LSTM paper reports (He et al., ISBI 2020: 2D-ResNet18+LSTM vs 3D-ResNet18), in one place.

The notebook records each beside this run's value (``paper=``), the claims take their magnitudes from
the tables, and the summary shows ``PAPER``'s tables. Nothing here is this project's choice.
"""
from __future__ import annotations

__all__ = ["CNN3D_NAME", "DISCOVERY_EDGES", "DISCOVERY_LABELS", "LSTM_NAME", "N_DISCOVERY", "N_REPLICATION", "PAPER",
           "PAPER_TABLE1", "PAPER_TABLE2", "PAPER_TABLE3", "PAPER_TRAIN_HOURS_K80", "REPLICATION_EDGES",
           "REPLICATION_LABELS"]

# What the summary and the index page show of this paper: its name and the titles of its record tables.
PAPER = {"short": "LSTM", "title": "2D-ResNet18+LSTM vs 3D-ResNet18 on children's MRI",
         "tables": {"table1": "Table 1: discovery MAE per age group (trained 0-22 y)",
                    "table2": "Table 2: replication MAE per year (trained 0-22 y)",
                    "table3": "Table 3: replication MAE per year (trained 0-6 y)",
                    "train_hours_paper": "Training time", "train_time_ratio_3d_over_lstm": "Training time",
                    "data": "Data"}}

LSTM_NAME, CNN3D_NAME = "2D-ResNet18+LSTM", "3D-ResNet18"  # the paper's two models

# Sec. 3.1: subjects of the discovery cohort (NIH-PD, 0-22 y) and of the replication cohort (MGHBCH, 0-6 y).
N_DISCOVERY, N_REPLICATION = 1212, 428

# Table 1 (discovery, NIH-PD 0-22 y): "0-5", "6-10", "11-15", "16-22".
DISCOVERY_EDGES: tuple[float, ...] = (0, 6, 11, 16, 23)
DISCOVERY_LABELS: tuple[str, ...] = ("0-5", "6-10", "11-15", "16-22")
# Tables 2-3 (replication, MGHBCH 0-6 y): one group per year.
REPLICATION_EDGES: tuple[float, ...] = (0, 1, 2, 3, 4, 5, 6)
REPLICATION_LABELS: tuple[str, ...] = ("0-1", "1-2", "2-3", "3-4", "4-5", "5-6")
# Paper tables: MAE (years) per group, last entry the average over all test subjects.
PAPER_TABLE1 = {CNN3D_NAME: [0.30, 1.12, 1.19, 1.85, 1.07], LSTM_NAME: [0.32, 0.92, 1.02, 1.79, 0.96]}
PAPER_TABLE2 = {CNN3D_NAME: [2.57, 2.43, 2.80, 2.64, 2.85, 2.75, 2.64], LSTM_NAME: [0.83, 1.65, 1.40, 1.36, 1.21, 0.83, 1.14]}
PAPER_TABLE3 = {CNN3D_NAME: [0.66, 0.48, 0.43, 0.75, 1.26, 2.10, 0.79], LSTM_NAME: [0.24, 1.34, 1.43, 1.25, 0.69, 0.92, 0.78]}
# "3 hours versus 7 hours on an NVIDIA K80 GPU", said of the trainings on 0-6 y (Sec. 3.2, Table 3).
PAPER_TRAIN_HOURS_K80 = {LSTM_NAME: 3.0, CNN3D_NAME: 7.0}
