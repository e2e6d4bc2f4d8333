"""The shared gates of the verdict rules, against hand-computed numbers."""
from __future__ import annotations

import numpy as np

from brainage_lib.metrics.verdicts import (is_finite, learned, learned_mae, mean_prediction_mae, nan_reason,
                                           not_learned_reason)


def test_mean_prediction_mae_by_hand():
    assert mean_prediction_mae([1.0, 3.0, 5.0, 7.0]) == 2.0  # mean 4: |−3|,|−1|,1,3


def test_constant_noise_and_perfect_predictors():
    rng = np.random.default_rng(0)
    age = rng.uniform(0, 6, 200)
    assert not learned(np.full_like(age, age.mean()), age)  # the best constant
    assert not learned(np.full_like(age, 11.0), age)  # the 0-22 training mean on 0-6 y children
    assert not learned(rng.permutation(age), age)  # right distribution, no information
    assert learned(age + rng.normal(0, 0.1, age.size), age)
    assert not learned(np.r_[age[:-1], np.nan], age)


def test_reasons():
    assert learned_mae(1.0, 2.0) and not learned_mae(1.7, 2.0) and not learned_mae(float("nan"), 2.0)
    assert not_learned_reason({"A": 1.0, "B": 1.0}, 2.0, "x") is None
    reason = not_learned_reason({"A": 1.0, "B": 1.9}, 2.0, "the test set")
    assert reason.startswith("B did not learn age on the test set")
    assert nan_reason({"r": float("nan"), "p": 0.1}) == "r could not be computed (NaN)" and nan_reason({"p": 0.2}) is None
    assert not is_finite(None) and not is_finite(True) and is_finite(np.float32(1))
