"""DIFF paper tables 1-2, the bias-corrected brain-PAD and the numbers its claims are judged on.

``evaluate`` turns each model's predictions into every reported number, and
``reference_numbers`` adds the cohorts' own (the gates' reference MAEs and, on simulated
data, the ALS subjects' true gaps); ``numbers`` lays both out under the recorded keys,
``record_evaluation`` writes them through the notebook's ``Recorder`` beside the paper's
values and ``wide_table`` reads them back as model-by-metric tables. ``magnitude_numbers``
puts each number a claim compares with the paper (a difference between ours and a baseline,
or ours alone) beside this run's 95 % paired bootstrap interval over subjects
(``mag.<quantity>.<model>`` with ``.low`` and ``.high``), and ``record_magnitudes`` records
them. The verdicts are decided from these numbers in ``claims``; the paper's own numbers are in ``paper``.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import pandas as pd
from scipy import stats as sps

from brainage_lib.metrics import stats
from brainage_lib.metrics.verdicts import (N_BOOT, is_finite, mean_prediction_mae, paired_bootstrap, pearson_stat,
                                           pitman_morgan, steiger_z)
from brainage_lib.papers.diff.paper import PAPER, PAPER_TABLE1, PAPER_TABLE2
from brainage_lib.run.results import Recorder
from brainage_lib.run.seeds import mean_sd

__all__ = ["MAGNITUDES", "MODELS", "OURS", "PAPER", "PAPER_TABLE1", "PAPER_TABLE2", "als_pads", "evaluate", "format_table",
           "magnitude_numbers", "magnitude_table", "numbers", "paper_magnitude", "record_evaluation",
           "record_magnitudes", "reference_numbers", "wide_table"]

OURS = "diffae"
MODELS = {"diffae": "Ours (DiffAE)", "densenet121": "DenseNet121", "brainager": "brainageR-style GPR",
          "deepbrainnet": "DeepBrainNet-style CNN"}
UNITS = {"test_mae": "years", "pad_mean": "years", "pad_sd": "years", "pad_mean_corrected": "years",
         "pad_sd_corrected": "years", "bias_intercept": "years", "truth_als_gap_spread": "years",
         "truth_als_mae_gap": "years", "gate.test_mean_prediction_mae": "years", "simulator.als_gap_mean": "years",
         "simulator.als_gap_sd": "years", "heldout_mae": "years", "gate.heldout_mean_prediction_mae": "years"}


def _constant(x: np.ndarray) -> bool:
    """Constant up to rounding: a constant model's bias-corrected PAD is 0 plus ~1e-14 of floating-point noise,
    whose correlations would be random numbers with real-looking p-values."""
    return bool(np.ptp(x) <= 1e-9 * max(1.0, float(np.abs(x).max())))


def _pearson_or_nan(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson (r, p); NaN where a vector is constant (a degenerate model)."""
    if _constant(x) or _constant(y):
        return float("nan"), float("nan")
    return stats.pearson(x, y)


def _mean_test_p(x: np.ndarray) -> float:
    """Two-sided p of the one-sample t-test of mean 0; NaN for a constant vector."""
    return float("nan") if _constant(x) else float(sps.ttest_1samp(x, 0.0).pvalue)


def _truth_test(tpad: np.ndarray, tpad_c: np.ndarray, test_gap: np.ndarray) -> dict[str, float]:
    """One model's test-set PADs (raw, bias-corrected) against the simulator's hidden gaps."""
    return {"truth_test_r_gap": _pearson_or_nan(tpad, test_gap)[0],
            "truth_test_r_gap_corrected": _pearson_or_nan(tpad_c, test_gap)[0]}


def _truth_als(pad: np.ndarray, pad_c: np.ndarray, als_gap: np.ndarray) -> dict[str, float]:
    """One model's ALS PADs against the simulator's hidden gaps.

    ``truth_als_gap_spread`` is the part of the ALS PAD spread that follows the gap,
    ``cov(PAD, gap) / sd(gap)`` in years: the gap's own sd for a perfect PAD, unchanged in
    expectation by noise independent of the gap. ``truth_als_mae_gap`` is ``mean |PAD - gap|``
    (the MAE against the true brain age), which independent zero-mean noise can only raise.
    """
    return {"truth_als_r_gap": _pearson_or_nan(pad, als_gap)[0],
            "truth_als_r_gap_corrected": _pearson_or_nan(pad_c, als_gap)[0],
            "truth_als_gap_spread": float(np.cov(pad, als_gap, ddof=1)[0, 1] / als_gap.std(ddof=1)),
            "truth_als_mae_gap": float(np.abs(pad - als_gap).mean())}


def _als(pad: np.ndarray, pad_c: np.ndarray, survival: np.ndarray) -> dict[str, float]:
    """One model's ALS PAD statistics (Table 2, survival row of Table 1, corrected PAD)."""
    e = {"pad_mean": float(pad.mean()), "pad_sd": float(pad.std(ddof=1)),
         "pad_mean_corrected": float(pad_c.mean()), "pad_mean_corrected_p": _mean_test_p(pad_c),
         "pad_sd_corrected": float(pad_c.std(ddof=1))}
    e["survival_r"], e["survival_p"] = _pearson_or_nan(pad, survival)
    e["survival_r_corrected"], e["survival_p_corrected"] = _pearson_or_nan(pad_c, survival)
    return e


def _against_ours(pad: np.ndarray, pad_ours: np.ndarray, survival: np.ndarray) -> dict[str, float]:
    """A baseline's ALS PADs against ours on the same patients (paired tests).

    ``pm_r``, ``pm_p``: Pitman-Morgan test of equal PAD variances (r of sum with difference; r > 0 when ours
    spreads more). ``survival_steiger_z``, ``survival_steiger_p``: Steiger's test of ours' PAD-survival
    correlation against this baseline's (the two share survival; z > 0 when ours' is the larger).
    """
    e = dict(zip(("pm_r", "pm_p"), pitman_morgan(pad_ours, pad)))
    r_ours, r_base = (_pearson_or_nan(p, survival)[0] for p in (pad_ours, pad))
    e["survival_steiger_z"], e["survival_steiger_p"] = steiger_z(r_ours, r_base, _pearson_or_nan(pad_ours, pad)[0],
                                                                 len(pad))
    return e


def evaluate(test_age: np.ndarray, test_pred: Mapping[str, np.ndarray], als_age: np.ndarray | None,
             als_pred: Mapping[str, np.ndarray] | None, survival: np.ndarray | None, heldout_age: np.ndarray,
             heldout_pred: Mapping[str, np.ndarray], test_gap: np.ndarray | None = None,
             als_gap: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Every number of tables 1-2 and the PAD analyses, per model (``OURS`` first).

    Raw brain-PAD is ``pred - age``; the corrected one is the residual of the linear
    age-bias fitted on the held-out healthy set (``stats.bias_correct``). KS statistics
    compare ours with each baseline. With the simulator's hidden gaps, the correlation
    of each PAD with the gap and its spread and error against it are added (``truth_*``).
    Without ALS patients (``als_age``, ``als_pred``, ``survival`` None) only the test-set and bias numbers are made.
    """
    out: dict[str, dict[str, float]] = {}
    pads, pads_c = {}, {}
    for m in [OURS, *[k for k in test_pred if k != OURS]]:
        bc = stats.bias_correct(heldout_pred[m], heldout_age)
        reg = stats.regression_metrics(test_pred[m], test_age)
        tpad, tpad_c = stats.brain_pad(test_pred[m], test_age), bc.pad(test_pred[m], test_age)
        e = {"test_r": reg["r"], "test_r_p": reg["p"], "test_mae": reg["mae"], "test_r2": reg["r2"],
             "bias_slope": bc.slope, "bias_intercept": bc.intercept,
             "test_mae_corrected": float(np.abs(tpad_c).mean())}
        e["heldout_mae"] = float(np.mean(np.abs(np.asarray(heldout_pred[m], float) - np.asarray(heldout_age, float))))
        e["heldout_r"] = _pearson_or_nan(np.asarray(heldout_pred[m], float), np.asarray(heldout_age, float))[0]
        e["test_pad_age_r"] = _pearson_or_nan(tpad, test_age)[0]
        e["test_pad_age_r_corrected"] = _pearson_or_nan(tpad_c, test_age)[0]
        if test_gap is not None:
            e.update(_truth_test(tpad, tpad_c, np.asarray(test_gap, float)))
        if als_pred is not None:  # with als_age and survival
            pads[m], pads_c[m] = stats.brain_pad(als_pred[m], als_age), bc.pad(als_pred[m], als_age)
            e.update(_als(pads[m], pads_c[m], survival))
            if m != OURS:
                e["ks"], e["ks_p"] = stats.ks_2samp(pads[OURS], pads[m])
                e["ks_corrected"], e["ks_p_corrected"] = stats.ks_2samp(pads_c[OURS], pads_c[m])
                e.update(_against_ours(pads[m], pads[OURS], survival))
            if als_gap is not None:
                e.update(_truth_als(pads[m], pads_c[m], np.asarray(als_gap, float)))
        out[m] = e
    return out


def als_pads(preds: Mapping[str, Mapping[str, np.ndarray]], als_age: np.ndarray,
             heldout_age: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """ALS brain-PADs per model, ``{"raw": ..., "bias-corrected": ...}``, from ``preds[model]["als"|"heldout"]``."""
    out: dict[str, dict[str, np.ndarray]] = {"raw": {}, "bias-corrected": {}}
    for m, p in preds.items():
        out["raw"][m] = stats.brain_pad(p["als"], als_age)
        out["bias-corrected"][m] = stats.bias_correct(p["heldout"], heldout_age).pad(p["als"], als_age)
    return out


TABLE_KEYS = {
    "table1": ("test_r", "test_r_p", "test_mae", "test_r2", "survival_r", "survival_p"),
    "table2": ("pad_mean", "pad_sd", "ks", "ks_p", "pm_r", "pm_p"),
    "pad": ("pad_mean", "pad_mean_corrected", "pad_mean_corrected_p", "pad_sd", "pad_sd_corrected", "survival_r",
            "survival_p", "survival_r_corrected", "survival_p_corrected", "ks", "ks_corrected", "ks_p",
            "ks_p_corrected", "test_pad_age_r", "test_pad_age_r_corrected", "test_mae_corrected", "bias_slope",
            "bias_intercept", "survival_steiger_z", "survival_steiger_p"),
    "truth": ("truth_test_r_gap", "truth_test_r_gap_corrected", "truth_als_r_gap", "truth_als_r_gap_corrected",
              "truth_als_gap_spread", "truth_als_mae_gap"),
    "heldout": ("heldout_mae", "heldout_r"),
}


def reference_numbers(test_age: np.ndarray, survival: np.ndarray | None, als_gap: np.ndarray | None = None,
                      heldout_age: np.ndarray | None = None) -> dict[str, float]:
    """The cohorts' own numbers, under their recorded keys.

    ``gate.heldout_mean_prediction_mae``: the MAE of predicting the held-out healthy set's
    own mean age (the learning gate's reference); ``gate.test_mean_prediction_mae`` the
    same on the clinical test set (for reference: a shifted cohort, where the gate asks
    only that predictions track age). With the simulator's ALS gaps: their mean, sd and
    Pearson r (p) with survival (``simulator.als_gap_*``).
    """
    out = {"gate.test_mean_prediction_mae": mean_prediction_mae(test_age)}
    if heldout_age is not None:
        out["gate.heldout_mean_prediction_mae"] = mean_prediction_mae(heldout_age)
    if als_gap is not None and survival is not None:
        gap = np.asarray(als_gap, dtype=float)
        r, p = _pearson_or_nan(gap, np.asarray(survival, dtype=float))
        out |= {"simulator.als_gap_mean": float(gap.mean()), "simulator.als_gap_sd": float(gap.std(ddof=1)),
                "simulator.als_gap_survival_r": r, "simulator.als_gap_survival_p": p}
    return out


# The numbers a claim compares with the paper's: ``quantity: (what, per-subject set, unit)``. Differences are ours
# minus the baseline named in the key (``mag.<quantity>.<baseline>``); the rest are ours alone
# (``mag.<quantity>.diffae``).
MAGNITUDES = {
    "r_diff": ("test r: ours - baseline", "test", None),
    "mae_diff": ("test MAE: ours - baseline", "test", "years"),
    "r2_diff": ("test R²: ours - baseline", "test", None),
    "survival_r": ("ALS PAD-survival r: ours", "als", None),
    "survival_r_diff": ("ALS PAD-survival r: ours - baseline", "als", None),
    "pad_sd_diff": ("ALS PAD sd: ours - baseline", "als", "years"),
    "ks": ("KS D of ours' ALS PADs against the baseline's", "als", None),
    "pad_mean": ("ALS PAD mean: ours (raw)", "als", "years"),
}
_OURS_ONLY = ("survival_r", "pad_mean")


def paper_magnitude(quantity: str, model: str) -> float:
    """The paper's value of ``mag.<quantity>.<model>``, from its Tables 1 and 2."""
    t1, t2 = PAPER_TABLE1, PAPER_TABLE2
    diff = lambda t, k: round(float(t[OURS][k]) - float(t[model][k]), 6)  # noqa: E731  (0.83 - 0.81 = 0.02)
    return {"r_diff": lambda: diff(t1, "test_r"), "mae_diff": lambda: diff(t1, "test_mae"),
            "r2_diff": lambda: diff(t1, "test_r2"), "survival_r": lambda: float(t1[OURS]["survival_r"]),
            "survival_r_diff": lambda: diff(t1, "survival_r"), "pad_sd_diff": lambda: diff(t2, "pad_sd"),
            "ks": lambda: float(t2[model]["ks"]), "pad_mean": lambda: float(t2[OURS]["pad_mean"])}[quantity]()


def _r2(age: np.ndarray, pred: np.ndarray) -> float:
    ss_tot = float(np.sum((age - age.mean()) ** 2))
    return 1.0 - float(np.sum((age - pred) ** 2)) / ss_tot if ss_tot > 0 else float("nan")


def _ks_d(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic D (as ``scipy.stats.ks_2samp``)."""
    grid = np.concatenate([a, b])
    fa = np.searchsorted(np.sort(a), grid, side="right") / a.size
    fb = np.searchsorted(np.sort(b), grid, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


_STATS = {  # statistic of (age, ours, baseline[, survival]) per subject
    "r_diff": lambda age, o, b: pearson_stat(o, age) - pearson_stat(b, age),
    "mae_diff": lambda age, o, b: float(np.mean(np.abs(o - age)) - np.mean(np.abs(b - age))),
    "r2_diff": lambda age, o, b: _r2(age, o) - _r2(age, b),
    "survival_r_diff": lambda age, o, b, s: pearson_stat(o - age, s) - pearson_stat(b - age, s),
    "pad_sd_diff": lambda age, o, b: float(np.std(o - age, ddof=1) - np.std(b - age, ddof=1)),
    "ks": lambda age, o, b: _ks_d(o - age, b - age),
    "survival_r": lambda age, o, s: pearson_stat(o - age, s),
    "pad_mean": lambda age, o: float(np.mean(o - age)),
}


def magnitude_numbers(test_age: np.ndarray, test_pred: Mapping[str, np.ndarray], als_age: np.ndarray | None = None,
                      als_pred: Mapping[str, np.ndarray] | None = None, survival: np.ndarray | None = None,
                      seed: int = 0, n_boot: int = N_BOOT) -> dict[str, float]:
    """Every ``MAGNITUDES`` quantity with its 95 % paired bootstrap interval over subjects, as recorded numbers.

    ``mag.<quantity>.<model>`` is this run's estimate, ``.low`` and ``.high`` the interval's bounds
    (``metrics.verdicts.paired_bootstrap``: each replicate redraws the test subjects, or the ALS patients, with
    replacement and evaluates the statistic on the same draw of ages, both models' predictions and survival).
    The ALS quantities need ``als_age``, ``als_pred`` and ``survival``.
    """
    out: dict[str, float] = {}

    def put(q: str, m: str, *cols: np.ndarray) -> None:
        est, lo, hi = paired_bootstrap(_STATS[q], *(np.asarray(c, dtype=float) for c in cols), n_boot=n_boot,
                                       seed=seed)
        out.update({f"mag.{q}.{m}": est, f"mag.{q}.{m}.low": lo, f"mag.{q}.{m}.high": hi})

    base = [m for m in test_pred if m != OURS]
    for m in base:
        for q in ("r_diff", "mae_diff", "r2_diff"):
            put(q, m, test_age, test_pred[OURS], test_pred[m])
    if als_pred is None or als_age is None or survival is None:
        return out
    put("survival_r", OURS, als_age, als_pred[OURS], survival)
    put("pad_mean", OURS, als_age, als_pred[OURS])
    for m in base:
        put("survival_r_diff", m, als_age, als_pred[OURS], als_pred[m], survival)
        for q in ("pad_sd_diff", "ks"):
            put(q, m, als_age, als_pred[OURS], als_pred[m])
    return out


def record_magnitudes(rec: Recorder, mags: Mapping[str, float]) -> None:
    """Record ``magnitude_numbers``: each estimate beside the paper's value, and its interval's bounds."""
    for key, value in mags.items():
        _, q, m, *bound = key.split(".")
        unit = MAGNITUDES[q][2]
        if bound:
            rec.record(key, value, unit=unit)
        else:
            rec.record(key, value, paper=paper_magnitude(q, m), unit=unit, note=MAGNITUDES[q][0])


def magnitude_table(rec: Recorder) -> pd.DataFrame:
    """The recorded magnitudes: per quantity and model, the paper's value, this run's estimate (mean ± sd over the
    model seeds where there are several), its 95 % interval and whether the paper's value lies inside."""
    recs = rec.doc["records"]
    rows = []
    for key, e in recs.items():
        parts = key.split(".")
        if parts[0] != "mag" or len(parts) != 3:
            continue
        lo, hi = recs.get(f"{key}.low", {}).get("value"), recs.get(f"{key}.high", {}).get("value")
        inside = (lo <= e["paper"] <= hi) if is_finite(lo) and is_finite(hi) else None
        rows.append({"quantity": MAGNITUDES[parts[1]][0], "model": MODELS[parts[2]], "paper": f"{e['paper']:.3g}",
                     "this run": mean_sd(e), "95 % interval": f"[{_g(lo)}, {_g(hi)}]",
                     "paper inside": {True: "yes", False: "no", None: "n/a"}[inside]})
    return pd.DataFrame(rows).set_index(["quantity", "model"]) if rows else pd.DataFrame()


def _g(v: object) -> str:
    return format(float(v), ".3g") if is_finite(v) else "n/a"


def _entries(ev: Mapping[str, Mapping[str, float]]) -> Iterator[tuple[str, float, object, str | None]]:
    """``(key, value, paper's value, unit)`` of every per-model number, as ``<table>.<model>.<quantity>``."""
    for table, keys in TABLE_KEYS.items():
        paper = {"table1": PAPER_TABLE1, "table2": PAPER_TABLE2}.get(table, {})
        for m, e in ev.items():
            for k in keys:
                if k in e:
                    name = k.removeprefix(f"{table}_") if table in ("truth", "heldout") else k
                    yield f"{table}.{m}.{name}", e[k], paper.get(m, {}).get(k), UNITS.get(k)


def numbers(ev: Mapping[str, Mapping[str, float]], reference: Mapping[str, float]) -> dict[str, float]:
    """``evaluate``'s and ``reference_numbers``' output as the flat ``{recorded key: value}`` the claims read."""
    return {k: v for k, v, _, _ in _entries(ev)} | dict(reference)


def record_evaluation(rec: Recorder, ev: Mapping[str, Mapping[str, float]], reference: Mapping[str, float]) -> None:
    """Record ``numbers(ev, reference)``, each per-model number beside the paper's value where it has one."""
    for key, value, paper, unit in _entries(ev):
        rec.record(key, value, paper=paper, unit=unit)
    for key, value in reference.items():
        rec.record(key, value, unit=UNITS.get(key))


def wide_table(rec: Recorder, prefix: str, paper: bool = True, seeds: bool = False) -> pd.DataFrame:
    """Recorded ``prefix.<model>.<quantity>`` as quantity rows x model columns (this run, paper).

    ``seeds``: this run's cells read ``mean ± sd (n seeds)`` over the model seeds where a record was combined
    (``run.seeds.combine``)."""
    long = rec.table(prefix)
    if long.empty:
        return long
    if seeds:
        long["this run"] = [mean_sd(rec.doc["records"][f"{prefix}.{q}"]) for q in long["quantity"]]
    long[["model", "q"]] = long["quantity"].str.split(".", n=1, expand=True)
    cols = ["this run", "paper"] if paper else ["this run"]
    wide = long.pivot(index="q", columns="model", values=cols).swaplevel(axis=1)
    order = [m for m in MODELS if m in set(long["model"])]
    wide = wide.reindex(columns=pd.MultiIndex.from_product([order, cols]))
    wide = wide.reindex(list(dict.fromkeys(long["q"])))  # recording order
    wide.columns = pd.MultiIndex.from_tuples([(MODELS[m], c) for m, c in wide.columns])
    wide.index.name = f"{prefix} ({rec.doc['profile']}, {rec.doc['data']})"
    return wide


def format_table(wide: pd.DataFrame) -> pd.DataFrame:
    """``wide_table`` as text for display: p-values (rows ending in ``_p``) to 2 significant digits, others to 3
    decimals, the paper's strings (``<0.05``) kept, missing entries blank."""
    def cell(v: object, q: str) -> str:
        if isinstance(v, str):
            return v
        if v is None or not np.isfinite(float(v)):
            return ""
        return f"{float(v):.2g}" if q.endswith("_p") or "_p_" in q else f"{float(v):.3f}"

    return pd.DataFrame({c: [cell(v, q) for q, v in wide[c].items()] for c in wide.columns}, index=wide.index)
