"""Difference maps |mean(age 20) - mean(age 8)| and how well they find the simulator's effect region.

The paper reads its Fig. 3 maps by eye (the task-guided GAN "highlights the occipital
lobe"). On simulated cohorts the region whose ageing was made stronger is known
(``ground_truth/effect_map.nii.gz``), so every map is scored against it: the Pearson
correlation over brain voxels, and the overlap (Dice) of the top ``k`` % brain voxels of
each map (fewer when the effect region's core holds fewer: ``visibility.top_count``), which
is that share by chance.

Two controls make the score evidence:

- the **oracle**: the difference of the simulator's noise-free population images at the
  two reference ages (``ground_truth/reference_young.nii.gz``, ``reference_old.nii.gz``),
  passed through the same transform as the model inputs. It shows what a perfect
  method could find in these images;
- an **age-permutation null**: the same map built after shuffling the training ages, so
  the two groups differ by chance only. The permutation p is the share of shuffled maps
  that score at least as well as the real grouping (``(1 + #null >= observed) / (1 + n)``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_lib.data.transforms import Transform, load_volume, resize
from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation.anatomy import tissue_maps
from brainage_lib.simulation.visibility import top_count

__all__ = ["nearest_age_indices", "mean_difference_map", "reference_maps", "recovery_scores", "permutation_scores",
           "score_maps", "robust_strength"]

YOUNG_AGE, OLD_AGE = 8.0, 20.0  # Fig. 3's ages
STRENGTH_PERCENTILE = 99.0  # a map's strength: this percentile over brain voxels (robust to a single voxel)


def nearest_age_indices(ages: np.ndarray, target: float, n: int) -> np.ndarray:
    """Indices of the ``n`` subjects whose ages are closest to ``target`` (ties by order)."""
    ages = np.asarray(ages, float)
    return np.argsort(np.abs(ages - target), kind="stable")[: min(n, len(ages))]


def mean_difference_map(young: np.ndarray, old: np.ndarray) -> np.ndarray:
    """``|mean(old) - mean(young)|`` voxel-wise over images ``(N, D, H, W)``, float32 ``(D, H, W)``."""
    return np.abs(np.asarray(old, np.float32).mean(0) - np.asarray(young, np.float32).mean(0))


def robust_strength(diff_map: np.ndarray, mask: np.ndarray | None = None) -> float:
    """The map's :data:`STRENGTH_PERCENTILE` th percentile over ``mask`` (all voxels without one)."""
    d = np.asarray(diff_map, float)
    return float(np.percentile(d[np.asarray(mask, bool)] if mask is not None else d, STRENGTH_PERCENTILE))


def reference_maps(ground_truth_dir: str | Path | None, transform: Transform) -> dict[str, np.ndarray] | None:
    """The simulator's effect map, the oracle map and the brain mask on the network's input grid.

    ``transform`` is the one that made the model inputs (e.g. ``TGBVolume(size)``). The effect
    map and the brain mask (the MNI152 mask on the cohort's simulation grid, thresholded at
    0.5 after resizing) are resized like an image; the oracle is
    ``|T(reference_old) - T(reference_young)|`` when the simulator wrote those images.
    Returns None when there is no ground truth (real data).
    """
    if ground_truth_dir is None:
        return None
    gt = Path(ground_truth_dir)
    if not (gt / "effect_map.nii.gz").is_file():
        return None
    shape = tuple(transform.out_shape)
    effect_native = load_volume(gt / "effect_map.nii.gz")
    out = {"effect": resize(effect_native, shape)}
    young, old = gt / "reference_young.nii.gz", gt / "reference_old.nii.gz"
    if young.is_file() and old.is_file():
        out["oracle"] = mean_difference_map(transform(load_volume(young))[None], transform(load_volume(old))[None])
    sim = json.loads((gt / "simulation.json").read_text()) if (gt / "simulation.json").is_file() else {}
    grid = tuple(int(s) for s in sim.get("shape", effect_native.shape))
    out["mask"] = resize(tissue_maps(grid)["mask"], shape) > 0.5
    return out


def _top(values: np.ndarray, k: int) -> np.ndarray:
    top = np.zeros(values.size, bool)
    top[np.argpartition(-values, k - 1)[:k]] = True
    return top


def recovery_scores(diff_map: np.ndarray, reference: np.ndarray, mask: np.ndarray, top_percent: float = 10.0) -> dict[str, float]:
    """How well a difference map finds the reference region, over the voxels in ``mask``.

    Returns
    -------
    dict
        ``pearson_r``: correlation of the two maps over the mask; ``dice_top``: Dice overlap
        of the top ``top_percent`` % mask voxels of each map, or of as many as the reference's
        core (at least half its peak) holds when that is fewer (``visibility.top_count``; equal
        sizes, so also the fraction of the map's top voxels inside the reference's); ``chance``:
        the expected ``dice_top`` of a map unrelated to the reference (that count over the mask's).
    """
    d, r, m = np.asarray(diff_map, float), np.asarray(reference, float), np.asarray(mask, bool)
    if d.shape != r.shape or d.shape != m.shape:
        raise BrainAgeError(f"recovery_scores: map {d.shape}, reference {r.shape} and mask {m.shape} must match.")
    dv, rv = d[m], r[m]
    if dv.size < 10 or not 0 < top_percent < 100:
        raise BrainAgeError(f"recovery_scores: need >= 10 mask voxels (got {dv.size}) and 0 < top_percent < 100.")
    r_corr = float(np.corrcoef(dv, rv)[0, 1]) if dv.std() > 0 and rv.std() > 0 else float("nan")
    k = top_count(rv, top_percent)
    dice = float((_top(dv, k) & _top(rv, k)).sum()) / k
    return {"pearson_r": r_corr, "dice_top": dice, "chance": k / dv.size}


def permutation_scores(images: np.ndarray, ages: np.ndarray, reference: np.ndarray, mask: np.ndarray, n_diff: int,
                       top_percent: float, n_perm: int, seed: int = 0) -> dict[str, float]:
    """Recovery of the age-8 vs age-20 map of ``images`` and its age-permutation null.

    ``images`` ``(N, D, H, W)`` (real training images or their reconstructions) with ``ages``
    ``(N,)``. The groups are the ``n_diff`` images nearest to ages 8 and 20; the null repeats
    this after shuffling ``ages`` ``n_perm`` times (seeded). Returns the observed
    ``pearson_r`` and ``dice_top``, the null's mean and 95th percentile of ``dice_top``, and
    the permutation p of ``dice_top`` and of ``pearson_r``.
    """
    ages = np.asarray(ages, float)
    if len(images) != len(ages) or n_perm < 1:
        raise BrainAgeError(f"permutation_scores: {len(images)} images, {len(ages)} ages, n_perm={n_perm}.")

    def score(a: np.ndarray) -> dict[str, float]:
        young, old = nearest_age_indices(a, YOUNG_AGE, n_diff), nearest_age_indices(a, OLD_AGE, n_diff)
        return recovery_scores(mean_difference_map(images[young], images[old]), reference, mask, top_percent)

    obs = score(ages)
    rng = np.random.default_rng(seed)
    null = [score(rng.permutation(ages)) for _ in range(n_perm)]
    dice_null = np.array([s["dice_top"] for s in null])
    r_null = np.array([s["pearson_r"] for s in null], float)

    def p_value(observed: float, sample: np.ndarray) -> float:
        if not np.isfinite(observed):
            return float("nan")
        return float((1 + np.sum(np.nan_to_num(sample, nan=-np.inf) >= observed)) / (1 + len(sample)))

    return {**obs, "null_dice_mean": float(dice_null.mean()), "null_dice_95": float(np.percentile(dice_null, 95)),
            "p_dice": p_value(obs["dice_top"], dice_null), "p_r": p_value(obs["pearson_r"], r_null)}


def score_maps(image_sets: Mapping[str, np.ndarray], ages: np.ndarray, refs: dict[str, np.ndarray], n_diff: int,
               top_percent: float, n_perm: int, seed: int = 0) -> pd.DataFrame:
    """One row per map (each image set's age map, plus the oracle): r, Dice, chance, null and p, against the effect map.

    ``image_sets`` maps a name ("real", a GAN) to images ``(N, D, H, W)`` in the order of ``ages``.
    The oracle has no permutation null (it is not built from subjects): its p values are NaN.
    """
    rows = {}
    for name, images in image_sets.items():
        rows[name] = permutation_scores(images, ages, refs["effect"], refs["mask"], n_diff, top_percent, n_perm, seed)
    if "oracle" in refs:
        rows["oracle"] = {**recovery_scores(refs["oracle"], refs["effect"], refs["mask"], top_percent),
                          "null_dice_mean": float("nan"), "null_dice_95": float("nan"), "p_dice": float("nan"),
                          "p_r": float("nan")}
    return pd.DataFrame.from_dict(rows, orient="index")
