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
    assert reason.startswith("B did not learn age: MAE on the test set (B 1.90 y) not below 0.8 x 2.00 y")
    assert nan_reason({"r": float("nan"), "p": 0.1}) == "r could not be computed (NaN)" and nan_reason({"p": 0.2}) is None
    assert not is_finite(None) and not is_finite(True) and is_finite(np.float32(1))


# --- the shared vocabulary of issue-level rules: gates on shifted cohorts and generators, magnitudes, seeds ---

import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from brainage_lib.metrics.verdicts import (DIRECTION_ONLY, NOT_REPRODUCED, NOT_TESTABLE, REPRODUCED,  # noqa: E402
                                           UNSTABLE, Magnitude, combine_seeds, decide, magnitude, mae_difference,
                                           not_reconstructing_reason, not_tracking_reason, paired_bootstrap,
                                           pitman_morgan, reconstruction_share, steiger_z, tracks_age)


def test_tracks_age_on_a_shifted_cohort():
    rng = np.random.default_rng(1)
    age = rng.uniform(0, 6, 120)
    offset = 10 + 0.5 * age + rng.normal(0, 1, age.size)  # 10 y off and compressed, but it tracks age
    r, p = stats.pearsonr(offset, age)
    assert tracks_age(r, p) and not learned(offset, age)
    noise = rng.normal(11, 3, age.size)
    assert not tracks_age(*stats.pearsonr(noise, age)) or stats.pearsonr(noise, age)[1] < 0.01  # chance of 1 %
    assert not tracks_age(-0.5, 1e-6) and not tracks_age(float("nan"), 0.0)
    reason = not_tracking_reason({"A": (0.6, 1e-5), "B": (0.1, 0.3)}, "the replication cohort")
    assert reason.startswith("B do not track age on the replication cohort (B: r = +0.10, p = 0.3")
    assert not_tracking_reason({"A": (0.6, 1e-5)}, "x") is None


def test_reconstruction_share_faithful_mean_and_swapped_generators():
    rng = np.random.default_rng(2)
    images = rng.random((30, 8, 8, 8)).astype(np.float32)
    assert reconstruction_share(images, images + rng.normal(0, 0.02, images.shape)) == 1.0
    mean = np.repeat(images.mean(0, keepdims=True), len(images), 0)  # a generator that ignores its input
    assert 0.2 <= reconstruction_share(images, mean) <= 0.8
    assert reconstruction_share(images, np.roll(images, 1, axis=0)) <= 0.8  # each reconstruction is another subject
    # by hand on 3 one-voxel images: recon 0 -> 0.1 (own 0.1; others 0.9, 1.9: median 1.4), recon 1 -> 0.5
    # (own 0.5; others 0.5, 1.5: median 1.0), recon 2 -> 0.0 (own 2.0; others 0.0, 1.0: median 0.5)
    x, y = np.array([[0.0], [1.0], [2.0]]), np.array([[0.1], [0.5], [0.0]])
    assert reconstruction_share(x, y) == pytest.approx(2 / 3) == reconstruction_share(x, y, chunk=1)
    noisy = images + rng.normal(0, 0.3, images.shape)
    assert reconstruction_share(images, noisy, chunk=7) == reconstruction_share(images, noisy)
    assert not_reconstructing_reason({"G": 0.95}) is None
    assert "G1 50 %" in not_reconstructing_reason({"G1": 0.5, "G2": 0.97})
    with pytest.raises(ValueError):
        reconstruction_share(images[:1], images[:1])


def test_steiger_against_williams_t_and_its_null_rate():
    def williams(r12, r13, r23, n):  # Williams' (1959) t for dependent correlations, an independent formula
        det = 1 - r12 ** 2 - r13 ** 2 - r23 ** 2 + 2 * r12 * r13 * r23
        rbar = (r12 + r13) / 2
        t = (r12 - r13) * np.sqrt((n - 1) * (1 + r23)) / np.sqrt(2 * (n - 1) / (n - 3) * det + rbar ** 2 * (1 - r23) ** 3)
        return 2 * stats.t.sf(abs(t), n - 3)

    for r12, r13, r23, n in ((0.83, 0.46, 0.5, 470), (0.6, 0.5, 0.7, 200), (0.3, 0.25, 0.2, 1000)):
        z, p = steiger_z(r12, r13, r23, n)
        assert p == pytest.approx(williams(r12, r13, r23, n), rel=0.15, abs=1e-4)
        assert steiger_z(r13, r12, r23, n)[0] == pytest.approx(-z)
    assert steiger_z(0.5, 0.5, 0.3, 50) == (0.0, 1.0)
    rng = np.random.default_rng(3)
    rejections = 0
    for _ in range(300):  # x correlates equally with a and b: about 5 % of p-values below 0.05
        x = rng.normal(size=80)
        a, b = x + rng.normal(size=80), x + rng.normal(size=80)
        rejections += steiger_z(np.corrcoef(x, a)[0, 1], np.corrcoef(x, b)[0, 1], np.corrcoef(a, b)[0, 1], 80)[1] < 0.05
    assert 0.01 < rejections / 300 < 0.10


def test_pitman_morgan_equals_its_variance_ratio_form():
    rng = np.random.default_rng(4)
    a = rng.normal(0, 3, 72)
    b = 0.5 * a + rng.normal(0, 1, 72)  # paired, narrower
    r, p = pitman_morgan(a, b)
    f, rab, n = a.var(ddof=1) / b.var(ddof=1), np.corrcoef(a, b)[0, 1], len(a)
    t = (f - 1) * np.sqrt(n - 2) / (2 * np.sqrt(f * (1 - rab ** 2)))
    assert r > 0 and p == pytest.approx(2 * stats.t.sf(abs(t), n - 2), rel=1e-8)
    assert pitman_morgan(b, a)[0] == pytest.approx(-r)


def test_paired_bootstrap_matches_scipy():
    rng = np.random.default_rng(5)
    y = rng.uniform(5, 25, 150)
    a, b = y + rng.normal(0, 2, 150), y + rng.normal(0, 3, 150)
    est, lo, hi = paired_bootstrap(mae_difference, y, a, b, n_boot=3000, seed=1)
    ref = stats.bootstrap((y, a, b), lambda yy, aa, bb: np.abs(aa - yy).mean() - np.abs(bb - yy).mean(), paired=True,
                          vectorized=False, n_resamples=3000, method="percentile", random_state=2).confidence_interval
    width = ref.high - ref.low
    assert est == pytest.approx(np.abs(a - y).mean() - np.abs(b - y).mean())
    assert abs(lo - ref.low) < 0.1 * width and abs(hi - ref.high) < 0.1 * width
    m = magnitude("MAE(a) - MAE(b)", est, mae_difference, y, a, b, n_boot=500)
    assert m.inside and m.low < m.value < m.high and "inside" in m.text()
    assert Magnitude("q", 10.0, 0.0, -1.0, 1.0).inside is False
    assert Magnitude("q", 0.0, 0.0, float("nan"), 1.0).inside is None


def test_decide_every_verdict():
    inside, outside = Magnitude("q", 1.0, 1.1, 0.5, 1.5), Magnitude("q", 3.0, 1.1, 0.5, 1.5)
    assert decide(True, magnitudes=[inside]) == REPRODUCED
    assert decide(True, magnitudes=[inside, outside]) == DIRECTION_ONLY
    assert decide(True, magnitudes=[inside], paper_profile=False) == DIRECTION_ONLY  # a reduced profile
    assert decide(True) == REPRODUCED and decide(True, paper_profile=False) == REPRODUCED  # no paper number
    assert decide(False, magnitudes=[inside]) == NOT_REPRODUCED
    assert decide(True, "B did not learn") == NOT_TESTABLE and decide(None) == NOT_TESTABLE
    assert decide(False, kind="check") == "failed" and decide(True, kind="check") == "passed"


def test_combine_seeds_needs_80_percent():
    assert combine_seeds([REPRODUCED] * 3) == (REPRODUCED, "reproduced in 3 of 3 seeds")
    assert combine_seeds([REPRODUCED, REPRODUCED, NOT_REPRODUCED]) == (
        UNSTABLE, "reproduced in 2 of 3 seeds; not reproduced in 1 of 3 seeds")
    assert combine_seeds([DIRECTION_ONLY] * 4 + [NOT_TESTABLE])[0] == DIRECTION_ONLY
    assert combine_seeds([])[0] == NOT_TESTABLE
