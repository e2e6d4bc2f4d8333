"""Smoke run of notebook 02_diff with DATA_DIR one cohort folder (a small simulated lifespan_train cohort)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import run_on_one_cohort

from brainage_lib.data.cohort import load_cohort
from brainage_lib.papers.diff.rules import NO_ALS, NOT_CLINICAL
from brainage_lib.run.results import load_results

pytestmark = pytest.mark.notebook
ALS_CLAIMS = {"ours_survival_positive_significant", "survival_stronger_than_baselines", "ours_largest_pad_spread",
              "pad_spread_wider_significantly", "ours_negative_mean_pad"}
ALS_CHECKS = {"sim_survival_sign", "sim_spread_follows_gap", "sim_als_pad_nearest_gap", "sim_mean_pad_sign"}


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    """80 lifespan_train subjects (a fifth unlabelled) on a 32^3 grid, run through 02_diff as the only DATA_DIR."""
    root, out, rendered = run_on_one_cohort("02_diff", tmp_path_factory.mktemp("diff_single"), "lifespan_train", 80, 5,
                                            (32, 32, 32), folder="mycohort")
    res = load_results("02_diff", output_dir=out)
    return root, out, rendered, res


def test_single_cohort_is_split_into_training_and_test(single_run):
    root, out, rendered, res = single_run
    rec = {k: v["value"] for k, v in res["records"].items()}
    ages = load_cohort(root, allow_unlabelled=True).ages
    n_lab = int((~np.isnan(ages)).sum())
    assert rec["data.test.N"] == rec["data.test.labelled"] == n_lab // 5  # 20 % of the labelled subjects
    assert rec["data.train.N"] == 80 - rec["data.test.N"] and "data.als.N" not in rec
    assert rec["data.split.train_unlabelled"] == int(np.isnan(ages).sum()) > 0
    assert rec["data.split.train"] + rec["data.split.val"] + rec["data.split.heldout"] == rec["data.train.N"]
    pred = pd.read_csv(out / "results" / "02_diff.predictions.csv", dtype={"participant_id": str})
    assert set(pred["evaluation"]) == {"test", "heldout"} and (pred["evaluation"] == "test").sum() == rec["data.test.N"]
    test_ids, held_ids = (set(pred.loc[pred["evaluation"] == k, "participant_id"]) for k in ("test", "heldout"))
    assert not test_ids & held_ids  # the test subjects never reach training, validation or the bias fit
    html = (out / "rendered" / "02_diff.html").read_text()
    assert f"<strong>{rec['data.test.N']} test subjects</strong>" in html and "One cohort." in html
    assert "Table 2</strong> is not computed" in html and "Fig. 2</strong> is not drawn" in html
    assert not (out / "figures" / "02_diff" / "fig2_als_pad_boxplot.png").exists()


def test_single_cohort_verdicts_say_what_they_were_judged_on(single_run):
    root, _, _, res = single_run
    claims = {k.removeprefix("claims."): e for k, e in res["records"].items() if k.startswith("claims.")}
    test_data = f"held-out 20 % of {root.name} (simulated)"
    for key in ALS_CLAIMS | ALS_CHECKS:
        assert claims[key]["value"] == "not testable" and claims[key]["reason"] == NO_ALS, key
        assert "judged_on" not in claims[key]
    for key in ("ours_lowest_mae", "ours_highest_r2"):
        assert claims[key]["value"] == "not testable" and claims[key]["reason"] == NOT_CLINICAL
        assert claims[key]["judged_on"] == test_data
    judged = {k for k, e in claims.items() if e["value"] != "not testable"}
    assert {"reconstructions_faithful"} <= judged  # no gate: judged whenever the MSEs are finite
    for key in ("ours_joint_highest_r", "sim_ours_tracks_gap_best"):  # judged unless a model failed the gate
        assert claims[key]["judged_on"] == test_data
        reason = claims[key].get("reason") or ""
        assert claims[key]["value"] != "not testable" or ("did not learn age: MAE on the held-out healthy set" in reason
                                                          or "do not track age on the test split" in reason)
    assert claims["interpolation_ages_monotone"]["judged_on"] == f"held-out healthy set and {test_data}"
    for key, e in claims.items():  # a reason exactly where a claim is not testable
        assert bool(e.get("reason")) == (e["value"] == "not testable"), key
