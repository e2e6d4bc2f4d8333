"""Scores over absolute errors: cumulative score (He et al., ISBI 2020) and MAE per age group.

Cumulative score (paper eq. 5, Sec. 3): CS(alpha) = N_{e <= alpha} / N, "the percentage
of subjects whose errors of age prediction are smaller than or equal to alpha", with
e = |y - y_hat|. :func:`cumulative_score` returns the fraction in [0, 1]; multiply by
100 for the paper's percentages. :func:`cs_area` summarises a whole curve by its mean
over ``alpha`` in ``[0, alpha_max]``, to compare two models "in terms of CS" (Sec. 3.1).

Age groups. The paper's tables use integer-year labels: Table 1 "0-5, 6-10, 11-15,
16-22" (NIH-PD, ages 0-22) and Tables 2-3 "0-1, 1-2, ..., 5-6" (MGHBCH, ages 0-6).
With continuous ages we read both as half-open intervals of age in years:
"0-5" = [0, 6), "6-10" = [6, 11), "11-15" = [11, 16), "16-22" = [16, 23), and
"0-1" = [0, 1), ..., "5-6" = [5, 6]; the LAST interval is closed on the right so a
subject exactly at the upper edge (e.g. 6.0 in a 0-6 cohort) is counted. This is our
reading: the paper states neither the interval convention nor whether ages are
truncated to whole years (which would give the same groups for Table 1).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from brainage_lib.errors import BrainAgeError


def _abs_errors(abs_errors: np.ndarray | Sequence[float], what: str) -> np.ndarray:
    """Validate absolute errors: 1-D, non-empty, finite, non-negative."""
    err = np.asarray(abs_errors, dtype=float)
    if err.ndim != 1 or err.size == 0:
        raise BrainAgeError(f"{what}: abs_errors must be a non-empty 1-D array, got shape {err.shape}.")
    if not np.all(np.isfinite(err)):
        raise BrainAgeError(f"{what}: abs_errors contains NaN/inf at positions {np.flatnonzero(~np.isfinite(err))[:10]}.")
    if np.any(err < 0):
        raise BrainAgeError(
            f"{what}: abs_errors has negative values at positions {np.flatnonzero(err < 0)[:10]}; "
            "pass |predicted - true age|, not the signed error."
        )
    return err


def cumulative_score(abs_errors: np.ndarray | Sequence[float], alphas: np.ndarray | Sequence[float]) -> np.ndarray:
    """Fraction of subjects whose absolute error is <= alpha, for each alpha (paper eq. 5).

    Parameters
    ----------
    abs_errors
        Absolute prediction errors ``(N,)``, in years.
    alphas
        Error levels ``(A,)``, in years.

    Returns
    -------
    np.ndarray
        ``(A,)`` values in [0, 1]; ``100 *`` this is the paper's CS in percent.
    """
    err = np.sort(_abs_errors(abs_errors, "cumulative_score"))
    alpha = np.asarray(alphas, dtype=float)
    if alpha.ndim != 1:
        raise BrainAgeError(f"cumulative_score: alphas must be 1-D, got shape {alpha.shape}.")
    # side="right" counts errors equal to alpha, matching "smaller than or equal to".
    return np.searchsorted(err, alpha, side="right") / err.size


def cs_area(abs_errors: np.ndarray | Sequence[float], alpha_max: float) -> float:
    """Mean of the cumulative score over ``alpha`` in ``[0, alpha_max]`` (normalised area under the CS curve).

    Exact, not a Riemann sum: the area under ``CS`` on ``[0, A]`` is the mean over
    subjects of ``max(A - e, 0)``, so the result is ``mean(max(A - e, 0)) / A``.

    Parameters
    ----------
    abs_errors
        Absolute prediction errors ``(N,)``, in years.
    alpha_max
        Upper end ``A > 0`` of the error levels, in years.

    Returns
    -------
    float
        In [0, 1]; 1 when every error is 0, 0 when every error is ``>= alpha_max``.
    """
    err = _abs_errors(abs_errors, "cs_area")
    if not alpha_max > 0:
        raise BrainAgeError(f"cs_area: alpha_max={alpha_max} must be > 0.")
    return float(np.clip(alpha_max - err, 0.0, None).mean() / alpha_max)


def mae_by_group(
    ages: np.ndarray | Sequence[float],
    abs_errors: np.ndarray | Sequence[float],
    edges: Sequence[float],
    labels: Sequence[str] | None = None,
    include_all: bool = True,
) -> pd.DataFrame:
    """Mean and SD of the absolute error per age group.

    Group ``i`` holds ages in ``[edges[i], edges[i+1])``; the last group is closed,
    ``[edges[-2], edges[-1]]``. Subjects outside ``[edges[0], edges[-1]]`` are left
    out of every row (count them with ``n`` if that matters).

    Parameters
    ----------
    ages
        True ages ``(N,)``, in years.
    abs_errors
        Absolute errors ``(N,)``, in years.
    edges
        Strictly increasing group edges, e.g. ``(0, 6, 11, 16, 23)``.
    labels
        One label per group, e.g. ``("0-5", "6-10", "11-15", "16-22")``; default ``"a-b"`` from the edges.
    include_all
        Append a row ``"all"`` pooling every subject inside the edges (the
        "Average" column of the paper's tables, read as a per-subject mean).

    Returns
    -------
    pandas.DataFrame
        Columns ``group`` (str), ``n`` (int), ``mae`` and ``sd`` (float; sample SD,
        ``ddof=1``; NaN where ``n < 2`` for ``sd`` and ``n == 0`` for ``mae``).
    """
    err = _abs_errors(abs_errors, "mae_by_group")
    age = np.asarray(ages, dtype=float)
    if age.shape != err.shape:
        raise BrainAgeError(f"mae_by_group: ages {age.shape} and abs_errors {err.shape} differ in shape.")
    if not np.all(np.isfinite(age)):
        raise BrainAgeError(f"mae_by_group: ages contains NaN/inf at positions {np.flatnonzero(~np.isfinite(age))[:10]}.")
    edge = np.asarray(edges, dtype=float)
    if edge.ndim != 1 or edge.size < 2 or np.any(np.diff(edge) <= 0):
        raise BrainAgeError(f"mae_by_group: edges must be strictly increasing with >= 2 values, got {list(edges)}.")
    n_groups = edge.size - 1
    if labels is None:
        labels = [f"{a:g}-{b:g}" for a, b in zip(edge[:-1], edge[1:])]
    if len(labels) != n_groups:
        raise BrainAgeError(f"mae_by_group: {len(labels)} labels for {n_groups} groups.")

    group = np.searchsorted(edge, age, side="right") - 1  # (N,): i with edges[i] <= age < edges[i+1]
    group[age == edge[-1]] = n_groups - 1  # close the last interval
    group[(age < edge[0]) | (age > edge[-1])] = -1

    def row(label: str, e: np.ndarray) -> dict[str, object]:
        return {
            "group": label,
            "n": int(e.size),
            "mae": float(e.mean()) if e.size else float("nan"),
            "sd": float(e.std(ddof=1)) if e.size > 1 else float("nan"),
        }

    rows = [row(str(lab), err[group == i]) for i, lab in enumerate(labels)]
    if include_all:
        rows.append(row("all", err[group >= 0]))
    return pd.DataFrame(rows, columns=["group", "n", "mae", "sd"])
