"""Brain-age statistics: brain-PAD, age-bias correction, metrics and tests.

Thin wrappers over scipy.stats and scikit-learn that validate their input (1-D,
equal length, finite) and return plain floats.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats as sps
from sklearn.metrics import mean_absolute_error, r2_score

from brainage_lib.errors import BrainAgeError

__all__ = ["BiasCorrection", "bias_correct", "brain_pad", "ks_2samp", "pearson",
           "regression_metrics", "wilcoxon_p", "wilcoxon_paired"]


def _vector(x: object, name: str, min_len: int = 1) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or a.size < min_len or not np.all(np.isfinite(a)):
        raise BrainAgeError(
            f"{name}: expected a 1-D array of at least {min_len} finite values, got shape "
            f"{a.shape}; drop missing rows (NaN) before calling."
        )
    return a


def _pair(x: object, y: object, names: str, min_len: int = 1) -> tuple[np.ndarray, np.ndarray]:
    first, second = names.split(",")
    a, b = _vector(x, first, min_len), _vector(y, second, min_len)
    if a.shape != b.shape:
        raise BrainAgeError(f"{first} has {a.size} values but {second} has {b.size}; pair them row by row.")
    return a, b


def brain_pad(pred: object, age: object) -> np.ndarray:
    """Brain-predicted age difference ``pred - age`` (years), shape ``(N,)``."""
    p, a = _pair(pred, age, "pred,age")
    return p - a


@dataclass(frozen=True)
class BiasCorrection:
    """Age-bias correction of de Lange & Cole (2020): ``pred = slope * age + intercept``.

    Fitted on held-out healthy subjects; ``apply`` returns the corrected prediction
    ``pred + age - (slope * age + intercept)``, so the corrected brain-PAD is the
    residual ``pred - (slope * age + intercept)`` and is uncorrelated with age in the
    fitting set. Chronological age must be known at application time.
    """

    slope: float
    intercept: float
    n: int

    def apply(self, pred: object, age: object) -> np.ndarray:
        """Bias-corrected predicted ages ``(N,)``."""
        p, a = _pair(pred, age, "pred,age")
        return p + a - (self.slope * a + self.intercept)

    def pad(self, pred: object, age: object) -> np.ndarray:
        """Bias-corrected brain-PAD ``(N,)``."""
        return brain_pad(self.apply(pred, age), age)


def bias_correct(pred_heldout: object, age_heldout: object) -> BiasCorrection:
    """Fit the linear age-bias of predictions (OLS of pred on age) on a held-out set.

    Uses ``scipy.stats.linregress``; needs at least 3 subjects with distinct ages.
    Fit on healthy subjects not used for training, never on the patients analysed.
    """
    p, a = _pair(pred_heldout, age_heldout, "pred_heldout,age_heldout", min_len=3)
    if np.ptp(a) == 0:
        raise BrainAgeError("bias_correct: all held-out ages are equal; the age slope is undefined.")
    fit = sps.linregress(a, p)
    return BiasCorrection(float(fit.slope), float(fit.intercept), int(a.size))


def pearson(x: object, y: object) -> tuple[float, float]:
    """Pearson's ``(r, two-sided p)`` (``scipy.stats.pearsonr``)."""
    a, b = _pair(x, y, "x,y", min_len=3)
    res = sps.pearsonr(a, b)
    return float(res.statistic), float(res.pvalue)


def ks_2samp(a: object, b: object) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov ``(D, two-sided p)`` (``scipy.stats.ks_2samp``)."""
    res = sps.ks_2samp(_vector(a, "a"), _vector(b, "b"))
    return float(res.statistic), float(res.pvalue)


def regression_metrics(pred: object, age: object) -> dict[str, float]:
    """Pearson ``r`` and ``p``, ``mae`` and ``r2`` of predicted vs chronological age.

    ``r2 = 1 - SS_res / SS_tot`` with ``SS_res = sum (age - pred)^2`` and
    ``SS_tot = sum (age - mean(age))^2``: the coefficient of determination against the
    identity line, negative when predictions are worse than the mean age (as for
    brainageR in the paper's table 1), unlike the squared correlation ``r**2``.
    """
    p, a = _pair(pred, age, "pred,age", min_len=3)
    r, pval = pearson(p, a)
    return {"r": r, "p": pval, "mae": float(mean_absolute_error(a, p)), "r2": float(r2_score(a, p))}


def wilcoxon_paired(a: object, b: object) -> tuple[float, float]:
    """Wilcoxon signed-rank test of paired samples ``(statistic, two-sided p)``.

    ``scipy.stats.wilcoxon(a, b)``: the statistic is the smaller of the positive- and
    negative-difference rank sums; zero differences are dropped (``zero_method="wilcox"``).
    """
    x, y = _pair(a, b, "a,b")
    if np.all(x == y):
        raise BrainAgeError("wilcoxon_paired: all paired differences are zero; the test is undefined.")
    res = sps.wilcoxon(x, y)
    return float(res.statistic), float(res.pvalue)


def wilcoxon_p(a: object, b: object) -> float:
    """Two-sided p of :func:`wilcoxon_paired`, NaN where the test is undefined (all differences zero,
    as for two identical or constant predictors): a claim resting on it is then not testable."""
    x, y = _pair(a, b, "a,b")
    return float("nan") if np.all(x == y) else wilcoxon_paired(x, y)[1]
