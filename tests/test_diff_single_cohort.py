"""DIFF on one cohort folder: the split into roles, what each claim is judged on, and the claims without ALS data."""
from __future__ import annotations

import numpy as np
import pytest

from brainage_lib.data.cohort import load_cohort
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.diff.claims import claims
from brainage_lib.papers.diff.evaluation import evaluate, numbers, reference_numbers
from brainage_lib.papers.diff.roles import JudgedOn, judged_on, single_cohort_note, split_single_cohort
from brainage_lib.papers.diff.rules import NO_ALS, NOT_CLINICAL
from brainage_lib.papers.diff.training import open_diff_cohorts
from brainage_lib.run.results import Recorder, claims_frame

ALS_KEYS = {"ours_survival_positive_significant", "survival_stronger_than_baselines", "ours_largest_pad_spread",
            "pad_spread_wider_significantly", "ours_negative_mean_pad"}


def rows(n: int, n_unlabelled: int = 0, n_als: int = 0, seed: int = 0) -> list[dict]:
    """``n`` controls aged 20-90 (the first ``n_unlabelled`` without age) and ``n_als`` ALS patients with survival."""
    ages = np.random.default_rng(seed).uniform(20, 90, n + n_als).round(1)
    out = [{"participant_id": f"sub-{i:03d}", "age": "" if i < n_unlabelled else ages[i], "sex": "F", "site": "A",
            "group": "control", "survival_months": ""} for i in range(n)]
    return out + [{"participant_id": f"sub-{n + i:03d}", "age": ages[n + i], "sex": "M", "site": "A",
                   "group": " als " if i % 2 else "ALS", "survival_months": 12.0 + i} for i in range(n_als)]


def test_split_single_cohort_roles_sizes_and_seed(cohort_writer, tmp_path) -> None:
    cohort = load_cohort(cohort_writer(tmp_path / "one", rows(60, n_unlabelled=10, n_als=6)), allow_unlabelled=True)
    roles = split_single_cohort(cohort, 0.2, seed=3)
    ids = {k: set(c.table["participant_id"]) for k, c in roles.items()}
    assert list(roles) == ["train", "test", "als"]
    assert sum(map(len, ids.values())) == 66 and set().union(*ids.values()) == set(cohort.table["participant_id"])
    assert ids["als"] == {f"sub-{i:03d}" for i in range(60, 66)}  # group ALS in any case and spacing
    assert len(roles["test"]) == 10 and not np.isnan(roles["test"].ages).any()  # 20 % of the 50 labelled controls
    assert int(np.isnan(roles["train"].ages).sum()) == 10 and len(roles["train"]) == 50  # 40 labelled + unlabelled
    test_ages = roles["test"].ages  # one subject per age decile of the labelled controls
    deciles = np.quantile(cohort.labelled().subset(cohort.labelled().table["group"] == "control").ages,
                          np.linspace(0, 1, 11))
    assert np.histogram(test_ages, deciles)[0].tolist() == [1] * 10
    again = split_single_cohort(cohort, 0.2, seed=3)["test"].table["participant_id"]
    assert again.tolist() == roles["test"].table["participant_id"].tolist()
    other = split_single_cohort(cohort, 0.2, seed=4)["test"].table["participant_id"]
    assert set(other) != ids["test"]


def test_split_single_cohort_errors(cohort_writer, tmp_path) -> None:
    small = load_cohort(cohort_writer(tmp_path / "small", rows(12)))
    with pytest.raises(BrainAgeError, match="at least 3"):
        split_single_cohort(small, 0.2)
    r = rows(20, n_als=2)
    r[-1]["age"] = ""
    with pytest.raises(BrainAgeError, match="group ALS have no age"):
        split_single_cohort(load_cohort(cohort_writer(tmp_path / "als", r), allow_unlabelled=True))


def test_open_diff_cohorts_on_one_folder_and_what_is_judged_on(cohort_writer, tmp_path) -> None:
    root = cohort_writer(tmp_path / "mine", rows(40, n_unlabelled=5))
    cohorts = open_diff_cohorts(str(root), seed=1)
    assert list(cohorts) == ["train", "test"] and len(cohorts["test"]) == 7  # 20 % of 35 labelled
    on = judged_on(cohorts)
    assert on == JudgedOn("held-out 20 % of mine", None, split=True) and "test split" in on.where
    note = single_cohort_note(cohorts, seed=1)
    assert "`mine` (40 images)" in note and "**7 test subjects**" in note and "(+ 5 unlabelled)" in note
    assert "No row has `group` = ALS" in note
    with_als = open_diff_cohorts(str(cohort_writer(tmp_path / "als", rows(40, n_als=8))), seed=1)
    assert len(with_als["als"]) == 8 and judged_on(with_als).als == "group ALS of als"
    assert "8 rows of `group` = ALS" in single_cohort_note(with_als, seed=1)
    with pytest.raises(BrainAgeError, match="or is itself one cohort folder"):
        open_diff_cohorts(str(tmp_path))


def test_claims_on_a_split_without_als(tmp_path) -> None:
    """Perfect ours, noisy baselines on a test split: r judged, MAE/R² and every ALS claim not testable."""
    rng = np.random.default_rng(0)
    test, held = rng.uniform(20, 90, 200), rng.uniform(20, 90, 100)
    preds = {"diffae": (test, held)} | {m: (test + rng.normal(0, 5, 200), held + rng.normal(0, 5, 100))
                                        for m in ("densenet121", "brainager", "deepbrainnet")}
    ev = evaluate(test, {m: p[0] for m, p in preds.items()}, None, None, None, held,
                  {m: p[1] for m, p in preds.items()})
    assert "pad_mean" not in ev["diffae"] and "ks" not in ev["densenet121"] and "test_mae" in ev["diffae"]
    n = numbers(ev, reference_numbers(test, None, heldout_age=held))
    on = JudgedOn("held-out 20 % of mine", None, split=True)
    found = {v.key: v for v in claims(n, simulated=False, data=on)}
    assert found["ours_joint_highest_r"].outcome is True and found["ours_joint_highest_r"].judged_on == on.test
    for key in ("ours_lowest_mae", "ours_highest_r2"):
        assert found[key].outcome is None and found[key].reason == NOT_CLINICAL
    for key in ALS_KEYS:
        assert found[key].outcome is None and found[key].reason == NO_ALS and found[key].judged_on is None
    # the same numbers on a clinical-grade test set: the rankings are judged
    paper = {v.key: v for v in claims(n, simulated=False, data=JudgedOn("clinical_test", None))}
    assert paper["ours_lowest_mae"].outcome is True and paper["ours_highest_r2"].outcome is True
    rec = Recorder("unit_diff_single", "smoke", "one cohort", output_dir=tmp_path)
    for k, v in n.items():
        rec.record(k, v)
    rec.record_claims(claims(rec.values(), simulated=False, data=on))
    frame = claims_frame(rec.doc).set_index("key")
    assert frame.loc["ours_joint_highest_r", "judged on"] == "held-out 20 % of mine"
    assert frame.loc["ours_lowest_mae", "verdict"] == "not testable"
    assert frame.loc["pad_spread_wider_significantly", "judged on"] == ""
