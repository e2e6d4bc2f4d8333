"""Notebook 03_lstm (PROFILE=smoke) on one cohort folder: discovery only, every replication part not testable.

The cohort is a simulated ``nihpd_like`` folder given as ``DATA_DIR``: the run must split and evaluate it,
judge the discovery claims from its saved predictions, and never use it as its own replication cohort.
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
                      "replication_young_ends", "lstm_trains_faster")  # the last rests on Table 3's evaluation


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
    for key in DISCOVERY_CLAIMS:
        c = rec[f"claims.{key}"]
        assert c["value"] in ("reproduced", "not reproduced", "not testable"), c
        assert "replication" not in (c.get("reason") or ""), c
        if not both_learned:
            assert c["value"] == "not testable" and "did not learn age on discovery test" in c["reason"], c
    mae = {m: rec[f"table1.{m}.Average"]["value"] for m in L.MODELS}
    if both_learned:
        want = "reproduced" if mae[L.LSTM_NAME] < mae[L.CNN3D_NAME] else "not reproduced"
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
    assert not any(k.startswith(("wilcoxon.replication", "cs.0-22.replication", "reference.learned.replication"))
                   for k in rec)
    text = "".join("".join(c["source"]) + json.dumps(c.get("outputs", [])) for c in
                   json.loads(rendered.read_text(encoding="utf-8"))["cells"])
    assert text.count(NO_REPLICATION) >= 4  # the data section, tables 2 and 3 and the claims say why


def test_both_regimes_train_as_far_as_the_ages_allow(single_run):
    out, _, rec, _, _ = single_run
    assert rec["data.n.discovery train (0-6 y)"]["value"] > 0  # the cohort spans 0-22 y
    assert len(list((out / "checkpoints" / "03_lstm").glob("*.pt"))) == 4
    for name in ("age_distributions", "training_curves", "cumulative_scores", "predicted_vs_true"):
        assert (out / "figures" / "03_lstm" / f"{name}.png").is_file()
