"""The LSTM paper's verdict rules, run on the paper's own numbers and on predictors that learned nothing.

The self-test builds per-subject predictions from the paper's Tables 1-3: in every age group of a
table, each model's absolute errors have exactly the paper's MAE for that group (spread evenly from
0.5 to 1.5 x the MAE, signs alternating; the 3D model trained on 0-22 y over-predicts every
replication subject, the offset its flat 2.4-2.9 y errors suggest), over group sizes chosen so that
the averages round to the paper's (the paper gives its averages, not its group sizes). Run through
``claims`` and recorded in the paper profile (``decide(..., paper_profile=True)``), every claim of the
paper comes out reproduced, its magnitudes inside this run's intervals. The same table covers a
constant and a noise predictor (nothing reproduced; every comparison not testable: no model
learned), the two models swapped (every ranking not reproduced), and models that track age on the
replication cohort but miss it by 10 y (the replication claims decided, not gated out).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pytest

from brainage_lib.metrics.verdicts import LEARNED_FRACTION, TRACK_ALPHA, decide
from brainage_lib.papers.lstm import claims as C
from brainage_lib.papers.lstm import evaluation as L
from brainage_lib.papers.lstm import gates as G
from brainage_lib.papers.lstm.evaluation import CNN3D_NAME as CNN
from brainage_lib.papers.lstm.evaluation import DISC, REP, REP_YOUNG, Evaluation
from brainage_lib.papers.lstm.evaluation import LSTM_NAME as LSTM
from brainage_lib.run.results import Recorder

KEYS = ("discovery_average", "discovery_older_groups", "discovery_cs", "replication_much_better",
        "replication_cs_curve", "replication_young_same", "replication_young_ends", "lstm_trains_faster")
WHERE = {"discovery_average": DISC, "discovery_older_groups": DISC, "discovery_cs": DISC,
         "replication_much_better": REP, "replication_cs_curve": REP, "replication_young_same": REP_YOUNG,
         "replication_young_ends": REP_YOUNG, "lstm_trains_faster": "young"}
REGIME = {DISC: "0-22", REP: "0-22", REP_YOUNG: "young", "young": "young"}
COMPARISONS = KEYS  # every claim of the paper compares the two models
NOT_TESTABLE_BY_DESIGN: tuple[str, ...] = ()  # every claim of the paper is decided on its own numbers

# Group sizes (not in the paper) whose group MAEs average to the paper's: Table 1 (242 = 20 % of 1212 test
# subjects) 0.9603 and 1.0698 (paper 0.96, 1.07); Tables 2-3 (428 subjects) 1.1347, 2.6351, 0.7843, 0.7937 (paper
# 1.14, 2.64, 0.78, 0.79).
DISC_COUNTS = (62, 80, 52, 48)
REP_COUNTS = (175, 69, 63, 35, 51, 35)
FAST = {("0-22", LSTM): 3.0, ("0-22", CNN): 7.0, ("young", LSTM): 3.0, ("young", CNN): 7.0}  # the paper's hours
SLOW = {(r, m): FAST[(r, CNN if m == LSTM else LSTM)] for r, m in FAST}


def ages_in(edges, counts) -> np.ndarray:
    """``counts[i]`` ages spread evenly inside group i (half-open; the last group closed)."""
    out = []
    for lo, hi, n in zip(edges[:-1], edges[1:], counts):
        out.append(lo + (np.arange(n) + 0.5) / n * (hi - lo))
    return np.concatenate(out)


def errors(mae: float, n: int, seed: int, positive: bool = False) -> np.ndarray:
    """``n`` signed errors whose absolute values have mean exactly ``mae`` (spread 0.5 to 1.5 x ``mae``)."""
    size = mae * (1 + 0.5 * np.linspace(-1, 1, n)) if n > 1 else np.full(n, mae)
    size = np.random.default_rng(seed).permutation(size)
    return size if positive else size * np.where(np.arange(n) % 2 == 0, 1.0, -1.0)


def paper_predictions(edges, counts, table: Mapping[str, list[float]], seed: int,
                      offset_3d: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Ages and both models' predictions with the paper's MAE in every group of ``table``."""
    ages = ages_in(edges, counts)
    preds = {}
    for k, m in enumerate((CNN, LSTM)):
        e = [errors(table[m][i], n, seed + 10 * i + k, positive=offset_3d and m == CNN) for i, n in enumerate(counts)]
        preds[m] = ages + np.concatenate(e)
    return ages, preds


Scenario = tuple[dict[str, Evaluation], dict[str, G.HeldOut]]


def paper_scenario() -> Scenario:
    """The three evaluations of Tables 1-3 and the held-out sets of the gates, from the paper's numbers.

    The young models' MAE on the discovery test subjects of 0-6 y is not in the paper; Table 1's 0-5 y group
    (the 0-22 y models on those subjects: 0.30 and 0.32 y) stands in for it.
    """
    d_ages, d_preds = paper_predictions(L.DISCOVERY_EDGES, DISC_COUNTS, L.PAPER_TABLE1, 1)
    r_ages, r_preds = paper_predictions(L.REPLICATION_EDGES, REP_COUNTS, L.PAPER_TABLE2, 2, offset_3d=True)
    _, y_preds = paper_predictions(L.REPLICATION_EDGES, REP_COUNTS, L.PAPER_TABLE3, 3)
    young = d_ages <= 6
    table1_0_5 = {m: [L.PAPER_TABLE1[m][0]] for m in (CNN, LSTM)}
    yd_ages, yd_preds = paper_predictions((0, 6), (int(young.sum()),), table1_0_5, 4)
    train = ages_in(L.DISCOVERY_EDGES, [4 * c for c in DISC_COUNTS])
    evals = {DISC: Evaluation("0-22", "discovery", "0-6", d_ages, d_preds, None, train),
             REP: Evaluation("0-22", "replication", "0-6", r_ages, r_preds, None, train),
             REP_YOUNG: Evaluation("young", "replication", "0-6", r_ages, y_preds, None, train[train <= 6])}
    return evals, G.held_out_sets(evals[DISC], yd_ages, yd_preds, "0-6")


def transformed(s: Scenario, f: Callable[[str, str, np.ndarray, np.ndarray], np.ndarray]) -> Scenario:
    """``s`` with every prediction replaced by ``f(where, model, ages, predictions)`` (where: evaluation key, or
    "held-out <regime>")."""
    evals, held = s
    ev2 = {k: Evaluation(e.regime, e.cohort, e.young, e.ages, {m: f(k, m, e.ages, np.asarray(e.preds[m]))
                                                               for m in (CNN, LSTM)}, e.ids, e.train_ages)
           for k, e in evals.items()}
    held2 = {r: G.HeldOut(h.where, h.ages, {m: f(f"held-out {r}", m, h.ages, np.asarray(h.preds[m]))
                                            for m in (CNN, LSTM)}) for r, h in held.items()}
    return ev2, held2


def judge(tmp_path, s: Scenario, times: Mapping = FAST, profile: str = "paper", missing=None) -> dict[str, dict]:
    """Every claim recorded through a real ``Recorder`` of ``profile``: its record (verdict, reason, magnitudes)."""
    evals, held = s
    rec = Recorder("03_lstm_rules", profile, "synthetic", output_dir=tmp_path)
    numbers = G.gate_numbers(held, evals, missing)
    G.record_gates(rec, numbers)
    rows = C.claims(evals, times, "0-6", "cpu", missing, gates=numbers, magnitudes=C.claim_magnitudes(evals))
    rec.record_claims(rows)
    assert [r.key for r in rows] == list(KEYS)
    for r in rows:  # the recorded word is decide() of the row, in the paper profile when profile == "paper"
        assert rec.get(f"claims.{r.key}") == decide(r.outcome, r.reason, r.magnitudes, profile == "paper")
    return {**{k: rec.doc["records"][f"claims.{k}"] for k in KEYS},
            **{k: e for k, e in rec.doc["records"].items() if k.startswith("gates.")}}


def swapped(s: Scenario) -> Scenario:
    """``s`` with the two models' predictions exchanged everywhere."""
    evals, held = s
    ev2 = {k: Evaluation(e.regime, e.cohort, e.young, e.ages, {CNN: e.preds[LSTM], LSTM: e.preds[CNN]}, e.ids,
                         e.train_ages) for k, e in evals.items()}
    held2 = {r: G.HeldOut(h.where, h.ages, {CNN: h.preds[LSTM], LSTM: h.preds[CNN]}) for r, h in held.items()}
    return ev2, held2


PAPER = paper_scenario()
RNG = np.random.default_rng(0)
# name -> (scenario, training times, default verdict, {claim: expected verdict where it is not the default}).
CASES: dict[str, tuple[Scenario, Mapping, str, dict[str, str]]] = {
    "the paper's own numbers": (PAPER, FAST, "reproduced", {k: "not testable" for k in NOT_TESTABLE_BY_DESIGN}),
    "constant: the 0-22 y training mean (11 y)": (transformed(PAPER, lambda w, m, a, p: np.full(a.size, 11.0)), FAST,
                                                  "not testable", {}),
    "constant: each set's own mean age": (transformed(PAPER, lambda w, m, a, p: np.full(a.size, a.mean())), FAST,
                                          "not testable", {}),
    "noise: the ages permuted": (transformed(PAPER, lambda w, m, a, p: RNG.permutation(a)), FAST, "not testable", {}),
    "noise: uniform over the set's age range": (transformed(PAPER, lambda w, m, a, p: RNG.uniform(a.min(), a.max(),
                                                                                                 a.size)),
                                                FAST, "not testable", {}),
    # Equal averages stay equal when the models swap: "about the same" is no ranking.
    "the two models swapped": (swapped(PAPER), SLOW, "not reproduced", {"replication_young_same": "reproduced"}),
}


@pytest.mark.parametrize("case", CASES)
def test_self_test_table(tmp_path, case):
    scenario, times, default, exceptions = CASES[case]
    got = judge(tmp_path, scenario, times)
    want = {k: exceptions.get(k, default) for k in KEYS}
    assert {k: got[k]["value"] for k in KEYS} == want, {k: (got[k]["value"], got[k].get("reason")) for k in KEYS}
    if default == "not testable":  # nothing learned: every comparison is gated out by the learned gate
        for k in COMPARISONS:
            assert "did not learn age" in got[k]["reason"], (k, got[k]["reason"])
            assert f"{LEARNED_FRACTION:g} x" in got[k]["reason"]


def test_the_paper_numbers_pass_every_gate_and_their_magnitudes_lie_inside(tmp_path):
    got = judge(tmp_path, PAPER)
    gates = {k: e for k, e in got.items() if k.startswith("gates.")}
    assert len(gates) == 8 and all(e["value"] is True for e in gates.values()), gates
    # the paper's own 3D-ResNet18 on the replication cohort (2.64 y) passes: it tracks age
    assert "r = +" in gates[f"gates.tracks_age.replication_trained_0-22.{CNN}"]["evidence"]
    n_mags = {k: len(got[k].get("magnitudes") or []) for k in KEYS}
    assert n_mags == {"discovery_average": 1, "discovery_older_groups": 3, "discovery_cs": 0,
                      "replication_much_better": 1, "replication_cs_curve": 0, "replication_young_same": 1,
                      "replication_young_ends": 6, "lstm_trains_faster": 0}
    for k in KEYS:
        for m in got[k].get("magnitudes") or []:
            assert m["inside"] is True and m["low"] < m["value"] < m["high"], (k, m)
            assert m["value"] == pytest.approx(m["paper"], abs=0.006), (k, m)  # the paper's rounding
    papers = {m["quantity"]: m["paper"] for m in got["replication_young_ends"]["magnitudes"]}
    assert papers["MAE(LSTM) - MAE(3D) in 0-1 y"] == pytest.approx(0.24 - 0.66)
    assert got["replication_much_better"]["magnitudes"][0]["paper"] == pytest.approx(1.14 - 2.64)


def test_a_reduced_profile_gives_direction_only_for_claims_with_a_paper_number(tmp_path):
    got = judge(tmp_path, PAPER, profile="quick")
    with_number = {k for k in KEYS if got[k].get("magnitudes")}
    assert with_number == {"discovery_average", "discovery_older_groups", "replication_much_better",
                           "replication_young_same", "replication_young_ends"}
    assert {k: got[k]["value"] for k in KEYS} == {k: "direction only" if k in with_number else "reproduced"
                                                 for k in KEYS}


def test_a_paper_value_outside_the_interval_is_direction_only(tmp_path):
    """LSTM 0.5 y better than 3D on every discovery subject: right direction, 5 x the paper's -0.11 y."""
    s = transformed(PAPER, lambda w, m, a, p: np.where(np.arange(a.size) % 2 == 0, 1, -1) * (
        0.5 if m == LSTM else 1.0) + a if w == DISC else p)
    got = judge(tmp_path, s)
    assert got["discovery_average"]["value"] == "direction only"
    assert got["discovery_average"]["magnitudes"][0]["inside"] is False
    assert got["discovery_average"]["magnitudes"][0]["value"] == pytest.approx(-0.5)


def test_models_that_miss_the_replication_cohort_by_10_y_but_track_age_are_judged(tmp_path):
    """The replication claims are decided, not gated out: LSTM's errors stay smaller (much better: right
    direction, but 2.6 y apart instead of the paper's 1.5), yet every error exceeds 4 y, so both CS curves are 0
    everywhere and "better at every error level" is not reproduced."""
    s = transformed(PAPER, lambda w, m, a, p: p + 10.0 if w == REP else p)
    got = judge(tmp_path, s)
    assert all(got[f"gates.tracks_age.replication_trained_0-22.{m}"]["value"] for m in (CNN, LSTM))
    assert got["replication_much_better"]["value"] == "direction only"
    assert got["replication_cs_curve"]["value"] == "not reproduced"
    assert "above at 0" in got["replication_cs_curve"]["evidence"]
    assert "vs +12.64 y" in got["replication_much_better"]["evidence"]  # 3D: its 2.64 y offset + 10
    for k in KEYS:
        if WHERE[k] != REP:
            assert got[k]["value"] == "reproduced", k


def test_a_model_that_does_not_track_age_on_the_replication_cohort_gates_out_its_replication_claims(tmp_path):
    s = transformed(PAPER, lambda w, m, a, p: np.full(a.size, 9.0) if (w == REP and m == CNN) else p)
    got = judge(tmp_path, s)
    assert got[f"gates.tracks_age.replication_trained_0-22.{CNN}"]["value"] is False
    for k in KEYS:
        if WHERE[k] == REP:
            assert got[k]["value"] == "not testable", k
            assert got[k]["reason"].startswith(f"{CNN} do not track age on the replication cohort"), got[k]["reason"]
            assert f"p < {TRACK_ALPHA:g}" in got[k]["reason"]
        else:
            assert got[k]["value"] == "reproduced", k


def test_the_learned_gate_is_decided_on_held_out_discovery_subjects_not_on_the_replication_cohort(tmp_path):
    """The young 3D model predicting its held-out discovery subjects' mean age did not learn: the claims on its
    trainings are gated out, whatever it does on the replication cohort."""
    s = transformed(PAPER, lambda w, m, a, p: np.full(a.size, a.mean()) if (w == "held-out young" and m == CNN) else p)
    got = judge(tmp_path, s)
    assert got[f"gates.learned.trained_young.{CNN}"]["value"] is False
    for k in KEYS:
        if REGIME[WHERE[k]] == "young":
            assert got[k]["value"] == "not testable"
            assert got[k]["reason"].startswith(f"{CNN} did not learn age: MAE on the discovery test subjects aged 0-6")
        else:
            assert got[k]["value"] == "reproduced", k


@pytest.mark.parametrize("lstm, cnn, want", [
    (L.PAPER_TABLE3[LSTM][:6], L.PAPER_TABLE3[CNN][:6], True),  # the paper's Table 3: 3D lower in 3 of 4 middle bins
    ([0.2, 1.3, 1.4, 0.5, 0.6, 0.9], [0.6, 0.4, 0.4, 0.7, 1.2, 2.1], False),  # 3D lower in one middle bin only
    ([0.2, 1.3, 1.4, 0.5, 0.6, 0.9], [0.6, 0.4, 0.4, 0.4, 1.2, 2.1], True),  # 3 of 4
    ([0.2, 1.3, 1.4, 0.5, 0.6, 0.9], [0.6, 0.4, 0.4, 0.7, 0.7, 2.1], False),  # 2 of 4 is no majority
    ([0.7, 1.3, 1.4, 1.5, 1.6, 0.9], [0.6, 0.4, 0.4, 0.4, 0.4, 2.1], False),  # LSTM loses the first bin
    ([0.2, 1.3, np.nan, 1.5, 1.6, 0.9], [0.6, 0.4, 0.4, 0.4, 0.4, 2.1], None),  # an empty bin
])
def test_wins_at_the_ends_needs_3d_lower_in_a_majority_of_the_middle_bins(lstm, cnn, want):
    assert L.lstm_wins_ends(lstm, cnn) is want


@pytest.mark.parametrize("case, key, named", [
    ("identical errors on the replication cohort", "replication_much_better", "Wilcoxon p"),
    ("no replication subject aged 0-1", "replication_young_ends", "0-1"),
    ("a training time of zero", "lstm_trains_faster", "wall-time ratio"),
])
def test_a_statistic_that_cannot_be_computed_makes_its_claim_untestable(tmp_path, case, key, named):
    s, times = PAPER, FAST
    if case.startswith("identical"):
        s = transformed(PAPER, lambda w, m, a, p: PAPER[0][REP].preds[LSTM] if w == REP else p)
    elif "0-1" in case:
        evals, held = PAPER
        e = evals[REP_YOUNG]
        keep = e.ages >= 1
        s = ({**evals, REP_YOUNG: Evaluation(e.regime, e.cohort, e.young, e.ages[keep],
                                             {m: e.preds[m][keep] for m in (CNN, LSTM)}, None, e.train_ages)}, held)
    else:
        times = {**FAST, ("young", LSTM): 0.0}
    got = judge(tmp_path, s, times)
    assert got[key]["value"] == "not testable" and named in got[key]["reason"], got[key]


def test_claims_on_the_paper_age_groups_say_so_on_a_cohort_outside_them(tmp_path):
    """Discovery test subjects of 20-82 y (an adult cohort): Table 1 in the cohort's own 10-y bins; the average,
    CS and gates are judged, the claim about the paper's groups is not testable and says why."""
    evals, held = PAPER
    d = evals[DISC]
    ages = 20 + d.ages * (62 / 23)
    preds = {m: ages + (d.preds[m] - d.ages) * 3 for m in (CNN, LSTM)}
    adult = Evaluation("0-22", "discovery", "0-6", ages, preds, None, 20 + d.train_ages * (62 / 23))
    held2 = {"0-22": G.HeldOut(held["0-22"].where, ages, preds)}
    why = {REP: "no replication cohort", REP_YOUNG: "no replication cohort", "young": "no young training subject"}
    got = judge(tmp_path, ({DISC: adult}, held2), missing=why)
    assert got["discovery_older_groups"]["value"] == "not testable"
    assert got["discovery_older_groups"]["reason"].startswith("the rule needs the paper's age groups 6-10, 11-15")
    assert "own 10-y bins" in got["discovery_older_groups"]["reason"]
    assert got["discovery_average"]["value"] in ("reproduced", "direction only")
    assert got["discovery_cs"]["value"] in ("reproduced", "not reproduced")
    assert got["lstm_trains_faster"]["reason"] == why["young"]
    table = L.paper_table({DISC: adult}, "table1")
    assert not table.attrs["bins"].paper and list(table.attrs["bins"].labels)[0] == "20-30"
    avg = table[(table.model == LSTM) & (table.group == "Average")]
    assert avg["this run MAE"].iloc[0] == pytest.approx(np.mean(np.abs(preds[LSTM] - ages)))  # every subject
    assert avg["paper MAE"].isna().all()


def test_reference_records_and_rule_texts(tmp_path):
    rec = Recorder("03_lstm_rules", "smoke", "synthetic", output_dir=tmp_path)
    evals, _ = PAPER
    table = C.record_reference(rec, evals)
    for key in (DISC, REP, REP_YOUNG):
        ages = evals[key].ages
        assert rec.get(f"reference.mean_prediction.{key}") == pytest.approx(np.mean(np.abs(ages - ages.mean())))
        assert rec.get(f"reference.training_mean_prediction.{key}") == pytest.approx(
            np.mean(np.abs(evals[key].train_ages.mean() - ages)))
    assert len(table) == 3
    assert f"{LEARNED_FRACTION:g} x" in C.rules_text() and f"p < {TRACK_ALPHA:g}" in C.rules_text()
    numbers = G.gate_numbers(PAPER[1], evals)
    rows = C.claims(evals, FAST, "0-6", "cpu", gates=numbers)
    assert all(f"below {LEARNED_FRACTION:g} x" in r.rule for r in rows)


@pytest.mark.parametrize("absent", [(REP, REP_YOUNG), (REP_YOUNG,)])
def test_claims_on_evaluations_the_data_does_not_allow_are_untestable_with_their_reason(tmp_path, absent):
    """No replication cohort (or no young replication evaluation): those claims say why; the others are judged."""
    evals, held = PAPER
    missing = {k: f"why {k} was not run" for k in absent}
    got = judge(tmp_path, ({k: v for k, v in evals.items() if k not in absent}, held), missing=missing)
    for k in KEYS:
        if WHERE[k] in absent:
            assert got[k]["value"] == "not testable" and got[k]["reason"] == missing[WHERE[k]], got[k]
            assert got[k]["rule"] and got[k]["note"]
        else:
            assert got[k]["value"] == "reproduced" and "reason" not in got[k], got[k]
