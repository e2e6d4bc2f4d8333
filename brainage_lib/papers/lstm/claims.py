"""The LSTM paper's claims and the rules that judge them from this run's predictions.

``claims`` decides every claim from the three evaluations (ages and both models'
predictions) and the measured training times, without a ``Recorder``, so its rules can
be tested on made-up predictions; ``record_claims`` records the rows with
``Recorder.claim``. Every rule text is written from the constants the code compares with.

Every claim compares the two models, so it is judged only where both learned age on the
evaluation it rests on (``metrics.verdicts``: test MAE below ``LEARNED_FRACTION`` x the MAE
of predicting that cohort's own mean age); the training-time claim rests on the young
models' evaluation (Table 3, where the paper states the times). A statistic that cannot be
computed (NaN: an empty age bin, identical errors for a Wilcoxon test) makes a claim
not testable; so does an evaluation the data does not allow (no replication cohort, no
training subject in the young range), with its reason.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from brainage_lib.metrics.scores import cs_area, cumulative_score
from brainage_lib.metrics.stats import wilcoxon_p
from brainage_lib.metrics.verdicts import (LEARNED_FRACTION, is_finite, learned, mean_prediction_mae, nan_reason,
                                           not_learned_reason)
from brainage_lib.papers.lstm.evaluation import (CNN3D_NAME, CS_ALPHA_MAX, CS_LEVELS, DISC, LSTM_NAME, MODELS, REP,
                                                 REP_YOUNG, REPLICATION_LABELS, SAME_MAE_TOLERANCE, WILCOXON_LEVEL,
                                                 Evaluation, evaluation_title, lstm_wins_ends, paper_table)
from brainage_lib.run.results import Recorder

__all__ = ["ClaimRow", "both_learned_everywhere", "claims", "record_claims", "record_reference", "rules_text"]

class ClaimRow(NamedTuple):
    """One claim judged: ``outcome`` None or a ``reason`` means not testable."""

    key: str
    claim: str
    paper: str
    outcome: bool | None
    evidence: str
    rule: str
    reason: str | None
    judged_on: str | None = None  # the evaluation the claim was judged on


GATE = (f"judged only when both models learned age on the evaluation: test MAE below {LEARNED_FRACTION:g} x the "
        "MAE of predicting the evaluated cohort's own mean age")


def rules_text() -> str:
    """The rules shared by every claim, as Markdown."""
    return (f"Rules: a claim that one model is better is **reproduced** when this run's MAE points the same way; "
            f"\"much better\" also needs the paired Wilcoxon test at p < {WILCOXON_LEVEL:g}; \"about the same\" means "
            f"average MAEs within {100 * SAME_MAE_TOLERANCE:g} % of the larger; CS curves are compared by their mean "
            f"over alpha in [0, {CS_ALPHA_MAX:g}] y or, for \"every error level\", at the {len(CS_LEVELS)} levels "
            f"{CS_LEVELS[0]:g}, {CS_LEVELS[1]:g}, ..., {CS_LEVELS[-1]:g} y. Every claim compares the two models and "
            f"is **not testable** on an evaluation where either model's test MAE is not below {LEARNED_FRACTION:g} x "
            "the MAE of predicting that cohort's own mean age (it has not learned age there; the best constant "
            "prediction scores exactly that MAE), or where a number the rule needs cannot be computed (an empty age "
            "bin, a Wilcoxon test of identical errors). The training-time claim needs both young models to have "
            "learned age on the replication cohort (Table 3, where the paper states the times).")


def _train_mean_mae(ev: Evaluation) -> float:
    """MAE of predicting the mean age of the models' training subjects for every subject of ``ev``."""
    return float(np.mean(np.abs(ev.train_ages.mean() - ev.ages)))


def _not_learned(ev: Evaluation) -> str | None:
    """Why a comparison of the two models on ``ev`` cannot be judged, or None when both learned age there."""
    return not_learned_reason({n: ev.mae(n) for n in MODELS}, mean_prediction_mae(ev.ages), ev.label)


def record_reference(rec: Recorder, evals: Mapping[str, Evaluation]) -> pd.DataFrame:
    """Record, per evaluation, the MAE of predicting the cohort's own mean age and whether each model learned age.

    The MAE of predicting the training subjects' mean age is recorded beside it, for comparison.
    """
    rows = []
    for ev in evals.values():
        own = rec.record(f"reference.mean_prediction.{ev.key}", mean_prediction_mae(ev.ages), unit="years")
        train = rec.record(f"reference.training_mean_prediction.{ev.key}", _train_mean_mae(ev), unit="years")
        row = {"comparison": ev.label, "MAE predicting the cohort's mean": own,
               "MAE predicting the training mean": train}
        for name in MODELS:
            row[f"MAE {name}"] = ev.mae(name)
            row[f"learned {name}"] = rec.record(f"reference.learned.{ev.key}.{name}", learned(ev.preds[name], ev.ages))
        rows.append(row)
    return pd.DataFrame(rows).set_index("comparison")


def both_learned_everywhere(evals: Mapping[str, Evaluation]) -> bool:
    """Whether both models learned age on every evaluation."""
    return all(learned(ev.preds[n], ev.ages) for ev in evals.values() for n in MODELS)


def _mae(table: pd.DataFrame, model: str, group: str = "Average") -> float:
    """This run's MAE of ``model`` in ``group`` of a group table (NaN for an empty group)."""
    return float(table[(table.model == model) & (table.group == group)]["this run MAE"].iloc[0])


def _ratio(num: float, den: float) -> float:
    """``num / den``; NaN unless both are finite and ``den > 0``."""
    return float(num) / float(den) if is_finite(num) and is_finite(den) and den > 0 else float("nan")


def _f(x: float, spec: str = ".2f") -> str:
    return format(x, spec) if is_finite(x) else "NaN"


def _row(key: str, claim: str, paper: str, outcome: bool | None, evidence: str, rule: str,
         where: Evaluation, values: Mapping[str, float]) -> ClaimRow:
    """A judged claim: not testable when a model did not learn on ``where`` or a number in ``values`` is NaN."""
    reason = _not_learned(where) or nan_reason(values)
    if reason is None and outcome is None:
        reason = "an age bin the rule needs has no subject"
    return ClaimRow(key, claim, paper, None if reason else outcome, evidence, rule, reason)


Judged = dict[str, tuple[bool | None, str, dict[str, float]]]  # claim key -> (outcome, evidence, values the rule needs)


def _texts(young: str) -> list[tuple[str, str, str, str, str]]:
    """(key, claim, paper, rule, evaluation key it rests on) of every claim, in the order they are recorded."""
    first, last, middle = REPLICATION_LABELS[0], REPLICATION_LABELS[-1], REPLICATION_LABELS[1:-1]
    return [
        ("discovery_average", "Discovery: LSTM has the lower average MAE", "0.96 vs 1.07 y",
         f"LSTM's average discovery-test MAE below 3D's; {GATE}", DISC),
        ("discovery_older_groups", "Discovery: LSTM is better in 6-10, 11-15 and 16-22 y",
         "0.92/1.02/1.79 vs 1.12/1.19/1.85 y", f"LSTM's MAE below 3D's in all three groups; {GATE}", DISC),
        ("discovery_cs", "Discovery: LSTM better than 3D in terms of CS", "Fig. 4",
         (f"LSTM's mean CS over alpha in [0, {CS_ALPHA_MAX:g}] y (area under the CS curve / {CS_ALPHA_MAX:g} y) "
          f"above 3D's; {GATE}"), DISC),
        ("replication_much_better", "Replication (trained 0-22): LSTM much better", "1.14 vs 2.64 y",
         f"LSTM's replication MAE below 3D's and paired Wilcoxon p < {WILCOXON_LEVEL:g}; {GATE}", REP),
        ("replication_cs_curve", "Replication (trained 0-22): LSTM's CS curve at or above 3D's at every alpha",
         "Fig. 5", (f"LSTM's CS at or above 3D's at all {len(CS_LEVELS)} levels alpha = {CS_LEVELS[0]:g}, "
                    f"{CS_LEVELS[1]:g}, ..., {CS_LEVELS[-1]:g} y; {GATE}"), REP),
        ("replication_young_same", f"Replication (trained {young}): average MAEs about the same", "0.78 vs 0.79 y",
         f"the two average MAEs within {100 * SAME_MAE_TOLERANCE:g} % of the larger; {GATE}", REP_YOUNG),
        ("replication_young_ends",
         f"Replication (trained {young}): LSTM more accurate at both ends of the age range, 3D in the middle",
         "0-1 y 0.24 vs 0.66, 5-6 y 0.92 vs 2.10; 3D lower in 1-2, 2-3, 3-4 y",
         (f"LSTM's MAE below 3D's in the {first} and {last} y bins and 3D's below LSTM's in at least one of "
          f"{', '.join(middle)} y; not testable if the {first} or {last} y bin or every middle bin is empty; "
          f"{GATE}"), REP_YOUNG),
        ("lstm_trains_faster", f"LSTM trains faster than 3D (trained {young})", "3 h vs 7 h (K80)",
         (f"3D's measured wall time above LSTM's for the trainings on {young} y; judged only when both models "
          f"trained on {young} y learned age on the replication cohort (test MAE below {LEARNED_FRACTION:g} x "
          "the MAE of predicting its own mean age)"), REP_YOUNG),
    ]


def _discovery(d: Evaluation, t1: pd.DataFrame) -> Judged:
    """The discovery claims from the discovery test evaluation and Table 1."""
    older = ("6-10", "11-15", "16-22")
    g1 = {(n, g): _mae(t1, n, g) for n in MODELS for g in older}
    better = [g for g in older if g1[(LSTM_NAME, g)] < g1[(CNN3D_NAME, g)]]
    avg = {n: _mae(t1, n) for n in MODELS}
    area = {n: cs_area(d.errors(n), CS_ALPHA_MAX) for n in MODELS}
    return {"discovery_average": (avg[LSTM_NAME] < avg[CNN3D_NAME], f"{_f(avg[LSTM_NAME])} vs {_f(avg[CNN3D_NAME])} y",
                                  {f"{n} average MAE over the test subjects aged 0-22 y": avg[n] for n in MODELS}),
            "discovery_older_groups": (len(better) == 3, f"LSTM better in {', '.join(better) or 'none'}",
                                       {f"{n} MAE in {g} y": v for (n, g), v in g1.items()}),
            "discovery_cs": (area[LSTM_NAME] > area[CNN3D_NAME], f"mean CS over [0, {CS_ALPHA_MAX:g}] y: "
                             f"{_f(area[LSTM_NAME], '.3f')} vs {_f(area[CNN3D_NAME], '.3f')}",
                             {f"{n} mean CS": area[n] for n in MODELS})}


def _replication(r: Evaluation, t2: pd.DataFrame) -> Judged:
    """The claims on the replication cohort of the models trained on 0-22 y, from their evaluation and Table 2."""
    avg = {n: _mae(t2, n) for n in MODELS}
    cs_l, cs_3 = (cumulative_score(r.errors(n), CS_LEVELS) for n in (LSTM_NAME, CNN3D_NAME))
    p = wilcoxon_p(r.errors(LSTM_NAME), r.errors(CNN3D_NAME))
    maes = {f"{n} MAE": avg[n] for n in MODELS}
    return {"replication_much_better": (avg[LSTM_NAME] < avg[CNN3D_NAME] and p < WILCOXON_LEVEL,
                                        f"{_f(avg[LSTM_NAME])} vs {_f(avg[CNN3D_NAME])} y, Wilcoxon p = {_f(p, '.3g')}",
                                        {**maes, "Wilcoxon p": p}),
            "replication_cs_curve": (bool(np.all(cs_l >= cs_3)),
                                     (f"LSTM at or above at {int(np.sum(cs_l >= cs_3))}/{len(CS_LEVELS)} alpha levels "
                                      f"({CS_LEVELS[0]:g}-{CS_ALPHA_MAX:g} y)"), maes)}


def _young(t3: pd.DataFrame, train_time_s: Mapping[tuple[str, str], float], young: str, hardware: str) -> Judged:
    """The claims on the replication cohort of the models trained on the young range (Table 3), and training time."""
    a_l, a_3 = _mae(t3, LSTM_NAME), _mae(t3, CNN3D_NAME)
    bins = {n: [_mae(t3, n, g) for g in REPLICATION_LABELS] for n in MODELS}
    first, last = REPLICATION_LABELS[0], REPLICATION_LABELS[-1]
    ratio = {g: _ratio(train_time_s[(g, CNN3D_NAME)], train_time_s[(g, LSTM_NAME)]) for g in ("0-22", "young")}
    return {"replication_young_same": (abs(a_l - a_3) <= SAME_MAE_TOLERANCE * max(a_l, a_3),
                                       f"{_f(a_l)} vs {_f(a_3)} y", {f"{n} MAE": _mae(t3, n) for n in MODELS}),
            "replication_young_ends": (lstm_wins_ends(bins[LSTM_NAME], bins[CNN3D_NAME]),
                                       "LSTM vs 3D MAE per year: " + ", ".join(
                                           f"{g} {_f(a)} vs {_f(b)}"
                                           for g, a, b in zip(REPLICATION_LABELS, bins[LSTM_NAME], bins[CNN3D_NAME])),
                                       {f"{n} MAE in {g} y": bins[n][i] for n in MODELS
                                        for i, g in ((0, first), (-1, last))}),
            "lstm_trains_faster": (ratio["young"] > 1,
                                   (f"3D/LSTM wall-time ratio {_f(ratio['young'])} trained {young} y "
                                    f"({_f(ratio['0-22'])} trained 0-22 y) on {hardware}"),
                                   {"3D/LSTM wall-time ratio": ratio["young"]})}


def claims(evals: Mapping[str, Evaluation], train_time_s: Mapping[tuple[str, str], float], young: str,
           hardware: str, missing: Mapping[str, str] | None = None) -> list[ClaimRow]:
    """Every claim of the paper judged from the evaluations ``DISC``, ``REP``, ``REP_YOUNG``.

    A claim whose evaluation is not in ``evals`` is not testable, with the reason given in ``missing``.

    Parameters
    ----------
    evals
        The evaluations this data allows, by key (``training.evaluations``).
    train_time_s
        Wall time of each training, ``{(regime, model name): seconds}``.
    young
        Label of the young training range, e.g. ``"0-6"``.
    hardware
        Where the trainings ran, for the training-time evidence (e.g. ``"cpu"``).
    missing
        Why each evaluation absent from ``evals`` is not testable (``LSTMData.not_testable``).
    """
    judged: Judged = {}
    if DISC in evals:
        judged.update(_discovery(evals[DISC], paper_table(evals, "table1")))
    if REP in evals:
        judged.update(_replication(evals[REP], paper_table(evals, "table2")))
    if REP_YOUNG in evals:
        judged.update(_young(paper_table(evals, "table3"), train_time_s, young, hardware))
    rows = []
    for key, claim, paper, rule, where in _texts(young):
        if where not in evals:
            reason = (missing or {}).get(where, f"no {where} evaluation")
            rows.append(ClaimRow(key, claim, paper, None, f"not evaluated ({evaluation_title(where, young)})", rule,
                                 reason))
            continue
        outcome, evidence, values = judged[key]
        row = _row(key, claim, paper, outcome, evidence, rule, evals[where], values)
        rows.append(row._replace(judged_on=evaluation_title(where, young)))
    return rows


def record_claims(rec: Recorder, rows: list[ClaimRow]) -> list[str]:
    """Record every claim with ``Recorder.claim``; returns one Markdown line per claim."""
    lines = []
    for r in rows:
        word = rec.claim(r.key, r.claim, r.outcome, r.evidence, r.rule, paper=r.paper, untestable_because=r.reason,
                         judged_on=r.judged_on)
        lines.append(f"- **{word}**: {r.claim} (paper {r.paper}) — this run: {r.evidence}"
                     + (f"; {r.reason}." if r.reason else "."))
    return lines
