"""Notebook 03_lstm (PROFILE=smoke) on one cohort folder: discovery only, every replication part not testable.

The cohort is a simulated ``nihpd_like`` folder given as ``DATA_DIR``: the run must split and evaluate it,
judge the discovery claims from its saved predictions, and never use it as its own replication cohort.
A second run on an adult cohort (``clinical_test``, 35-95 y, outside the paper's 0-22 y) must still show the
overall MAE, r and a predicted-vs-true plot, Table 1 in the cohort's own bins, and say why the claim about the
paper's age groups and the young regime are not testable.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_on_one_cohort

from brainage_lib.metrics.verdicts import LEARNED_FRACTION
from brainage_lib.papers.lstm import evaluation as L
from brainage_lib.run.results import load_results

pytestmark = pytest.mark.notebook

NO_REPLICATION = "no replication cohort in DATA_DIR: add DATA_DIR/mghbch_like/"
DISCOVERY_CLAIMS = ("discovery_average", "discovery_older_groups", "discovery_cs")
REPLICATION_CLAIMS = ("replication_much_better", "replication_cs_curve", "replication_young_same",
                      "replication_young_ends")


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    cohort, out, rendered = run_on_one_cohort("03_lstm", tmp_path_factory.mktemp("lstm_single"), "nihpd_like", 20, 1,
                                              (24, 24, 24))
    preds = pd.read_csv(out / "results" / "03_lstm.predictions.csv")
    return out, rendered, load_results("03_lstm", output_dir=out)["records"], preds, cohort


def test_discovery_is_split_evaluated_and_judged(single_run):
    _, _, rec, preds, cohort = single_run
    ids = set(pd.read_csv(cohort / "participants.tsv", sep="\t")["participant_id"])
    assert set(preds["evaluation"]) == {"discovery test (trained 0-22)"}  # no replication predictions saved
    assert len(preds) == rec["data.n.discovery test"]["value"] > 0 and set(preds["participant_id"]) <= ids
    assert rec["data.n.discovery train (0-22 y)"]["value"] + len(preds) == len(ids)
    assert rec["data.n.replication"]["value"] == 0
    for model in L.MODELS:
        assert rec[f"table1.{model}.Average"]["value"] == pytest.approx((preds[model] - preds["age"]).abs().mean())
    age = preds["age"].to_numpy()
    both_learned = all((preds[m] - preds["age"]).abs().mean() < LEARNED_FRACTION * np.abs(age - age.mean()).mean()
                       for m in L.MODELS)
    for key in (*DISCOVERY_CLAIMS, "lstm_trains_faster"):  # the training time rests on the young trainings only
        c = rec[f"claims.{key}"]
        assert c["value"] in ("reproduced", "direction only", "not reproduced", "not testable"), c
        assert "replication" not in (c.get("reason") or ""), c
        if not both_learned and key in DISCOVERY_CLAIMS:
            assert c["value"] == "not testable" and "did not learn age: MAE on the discovery test" in c["reason"], c
    assert both_learned == all(rec[f"gates.learned.trained_0-22.{m}"]["value"] for m in L.MODELS)
    mae = {m: rec[f"table1.{m}.Average"]["value"] for m in L.MODELS}
    if both_learned:  # a smoke run: a claim with a paper number is at best "direction only"
        want = "direction only" if mae[L.LSTM_NAME] < mae[L.CNN3D_NAME] else "not reproduced"
        assert rec["claims.discovery_average"]["value"] == want


def test_every_replication_part_is_not_testable_with_the_reason(single_run):
    _, rendered, rec, _, _ = single_run
    for key in REPLICATION_CLAIMS:
        c = rec[f"claims.{key}"]
        assert c["value"] == "not testable" and c["reason"].startswith(NO_REPLICATION), c
    for key in (L.REP, L.REP_YOUNG):
        assert rec[f"not_testable.{key}"]["value"].startswith(NO_REPLICATION)
    for table in ("table2", "table3"):
        for model in L.MODELS:
            e = rec[f"{table}.{model}.Average"]
            assert e["value"] is None and e["paper"] is not None and e["note"].startswith(NO_REPLICATION), e
    replication = ("wilcoxon.replication", "cs.0-22.replication", "gates.tracks_age", "overall.replication")
    assert not any(k.startswith(replication) for k in rec)
    text = "".join("".join(c["source"]) + json.dumps(c.get("outputs", [])) for c in
                   json.loads(rendered.read_text(encoding="utf-8"))["cells"])
    assert text.count(NO_REPLICATION) >= 4  # the data section, tables 2 and 3 and the claims say why


def test_both_regimes_train_as_far_as_the_ages_allow(single_run):
    out, _, rec, _, _ = single_run
    assert rec["data.n.discovery train (0-6 y)"]["value"] > 0  # the cohort spans 0-22 y
    assert len(list((out / "checkpoints" / "03_lstm" / "models").glob("*.model.pt"))) == 4
    for name in ("age_distributions", "training_curves", "cumulative_scores", "predicted_vs_true"):
        assert (out / "figures" / "03_lstm" / f"{name}.png").is_file()


@pytest.fixture(scope="module")
def adult_run(tmp_path_factory):
    cohort, out, rendered = run_on_one_cohort("03_lstm", tmp_path_factory.mktemp("lstm_adults"), "clinical_test", 20,
                                              1, (24, 24, 24), folder="adults")
    preds = pd.read_csv(out / "results" / "03_lstm.predictions.csv")
    return out, rendered, load_results("03_lstm", output_dir=out)["records"], preds


def test_a_cohort_outside_the_paper_ages_shows_overall_numbers_own_bins_and_says_why(adult_run):
    out, rendered, rec, preds = adult_run
    age = preds["age"].to_numpy()
    assert age.min() >= 35 and set(preds["evaluation"]) == {"discovery test (trained 0-22)"}
    for m in L.MODELS:
        err = (preds[m] - preds["age"]).abs()
        assert rec[f"overall.{L.DISC}.{m}.mae"]["value"] == pytest.approx(err.mean())
        if np.ptp(preds[m]) > 0:
            assert rec[f"overall.{L.DISC}.{m}.r"]["value"] == pytest.approx(np.corrcoef(age, preds[m])[0, 1], abs=1e-4)
        assert rec[f"table1.{m}.Average"]["value"] == pytest.approx(err.mean())  # every subject, not the 0-22 y ones
        assert "paper" not in rec[f"table1.{m}.Average"]
    labels = rec["table1_bins"]["value"]
    lo, hi = (float(v) for v in labels[0].split("-"))
    width = hi - lo
    assert lo <= age.min() and float(labels[-1].split("-")[1]) >= age.max() and width in L.OWN_BIN_WIDTHS
    assert "do not all lie inside the paper's 0-22 y" in rec["table1_bins"]["note"]
    for m in L.MODELS:
        assert sum(rec[f"table1_n.{m}.{g}"]["value"] for g in labels) == len(preds)
    older = rec["claims.discovery_older_groups"]
    assert older["value"] == "not testable" and older["reason"].startswith("the rule needs the paper's age groups")
    assert rec["claims.lstm_trains_faster"]["reason"].startswith("no discovery training subject aged <= 6 y")
    learned = all(rec[f"gates.learned.trained_0-22.{m}"]["value"] for m in L.MODELS)
    assert (rec["claims.discovery_average"]["value"] == "not testable") == (not learned)
    assert (out / "figures" / "03_lstm" / "predicted_vs_true.png").is_file()
    text = "".join("".join(c["source"]) + json.dumps(c.get("outputs", [])) for c in
                   json.loads(rendered.read_text(encoding="utf-8"))["cells"])
    assert f"own {width:g}-y bins" in text and f"own {width:g}-y bins" in rec["table1_bins"]["note"]
