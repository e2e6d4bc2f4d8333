"""The LSTM paper's verdict rules on made-up predictions (no training).

A constant or a noise predictor reproduces nothing and leaves every comparison not
testable; predictions built so that every claim holds reproduce every claim, and the
same predictions with the two models swapped reproduce none of the rankings. A model
that did not learn, or a statistic that cannot be computed, makes a claim not testable.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from brainage_lib.metrics.verdicts import LEARNED_FRACTION
from brainage_lib.papers.lstm import claims as C
from brainage_lib.papers.lstm.evaluation import CNN3D_NAME as CNN
from brainage_lib.papers.lstm.evaluation import DISC, REP, REP_YOUNG, Evaluation
from brainage_lib.papers.lstm.evaluation import LSTM_NAME as LSTM
from brainage_lib.run.results import Recorder

KEYS = ("discovery_average", "discovery_older_groups", "discovery_cs", "replication_much_better",
        "replication_cs_curve", "replication_young_same", "replication_young_ends", "lstm_trains_faster")
WHERE = {"discovery_average": DISC, "discovery_older_groups": DISC, "discovery_cs": DISC,
         "replication_much_better": REP, "replication_cs_curve": REP, "replication_young_same": REP_YOUNG,
         "replication_young_ends": REP_YOUNG, "lstm_trains_faster": REP_YOUNG}
LABEL = {DISC: "discovery test, trained 0-22", REP: "replication, trained 0-22", REP_YOUNG: "replication, trained young"}
DISC_AGES = 0.125 + 0.25 * np.arange(88)  # 0.125 .. 21.875 y: every table-1 group
REP_AGES = 0.05 + 0.1 * np.arange(60)  # 0.05 .. 5.95 y: ten subjects in each year bin
FAST = {("0-22", LSTM): 3.0, ("0-22", CNN): 7.0, ("young", LSTM): 3.0, ("young", CNN): 7.0}  # LSTM faster
SLOW = {k: FAST[(k[0], CNN if k[1] == LSTM else LSTM)] for k in FAST}  # LSTM slower

Predictor = Callable[[str, str, np.ndarray], np.ndarray]  # (evaluation key, model, ages) -> predictions


def evaluations(predict: Predictor, drop: Callable[[str, np.ndarray], np.ndarray] | None = None) -> dict:
    """The three evaluations with predictions from ``predict``; ``drop(key, ages)`` masks subjects out."""
    out = {}
    for key, regime, cohort, ages in ((DISC, "0-22", "discovery", DISC_AGES), (REP, "0-22", "replication", REP_AGES),
                                      (REP_YOUNG, "young", "replication", REP_AGES)):
        keep = ~drop(key, ages) if drop else np.ones(ages.size, bool)
        a = ages[keep]
        train = DISC_AGES if regime == "0-22" else DISC_AGES[DISC_AGES <= 6]
        ev = Evaluation(regime, cohort, "0-6", a, {m: predict(key, m, a) for m in (CNN, LSTM)}, None, train)
        assert ev.key == key
        out[key] = ev
    return out


def signed(ages: np.ndarray, size: np.ndarray | float) -> np.ndarray:
    """Errors of the given sizes with alternating signs and some spread (0.5 to 1.5 x ``size``)."""
    i = np.arange(ages.size)
    return np.asarray(size) * (1 + 0.5 * np.sin(i)) * np.where(i % 2 == 0, 1.0, -1.0)


def young_bins(ages: np.ndarray, ends: float, middle: float) -> np.ndarray:
    """Error size ``ends`` in the 0-1 and 5-6 y bins, ``middle`` elsewhere (constant within a bin)."""
    return np.where((ages < 1) | (ages >= 5), ends, middle)


def paper_pattern(key: str, model: str, ages: np.ndarray) -> np.ndarray:
    """Accurate predictions shaped like the paper's results.

    Discovery and replication (trained 0-22): LSTM's error is half of 3D's for every subject.
    Replication (trained young): LSTM 0.2 y at both ends and 0.4 y in the middle, 3D 0.4 y and
    0.3 y (equal averages), so LSTM wins the ends and 3D the middle.
    """
    if key == REP_YOUNG:
        size = young_bins(ages, 0.2, 0.4) if model == LSTM else young_bins(ages, 0.4, 0.3)
        return ages + size * np.where(np.arange(ages.size) % 2 == 0, 1.0, -1.0)
    e = signed(ages, 0.8 if key == DISC else 0.6)
    return ages + (0.5 * e if model == LSTM else e)


def swapped(key: str, model: str, ages: np.ndarray) -> np.ndarray:
    return paper_pattern(key, CNN if model == LSTM else LSTM, ages)


def verdicts(tmp_path, evals: dict, times: dict) -> dict[str, tuple[str, str | None]]:
    """Verdict word and reason of every claim, recorded through a real ``Recorder``."""
    rec = Recorder("03_lstm_rules", "smoke", "synthetic", output_dir=tmp_path)
    rows = C.claims(evals, times, "0-6", "cpu")
    C.record_claims(rec, rows)
    assert [r.key for r in rows] == list(KEYS)
    return {k: (rec.get(f"claims.{k}"), rec.doc["records"][f"claims.{k}"].get("reason")) for k in KEYS}


RNG = np.random.default_rng(0)
NOTHING_LEARNED: dict[str, Predictor] = {
    "constant 11 y (the 0-22 y training mean)": lambda k, m, a: np.full(a.size, 11.0),
    "constant: each cohort's own mean age": lambda k, m, a: np.full(a.size, a.mean()),
    "noise: the ages permuted": lambda k, m, a: RNG.permutation(a),
    "noise: uniform over the cohort's age range": lambda k, m, a: RNG.uniform(a.min(), a.max(), a.size),
}


@pytest.mark.parametrize("name", NOTHING_LEARNED)
def test_a_predictor_that_learned_nothing_reproduces_nothing(tmp_path, name):
    got = verdicts(tmp_path, evaluations(NOTHING_LEARNED[name]), FAST)
    for key, (word, reason) in got.items():
        assert word == "not testable", (name, key, word)
        assert reason.startswith(f"{CNN}, {LSTM} did not learn age on {LABEL[WHERE[key]]}"), (key, reason)
        assert f"{LEARNED_FRACTION:g} x" in reason


def test_the_own_mean_gate_is_stricter_than_the_training_mean():
    """Predicting the 0-6 y cohort's own mean clears 0.9 x the MAE of the 0-22 y training mean, yet learned nothing."""
    ev = evaluations(NOTHING_LEARNED["constant: each cohort's own mean age"])[REP]
    train_mean_mae = np.mean(np.abs(DISC_AGES.mean() - REP_AGES))
    assert ev.mae(LSTM) < 0.9 * train_mean_mae
    assert ev.mae(LSTM) == pytest.approx(np.mean(np.abs(REP_AGES - REP_AGES.mean())))  # exactly the gate's reference


def test_predictions_shaped_like_the_paper_reproduce_every_claim(tmp_path):
    got = verdicts(tmp_path, evaluations(paper_pattern), FAST)
    assert got == {k: ("reproduced", None) for k in KEYS}


def test_the_same_predictions_with_the_models_swapped_reproduce_no_ranking(tmp_path):
    got = verdicts(tmp_path, evaluations(swapped), SLOW)
    want = {k: "not reproduced" for k in KEYS}
    want["replication_young_same"] = "reproduced"  # equal averages stay equal
    assert {k: w for k, (w, _) in got.items()} == want


def test_one_model_that_did_not_learn_makes_every_comparison_untestable(tmp_path):
    lstm_only = lambda k, m, a: paper_pattern(k, m, a) if m == LSTM else np.full(a.size, a.mean())
    got = verdicts(tmp_path, evaluations(lstm_only), FAST)
    for key, (word, reason) in got.items():
        assert word == "not testable", key
        assert reason.startswith(f"{CNN} did not learn age on {LABEL[WHERE[key]]}"), reason


@pytest.mark.parametrize("case, key, named", [
    ("identical errors on the replication cohort", "replication_much_better", "Wilcoxon p"),
    ("no discovery subject aged 11-15", "discovery_older_groups", "11-15"),
    ("no replication subject aged 0-1", "replication_young_ends", "0-1"),
    ("a training time of zero", "lstm_trains_faster", "wall-time ratio"),
])
def test_a_statistic_that_cannot_be_computed_makes_its_claim_untestable(tmp_path, case, key, named):
    predict, drop, times = paper_pattern, None, FAST
    if case.startswith("identical"):
        predict = lambda k, m, a: paper_pattern(k, LSTM, a) if k == REP else paper_pattern(k, m, a)
    elif "11-15" in case:
        drop = lambda k, a: (k == DISC) & (a >= 11) & (a < 16)
    elif "0-1" in case:
        drop = lambda k, a: (k == REP_YOUNG) & (a < 1)
    else:
        times = {**FAST, ("young", LSTM): 0.0}
    got = verdicts(tmp_path, evaluations(predict, drop), times)
    word, reason = got[key]
    assert word == "not testable" and named in reason, (key, word, reason)
    others = {k: w for k, (w, _) in got.items() if k != key}
    assert set(others.values()) == {"reproduced"}, others  # the rest still holds


def test_reference_records_and_rule_texts(tmp_path):
    rec = Recorder("03_lstm_rules", "smoke", "synthetic", output_dir=tmp_path)
    evals = evaluations(lambda k, m, a: paper_pattern(k, m, a) if m == LSTM else np.full(a.size, 11.0))
    table = C.record_reference(rec, evals)
    for key, ages in ((DISC, DISC_AGES), (REP, REP_AGES), (REP_YOUNG, REP_AGES)):
        own = np.mean(np.abs(ages - ages.mean()))
        assert rec.get(f"reference.mean_prediction.{key}") == pytest.approx(own)
        assert rec.get(f"reference.learned.{key}.{LSTM}") is True
        assert rec.get(f"reference.learned.{key}.{CNN}") is False
    assert table.loc[LABEL[REP], "MAE predicting the training mean"] == pytest.approx(
        np.mean(np.abs(DISC_AGES.mean() - REP_AGES)))
    assert not C.both_learned_everywhere(evals) and C.both_learned_everywhere(evaluations(paper_pattern))
    rows = C.claims(evaluations(paper_pattern), FAST, "0-6", "cpu")
    assert all(f"below {LEARNED_FRACTION:g} x" in r.rule for r in rows)
    assert f"{LEARNED_FRACTION:g} x" in C.rules_text()


@pytest.mark.parametrize("absent", [(REP, REP_YOUNG), (REP_YOUNG,)])
def test_claims_on_evaluations_the_data_does_not_allow_are_untestable_with_their_reason(tmp_path, absent):
    """No replication cohort (or no young training subject): those claims say why; the others are judged as before."""
    full = evaluations(paper_pattern)
    missing = {k: f"why {k} was not run" for k in absent}
    rec = Recorder("03_lstm_rules", "smoke", "synthetic", output_dir=tmp_path)
    rows = C.claims({k: v for k, v in full.items() if k not in absent}, FAST, "0-6", "cpu", missing)
    C.record_claims(rec, rows)
    assert [r.key for r in rows] == list(KEYS)
    for r in rows:
        entry = rec.doc["records"][f"claims.{r.key}"]
        if WHERE[r.key] in absent:
            assert entry["value"] == "not testable" and entry["reason"] == missing[WHERE[r.key]], entry
            assert entry["rule"] and entry["note"]
        else:
            assert entry["value"] == "reproduced" and "reason" not in entry, entry
