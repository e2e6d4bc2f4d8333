"""LSTM notebook helpers: paper tables from predictions, shape parsing, model construction."""
from __future__ import annotations

import numpy as np
import pytest

from brainage_lib.errors import BrainAgeError
from brainage_lib.engine.training import n_parameters
from brainage_lib.papers.lstm import evaluation as L
from brainage_lib.papers.lstm.evaluation import REPLICATION_EDGES, REPLICATION_LABELS


def test_group_table_against_hand_computation():
    ages = np.array([0.5, 0.7, 1.5, 2.2, 5.9, 6.0])
    preds = {L.CNN3D_NAME: ages + np.array([1, -1, 0.5, 0, 2, -2]), L.LSTM_NAME: ages}
    t = L.group_table(ages, preds, REPLICATION_EDGES, REPLICATION_LABELS, L.PAPER_TABLE2)
    cnn = t[t.model == L.CNN3D_NAME].set_index("group")
    assert cnn.loc["0-1", "this run MAE"] == pytest.approx(1.0) and cnn.loc["0-1", "n"] == 2
    assert cnn.loc["1-2", "this run MAE"] == pytest.approx(0.5)
    assert cnn.loc["5-6", "this run MAE"] == pytest.approx(2.0) and cnn.loc["5-6", "n"] == 2  # 6.0 counts in 5-6
    assert np.isnan(cnn.loc["3-4", "this run MAE"]) and cnn.loc["3-4", "n"] == 0
    assert cnn.loc["Average", "this run MAE"] == pytest.approx(np.mean([1, 1, 0.5, 0, 2, 2]))
    assert cnn.loc["Average", "paper MAE"] == 2.64
    assert (t[t.model == L.LSTM_NAME]["this run MAE"].dropna() == 0).all()
    w = L.wide(t)
    assert w.loc[L.CNN3D_NAME, "Average"] == "2.64 / 1.08" and list(w.columns)[-1] == "Average"


def test_parse_shape():
    assert L.parse_shape("128x160x112") == (128, 160, 112)
    with pytest.raises(BrainAgeError):
        L.parse_shape("128x160")
    with pytest.raises(BrainAgeError):
        L.parse_shape("axbxc")


def test_build_models_follow_the_parameters():
    models = L.build_models((36, 40, 36), slice_size=34, pool_k=4, width=0.125)
    assert models[L.LSTM_NAME].config.n_slices == 36 and models[L.LSTM_NAME].config.fc_in_features == 9 * 128
    assert models[L.CNN3D_NAME].config.input_shape == (36, 40, 36)
    paper = L.build_models((128, 160, 112), 50, 4, 1.0)
    assert n_parameters(paper[L.LSTM_NAME]) > 11_000_000 and n_parameters(paper[L.CNN3D_NAME]) > 33_000_000


@pytest.mark.parametrize("ages, edges", [
    ([20.0, 35.5, 82.0], (20, 30, 40, 50, 60, 70, 80, 90)),  # adults: decades
    ([0.2, 23.5], (0, 5, 10, 15, 20, 25)),  # just past the paper's 0-22 y: 5-y bins
    ([18.0, 95.0], (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)),  # 9 decades: at most 10 bins
    ([57.1, 78.2], (55, 60, 65, 70, 75, 80)),
    ([3.3, 3.3], (3, 4)),  # one age: one bin
])
def test_own_bins_cover_the_cohort_in_one_width(ages, edges):
    got, labels = L.own_bins(np.array(ages))
    assert got == tuple(float(e) for e in edges)
    assert labels == tuple(f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:]))


def test_tables_use_the_paper_bins_where_they_apply_and_the_cohorts_own_otherwise():
    inside = L.table_bins("table1", np.array([0.0, 11.0, 23.0]))  # the last group is closed at 23
    assert inside.paper and inside.labels == L.DISCOVERY_LABELS and inside.why is None
    adults = L.table_bins("table1", np.array([20.0, 50.0, 82.0]))
    assert not adults.paper and adults.labels[0] == "20-30"
    assert adults.why == ("the evaluated ages (20.0-82.0 y) do not all lie inside the paper's 0-22 y, so Table 1 uses "
                          "this cohort's own 10-y bins")
    older = L.table_bins("table3", np.array([0.5, 6.5]))  # a replication subject past 6 y
    assert not older.paper and "paper's 0-6 y" in older.why and older.labels == ("0-1", "1-2", "2-3", "3-4", "4-5",
                                                                                  "5-6", "6-7")
    ages = np.array([20.0, 25.0, 31.0, 84.0])  # 10-y bins 20-30, ..., 80-90
    preds = {L.CNN3D_NAME: ages + 2, L.LSTM_NAME: ages - np.array([1.0, 0.0, 3.0, 1.0])}
    ev = L.Evaluation("0-22", "discovery", "0-6", ages, preds)
    t = L.paper_table({L.DISC: ev}, "table1").set_index(["model", "group"])
    assert t.loc[(L.LSTM_NAME, "20-30"), "this run MAE"] == pytest.approx(0.5)  # 20 and 25 y
    assert t.loc[(L.LSTM_NAME, "30-40"), "n"] == 1 and t.loc[(L.LSTM_NAME, "80-90"), "this run MAE"] == 1.0
    assert t.loc[(L.LSTM_NAME, "50-60"), "n"] == 0 and np.isnan(t.loc[(L.LSTM_NAME, "50-60"), "this run MAE"])
    assert t.loc[(L.LSTM_NAME, "Average"), "this run MAE"] == pytest.approx(1.25)  # every subject
    assert t["paper MAE"].isna().all()
    assert L.wide(t.reset_index()).loc[L.CNN3D_NAME, "Average"] == "- / 2.00"


def test_seeds_wide_shows_mean_and_sd_over_seeds_beside_the_paper():
    doc = {"records": {"table1.A.0-5": {"value": 1.234, "paper": 0.3},
                       "table1.A.6-10": {"value": None, "paper": 1.1},
                       "table1.A.Average": {"value": 2.0, "paper": 1.0, "seeds_mean": 2.1, "seeds_sd": 0.3,
                                            "seeds_n": 3},
                       "table1_n.A.0-5": {"value": 3}, "table2.A.0-1": {"value": 9.0, "paper": 2.57}}}
    t = L.seeds_wide(doc, "table1")
    assert list(t.columns) == ["0-5", "6-10", "Average"]
    assert t.loc["A"].tolist() == ["0.30 / 1.23", "1.10 / -", "1.00 / 2.10 ± 0.30 (3 seeds)"]


def test_overall_mae_and_r_by_hand(tmp_path):
    from brainage_lib.run.results import Recorder

    ages = np.array([1.0, 2.0, 3.0, 4.0])
    preds = {L.CNN3D_NAME: np.array([2.0, 2.0, 4.0, 6.0]), L.LSTM_NAME: np.array([4.0, 3.0, 2.0, 1.0])}
    ev = L.Evaluation("0-22", "discovery", "0-6", ages, preds)
    rec = Recorder("03_lstm_overall", "smoke", "synthetic", output_dir=tmp_path)
    L.record_overall(rec, {L.DISC: ev})
    assert rec.get(f"overall.{L.DISC}.{L.CNN3D_NAME}.mae") == pytest.approx(1.0)  # |1|,0,|1|,|2|
    assert rec.get(f"overall.{L.DISC}.{L.LSTM_NAME}.r") == pytest.approx(-1.0)
    assert rec.get(f"overall.{L.DISC}.{L.CNN3D_NAME}.r") == pytest.approx(np.corrcoef(ages, preds[L.CNN3D_NAME])[0, 1])
