"""Evaluation for the TGB notebook: Table 1, per-year errors, difference maps and region recovery.

Region recovery: the paper reads its |mean(age 20) - mean(age 8)| map by eye (the
task-guided GAN "highlights the occipital lobe"). On simulated cohorts the region
whose ageing was amplified is known (``ground_truth/effect_map.nii.gz``), so the map
is scored against it: the Pearson correlation over brain voxels, and the overlap
(Dice) of the top ``k`` % brain voxels of each map; by chance that overlap is ``k`` %.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_lib.data.transforms import load_volume, resize
from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation.anatomy import tissue_maps

# What the summary and the index page show of this paper: its name and the titles of its record tables.
PAPER = {"short": "TGB", "title": "GAN with a task-guided branch for brain-age estimation (ABIDE, 3D)",
         "tables": {"table1": "Table 1: L1, MSE and MAE (mean and sd over test subjects)",
                    "wilcoxon": "Wilcoxon signed-rank tests between methods",
                    "group_mae": "MAE per age group (discussion)", "diffmap": "Fig. 3 difference maps",
                    "synthesis": "Synthesised training set (sec. 2.3)", "data": "Data", "split": "Split"}}

__all__ = ["GROUP_EDGES", "PAPER_DIFF_MAX", "PAPER_GROUP_MAE", "PAPER_TABLE1", "claims", "error_summary",
           "mean_difference_map", "nearest_age_indices", "recovery_scores", "reference_maps", "split_counts",
           "squared_error_by_year", "table1_frame"]

# Table 1 of the paper: mean and sd over the 160 test subjects.
PAPER_TABLE1: dict[str, dict[str, tuple[float, float] | None]] = {
    "REG": {"l1": None, "mse": (5.1922, 9.0424), "mae": (1.7060, 1.5153)},
    "REG-GAN": {"l1": (0.0168, 0.0044), "mse": (6.7092, 11.6758), "mae": (1.9356, 1.7266)},
    "REG-GAN-TGB": {"l1": (0.0264, 0.0066), "mse": (4.0699, 6.2613), "mae": (1.5415, 1.3055)},
}


def split_counts(n: int, paper: tuple[int, int, int] = (640, 62, 160)) -> tuple[int, int, int]:
    """Train/validation/test sizes for ``n`` subjects in the paper's proportions (exactly 640/62/160 for 862)."""
    total = sum(paper)
    n_val, n_test = round(n * paper[1] / total), round(n * paper[2] / total)
    if n - n_val - n_test < 2 or n_val < 1 or n_test < 3:
        raise BrainAgeError(f"{n} subjects are too few for a train/validation/test split; use at least 30.")
    return n - n_val - n_test, n_val, n_test


def error_summary(pred: np.ndarray, age: np.ndarray) -> dict[str, float]:
    """Mean and sd (ddof=1, over subjects) of the squared and absolute errors, as in Table 1."""
    e = np.asarray(pred, float) - np.asarray(age, float)
    se, ae = e**2, np.abs(e)
    return {"mse_mean": float(se.mean()), "mse_sd": float(se.std(ddof=1)),
            "mae_mean": float(ae.mean()), "mae_sd": float(ae.std(ddof=1))}


def table1_frame(records: dict[str, dict], methods: tuple[str, ...] = ("REG", "REG-GAN", "REG-GAN-TGB")) -> pd.DataFrame:
    """Table 1 (paper beside this run, 'mean ± sd') from recorded ``table1.<method>.<metric>_{mean,sd}`` entries."""
    def cell(method: str, metric: str, source: str) -> str:
        m, s = records.get(f"table1.{method}.{metric}_mean"), records.get(f"table1.{method}.{metric}_sd")
        if m is None or m.get(source) is None:
            return "N/A"
        digits = 4
        return f"{m[source]:.{digits}f} ± {s[source]:.{digits}f}" if s and s.get(source) is not None else f"{m[source]:.{digits}f}"

    rows = []
    for method in methods:
        row = {"method": method}
        for metric, label in (("l1", "L1 loss"), ("mse", "MSE"), ("mae", "MAE")):
            row[f"{label} (paper)"] = cell(method, metric, "paper")
            row[f"{label} (this run)"] = cell(method, metric, "value")
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def squared_error_by_year(age: np.ndarray, pred: np.ndarray) -> pd.DataFrame:
    """Mean and sd of the squared error per 1-year group ``[k, k+1)`` (Fig. 2)."""
    age = np.asarray(age, float)
    df = pd.DataFrame({"year": np.floor(age).astype(int), "se": (np.asarray(pred, float) - age) ** 2})
    g = df.groupby("year")["se"]
    return pd.DataFrame({"n": g.size(), "mse": g.mean(), "sd": g.std(ddof=1)})


def nearest_age_indices(ages: np.ndarray, target: float, n: int) -> np.ndarray:
    """Indices of the ``n`` subjects whose ages are closest to ``target`` (ties by order)."""
    ages = np.asarray(ages, float)
    return np.argsort(np.abs(ages - target), kind="stable")[: min(n, len(ages))]


def mean_difference_map(young: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``|mean(old) - mean(young)|`` voxel-wise over images ``(N, D, H, W)``, float32 ``(D, H, W)``."""
    return np.abs(np.asarray(old, np.float32).mean(0) - np.asarray(young, np.float32).mean(0))


def reference_maps(ground_truth_dir: str | Path | None, size: int) -> dict[str, np.ndarray] | None:
    """The simulator's effect map, expected change and brain mask on the network's ``size``^3 grid.

    Each is read with ``load_volume`` and resized exactly as ``TGBVolume`` resizes an image
    (RAS orientation, trilinear to ``size``^3); the brain mask is the MNI152 brain mask on
    the cohort's simulation grid, resized the same way and thresholded at 0.5. Returns
    None when there is no ground truth (real data).
    """
    if ground_truth_dir is None:
        return None
    gt = Path(ground_truth_dir)
    if not (gt / "effect_map.nii.gz").is_file():
        return None
    shape = (size,) * 3
    effect_native = load_volume(gt / "effect_map.nii.gz")
    out = {"effect": resize(effect_native, shape)}
    if (gt / "expected_change.nii.gz").is_file():
        out["expected_change"] = resize(load_volume(gt / "expected_change.nii.gz"), shape)
    sim = json.loads((gt / "simulation.json").read_text()) if (gt / "simulation.json").is_file() else {}
    grid = tuple(sim.get("shape", effect_native.shape))
    out["mask"] = resize(tissue_maps(tuple(int(s) for s in grid))["mask"], shape) > 0.5
    return out


def recovery_scores(diff_map: np.ndarray, reference: np.ndarray, mask: np.ndarray, top_percent: float = 10.0) -> dict[str, float]:
    """How well a difference map finds the reference region, over the voxels in ``mask``.

    Returns
    -------
    dict
        ``pearson_r``: correlation of the two maps over the mask; ``dice_top``: Dice overlap
        of the top ``top_percent`` % mask voxels of each map (equal sizes, so also the
        fraction of the map's top voxels inside the reference's top voxels); ``chance``:
        the expected ``dice_top`` of a map unrelated to the reference (``top_percent / 100``).
    """
    d, r, m = np.asarray(diff_map, float), np.asarray(reference, float), np.asarray(mask, bool)
    if d.shape != r.shape or d.shape != m.shape:
        raise BrainAgeError(f"recovery_scores: map {d.shape}, reference {r.shape} and mask {m.shape} must match.")
    dv, rv = d[m], r[m]
    if dv.size < 10 or not 0 < top_percent < 100:
        raise BrainAgeError(f"recovery_scores: need >= 10 mask voxels (got {dv.size}) and 0 < top_percent < 100.")
    r_corr = float(np.corrcoef(dv, rv)[0, 1]) if dv.std() > 0 and rv.std() > 0 else float("nan")
    k = max(1, int(round(dv.size * top_percent / 100)))
    top_d = np.zeros(dv.size, bool)
    top_d[np.argsort(-dv, kind="stable")[:k]] = True
    top_r = np.zeros(dv.size, bool)
    top_r[np.argsort(-rv, kind="stable")[:k]] = True
    dice = 2.0 * float((top_d & top_r).sum()) / (2 * k)
    return {"pearson_r": r_corr, "dice_top": dice, "chance": k / dv.size}


# Sec. 4: MAE of REG-GAN-TGB per age group.
PAPER_GROUP_MAE = {"6-10": 1.32, "11-15": 1.37, "16-22": 2.11}
GROUP_EDGES = (6, 11, 16, 23)  # "6-10" = [6, 11), "11-15" = [11, 16), "16-22" = [16, 23)
# Sec. 3.3: maximum of the |age 20 - age 8| map (intensities in [0, 1]).
PAPER_DIFF_MAX = {"REG-GAN": 0.05, "REG-GAN-TGB": 0.49}


LEARNED_FRACTION = 0.8  # a regressor "learns age" when its MAE is below this fraction of the mean-prediction MAE


def claims(records: dict[str, dict]) -> pd.DataFrame:
    """The paper's claims, each judged from this run's recorded numbers.

    ``records`` is a Recorder's ``doc["records"]``. Columns: key, claim, paper, this run,
    rule, reproduced (True/False, None when not testable) and reason (why not testable).
    A claim whose numbers were not recorded (e.g. region recovery on real data) is not
    testable; so is a comparison between regressors when one of them does not learn age
    (MAE not below 0.8 x that of predicting the training mean), since its ranking then
    says nothing about the methods.
    """
    v = {k: e.get("value") for k, e in records.items()}
    mean_mae = v.get("baseline.mean_prediction.mae")

    def learns(m: str) -> bool:
        mae = v.get(f"table1.{m}.mae_mean")
        return mae is not None and mean_mae is not None and mae < LEARNED_FRACTION * mean_mae

    rows = []

    def add(key: str, claim: str, paper: str, keys: tuple[str, ...], test, show, rule: str,
            needs_learning: tuple[str, ...] = ()) -> None:
        vals = [v.get(k) for k in keys]
        measured = all(x is not None for x in vals)
        reason = None
        if not measured:
            reason = "not measured on this data (" + ", ".join(k for k, x in zip(keys, vals) if x is None) + ")"
        elif not all(learns(m) for m in needs_learning):
            reason = ("compares regressors of which " + ", ".join(m for m in needs_learning if not learns(m))
                      + f" did not learn age (MAE not below {LEARNED_FRACTION:g} x the mean-prediction MAE)")
        rows.append({"key": key, "claim": claim, "paper": paper, "this run": show(*vals) if measured else "not measured",
                     "rule": rule, "reproduced": None if reason else bool(test(*vals)), "reason": reason})

    m = "table1.{}.{}_mean".format
    add("reg_learns", "REG learns age: its test MAE is well below that of predicting the training mean age",
        "MAE 1.71 (ages 6-24)", (m("REG", "mae"), "baseline.mean_prediction.mae"), lambda a, b: a < LEARNED_FRACTION * b,
        lambda a, b: f"MAE {a:.2f} vs {b:.2f} for the training mean",
        f"REG's test MAE < {LEARNED_FRACTION:g} x the MAE of predicting the training mean age")
    add("reg_gan_worse", "REG-GAN is worse than REG (higher MSE and MAE)", "MSE 6.71 vs 5.19, MAE 1.94 vs 1.71",
        (m("REG-GAN", "mse"), m("REG", "mse"), m("REG-GAN", "mae"), m("REG", "mae")),
        lambda a, b, c, d: a > b and c > d, lambda a, b, c, d: f"MSE {a:.2f} vs {b:.2f}, MAE {c:.2f} vs {d:.2f}",
        "both test MSE and MAE of REG-GAN above REG's", ("REG", "REG-GAN"))
    for other in ("REG", "REG-GAN"):
        add(f"tgb_beats_{other.lower().replace('-', '_')}", f"REG-GAN-TGB beats {other}, significantly (Wilcoxon p < 0.01)",
            f"MAE 1.54 vs {PAPER_TABLE1[other]['mae'][0]:.2f}, p < 0.01",
            (m("REG-GAN-TGB", "mae"), m(other, "mae"), f"wilcoxon.{other}_vs_REG-GAN-TGB.p"),
            lambda a, b, p: a < b and p < 0.01, lambda a, b, p: f"MAE {a:.2f} vs {b:.2f}, p = {p:.2g}",
            "lower test MAE and Wilcoxon signed-rank p < 0.01 on the paired absolute errors", (other, "REG-GAN-TGB"))
    add("tgb_higher_l1", "REG-GAN-TGB reconstructs less faithfully than REG-GAN (higher L1)", "L1 0.0264 vs 0.0168",
        (m("REG-GAN-TGB", "l1"), m("REG-GAN", "l1")), lambda a, b: a > b, lambda a, b: f"L1 {a:.4f} vs {b:.4f}",
        "mean test L1 of REG-GAN-TGB above REG-GAN's")
    add("tgb_stronger_diffmap", "the REG-GAN-TGB difference map |age 20 - age 8| is much stronger than REG-GAN's",
        "max 0.49 vs 0.05", ("diffmap.REG-GAN-TGB.max", "diffmap.REG-GAN.max"), lambda a, b: a > 2 * b,
        lambda a, b: f"max {a:.3f} vs {b:.3f}", "maximum of the REG-GAN-TGB map more than twice REG-GAN's")
    r, d = "recovery.{}.effect.pearson_r".format, "recovery.{}.effect.dice_top".format
    add("tgb_finds_region",
        "the REG-GAN-TGB difference map points at the age-related region better than REG-GAN's and the real images'",
        "shown by eye (occipital lobe)", (r("REG-GAN-TGB"), r("REG-GAN"), r("real"), d("REG-GAN-TGB"), d("REG-GAN"), d("real")),
        lambda a, b, c, e, f, g: a > max(b, c) and e > max(f, g),
        lambda a, b, c, e, f, g: f"against the true effect map, r {a:.2f} vs {b:.2f} (REG-GAN) and {c:.2f} (real); "
                                 f"top-voxel Dice {e:.2f} vs {f:.2f} and {g:.2f}",
        "both Pearson r and top-voxel Dice against the simulator's effect map highest for REG-GAN-TGB")
    g = "group_mae.REG-GAN-TGB.{}".format
    add("tgb_oldest_group_worst", "REG-GAN-TGB's error is largest in the 16-22 group (fewest images)",
        "MAE 2.11 vs 1.32 (6-10), 1.37 (11-15)", (g("16-22"), g("6-10"), g("11-15")), lambda a, b, c: a > b and a > c,
        lambda a, b, c: f"MAE {a:.2f} vs {b:.2f} (6-10), {c:.2f} (11-15)",
        "REG-GAN-TGB's MAE in 16-22 above both other groups'", ("REG-GAN-TGB",))
    return pd.DataFrame(rows)
