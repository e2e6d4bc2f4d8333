"""LSTM notebook helpers: paper tables from predictions, shape parsing, model construction."""
from __future__ import annotations

import numpy as np
import pytest

from brainage_lib.errors import BrainAgeError
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
    assert L.n_parameters(paper[L.LSTM_NAME]) > 11_000_000 and L.n_parameters(paper[L.CNN3D_NAME]) > 33_000_000
