"""Tables of the TGB notebook: the split, Table 1 and per-year errors.

The paper's numbers are in ``paper`` (imported here too), difference maps and region recovery in
``regions``, the claims in ``claims``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.tgb.paper import PAPER, PAPER_DIFF_MAX, PAPER_GROUP_MAE, PAPER_TABLE1, SPLIT

__all__ = ["GROUP_EDGES", "PAPER", "PAPER_DIFF_MAX", "PAPER_GROUP_MAE", "PAPER_TABLE1", "error_summary",
           "split_counts", "squared_error_by_year", "table1_frame"]

GROUP_EDGES = (6, 11, 16, 23)  # the paper's groups: "6-10" = [6, 11), "11-15" = [11, 16), "16-22" = [16, 23)


def split_counts(n: int, paper: tuple[int, int, int] = SPLIT) -> tuple[int, int, int]:
    """Train/validation/test sizes for ``n`` subjects in the paper's proportions (exactly 640/62/160 for 862)."""
    total = sum(paper)
    n_val, n_test = round(n * paper[1] / total), round(n * paper[2] / total)
    if n - n_val - n_test < 2 or n_val < 1 or n_test < 3:
        raise BrainAgeError(f"{n} subjects are too few for a train/validation/test split; use at least 30.")
    return n - n_val - n_test, n_val, n_test


def error_summary(pred: np.ndarray, age: np.ndarray) -> dict[str, float]:
    """Mean and sd (ddof=1, over subjects) of the squared and absolute errors, as in Table 1."""
    e = np.asarray(pred, float) - np.asarray(age, float)
    se, ae = e**2, np.abs(e)
    return {"mse_mean": float(se.mean()), "mse_sd": float(se.std(ddof=1)),
            "mae_mean": float(ae.mean()), "mae_sd": float(ae.std(ddof=1))}


def table1_frame(records: dict[str, dict], methods: tuple[str, ...] = ("REG", "REG-GAN", "REG-GAN-TGB"),
                 over_seeds: bool = False) -> pd.DataFrame:
    """Table 1 (paper beside this run, 'mean ± sd') from recorded ``table1.<method>.<metric>_{mean,sd}`` entries.

    ``over_seeds``: this run's cells are the mean ± sd over the model seeds of each seed's mean (records combined
    by ``run.seeds.combine``), the paper's its mean ± sd over subjects.
    """
    def cell(method: str, metric: str, source: str) -> str:
        m, s = records.get(f"table1.{method}.{metric}_mean"), records.get(f"table1.{method}.{metric}_sd")
        if m is None or m.get(source) is None:
            return "N/A"
        digits = 4
        if over_seeds and source == "value" and "seeds_mean" in m:
            return f"{m['seeds_mean']:.{digits}f} ± {m['seeds_sd']:.{digits}f} ({m['seeds_n']} seeds)"
        return f"{m[source]:.{digits}f} ± {s[source]:.{digits}f}" if s and s.get(source) is not None else f"{m[source]:.{digits}f}"

    rows = []
    for method in methods:
        row = {"method": method}
        for metric, label in (("l1", "L1 loss"), ("mse", "MSE"), ("mae", "MAE")):
            row[f"{label} (paper)"] = cell(method, metric, "paper")
            row[f"{label} (this run)"] = cell(method, metric, "value")
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def squared_error_by_year(age: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    """Mean and sd of the squared error per 1-year group ``[k, k+1)`` (Fig. 2)."""
    age = np.asarray(age, float)
    df = pd.DataFrame({"year": np.floor(age).astype(int), "se": (np.asarray(pred, float) - age) ** 2})
    g = df.groupby("year")["se"]
    return pd.DataFrame({"n": g.size(), "mse": g.mean(), "sd": g.std(ddof=1)})

