"""Shared gates of the verdict rules: a claim is judged only on numbers that can decide it.

A claim that compares or ranks models is judged only when every model it names learned
age on the evaluated cohort: its test MAE is below ``LEARNED_FRACTION`` times the MAE of
predicting the mean of that cohort's own ages (the best constant a model could output
there, so no constant or noise predictor passes). A statistic that is NaN (a constant
prediction has no correlation) makes a claim "not testable", never "not significant".
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

LEARNED_FRACTION = 0.8  # learned age: test MAE < 0.8 x the MAE of predicting the evaluated cohort's own mean age


def mean_prediction_mae(ages: Sequence[float] | np.ndarray) -> float:
    """MAE of predicting the cohort's own mean age for every subject (NaN for an empty cohort)."""
    a = np.asarray(ages, dtype=float)
    return float(np.mean(np.abs(a - a.mean()))) if a.size else float("nan")


def learned(pred: Sequence[float] | np.ndarray, ages: Sequence[float] | np.ndarray,
            fraction: float = LEARNED_FRACTION) -> bool:
    """Whether predictions beat ``fraction`` x the MAE of predicting the evaluated cohort's own mean age."""
    p, a = np.asarray(pred, dtype=float), np.asarray(ages, dtype=float)
    if a.size == 0 or not np.all(np.isfinite(p)):
        return False
    return bool(np.mean(np.abs(p - a)) < fraction * mean_prediction_mae(a))


def learned_mae(mae: float, reference_mae: float, fraction: float = LEARNED_FRACTION) -> bool:
    """:func:`learned` from recorded numbers: a model's MAE and the cohort's mean-prediction MAE."""
    return is_finite(mae) and is_finite(reference_mae) and mae < fraction * reference_mae


def not_learned_reason(maes: Mapping[str, float], reference_mae: float, where: str,
                       fraction: float = LEARNED_FRACTION) -> str | None:
    """Why a claim naming the models of ``maes`` cannot be judged on ``where``, or None when all of them learned."""
    failed = [m for m, v in maes.items() if not learned_mae(v, reference_mae, fraction)]
    if not failed:
        return None
    return (f"{', '.join(failed)} did not learn age on {where} (test MAE not below {fraction:g} x "
            f"{reference_mae:.2f} y, the MAE of predicting that cohort's mean age)")


def is_finite(x: object) -> bool:
    """True for a finite number; False for None, NaN, inf or anything else."""
    try:
        return x is not None and not isinstance(x, bool) and math.isfinite(float(x))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False


def nan_reason(values: Mapping[str, object]) -> str | None:
    """Why a claim resting on ``values`` cannot be judged (one of them is not a finite number), or None."""
    bad = [k for k, v in values.items() if not is_finite(v)]
    return f"{', '.join(bad)} could not be computed (NaN)" if bad else None
