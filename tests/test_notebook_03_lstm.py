"""Notebook 03_lstm executed with PROFILE=smoke, asserting on its recorded results."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from conftest import run_smoke_notebook

from brainage_lib.lstm import CNN3D_NAME, LSTM_NAME
from brainage_lib.results import load_results

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def lstm_run(tmp_path_factory):
    out, _ = run_smoke_notebook("03_lstm", tmp_path_factory)
    return out, load_results("03_lstm", output_dir=out)


def test_03_lstm_tables_are_complete_and_finite(lstm_run):
    out, res = lstm_run
    rec = res["records"]
    assert res["profile"] == "smoke"
    for model in (CNN3D_NAME, LSTM_NAME):
        for g in ("0-5", "6-10", "11-15", "16-22", "Average"):
            e = rec[f"table1.{model}.{g}"]
            assert "paper" in e
            assert e["value"] is None or math.isfinite(e["value"])  # a group may be empty in a 60-subject smoke cohort
        for table in ("table2", "table3"):
            assert math.isfinite(rec[f"{table}.{model}.Average"]["value"])
            assert rec[f"{table}_n.{model}.Average"]["value"] == 24
        assert rec[f"train_time_s.0-22.{model}"]["value"] > 0
    assert rec["table1.2D-ResNet18+LSTM.Average"]["paper"] == 0.96
    assert rec["data.n.discovery test"]["value"] == 12 and rec["data.n.discovery train (0-22 y)"]["value"] == 48
    assert 0 <= rec["wilcoxon.replication.trained_0-22.p"]["value"] <= 1
    verdicts = {k: e["value"] for k, e in rec.items() if k.startswith("claims.")}
    assert len(verdicts) == 6 and set(verdicts.values()) <= {"reproduced", "not reproduced", "not testable"}
    assert all(rec[k]["rule"] and rec[k]["note"] for k in verdicts)
    assert verdicts["claims.lstm_trains_faster"] != "not testable"  # measured on every run
    preds = pd.read_csv(out / "results" / "03_lstm.predictions.csv")
    assert preds.groupby("evaluation").size().to_dict() == {"discovery test (trained 0-22)": 12,
                                                            "replication (trained 0-22)": 24,
                                                            "replication (trained 0-6)": 24}
    disc = preds[preds["evaluation"] == "discovery test (trained 0-22)"]
    assert (disc[LSTM_NAME] - disc["age"]).abs().mean() == pytest.approx(rec["table1.2D-ResNet18+LSTM.Average"]["value"], rel=1e-4)


def test_03_lstm_figures_and_checkpoints(lstm_run):
    out, _ = lstm_run
    for name in ("age_distributions", "training_curves", "cumulative_scores", "predicted_vs_true"):
        assert (out / "figures" / "03_lstm" / f"{name}.png").is_file()
    ckpts = sorted((out / "checkpoints" / "03_lstm").glob("*.pt"))
    assert len(ckpts) == 4
    import torch

    blob = torch.load(ckpts[0], map_location="cpu", weights_only=True)
    assert blob["config"]["params"]["EPOCHS"] == 2 and "git" in blob["provenance"]
