"""The LSTM notebook's gates: did each model learn age, and does it still track age on the replication cohort.

The paper has no validation set, so a model's **learned** gate is decided on the discovery
test subjects it never saw, drawn from its own training distribution
(``metrics.verdicts.learned``): the models trained on 0-22 y on the whole discovery test set,
those trained on the young range on its test subjects of that range. There its MAE must be
below ``LEARNED_FRACTION`` x the MAE of predicting that set's own mean age.

The replication cohort is a shifted cohort (another site and scanner, and for the models
trained on 0-22 y a narrower age range): there a model counts only while its predictions
**track age** (``metrics.verdicts.tracks_age``: Pearson r > 0 with p < ``TRACK_ALPHA``). An
offset under the shift does not gate a model out; the replication claims compare the two
models' errors with their offsets, which is what the paper's Table 2 reports.

``gate_numbers`` turns predictions into the numbers the gates need; ``claims`` reads only
those numbers (``reason``), and ``record_gates`` records each model's gate with them.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from brainage_lib.metrics.verdicts import (LEARNED_FRACTION, TRACK_ALPHA, Gate, is_finite, learned_mae,
                                           mean_prediction_mae, not_learned_reason, not_tracking_reason, tracks_age)
from brainage_lib.papers.lstm.evaluation import DISC, EVALUATIONS, MODELS, REP, REP_YOUNG, Evaluation, pearson
from brainage_lib.run.results import Recorder

__all__ = ["GateNumbers", "HeldOut", "LearnedNumbers", "TrackNumbers", "gate_numbers", "gates", "held_out_sets",
           "needs", "reason", "record_gates"]


@dataclass(frozen=True)
class HeldOut:
    """Held-out subjects of one training regime's own distribution, with both models' predictions."""

    where: str  # e.g. "the discovery test subjects (held out of training, 0-22 y)"
    ages: np.ndarray
    preds: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class LearnedNumbers:
    """The learned gate of one training regime: each model's MAE on its held-out set and that set's
    mean-prediction MAE."""

    where: str
    n: int
    reference: float
    mae: Mapping[str, float]


@dataclass(frozen=True)
class TrackNumbers:
    """The tracks-age gate on one shifted evaluation: each model's Pearson (r, p) of predicted with true age."""

    where: str
    n: int
    rp: Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class GateNumbers:
    """Every gate's numbers: ``learned`` by training regime ("0-22", "young"), ``tracks`` by evaluation key
    (``REP``, ``REP_YOUNG``); ``missing`` says why a regime's learned gate could not be decided."""

    learned: Mapping[str, LearnedNumbers]
    tracks: Mapping[str, TrackNumbers]
    missing: Mapping[str, str] = field(default_factory=dict)


# Which gates a claim needs, by the evaluation it rests on ("young": the young trainings themselves):
# (training regime whose learned gate, shifted evaluation whose tracks-age gate or None).
NEEDS = {DISC: ("0-22", None), REP: ("0-22", REP), REP_YOUNG: ("young", REP_YOUNG), "young": ("young", None)}


def needs(key: str) -> tuple[str, str | None]:
    """(regime whose learned gate, evaluation whose tracks-age gate) a claim resting on ``key`` needs."""
    return NEEDS[key]


def _learned(h: HeldOut) -> LearnedNumbers:
    ages = np.asarray(h.ages, dtype=float)
    maes = {m: float(np.mean(np.abs(np.asarray(h.preds[m], dtype=float) - ages))) if ages.size else float("nan")
            for m in MODELS}
    return LearnedNumbers(h.where, int(ages.size), mean_prediction_mae(ages), maes)


def _tracks(ev: Evaluation) -> TrackNumbers:
    regime = ev.regime if ev.regime == "0-22" else ev.young
    return TrackNumbers(f"the replication cohort (a shifted cohort: unseen site; models trained {regime} y)",
                        int(ev.ages.size), {m: pearson(ev.ages, ev.preds[m]) for m in MODELS})


def gate_numbers(held_out: Mapping[str, HeldOut], evals: Mapping[str, Evaluation],
                 missing: Mapping[str, str] | None = None) -> GateNumbers:
    """The numbers of every gate this data allows.

    ``held_out`` maps a training regime to its held-out in-distribution subjects; ``evals`` the evaluations
    (``REP`` and ``REP_YOUNG`` are the shifted ones); ``missing`` (regime -> why it was not trained) fills
    ``GateNumbers.missing`` for a regime without held-out subjects.
    """
    learned = {r: _learned(h) for r, h in held_out.items()}
    tracks = {k: _tracks(evals[k]) for k in (REP, REP_YOUNG) if k in evals}
    why = {r: w for r, w in (missing or {}).items() if r in ("0-22", "young") and r not in learned}
    return GateNumbers(learned, tracks, why)


def _learned_text(g: LearnedNumbers) -> str:
    return (f"MAE on {g.where} below {LEARNED_FRACTION:g} x {_y(g.reference)}, the MAE of predicting that set's own "
            "mean age")


def _y(x: float) -> str:
    return f"{float(x):.2f} y" if is_finite(x) else "n/a"


def reason(numbers: GateNumbers, key: str) -> str | None:
    """Why a claim comparing the two models on evaluation ``key`` cannot be judged by its gates, or None."""
    regime, shifted = NEEDS[key]
    out = []
    g = numbers.learned.get(regime)
    if g is None:
        out.append(numbers.missing.get(regime, f"no held-out subjects to decide whether the {regime} models learned"))
    elif g.n == 0:
        out.append(f"no subject in {g.where} to decide whether the models trained there learned age")
    else:
        out.append(not_learned_reason(g.mae, g.reference, g.where))
    if shifted is not None and shifted in numbers.tracks:
        t = numbers.tracks[shifted]
        out.append(not_tracking_reason(t.rp, t.where))
    return "; ".join(w for w in out if w) or None


def gates(numbers: GateNumbers) -> list[Gate]:
    """Every model's gates with the numbers that passed or failed them."""
    out = []
    for regime, g in numbers.learned.items():
        for m in MODELS:
            out.append(Gate(f"learned.trained_{regime}.{m}", m, _learned_text(g),
                            f"MAE {_y(g.mae[m])} vs {LEARNED_FRACTION:g} x {_y(g.reference)} = "
                            f"{_y(LEARNED_FRACTION * g.reference)} ({g.n} subjects)",
                            learned_mae(g.mae[m], g.reference) and g.n > 0, g.where))
    for key, t in numbers.tracks.items():
        regime = EVALUATIONS[key][0]
        for m in MODELS:
            r, p = t.rp[m]
            shown = f"r = {r:+.2f}, p = {p:.2g}" if is_finite(r) and is_finite(p) else "r n/a"
            out.append(Gate(f"tracks_age.replication_trained_{regime}.{m}", m,
                            f"on {t.where}: Pearson r of predicted with true age > 0 with p < {TRACK_ALPHA:g}",
                            f"{shown} ({t.n} subjects)", tracks_age(r, p), t.where))
    return out


def record_gates(rec: Recorder, numbers: GateNumbers) -> pd.DataFrame:
    """Record every gate (``gates.<key>``); returns the table the notebook shows."""
    for g in gates(numbers):
        rec.gate(g)
    for regime, why in numbers.missing.items():
        rec.record(f"gates_not_decided.trained_{regime}", why)
    return rec.gates()


def held_out_sets(disc: Evaluation | None, young_ages: np.ndarray, young_preds: Mapping[str, np.ndarray] | None,
                  young: str) -> dict[str, HeldOut]:
    """The held-out in-distribution sets: the discovery test evaluation for the models trained on 0-22 y, the
    discovery test subjects of the young range for the young models (``young_preds`` None: not trained)."""
    out = {}
    if disc is not None:
        out["0-22"] = HeldOut("the discovery test subjects held out of the 0-22 y training", disc.ages,
                              dict(disc.preds))
    if young_preds is not None:
        out["young"] = HeldOut(f"the discovery test subjects aged {young} y held out of the {young} y training",
                               np.asarray(young_ages, dtype=float), dict(young_preds))
    return out
