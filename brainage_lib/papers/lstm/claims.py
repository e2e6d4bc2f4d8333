"""The LSTM paper's claims and the rules that judge them from this run's predictions.

``claims`` decides every claim from the three evaluations (ages and both models'
predictions) and the measured training times, without a ``Recorder``, so its rules can
be tested on made-up predictions; ``record_claims`` records the rows with
``Recorder.claim``. Every rule text is written from the constants the code compares with.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import numpy as np
import pandas as pd

from brainage_lib.metrics.scores import cs_area, cumulative_score
from brainage_lib.metrics.stats import wilcoxon_paired
from brainage_lib.papers.lstm.evaluation import (
    BEATS_MEAN_FACTOR,
    CNN3D_NAME,
    CS_ALPHA_MAX,
    CS_LEVELS,
    DISC,
    LSTM_NAME,
    MODELS,
    REP,
    REP_YOUNG,
    REPLICATION_LABELS,
    SAME_MAE_TOLERANCE,
    WILCOXON_LEVEL,
    Evaluation,
    lstm_wins_ends,
    paper_table,
)
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


def rules_text() -> str:
    """The rules shared by every claim, as Markdown."""
    return (f"Rules: a claim that one model is better is **reproduced** when this run's MAE points the same way; "
            f"\"much better\" also needs the paired Wilcoxon test at p < {WILCOXON_LEVEL:g}; \"about the same\" means "
            f"average MAEs within {100 * SAME_MAE_TOLERANCE:g} % of the larger; CS curves are compared by their mean "
            f"over alpha in [0, {CS_ALPHA_MAX:g}] y or, for \"every error level\", at the {len(CS_LEVELS)} levels "
            f"{CS_LEVELS[0]:g}, {CS_LEVELS[1]:g}, ..., {CS_LEVELS[-1]:g} y. A comparison is **not testable** on an "
            f"evaluation where neither model's MAE is below {BEATS_MEAN_FACTOR:g} x the MAE of predicting the "
            "training mean (neither has learned age there).")


def _train_mean_mae(ev: Evaluation) -> float:
    """MAE of predicting the mean age of the models' training subjects for every subject of ``ev``."""
    return float(np.mean(np.abs(ev.train_ages.mean() - ev.ages)))


def _beats_mean(ev: Evaluation, name: str) -> bool:
    return ev.mae(name) < BEATS_MEAN_FACTOR * _train_mean_mae(ev)


def record_reference(rec: Recorder, evals: Mapping[str, Evaluation]) -> pd.DataFrame:
    """Record, per evaluation, the MAE of predicting the training mean and whether each model beats it."""
    rows = []
    for ev in evals.values():
        mean_mae = rec.record(f"reference.mean_prediction.{ev.key}", _train_mean_mae(ev), unit="years")
        row = {"comparison": ev.label, "MAE predicting the mean": mean_mae}
        for name in MODELS:
            row[f"MAE {name}"] = ev.mae(name)
            rec.record(f"reference.beats_mean.{ev.key}.{name}", _beats_mean(ev, name))
        rows.append(row)
    return pd.DataFrame(rows).set_index("comparison")


def both_learned_everywhere(evals: Mapping[str, Evaluation]) -> bool:
    """Whether both models beat the training-mean reference on every evaluation."""
    return all(_beats_mean(ev, n) for ev in evals.values() for n in MODELS)


def _no_learning(ev: Evaluation) -> str | None:
    """Why a comparison on ``ev`` cannot be judged, or None."""
    if any(_beats_mean(ev, n) for n in MODELS):
        return None
    return (f"neither model's MAE is below {BEATS_MEAN_FACTOR:g} x that of predicting the training mean on "
            f"{ev.label}")


def _mae(table: pd.DataFrame, model: str, group: str = "Average") -> float:
    """This run's MAE of ``model`` in ``group`` of a group table (NaN for an empty group)."""
    return float(table[(table.model == model) & (table.group == group)]["this run MAE"].iloc[0])


def claims(evals: Mapping[str, Evaluation], train_time_s: Mapping[tuple[str, str], float], young: str,
           hardware: str) -> list[ClaimRow]:
    """Every claim of the paper judged from the evaluations ``DISC``, ``REP``, ``REP_YOUNG``.

    Parameters
    ----------
    evals
        The three evaluations by key (``training.evaluations``).
    train_time_s
        Wall time of each training, ``{(regime, model name): seconds}``.
    young
        Label of the young training range, e.g. ``"0-6"``.
    hardware
        Where the trainings ran, for the training-time evidence (e.g. ``"cpu"``).
    """
    LSTM, CNN = LSTM_NAME, CNN3D_NAME
    t1, t2, t3 = (paper_table(evals, t) for t in ("table1", "table2", "table3"))
    rep = evals[REP]
    cs_l, cs_3 = (cumulative_score(rep.errors(n), CS_LEVELS) for n in (LSTM, CNN))
    area = {n: cs_area(evals[DISC].errors(n), CS_ALPHA_MAX) for n in MODELS}
    better = [g for g in ("6-10", "11-15", "16-22") if _mae(t1, LSTM, g) < _mae(t1, CNN, g)]
    _, p_rep = wilcoxon_paired(rep.errors(LSTM), rep.errors(CNN))
    a_l, a_3 = _mae(t3, LSTM), _mae(t3, CNN)
    bins_l, bins_3 = [_mae(t3, LSTM, g) for g in REPLICATION_LABELS], [_mae(t3, CNN, g) for g in REPLICATION_LABELS]
    first, last, middle = REPLICATION_LABELS[0], REPLICATION_LABELS[-1], REPLICATION_LABELS[1:-1]
    ratio = {r: train_time_s[(r, CNN)] / train_time_s[(r, LSTM)] for r in ("0-22", "young")}
    rows = [  # key, claim, paper, outcome (None: not testable), evidence, rule, evaluation
        ("discovery_average", "Discovery: LSTM has the lower average MAE", "0.96 vs 1.07 y",
         _mae(t1, LSTM) < _mae(t1, CNN), f"{_mae(t1, LSTM):.2f} vs {_mae(t1, CNN):.2f} y",
         "LSTM's average discovery-test MAE below 3D's", DISC),
        ("discovery_older_groups", "Discovery: LSTM is better in 6-10, 11-15 and 16-22 y",
         "0.92/1.02/1.79 vs 1.12/1.19/1.85 y", len(better) == 3, f"LSTM better in {', '.join(better) or 'none'}",
         "LSTM's MAE below 3D's in all three groups", DISC),
        ("discovery_cs", "Discovery: LSTM better than 3D in terms of CS", "Fig. 4",
         area[LSTM] > area[CNN], f"mean CS over [0, {CS_ALPHA_MAX:g}] y: {area[LSTM]:.3f} vs {area[CNN]:.3f}",
         f"LSTM's mean CS over alpha in [0, {CS_ALPHA_MAX:g}] y (area under the CS curve / {CS_ALPHA_MAX:g} y) "
         "above 3D's", DISC),
        ("replication_much_better", "Replication (trained 0-22): LSTM much better", "1.14 vs 2.64 y",
         _mae(t2, LSTM) < _mae(t2, CNN) and p_rep < WILCOXON_LEVEL,
         f"{_mae(t2, LSTM):.2f} vs {_mae(t2, CNN):.2f} y, Wilcoxon p = {p_rep:.3g}",
         f"LSTM's replication MAE below 3D's and paired Wilcoxon p < {WILCOXON_LEVEL:g}", REP),
        ("replication_cs_curve", "Replication (trained 0-22): LSTM's CS curve at or above 3D's at every alpha",
         "Fig. 5", bool(np.all(cs_l >= cs_3)),
         f"LSTM at or above at {int(np.sum(cs_l >= cs_3))}/{len(CS_LEVELS)} alpha levels "
         f"({CS_LEVELS[0]:g}-{CS_ALPHA_MAX:g} y)",
         f"LSTM's CS at or above 3D's at all {len(CS_LEVELS)} levels alpha = {CS_LEVELS[0]:g}, {CS_LEVELS[1]:g}, "
         f"..., {CS_LEVELS[-1]:g} y", REP),
        ("replication_young_same", f"Replication (trained {young}): average MAEs about the same",
         "0.78 vs 0.79 y", abs(a_l - a_3) <= SAME_MAE_TOLERANCE * max(a_l, a_3), f"{a_l:.2f} vs {a_3:.2f} y",
         f"the two average MAEs within {100 * SAME_MAE_TOLERANCE:g} % of the larger", REP_YOUNG),
        ("replication_young_ends", f"Replication (trained {young}): LSTM more accurate at both ends of the age "
         "range, 3D in the middle", "0-1 y 0.24 vs 0.66, 5-6 y 0.92 vs 2.10; 3D lower in 1-2, 2-3, 3-4 y",
         lstm_wins_ends(bins_l, bins_3), "LSTM vs 3D MAE per year: " + ", ".join(
             f"{g} {x:.2f} vs {y:.2f}" for g, x, y in zip(REPLICATION_LABELS, bins_l, bins_3)),
         f"LSTM's MAE below 3D's in the {first} and {last} y bins and 3D's below LSTM's in at least one of "
         f"{', '.join(middle)} y; not testable if the {first} or {last} y bin is empty", REP_YOUNG),
        ("lstm_trains_faster", f"LSTM trains faster than 3D (trained {young})", "3 h vs 7 h (K80)", ratio["young"] > 1,
         f"3D/LSTM wall-time ratio {ratio['young']:.2f} trained {young} y ({ratio['0-22']:.2f} trained 0-22 y) "
         f"on {hardware}", f"3D's measured wall time above LSTM's for the trainings on {young} y", None),
    ]
    out = []
    for key, text, paper, ok, evidence, rule, where in rows:
        reason = _no_learning(evals[where]) if where else None
        if ok is None:
            reason = reason or "an age bin the rule needs has no subject"
        out.append(ClaimRow(key, text, paper, ok, evidence, rule, reason))
    return out


def record_claims(rec: Recorder, rows: list[ClaimRow]) -> list[str]:
    """Record every claim with ``Recorder.claim``; returns one Markdown line per claim."""
    lines = []
    for r in rows:
        word = rec.claim(r.key, r.claim, r.outcome, r.evidence, r.rule, paper=r.paper, untestable_because=r.reason)
        lines.append(f"- **{word}**: {r.claim} (paper {r.paper}) — this run: {r.evidence}"
                     + (f"; {r.reason}." if r.reason else "."))
    return lines
