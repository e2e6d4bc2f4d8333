"""LSTM paper (He et al., ISBI 2020): models from parameters, the paper's tables and their evaluations.

An ``Evaluation`` holds one test set's ages and both models' predictions; the ``record_*``
functions turn the evaluations into the recorded numbers (through the notebook's
``Recorder``) and return the table the notebook shows.

Age bins. A table uses the paper's age groups where they apply, i.e. when every subject it
evaluates lies inside the paper's range (Table 1: 0-22 y, Tables 2-3: 0-6 y); a cohort with
ages outside it (e.g. adults) gets its own bins of one width over its own age range
(``own_bins``: 1, 2, 5, 10, ... years, at most ``MAX_OWN_BINS``), with no paper value beside
them. The "Average" of every table is over all the subjects evaluated.

The paper's numbers (its tables, age groups and training times) are in ``paper`` and importable from here.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from brainage_lib.errors import BrainAgeError
from brainage_lib.metrics.scores import cs_area, cumulative_score, mae_by_group
from brainage_lib.metrics.stats import wilcoxon_p
from brainage_lib.metrics.verdicts import is_finite
from brainage_lib.papers.lstm.paper import (CNN3D_NAME, DISCOVERY_EDGES, DISCOVERY_LABELS, LSTM_NAME,
                                            PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3, PAPER_TRAIN_HOURS_K80,
                                            REPLICATION_EDGES, REPLICATION_LABELS)  # the paper's numbers, here too
from brainage_lib.papers.lstm.resnet3d import ResNet3D, ResNet3DConfig
from brainage_lib.papers.lstm.resnet_lstm import ResNetLSTM, ResNetLSTMConfig
from brainage_lib.run.results import Recorder

MODELS = (CNN3D_NAME, LSTM_NAME)
REGIMES = ("0-22", "young")  # training on the whole discovery split, or on its young part (0-YOUNG_MAX_AGE y)
# The three evaluations of tables 1-3, by Evaluation.key.
DISC, REP, REP_YOUNG = "discovery_test.trained_0-22", "replication.trained_0-22", "replication.trained_young"
EVALUATIONS = {DISC: ("0-22", "discovery"), REP: ("0-22", "replication"), REP_YOUNG: ("young", "replication")}

# Thresholds of notebook 03's verdict rules: this project's choices, the paper states none. The rules
# (``claims``) write their texts from these values; whether a model learned age is decided by the shared
# gate of ``brainage_lib.metrics.verdicts`` (LEARNED_FRACTION).
SAME_MAE_TOLERANCE = 0.15  # "approximately the same": the two average MAEs within 15 % of the larger
WILCOXON_LEVEL = 0.05  # "much better" also needs the paired Wilcoxon p below this
CS_ALPHA_MAX = 4.0  # years; CS curves are drawn and compared for alpha in [0, 4]
CS_LEVELS = CS_ALPHA_MAX * np.arange(1, 41) / 40  # alpha = 0.1, 0.2, ..., 4.0 for "at every error level"
# A cohort outside the paper's ages: bins of the first of these widths (years) that needs at most MAX_OWN_BINS bins.
OWN_BIN_WIDTHS: tuple[float, ...] = (1, 2, 5, 10, 20, 25, 50, 100)
MAX_OWN_BINS = 10


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"128x160x112"`` -> (128, 160, 112)."""
    try:
        shape = tuple(int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise BrainAgeError(f"ATLAS_SHAPE '{text}' must look like 128x160x112.") from None
    if len(shape) != 3:
        raise BrainAgeError(f"ATLAS_SHAPE '{text}' must have three sizes, e.g. 128x160x112.")
    return shape  # type: ignore[return-value]


def build_models(atlas_shape: tuple[int, int, int], slice_size: int, pool_k: int, width: float,
                 hidden: int = 64, stem_kernel: int = 7) -> dict[str, torch.nn.Module]:
    """Both networks at the given input sizes.

    ``width`` scales every ResNet stage (1.0 = paper); ``stem_kernel`` is the 3D-ResNet18's
    first conv (7 = standard ResNet18, 3 = the paper's literal "3x3x3"; see ``resnet3d``).
    The 2D slice encoder keeps ResNet18's 7x7 stem.
    """
    lstm = ResNetLSTM(ResNetLSTMConfig(n_slices=atlas_shape[2], slice_size=slice_size, pool_k=pool_k,
                                       lstm_hidden=hidden, widen_factor=width))
    cnn = ResNet3D(ResNet3DConfig(input_shape=atlas_shape, widen_factor=width, stem_kernel=stem_kernel))
    return {CNN3D_NAME: cnn, LSTM_NAME: lstm}


def group_table(ages: np.ndarray, preds: dict[str, np.ndarray], edges, labels,
                paper: dict[str, list[float]] | None) -> pd.DataFrame:
    """Paper vs this run's MAE per age group and overall ("Average"), one row per model.

    ``paper`` None (a cohort's own bins): the paper column is NaN.
    """
    rows = []
    for model, pred in preds.items():
        g = mae_by_group(ages, np.abs(pred - ages), edges, labels, include_all=True)
        values = list(g["mae"])
        counts = list(g["n"])
        ref = paper[model] if paper is not None else [float("nan")] * (len(labels) + 1)
        for label, v, n, p in zip(list(labels) + ["Average"], values, counts, ref):
            rows.append({"model": model, "group": label, "n": int(n), "paper MAE": p, "this run MAE": v})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class Bins:
    """The age bins of one table: the paper's, or the cohort's own with why."""

    edges: tuple[float, ...]
    labels: tuple[str, ...]
    paper: bool  # the paper's age groups
    why: str | None = None  # own bins: the ages that put them outside the paper's range


def own_bins(ages: np.ndarray) -> tuple[tuple[float, ...], tuple[str, ...]]:
    """Bins of one width over the cohort's own age range: the first of ``OWN_BIN_WIDTHS`` that needs at most
    ``MAX_OWN_BINS`` bins, on multiples of that width (half-open, the last one closed), labelled ``"a-b"``."""
    a = np.asarray(ages, dtype=float)
    if not a.size:
        raise BrainAgeError("own_bins: no age to bin.")
    lo, hi = float(a.min()), float(a.max())
    for w in OWN_BIN_WIDTHS:
        first, last = np.floor(lo / w) * w, max(np.ceil(hi / w) * w, np.floor(lo / w) * w + w)
        if round((last - first) / w) <= MAX_OWN_BINS:
            break
    edges = tuple(float(e) for e in np.arange(first, last + w / 2, w))
    return edges, tuple(f"{e0:g}-{e1:g}" for e0, e1 in zip(edges[:-1], edges[1:]))


def table_bins(name: str, ages: np.ndarray) -> Bins:
    """The bins of paper table ``name`` for the evaluated ``ages``: the paper's when every age lies inside the
    paper's range (its first to last edge, the last one closed), else :func:`own_bins` with the reason."""
    _, edges, labels, _ = TABLES[name]
    a = np.asarray(ages, dtype=float)
    if not a.size or bool(np.all((a >= edges[0]) & (a <= edges[-1]))):
        return Bins(tuple(edges), tuple(labels), True)
    own_edges, own_labels = own_bins(a)
    width = own_edges[1] - own_edges[0]
    span = f"{labels[0].split('-')[0]}-{labels[-1].split('-')[-1]}"  # e.g. 0-22
    why = (f"the evaluated ages ({a.min():.1f}-{a.max():.1f} y) do not all lie inside the paper's {span} y, so "
           f"{TABLE_TITLES[name]} uses this cohort's own {width:g}-y bins")
    return Bins(own_edges, own_labels, False, why)


def lstm_wins_ends(mae_lstm: Sequence[float], mae_3d: Sequence[float]) -> bool | None:
    """Rule for "LSTM higher accuracy at both ends of the age range, 3D in the middle" (Table 3, Sec. 4).

    True when LSTM's MAE is below 3D's in the first and in the last age bin and 3D's is below
    LSTM's in a strict majority of the middle bins. The paper's Table 3 passes: LSTM lower in 0-1
    and 5-6 y, 3D lower in 1-2, 2-3 and 3-4 y (3 of the 4 middle bins; LSTM lower in 4-5 y), so
    "3D in every middle bin" would fail the paper's own numbers and "in one middle bin" would let
    a single bin decide.

    Parameters
    ----------
    mae_lstm, mae_3d
        MAE per age bin, in age order, without the average ``(G,)``, ``G >= 3``.

    Returns
    -------
    bool or None
        None (not testable) when any bin is empty (NaN) for either model.
    """
    lstm, cnn = np.asarray(mae_lstm, dtype=float), np.asarray(mae_3d, dtype=float)
    if lstm.ndim != 1 or lstm.shape != cnn.shape or lstm.size < 3:
        raise BrainAgeError(f"lstm_wins_ends: need two equal 1-D arrays of >= 3 bins, got {lstm.shape} and {cnn.shape}.")
    if not np.all(np.isfinite(lstm)) or not np.all(np.isfinite(cnn)):
        return None
    middle_3d = int(np.sum(cnn[1:-1] < lstm[1:-1]))
    return bool(lstm[0] < cnn[0] and lstm[-1] < cnn[-1] and middle_3d > (lstm.size - 2) / 2)


def wide(table: pd.DataFrame) -> pd.DataFrame:
    """Group table with models as rows and 'paper / this run' per group as columns."""
    def show(x: float) -> str:
        return f"{x:.2f}" if is_finite(x) else "-"

    t = table.assign(cell=[f"{show(p)} / {show(r)}" for p, r in zip(table["paper MAE"], table["this run MAE"])])
    order = list(dict.fromkeys(table["group"]))
    return t.pivot(index="model", columns="group", values="cell")[order]


@dataclass(frozen=True)
class Evaluation:
    """One test set: its true ages and both models' predictions, in the same subject order."""

    regime: str  # training regime of the models: "0-22" or "young"
    cohort: str  # "discovery" (its test split) or "replication"
    young: str  # label of the young regime, e.g. "0-6"
    ages: np.ndarray  # (N,) true ages, years
    preds: Mapping[str, np.ndarray]  # model name -> (N,) predicted ages
    ids: np.ndarray | None = None  # (N,) participant ids
    train_ages: np.ndarray | None = None  # ages of the models' training subjects

    @property
    def key(self) -> str:
        """Record key, e.g. ``discovery_test.trained_0-22`` or ``replication.trained_young``."""
        return f"{'discovery_test' if self.cohort == 'discovery' else 'replication'}.trained_{self.regime}"

    @property
    def label(self) -> str:
        """Plain name, e.g. ``discovery test, trained 0-22``."""
        return self.key.replace("_", " ").replace(".", ", ")

    @property
    def title(self) -> str:
        """Figure and predictions-file name, e.g. ``replication (trained 0-6)``."""
        return evaluation_title(self.key, self.young)

    def errors(self, model: str) -> np.ndarray:
        """Absolute errors ``(N,)`` of ``model``."""
        return np.abs(self.preds[model] - self.ages)

    def mae(self, model: str) -> float:
        return float(np.mean(self.errors(model)))


def evaluation_title(key: str, young: str) -> str:
    """Title of evaluation ``key`` (one of ``EVALUATIONS``), e.g. ``replication (trained 0-6)``."""
    regime, cohort = EVALUATIONS[key]
    return f"{'discovery test' if cohort == 'discovery' else 'replication'} (trained {regime if regime == '0-22' else young})"


# Paper table -> (evaluation, age-group edges, labels, the paper's values).
TABLES = {"table1": (DISC, DISCOVERY_EDGES, DISCOVERY_LABELS, PAPER_TABLE1),
          "table2": (REP, REPLICATION_EDGES, REPLICATION_LABELS, PAPER_TABLE2),
          "table3": (REP_YOUNG, REPLICATION_EDGES, REPLICATION_LABELS, PAPER_TABLE3)}
TABLE_TITLES = {"table1": "Table 1", "table2": "Table 2", "table3": "Table 3"}


def paper_table(evals: Mapping[str, Evaluation], name: str) -> pd.DataFrame:
    """``group_table`` of paper table ``name`` ("table1" .. "table3") from its evaluation, in :func:`table_bins`.

    Without that evaluation in ``evals``: the paper's values beside no subject (n 0, MAE NaN). The bins are
    in ``table.attrs["bins"]``.
    """
    key, edges, labels, paper = TABLES[name]
    if key not in evals:
        table = pd.DataFrame([{"model": m, "group": g, "n": 0, "paper MAE": p, "this run MAE": np.nan}
                              for m in MODELS for g, p in zip([*labels, "Average"], paper[m])])
        table.attrs["bins"] = Bins(tuple(edges), tuple(labels), True)
        return table
    ev = evals[key]
    bins = table_bins(name, ev.ages)
    table = group_table(ev.ages, dict(ev.preds), bins.edges, bins.labels, paper if bins.paper else None)
    table.attrs["bins"] = bins
    return table


def record_table(rec: Recorder, name: str, evals: Mapping[str, Evaluation],
                 missing: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Record paper table ``name`` (MAE and subject count per model and group); returns it.

    A table whose evaluation is in ``missing`` (evaluation key -> why it is not testable) records
    None beside the paper's values, with the reason as the note. A table in the cohort's own bins
    (:func:`table_bins`) records no paper value, with why as the note and as ``<name>_bins``.
    """
    table = paper_table(evals, name)
    reason = (missing or {}).get(TABLES[name][0])
    bins: Bins = table.attrs["bins"]
    if not bins.paper:
        rec.record(f"{name}_bins", list(bins.labels), note=bins.why)
    for _, r in table.iterrows():
        paper = r["paper MAE"] if is_finite(r["paper MAE"]) else None
        rec.record(f"{name}.{r['model']}.{r['group']}", None if reason else r["this run MAE"], paper=paper,
                   unit="years", note=reason or bins.why)
        rec.record(f"{name}_n.{r['model']}.{r['group']}", None if reason else r["n"], note=reason or bins.why)
    return table


def record_young_discovery(rec: Recorder, pred: Mapping[tuple[str, str, str], np.ndarray], ages: np.ndarray,
                           young_mask: np.ndarray, young: str, missing: Mapping[str, str] | None = None
                           ) -> pd.DataFrame:
    """MAE of every model on the discovery test subjects of the young range (``young_mask`` of the test set).

    ``pred[(regime, "discovery", model)]`` covers the whole test set for the 0-22 y models and only the
    young subjects for the young models. A regime in ``missing`` (regime -> why it was not trained)
    records None with the reason. Returns training regime x model.
    """
    rec.record("young_discovery_test_n", int(young_mask.sum()))
    rows = {}
    for regime in REGIMES:
        reason = (missing or {}).get(regime)
        for name in MODELS:
            err = np.empty(0)
            if reason is None:
                p = pred[(regime, "discovery", name)]
                err = np.abs((p[young_mask] if regime == "0-22" else p) - ages[young_mask])
            rows[(f"trained {regime if regime == '0-22' else young} y", name)] = rec.record(
                f"young_discovery_test.{regime}.{name}", float(err.mean()) if err.size else None, unit="years",
                note=reason)
    return pd.Series(rows, name="MAE (years)").unstack()


def record_paired(rec: Recorder, evals: Mapping[str, Evaluation]) -> pd.DataFrame:
    """Wilcoxon signed-rank test of the two models' absolute errors on each evaluation; returns the table.

    p is NaN (recorded as null) where the two models' errors are identical.
    """
    rows = []
    for ev in evals.values():
        e_lstm, e_3d = ev.errors(LSTM_NAME), ev.errors(CNN3D_NAME)
        p = wilcoxon_p(e_lstm, e_3d)
        rec.record(f"wilcoxon.{ev.key}.p", p)
        rec.record(f"wilcoxon.{ev.key}.median_diff", float(np.median(e_lstm - e_3d)), unit="years")
        rows.append({"comparison": ev.label, "MAE LSTM": e_lstm.mean(), "MAE 3D": e_3d.mean(),
                     "median(|e_LSTM| - |e_3D|)": np.median(e_lstm - e_3d), "Wilcoxon p": p})
    return pd.DataFrame(rows).set_index("comparison")


def record_cs(rec: Recorder, evals: Mapping[str, Evaluation]) -> None:
    """Record each model's CS at 1 y and mean CS over [0, ``CS_ALPHA_MAX``] y on each evaluation."""
    for ev in evals.values():
        for name in MODELS:
            err = ev.errors(name)
            rec.record(f"cs.{ev.regime}.{ev.cohort}.{name}.at_1y", float(cumulative_score(err, [1.0])[0]))
            rec.record(f"cs_area.{ev.regime}.{ev.cohort}.{name}", cs_area(err, CS_ALPHA_MAX))


def record_training_times(rec: Recorder, wall_s: Mapping[tuple[str, str], float], young: str, amp_used: bool,
                          missing: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Record wall times ``{(regime, model): s}``, the 3D/LSTM ratios and the paper's hours; returns the table.

    A regime in ``missing`` (regime -> why it was not trained) has no wall time: its ratio and hours
    are recorded as None with the reason.
    """
    missing = missing or {}
    rec.record("train_bf16_autocast", amp_used)
    for (regime, name), s in wall_s.items():
        rec.record(f"train_time_s.{regime}.{name}", s, unit="s")
    t = {(r, m): wall_s.get((r, m), float("nan")) for r in REGIMES for m in MODELS}
    ratio = {r: t[(r, CNN3D_NAME)] / t[(r, LSTM_NAME)] for r in REGIMES}
    paper_ratio = PAPER_TRAIN_HOURS_K80[CNN3D_NAME] / PAPER_TRAIN_HOURS_K80[LSTM_NAME]  # 7 h / 3 h
    for regime in REGIMES:
        rec.record(f"train_time_ratio_3d_over_lstm.{regime}", ratio[regime], paper=paper_ratio if regime == "young" else None,
                   note=missing.get(regime))
    for name in MODELS:
        rec.record(f"train_hours_paper.{young}.{name}", t[("young", name)] / 3600,
                   paper=PAPER_TRAIN_HOURS_K80[name], unit="h", note=missing.get("young"))
    times = pd.DataFrame({f"train on {r if r == '0-22' else young} y (s)": {m: t[(r, m)] for m in MODELS}
                          for r in REGIMES})
    times.loc["3D / LSTM"] = [ratio[r] for r in REGIMES]
    return times


def predictions_frame(evals: Mapping[str, Evaluation]) -> pd.DataFrame:
    """Per-subject predictions of every evaluation (``Recorder.save_predictions`` format)."""
    return pd.concat([pd.DataFrame({"evaluation": ev.title, "participant_id": ev.ids, "age": ev.ages,
                                    **{n: ev.preds[n] for n in MODELS}}) for ev in evals.values()], ignore_index=True)


def pearson(ages: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Pearson r of predicted with true age and its two-sided p; NaN for fewer than 3 subjects or a constant."""
    a, p = np.asarray(ages, dtype=float), np.asarray(pred, dtype=float)
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(p) == 0 or not np.all(np.isfinite(p)):
        return float("nan"), float("nan")
    res = stats.pearsonr(a, p)
    return float(res.statistic), float(res.pvalue)


def record_overall(rec: Recorder, evals: Mapping[str, Evaluation]) -> pd.DataFrame:
    """Record each model's MAE, Pearson r and p over every subject of each evaluation, whatever its ages
    (``overall.<evaluation>.<model>.mae|r|p``); returns the table."""
    rows = []
    for ev in evals.values():
        for name in MODELS:
            r, p = pearson(ev.ages, ev.preds[name])
            row = {"evaluation": ev.title, "model": name, "n": int(ev.ages.size),
                   "ages": f"{ev.ages.min():.1f}-{ev.ages.max():.1f} y" if ev.ages.size else "-",
                   "MAE (y)": rec.record(f"overall.{ev.key}.{name}.mae", ev.mae(name), unit="years"),
                   "r": rec.record(f"overall.{ev.key}.{name}.r", r), "p": rec.record(f"overall.{ev.key}.{name}.p", p)}
            rows.append(row)
    return pd.DataFrame(rows).set_index(["evaluation", "model"])


def seeds_wide(doc: dict, name: str) -> pd.DataFrame:
    """Paper table ``name`` from the recorded results: "paper / this run" per model and group, this run as
    mean ± sd over the model seeds where there are several (``run.seeds.mean_sd``)."""
    from brainage_lib.run.seeds import mean_sd

    rows = []
    for key, e in doc["records"].items():
        head, _, rest = key.partition(".")
        if head != name or "." not in rest:
            continue
        model, group = rest.split(".", 1)  # model names hold no dot
        paper, run = e.get("paper"), mean_sd(e, ".2f") if is_finite(e.get("value")) else "-"
        rows.append({"model": model, "group": group, "cell": f"{paper:.2f} / {run}" if is_finite(paper) else f"- / {run}"})
    if not rows:
        return pd.DataFrame()
    t = pd.DataFrame(rows)
    return t.pivot(index="model", columns="group", values="cell")[list(dict.fromkeys(t["group"]))]
