"""Which cohorts the LSTM notebook uses for what: a folder with both cohorts, a single cohort folder
(discovery only, replication not testable), a cohort without young subjects (young regime not trained)."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from brainage_lib.engine.training import TrainConfig
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.lstm import evaluation as L
from brainage_lib.papers.lstm import figures as F
from brainage_lib.papers.lstm import gates as G
from brainage_lib.papers.lstm.claims import claims
from brainage_lib.papers.lstm.data import load_data, replication_reason
from brainage_lib.papers.lstm.evaluation import DISC, REP, REP_YOUNG
from brainage_lib.papers.lstm.training import evaluations, predict_all, train_models
from brainage_lib.run.results import Recorder

ATLAS, SLICE = (36, 40, 36), 34  # the smoke profile's sizes


def cohort(writer, root: Path, ages: list[float], prefix: str = "d") -> Path:
    rows = [{"participant_id": f"sub-{prefix}{i:02d}", "age": a, "sex": "MF"[i % 2], "site": "s1"}
            for i, a in enumerate(ages)]
    return writer(root, rows)


def load(data_dir: Path | str, young_max_age: float = 6.0):
    return load_data(str(data_dir), 0, None, None, None, ATLAS, SLICE, young_max_age)


CHILDREN = [0.5 + 2.0 * i for i in range(10)]  # 0.5 .. 18.5 y
ADULTS = [30.0 + 4.0 * i for i in range(10)]  # 30 .. 66 y


def test_replication_reason_follows_the_folder_layout(tmp_path, cohort_writer):
    assert replication_reason("") is None  # simulated: both cohorts
    single = cohort(cohort_writer, tmp_path / "single", CHILDREN)
    assert replication_reason(str(single)).startswith("no replication cohort in DATA_DIR: add DATA_DIR/mghbch_like/")
    cohort(cohort_writer, tmp_path / "both" / "nihpd_like", CHILDREN)
    assert replication_reason(str(tmp_path / "both")) is not None  # nihpd_like/ alone: discovery only
    cohort(cohort_writer, tmp_path / "both" / "mghbch_like", [0.5, 2.5, 4.5], "r")
    assert replication_reason(str(tmp_path / "both")) is None


def test_a_single_cohort_folder_is_discovery_only(tmp_path, cohort_writer):
    data = load(cohort(cohort_writer, tmp_path / "single", CHILDREN))
    assert data.repl is None and set(data.arrays) == {"discovery"}
    assert len(data.train_idx) + len(data.test_idx) == len(CHILDREN) == len(data.disc)
    assert data.regimes == ("0-22", "young")
    assert set(data.not_testable()) == {REP, REP_YOUNG}
    assert all(r.startswith("no replication cohort in DATA_DIR") for r in data.not_testable().values())
    assert data.sizes("0-6")["replication"] == 0
    with pytest.raises(BrainAgeError, match="no replication cohort"):
        data.cohort("replication")
    assert "**not testable**: no replication cohort" in data.used("data", "0-6")
    assert data.used(REP, "0-6").startswith("**Not testable**") and data.used(DISC, "0-6").startswith("Evaluated")


def test_a_folder_with_both_cohorts_uses_each_for_its_role(tmp_path, cohort_writer):
    cohort(cohort_writer, tmp_path / "nihpd_like", CHILDREN)
    cohort(cohort_writer, tmp_path / "mghbch_like", [0.5, 2.5, 4.5], "r")
    data = load(tmp_path)
    assert data.disc.root.name == "nihpd_like" and data.repl.root.name == "mghbch_like"
    assert list(data.repl.table["participant_id"]) == ["sub-r00", "sub-r01", "sub-r02"]
    assert data.not_testable() == {} and set(data.arrays) == {"discovery", "replication"}


def test_a_folder_without_a_discovery_cohort_is_refused(tmp_path, cohort_writer):
    cohort(cohort_writer, tmp_path / "mghbch_like", [0.5, 2.5, 4.5], "r")
    with pytest.raises(BrainAgeError, match="no discovery cohort"):
        load(tmp_path)


def test_a_cohort_without_young_subjects_trains_the_whole_range_only(tmp_path, cohort_writer):
    """Adults: the young regime is not trained; its evaluations, tables, claims and panels say why. Table 1 is in
    the cohort's own bins with no paper value, the overall MAE and r are recorded, and the claim about the paper's
    age groups says it needs them."""
    data = load(cohort(cohort_writer, tmp_path / "adults", ADULTS))
    assert data.regimes == ("0-22",) and len(data.young_idx) == 0
    why = data.not_testable()
    assert set(why) == {REP, REP_YOUNG, "young"}
    assert why["young"].startswith("no discovery training subject aged <= 6 y")
    assert why["young"] in why[REP_YOUNG] and "no replication cohort" in why[REP_YOUNG]
    assert "not trained" in data.used("training", "0-6")

    build = lambda: L.build_models(ATLAS, SLICE, pool_k=4, width=0.125)  # noqa: E731
    trained, history = train_models(data, build, TrainConfig(epochs=1, batch_size=4), torch.device("cpu"), 0)
    assert set(trained) == {("0-22", L.CNN3D_NAME), ("0-22", L.LSTM_NAME)}
    pred = predict_all(trained, data, torch.device("cpu"))
    assert {k[:2] for k in pred} == {("0-22", "discovery")}
    evals = evaluations(data, pred, "0-6")
    assert set(evals) == {DISC} and len(evals[DISC].ages) == len(data.test_idx)

    rec = Recorder("03_lstm_data", "smoke", "test", output_dir=tmp_path)
    L.record_table(rec, "table3", evals, why)
    entry = rec.doc["records"][f"table3.{L.LSTM_NAME}.Average"]
    assert entry["value"] is None and entry["paper"] == 0.78 and entry["note"] == why[REP_YOUNG]
    L.record_young_discovery(rec, pred, data.disc.ages[data.test_idx], np.zeros(len(data.test_idx), bool), "0-6", why)
    assert rec.doc["records"][f"young_discovery_test.young.{L.LSTM_NAME}"]["note"] == why["young"]
    times = L.record_training_times(rec, {k: 1.0 for k in trained}, "0-6", False, why)
    assert rec.get("train_time_ratio_3d_over_lstm.0-22") == 1.0 and rec.get("train_time_ratio_3d_over_lstm.young") is None
    assert np.isnan(times.iloc[0, 1])
    t1 = L.record_table(rec, "table1", evals, why)
    test_ages = data.disc.ages[data.test_idx]
    assert not t1.attrs["bins"].paper and rec.get("table1_bins") == list(t1.attrs["bins"].labels)
    assert rec.doc["records"]["table1_bins"]["note"].startswith(f"the evaluated ages ({test_ages.min():.1f}-")
    for m in L.MODELS:
        e = rec.doc["records"][f"table1.{m}.Average"]
        assert "paper" not in e and e["value"] == pytest.approx(np.mean(np.abs(evals[DISC].preds[m] - test_ages)))
        n = sum(rec.get(f"table1_n.{m}.{g}") for g in t1.attrs["bins"].labels)
        assert n == rec.get(f"table1_n.{m}.Average") == len(test_ages)  # every test subject in a bin
    overall = L.record_overall(rec, evals)
    assert len(overall) == 2 and rec.get(f"overall.{DISC}.{L.LSTM_NAME}.mae") == pytest.approx(
        evals[DISC].mae(L.LSTM_NAME))
    numbers = G.gate_numbers(G.held_out_sets(evals[DISC], np.empty(0), None, "0-6"), evals, why)
    assert set(numbers.learned) == {"0-22"} and numbers.missing == {"young": why["young"]}
    rows = {r.key: r for r in claims(evals, {k: 1.0 for k in trained}, "0-6", "cpu", why, gates=numbers)}
    assert rows["lstm_trains_faster"].outcome is None and rows["lstm_trains_faster"].reason == why["young"]
    assert rows["replication_much_better"].reason == why[REP]
    older = rows["discovery_older_groups"]
    assert older.outcome is None and older.reason.startswith("the rule needs the paper's age groups 6-10, 11-15, 16-22")
    for fig in (F.cumulative_scores(evals, "0-6", why), F.predicted_vs_true(evals, "0-6", why),
                F.training_curves(history, {k: r.target_sd for k, r in trained.items()}, "0-6", why)):
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        assert any(t.startswith("not testable") for t in texts), texts
        plt.close(fig)


def test_a_cohort_too_small_for_a_test_subject_is_refused(tmp_path, cohort_writer):
    with pytest.raises(BrainAgeError, match="too few for an 80/20 split"):
        load(cohort(cohort_writer, tmp_path / "tiny", CHILDREN[:4]))
