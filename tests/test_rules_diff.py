"""DIFF verdict rules, table-driven: constant, noise and perfect predictors on cohorts built in the test.

Each row builds the cohorts (ages, hidden gaps, survival) and every model's predictions,
turns them into the recorded numbers with ``evaluate`` / ``reference_numbers`` and
judges them with ``claims``; no model is trained.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest

from brainage_lib.metrics.verdicts import LEARNED_FRACTION
from brainage_lib.papers.diff.claims import claims, record_claims
from brainage_lib.papers.diff.evaluation import MODELS, evaluate, numbers, reference_numbers
from brainage_lib.papers.diff.rules import ALPHA, CLAIMS, SIMULATED_CHOICE
from brainage_lib.run.results import Recorder

pytestmark = pytest.mark.filterwarnings("ignore:An input array is constant")
BASELINES = [m for m in MODELS if m != "diffae"]
TRAIN_MEAN = 56.0  # the training cohort's mean age, where a constant or shrunk predictor sits
FIG = {"fig3.row1.age_spearman": 1.0, "fig3.row1.true_age_first": 25.0, "fig3.row1.true_age_last": 75.0,
       "fig3.row2.age_spearman": -1.0, "fig3.row2.true_age_first": 90.0, "fig3.row2.true_age_last": 40.0,
       "fig3.z_sem_share": 0.2}
FIG4 = {"fig4.recon_mse": 0.001, "fig4.other_image_mse": 0.01}
SIM_CHOICE = {"ours_survival_positive_significant", "ours_negative_mean_pad"}


@dataclass(frozen=True)
class Subjects:
    """One evaluated set: chronological ages, hidden gaps and (ALS only) survival months."""

    age: np.ndarray
    gap: np.ndarray
    survival: np.ndarray | None = None


def orthogonal(x: np.ndarray, *against: np.ndarray) -> np.ndarray:
    """``x`` centred and with its sample covariance with every vector of ``against`` removed exactly."""
    basis = np.column_stack([a - a.mean() for a in against])
    x = x - x.mean()
    return x - basis @ np.linalg.lstsq(basis, x, rcond=None)[0]


def cohorts(simulated: bool, als_gap_mean: float | None = None, seed: int = 0) -> dict[str, Subjects]:
    """Test (ages 40-90), held-out healthy (20-90) and ALS sets. Real-data world: ALS gaps mean -4 (the paper's
    negative mean PAD) and survival rising with the gap (its +0.24); simulated world: mean +3, survival falling."""
    rng = np.random.default_rng(seed)
    test, held = rng.uniform(40, 90, 300), rng.uniform(20, 90, 200)
    als = np.clip(rng.normal(61, 10, 150), 30, 85)
    mean = als_gap_mean if als_gap_mean is not None else (3.0 if simulated else -4.0)
    e = orthogonal(rng.standard_normal(150), als)
    gap_a = mean + 6.0 * e / e.std(ddof=1)  # mean exactly ``mean``, sd 6, uncorrelated with age
    sign = -1.0 if simulated else 1.0
    survival = 36 * np.exp(sign * 0.04 * gap_a) * rng.lognormal(0, 0.2, 150)
    return {"test": Subjects(test, 2.0 * rng.standard_normal(300)),
            "heldout": Subjects(held, 2.0 * rng.standard_normal(200)), "als": Subjects(als, gap_a, survival)}


Predictor = Callable[[Subjects, np.random.Generator], np.ndarray]


def constant(s: Subjects, rng: np.random.Generator) -> np.ndarray:
    return np.full_like(s.age, TRAIN_MEAN)


def noise(s: Subjects, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(18, 95, s.age.size)  # ages of the right range, no information


def perfect(s: Subjects, rng: np.random.Generator) -> np.ndarray:
    return s.age + s.gap  # the true brain age


def age_only(s: Subjects, rng: np.random.Generator) -> np.ndarray:
    """Chronological age plus noise (sd 3) that carries neither the gap nor survival: learned, no biomarker."""
    against = [s.gap] + ([s.survival] if s.survival is not None else [])
    e = orthogonal(rng.standard_normal(s.age.size), *against)
    return s.age + 3.0 * e / e.std(ddof=1)


def noisy(s: Subjects, rng: np.random.Generator) -> np.ndarray:
    """Learned, but 0.9 x the gap plus noise (sd 7) unrelated to it: a wide PAD spread made of noise."""
    e = orthogonal(rng.standard_normal(s.age.size), s.gap)
    return s.age + 0.9 * s.gap + 7.0 * e / e.std(ddof=1)


def shrunk(s: Subjects, rng: np.random.Generator) -> np.ndarray:
    return 0.5 * (s.age + s.gap) + 0.5 * TRAIN_MEAN  # regression to the training mean


def judge(preds: dict[str, Predictor], simulated: bool, fig: dict | None = None,
          **world) -> tuple[dict[str, object], dict[str, float]]:
    """Verdicts ``{key: Verdict}`` and the numbers they were judged on."""
    c, rng = cohorts(simulated, **world), np.random.default_rng(1)
    p = {m: {k: f(s, rng) for k, s in c.items()} for m, f in preds.items()}
    ev = evaluate(c["test"].age, {m: v["test"] for m, v in p.items()}, c["als"].age,
                  {m: v["als"] for m, v in p.items()}, c["als"].survival, c["heldout"].age,
                  {m: v["heldout"] for m, v in p.items()},
                  test_gap=c["test"].gap if simulated else None, als_gap=c["als"].gap if simulated else None)
    n = numbers(ev, reference_numbers(c["test"].age, c["als"].survival, c["als"].gap if simulated else None))
    n |= FIG | (fig or {})
    return {v.key: v for v in claims(n, simulated)}, n


def models(ours: Predictor, base: Predictor) -> dict[str, Predictor]:
    return {"diffae": ours, **{m: base for m in BASELINES}}


T, R, N = None, True, False  # not testable, reproduced (passed), not reproduced (failed)
ROWS = {  # name: (predictors, simulated, extra records, world, expected verdicts; "*" = every key not named)
    "constant, real data": (models(constant, constant), False, {}, {}, {"*": T}),
    "constant, simulated": (models(constant, constant), True, {}, {}, {"*": T}),
    "noise, real data": (models(noise, noise), False, {}, {}, {"*": T}),
    "noise, simulated": (models(noise, noise), True, {}, {}, {"*": T}),
    "constant ours, learned baselines": (models(constant, age_only), True, {}, {},
                                         {"*": T, "baselines_survival_not_significant": R}),
    "constant baselines, perfect ours": (models(perfect, constant), False, {}, {},
                                         {"*": T, "ours_survival_positive_significant": R, "ours_negative_mean_pad": R,
                                          "interpolation_ages_monotone": R}),
    "perfect ours, real data": (models(perfect, age_only), False, FIG4, {}, {"*": R}),
    "perfect ours, simulated": (models(perfect, age_only), True, FIG4, {}, {"*": R, **{k: T for k in SIM_CHOICE}}),
    "noisy ours beside perfect baselines": (models(noisy, perfect), True, {}, {},
                                            {"ours_largest_pad_spread": R, "sim_spread_follows_gap": N,
                                             "sim_als_pad_nearest_gap": N, "ours_lowest_mae": N}),
    "regression to the mean only": (models(shrunk, age_only), False, {}, {"als_gap_mean": 2.0},
                                    {"ours_negative_mean_pad": N}),
}


@pytest.mark.parametrize("row", ROWS, ids=list(ROWS))
def test_verdict_table(row: str) -> None:
    preds, simulated, fig, world, expected = ROWS[row]
    found, _ = judge(preds, simulated, fig, **world)
    keys = set(CLAIMS) if simulated else {k for k in CLAIMS if not k.startswith("sim_")}
    assert set(found) == keys - ({"reconstructions_faithful"} if not fig else set())
    want = {k: expected.get(k, expected.get("*", "unchecked")) for k in found}
    got = {k: v.outcome for k, v in found.items() if want[k] != "unchecked"}
    assert got == {k: w for k, w in want.items() if w != "unchecked"}
    for v in found.values():  # a verdict is not testable exactly when a reason says why
        assert (v.outcome is None) == bool(v.reason), v


def test_reasons_name_the_gate_and_the_simulator() -> None:
    found, n = judge(models(constant, constant), True)
    ref = n["gate.test_mean_prediction_mae"]
    age = cohorts(True)["test"].age
    assert ref == pytest.approx(np.mean(np.abs(age - age.mean())))  # the test set's own mean, by hand
    assert "did not learn age on the clinical test set" in found["ours_lowest_mae"].reason
    assert f"not below {LEARNED_FRACTION:g} x {ref:.2f} y" in found["ours_lowest_mae"].reason
    found, _ = judge(models(perfect, age_only), True)
    assert found["ours_survival_positive_significant"].reason == SIMULATED_CHOICE["survival"]
    assert found["ours_negative_mean_pad"].reason == SIMULATED_CHOICE["mean_pad"]


def test_constant_baselines_no_longer_pass_as_not_significant() -> None:
    """A constant's raw PAD is ``c - age``: no survival signal, so 'not significant' held for it under the old rule
    (as a NaN p did, e.g. of its bias-corrected PAD, which is 0 everywhere); now an unlearned baseline is not
    testable."""
    found, n = judge(models(perfect, constant), False)
    assert all(not n[f"table1.{m}.survival_p"] < ALPHA for m in BASELINES)
    assert all(np.isnan(n[f"pad.{m}.survival_p_corrected"]) for m in BASELINES)
    assert found["baselines_survival_not_significant"].outcome is None


def test_noise_wins_the_spread_but_not_the_truth_checks() -> None:
    """A learned but noisy PAD has the widest spread; the checks against the gaps see that the extra is noise."""
    _, n = judge(models(noisy, perfect), True)
    assert n["table2.diffae.pad_sd"] > max(n[f"table2.{m}.pad_sd"] for m in BASELINES)
    # a perfect PAD's gap-following spread is the true gap's sd; ours keeps 0.9 of it
    assert n["truth.densenet121.als_gap_spread"] == pytest.approx(n["simulator.als_gap_sd"])
    assert n["truth.diffae.als_gap_spread"] == pytest.approx(0.9 * n["simulator.als_gap_sd"])
    assert n["truth.densenet121.als_mae_gap"] == pytest.approx(0.0, abs=1e-9)


def test_regression_to_the_mean_alone_makes_the_raw_mean_negative() -> None:
    found, n = judge(models(shrunk, age_only), False, als_gap_mean=2.0)
    assert n["table2.diffae.pad_mean"] < 0 < n["pad.diffae.pad_mean_corrected"]  # the old rule read the raw mean
    assert found["ours_negative_mean_pad"].outcome is False


def test_nan_figure_numbers_are_not_testable_and_rules_quote_constants(tmp_path) -> None:
    found, _ = judge(models(perfect, age_only), False, {"fig4.recon_mse": float("nan"), "fig4.other_image_mse": 0.01,
                                                        "fig3.row1.age_spearman": float("nan")})
    assert found["reconstructions_faithful"].outcome is None and found["interpolation_ages_monotone"].outcome is None
    assert all(f"{LEARNED_FRACTION:g} x" in CLAIMS[k][2] for k in CLAIMS if k not in
               ("reconstructions_faithful",))
    assert f"p < {ALPHA:g}" in CLAIMS["sim_survival_sign"][2]
    rec = Recorder("unit_diff_rules", "smoke", "simulated", output_dir=tmp_path)
    for k, v in judge(models(constant, constant), True)[1].items():
        rec.record(k, v)
    lines = record_claims(rec, simulated=True)
    frame = rec.claims().set_index("key")
    assert set(frame["verdict"]) == {"not testable"} and len(lines) == len(frame)
    assert frame.loc["sim_survival_sign", "kind"] == "check"
    assert "did not learn" in frame.loc["ours_lowest_mae", "reason"]
