"""The LSTM paper's claims and the rules that judge them from this run's predictions.

``claims`` decides every claim from the three evaluations (ages and both models'
predictions), the gates' numbers (``gates.gate_numbers``), the magnitudes
(``claim_magnitudes``, paired bootstrap intervals computed and recorded by the notebook) and
the measured training times, without a ``Recorder``, so its rules can be tested on made-up
predictions and on the paper's own numbers; it returns ``metrics.verdicts.Claim`` rows, which
``Recorder.record_claims`` records and gives their verdict words (``metrics.verdicts.decide``). Every rule
text is written from the constants the code compares with.

Every claim compares the two models, so it is judged only where both passed their gates
(``gates``): both **learned** age on held-out subjects of their own training distribution
(the discovery test subjects; for the young models those of the young range) and, for a
claim on the replication cohort (a shifted cohort), both models' predictions there **track
age**. An offset under the shift does not gate a model out: the replication claims compare
the errors with their offsets, as the paper's Table 2 does. A statistic that cannot be
computed (NaN: an empty age bin, identical errors for a Wilcoxon test) makes a claim not
testable; so does an evaluation the data does not allow (no replication cohort, no training
subject in the young range), and a claim about the paper's age groups on a cohort whose ages
lie outside them, each with its reason.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from brainage_lib.metrics.scores import cs_area, cumulative_score
from brainage_lib.metrics.stats import wilcoxon_p
from brainage_lib.metrics.verdicts import (CI_LEVEL, LEARNED_FRACTION, TRACK_ALPHA, Claim, Magnitude, is_finite,
                                           mae_difference, magnitude, mean_prediction_mae, nan_reason)
from brainage_lib.papers.lstm import gates as G
from brainage_lib.papers.lstm.evaluation import (CNN3D_NAME, CS_ALPHA_MAX, CS_LEVELS, DISC, DISCOVERY_LABELS,
                                                 LSTM_NAME, MODELS, PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3, REP,
                                                 REP_YOUNG, REPLICATION_LABELS, SAME_MAE_TOLERANCE, TABLES,
                                                 WILCOXON_LEVEL, Bins, Evaluation, evaluation_title, lstm_wins_ends,
                                                 paper_table, table_bins)
from brainage_lib.run.results import Recorder

__all__ = ["claim_magnitudes", "claims", "record_reference", "rules_text"]


GATE = (f"judged only when both models learned age (MAE on their held-out discovery subjects below "
        f"{LEARNED_FRACTION:g} x the MAE of predicting those subjects' own mean age)")
TRACK = f"and both models' replication predictions track age (Pearson r > 0 with p < {TRACK_ALPHA:g})"
OFFSET = ("judged on the errors as they are, any offset the shift brings included (a model that tracks age but "
          "misses the cohort by years loses to one that does not)")
OLDER = ("6-10", "11-15", "16-22")  # the Table 1 groups of "LSTM is better in 6-10, 11-15 and 16-22 y"


def _paper_diff(table: Mapping[str, list[float]], labels: Sequence[str], group: str) -> float:
    """The paper's MAE(LSTM) - MAE(3D) in ``group`` (or "Average") of one of its tables."""
    i = list(labels).index(group) if group != "Average" else len(labels)
    return round(table[LSTM_NAME][i] - table[CNN3D_NAME][i], 2)


def _magnitude_text(quantity: str, where: str) -> str:
    return (f"magnitude: the paper's {quantity} against this run's {100 * CI_LEVEL:g} % paired bootstrap interval "
            f"over the {where} (reproduced needs it inside, in the paper profile)")


def rules_text() -> str:
    """The rules shared by every claim, as Markdown."""
    return (f"Rules: a claim that one model is better is **reproduced** when this run's MAE points the same way and, "
            f"in the paper profile, the paper's difference MAE(LSTM) - MAE(3D) lies inside this run's "
            f"{100 * CI_LEVEL:g} % paired bootstrap interval over subjects (else **direction only**); "
            f"\"much better\" also needs the paired Wilcoxon test at p < {WILCOXON_LEVEL:g}; \"about the same\" means "
            f"average MAEs within {100 * SAME_MAE_TOLERANCE:g} % of the larger; CS curves are compared by their mean "
            f"over alpha in [0, {CS_ALPHA_MAX:g}] y or, for \"every error level\", at the {len(CS_LEVELS)} levels "
            f"{CS_LEVELS[0]:g}, {CS_LEVELS[1]:g}, ..., {CS_LEVELS[-1]:g} y. Every claim compares the two models and "
            f"is **not testable** where either model did not learn age: its MAE on held-out subjects of its own "
            f"training distribution (the discovery test subjects; for the models trained on the young range, those of "
            f"that range) not below {LEARNED_FRACTION:g} x the MAE of predicting those subjects' own mean age. On the "
            f"replication cohort, a shifted cohort, both models must also track age (Pearson r > 0 with "
            f"p < {TRACK_ALPHA:g}); a model that tracks age but carries an offset there is judged with its offset. "
            "A claim is also not testable where a number the rule needs cannot be computed (an empty age bin, a "
            "Wilcoxon test of identical errors) and, for a claim about the paper's age groups, where the evaluated "
            "ages lie outside them. The training-time claim needs both models trained on the young range to have "
            "learned age; its paper number (3 h vs 7 h on a K80) is a wall time on other hardware, with no "
            "interval over subjects, so it is judged on its direction.")


def _train_mean_mae(ev: Evaluation) -> float:
    """MAE of predicting the mean age of the models' training subjects for every subject of ``ev``."""
    return float(np.mean(np.abs(ev.train_ages.mean() - ev.ages)))


def record_reference(rec: Recorder, evals: Mapping[str, Evaluation]) -> pd.DataFrame:
    """Record, per evaluation, the MAE of predicting the evaluated cohort's own mean age and the training
    subjects' mean age, beside both models' MAEs (context for the gates; the learned gate itself is decided on
    held-out discovery subjects)."""
    rows = []
    for ev in evals.values():
        own = rec.record(f"reference.mean_prediction.{ev.key}", mean_prediction_mae(ev.ages), unit="years")
        train = rec.record(f"reference.training_mean_prediction.{ev.key}", _train_mean_mae(ev), unit="years")
        rows.append({"evaluation": ev.title, "MAE predicting the cohort's mean": own,
                     "MAE predicting the training mean": train, **{f"MAE {n}": ev.mae(n) for n in MODELS}})
    return pd.DataFrame(rows).set_index("evaluation")


def _mae(table: pd.DataFrame, model: str, group: str = "Average") -> float:
    """This run's MAE of ``model`` in ``group`` of a group table (NaN for an empty or absent group)."""
    v = table[(table.model == model) & (table.group == group)]["this run MAE"]
    return float(v.iloc[0]) if len(v) else float("nan")


def _ratio(num: float, den: float) -> float:
    """``num / den``; NaN unless both are finite and ``den > 0``."""
    return float(num) / float(den) if is_finite(num) and is_finite(den) and den > 0 else float("nan")


def _f(x: float, spec: str = ".2f") -> str:
    return format(x, spec) if is_finite(x) else "NaN"


class Judged(NamedTuple):
    outcome: bool | None
    evidence: str
    values: dict[str, float]  # the numbers the rule needs (a NaN makes the claim not testable)
    reason: str | None = None  # why the data cannot decide it (e.g. the paper's age groups do not apply)


def _texts(young: str) -> list[tuple[str, str, str, str, str]]:
    """(key, claim, paper, rule, what it rests on) of every claim, in the order they are recorded."""
    first, last, middle = REPLICATION_LABELS[0], REPLICATION_LABELS[-1], REPLICATION_LABELS[1:-1]
    d1, d2, d3 = (_paper_diff(PAPER_TABLE1, DISCOVERY_LABELS, "Average"),
                  _paper_diff(PAPER_TABLE2, REPLICATION_LABELS, "Average"),
                  _paper_diff(PAPER_TABLE3, REPLICATION_LABELS, "Average"))
    older = ", ".join(f"{g} y {_paper_diff(PAPER_TABLE1, DISCOVERY_LABELS, g):+.2f}" for g in OLDER)
    bins3 = ", ".join(f"{g} y {_paper_diff(PAPER_TABLE3, REPLICATION_LABELS, g):+.2f}" for g in REPLICATION_LABELS)
    return [
        ("discovery_average", "Discovery: LSTM has the lower average MAE", "0.96 vs 1.07 y",
         (f"LSTM's average discovery-test MAE below 3D's; "
          f"{_magnitude_text(f'MAE(LSTM) - MAE(3D) = {d1:+.2f} y', 'discovery test subjects')}; {GATE}"), DISC),
        ("discovery_older_groups", "Discovery: LSTM is better in 6-10, 11-15 and 16-22 y",
         "0.92/1.02/1.79 vs 1.12/1.19/1.85 y",
         (f"LSTM's MAE below 3D's in all three of the paper's groups; "
          f"{_magnitude_text(f'MAE(LSTM) - MAE(3D) per group ({older})', 'test subjects of each group')}; "
          f"not testable where the discovery test ages lie outside the paper's 0-22 y groups; {GATE}"), DISC),
        ("discovery_cs", "Discovery: LSTM better than 3D in terms of CS", "Fig. 4",
         (f"LSTM's mean CS over alpha in [0, {CS_ALPHA_MAX:g}] y (area under the CS curve / {CS_ALPHA_MAX:g} y) "
          f"above 3D's; {GATE}"), DISC),
        ("replication_much_better", "Replication (trained 0-22): LSTM much better", "1.14 vs 2.64 y",
         (f"LSTM's replication MAE below 3D's and paired Wilcoxon p < {WILCOXON_LEVEL:g}, {OFFSET}; "
          f"{_magnitude_text(f'MAE(LSTM) - MAE(3D) = {d2:+.2f} y', 'replication subjects')}; "
          f"{GATE} {TRACK}"), REP),
        ("replication_cs_curve", "Replication (trained 0-22): LSTM's CS curve at or above 3D's at every alpha",
         "Fig. 5", (f"LSTM's CS at or above 3D's at all {len(CS_LEVELS)} levels alpha = {CS_LEVELS[0]:g}, "
                    f"{CS_LEVELS[1]:g}, ..., {CS_LEVELS[-1]:g} y and above it at one level at least (two curves "
                    f"equal everywhere, e.g. both 0 when both models miss by more than {CS_ALPHA_MAX:g} y, are not "
                    f"\"better\"), {OFFSET}; {GATE} {TRACK}"), REP),
        ("replication_young_same", f"Replication (trained {young}): average MAEs about the same", "0.78 vs 0.79 y",
         (f"the two average MAEs within {100 * SAME_MAE_TOLERANCE:g} % of the larger; "
          f"{_magnitude_text(f'MAE(LSTM) - MAE(3D) = {d3:+.2f} y', 'replication subjects')}; {GATE} {TRACK}"),
         REP_YOUNG),
        ("replication_young_ends",
         f"Replication (trained {young}): LSTM more accurate at both ends of the age range, 3D in the middle",
         "0-1 y 0.24 vs 0.66, 5-6 y 0.92 vs 2.10; 3D lower in 1-2, 2-3, 3-4 y",
         (f"LSTM's MAE below 3D's in the {first} and {last} y bins and 3D's below LSTM's in a strict majority of the "
          f"{len(middle)} middle bins {', '.join(middle)} y (the paper's Table 3: 3 of 4; 4-5 y goes to LSTM); "
          f"{_magnitude_text(f'MAE(LSTM) - MAE(3D) per year ({bins3})', 'replication subjects of each year')}; "
          f"not testable if a year bin is empty or the replication ages lie outside the paper's 0-6 y; "
          f"{GATE} {TRACK}"), REP_YOUNG),
        ("lstm_trains_faster", f"LSTM trains faster than 3D (trained {young})", "3 h vs 7 h (K80)",
         (f"3D's measured wall time above LSTM's for the trainings on {young} y; judged only when both models "
          f"trained on {young} y learned age (MAE on their held-out discovery subjects of that range below "
          f"{LEARNED_FRACTION:g} x the MAE of predicting those subjects' own mean age); a wall-time ratio on other "
          "hardware has no interval over subjects, so no magnitude"), "young"),
    ]


def _bins_reason(bins: Bins, groups: Sequence[str]) -> str | None:
    if bins.paper:
        return None
    return f"the rule needs the paper's age groups {', '.join(groups)} y: {bins.why}"


def _discovery(d: Evaluation, t1: pd.DataFrame) -> dict[str, Judged]:
    """The discovery claims from the discovery test evaluation and Table 1."""
    bins: Bins = t1.attrs["bins"]
    g1 = {(n, g): _mae(t1, n, g) for n in MODELS for g in OLDER}
    better = [g for g in OLDER if g1[(LSTM_NAME, g)] < g1[(CNN3D_NAME, g)]]
    avg = {n: _mae(t1, n) for n in MODELS}
    area = {n: cs_area(d.errors(n), CS_ALPHA_MAX) for n in MODELS}
    older_reason = _bins_reason(bins, OLDER)
    older_values = {} if older_reason else {f"{n} MAE in {g} y": v for (n, g), v in g1.items()}
    return {"discovery_average": Judged(avg[LSTM_NAME] < avg[CNN3D_NAME],
                                        f"{_f(avg[LSTM_NAME])} vs {_f(avg[CNN3D_NAME])} y",
                                        {f"{n} average MAE over the discovery test subjects": avg[n] for n in MODELS}),
            "discovery_older_groups": Judged(None if older_reason else len(better) == 3,
                                             f"LSTM better in {', '.join(better) or 'none'}" if bins.paper else
                                             f"not in the paper's groups ({', '.join(bins.labels)} y)",
                                             older_values, older_reason),
            "discovery_cs": Judged(area[LSTM_NAME] > area[CNN3D_NAME], f"mean CS over [0, {CS_ALPHA_MAX:g}] y: "
                                   f"{_f(area[LSTM_NAME], '.3f')} vs {_f(area[CNN3D_NAME], '.3f')}",
                                   {f"{n} mean CS": area[n] for n in MODELS})}


def _offsets(ev: Evaluation) -> str:
    return "mean error " + " vs ".join(f"{float(np.mean(ev.preds[n] - ev.ages)):+.2f}" for n in (LSTM_NAME, CNN3D_NAME))


def _replication(r: Evaluation, t2: pd.DataFrame) -> dict[str, Judged]:
    """The claims on the replication cohort of the models trained on 0-22 y, from their evaluation and Table 2."""
    avg = {n: _mae(t2, n) for n in MODELS}
    cs_l, cs_3 = (cumulative_score(r.errors(n), CS_LEVELS) for n in (LSTM_NAME, CNN3D_NAME))
    p = wilcoxon_p(r.errors(LSTM_NAME), r.errors(CNN3D_NAME))
    maes = {f"{n} MAE": avg[n] for n in MODELS}
    at_or_above, above = int(np.sum(cs_l >= cs_3)), int(np.sum(cs_l > cs_3))
    return {"replication_much_better": Judged(avg[LSTM_NAME] < avg[CNN3D_NAME] and p < WILCOXON_LEVEL,
                                              f"{_f(avg[LSTM_NAME])} vs {_f(avg[CNN3D_NAME])} y ({_offsets(r)} y), "
                                              f"Wilcoxon p = {_f(p, '.3g')}", {**maes, "Wilcoxon p": p}),
            "replication_cs_curve": Judged(bool(at_or_above == len(CS_LEVELS) and above > 0),
                                           (f"LSTM at or above at {at_or_above}/{len(CS_LEVELS)} alpha levels "
                                            f"({CS_LEVELS[0]:g}-{CS_ALPHA_MAX:g} y), above at {above} "
                                            f"(CS at {CS_ALPHA_MAX:g} y {cs_l[-1]:.2f} vs {cs_3[-1]:.2f}; "
                                            f"{_offsets(r)} y)"), maes)}


def _young(t3: pd.DataFrame) -> dict[str, Judged]:
    """The claims on the replication cohort of the models trained on the young range (Table 3)."""
    bins: Bins = t3.attrs["bins"]
    a_l, a_3 = _mae(t3, LSTM_NAME), _mae(t3, CNN3D_NAME)
    out = {"replication_young_same": Judged(abs(a_l - a_3) <= SAME_MAE_TOLERANCE * max(a_l, a_3),
                                            f"{_f(a_l)} vs {_f(a_3)} y", {f"{n} MAE": _mae(t3, n) for n in MODELS})}
    why = _bins_reason(bins, REPLICATION_LABELS)
    if why:
        out["replication_young_ends"] = Judged(None, f"not in the paper's year bins ({', '.join(bins.labels)} y)", {},
                                               why)
        return out
    per = {n: [_mae(t3, n, g) for g in REPLICATION_LABELS] for n in MODELS}
    middle = sum(c < l_ for l_, c in zip(per[LSTM_NAME][1:-1], per[CNN3D_NAME][1:-1]))
    out["replication_young_ends"] = Judged(
        lstm_wins_ends(per[LSTM_NAME], per[CNN3D_NAME]),
        "LSTM vs 3D MAE per year: " + ", ".join(f"{g} {_f(a)} vs {_f(b)}" for g, a, b in
                                                zip(REPLICATION_LABELS, per[LSTM_NAME], per[CNN3D_NAME]))
        + f"; 3D lower in {middle} of {len(REPLICATION_LABELS) - 2} middle bins",
        {f"{n} MAE in {g} y": per[n][i] for n in MODELS for i, g in enumerate(REPLICATION_LABELS)})
    return out


def _times(train_time_s: Mapping[tuple[str, str], float], young: str, hardware: str) -> dict[str, Judged]:
    ratio = {g: _ratio(train_time_s.get((g, CNN3D_NAME), float("nan")), train_time_s.get((g, LSTM_NAME), float("nan")))
             for g in ("0-22", "young")}
    return {"lstm_trains_faster": Judged(ratio["young"] > 1,
                                         (f"3D/LSTM wall-time ratio {_f(ratio['young'])} trained {young} y "
                                          f"({_f(ratio['0-22'])} trained 0-22 y) on {hardware}; paper 7/3 = 2.33 on "
                                          "a K80"), {"3D/LSTM wall-time ratio": ratio["young"]})}


def _bootstrap(quantity: str, paper: float, ages: np.ndarray, lstm: np.ndarray, cnn: np.ndarray) -> Magnitude:
    """:func:`metrics.verdicts.magnitude` of MAE(LSTM) - MAE(3D) over these subjects (no interval below 3)."""
    if ages.size < 3:
        est = mae_difference(ages, lstm, cnn) if ages.size else float("nan")
        return Magnitude(quantity, paper, est, float("nan"), float("nan"))
    return magnitude(quantity, paper, mae_difference, ages, lstm, cnn)


def claim_magnitudes(evals: Mapping[str, Evaluation]) -> dict[str, tuple[Magnitude, ...]]:
    """Every claim's paper numbers beside this run's 95 % paired bootstrap intervals, by claim key.

    The paper's differences MAE(LSTM) - MAE(3D) (its average and, where a claim rests on them, its age groups)
    against the same difference resampled over this run's subjects (of that group), the two models' errors on
    the same draw. A claim on the paper's age groups gets none where the evaluated ages lie outside them. The CS
    claims (figures) and the training time (hardware) have no paper number with an interval.
    """
    out: dict[str, tuple[Magnitude, ...]] = {}

    def diff(ev: Evaluation, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        m = np.ones(ev.ages.size, bool) if mask is None else mask
        return ev.ages[m], np.asarray(ev.preds[LSTM_NAME])[m], np.asarray(ev.preds[CNN3D_NAME])[m]

    def groups(ev: Evaluation, name: str, wanted: Sequence[str]) -> tuple[Magnitude, ...]:
        _, edges, labels, paper = TABLES[name]
        if not table_bins(name, ev.ages).paper:
            return ()
        mags = []
        for g in wanted:
            i = list(labels).index(g)
            last = i == len(labels) - 1
            mask = (ev.ages >= edges[i]) & ((ev.ages <= edges[i + 1]) if last else (ev.ages < edges[i + 1]))
            mags.append(_bootstrap(f"MAE(LSTM) - MAE(3D) in {g} y", _paper_diff(paper, labels, g), *diff(ev, mask)))
        return tuple(mags)

    def average(ev: Evaluation, name: str) -> Magnitude:
        _, _, labels, paper = TABLES[name]
        return _bootstrap("MAE(LSTM) - MAE(3D)", _paper_diff(paper, labels, "Average"), *diff(ev))

    if DISC in evals:
        out["discovery_average"] = (average(evals[DISC], "table1"),)
        out["discovery_older_groups"] = groups(evals[DISC], "table1", OLDER)
    if REP in evals:
        out["replication_much_better"] = (average(evals[REP], "table2"),)
    if REP_YOUNG in evals:
        out["replication_young_same"] = (average(evals[REP_YOUNG], "table3"),)
        out["replication_young_ends"] = groups(evals[REP_YOUNG], "table3", REPLICATION_LABELS)
    return out


def claims(evals: Mapping[str, Evaluation], train_time_s: Mapping[tuple[str, str], float], young: str,
           hardware: str, missing: Mapping[str, str] | None = None, *, gates: G.GateNumbers,
           magnitudes: Mapping[str, Sequence[Magnitude]] | None = None) -> list[Claim]:
    """Every claim of the paper judged from the evaluations ``DISC``, ``REP``, ``REP_YOUNG`` and the gates.

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
        Why each evaluation absent from ``evals`` (or the regime ``"young"``) is not testable
        (``LSTMData.not_testable``).
    gates
        The gates' numbers (``gates.gate_numbers``): a claim whose models fail one is not testable, with them.
    magnitudes
        Each claim's paper numbers beside this run's bootstrap intervals (:func:`claim_magnitudes`).
    """
    missing, magnitudes = missing or {}, magnitudes or {}
    judged: dict[str, Judged] = {}
    if DISC in evals:
        judged.update(_discovery(evals[DISC], paper_table(evals, "table1")))
    if REP in evals:
        judged.update(_replication(evals[REP], paper_table(evals, "table2")))
    if REP_YOUNG in evals:
        judged.update(_young(paper_table(evals, "table3")))
    if "young" not in missing:
        judged.update(_times(train_time_s, young, hardware))
    rows = []
    for key, claim, paper, rule, where in _texts(young):
        title = (f"the trainings on {young} y" if where == "young" else evaluation_title(where, young))
        if key not in judged:
            reason = missing.get(where, f"no {where} evaluation")
            rows.append(Claim(key, claim, paper, None, f"not evaluated ({title})", rule, reason))
            continue
        j = judged[key]
        reason = j.reason or G.reason(gates, where) or nan_reason(j.values)
        if reason is None and j.outcome is None:
            reason = "an age bin the rule needs has no subject"
        rows.append(Claim(key, claim, paper, None if reason else j.outcome, j.evidence, rule, reason,
                          judged_on=title, magnitudes=tuple(magnitudes.get(key, ()))))
    return rows

