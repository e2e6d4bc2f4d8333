"""A simple age baseline and per-site contrast measures, used to check that a cohort's age signal is real."""
from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from brainage_lib.data.cohort import Cohort
from brainage_lib.data.transforms import resize
from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation.anatomy import DEFAULT_SHAPE, tissue_maps


def downsample_features(volumes: np.ndarray, size: int) -> np.ndarray:
    """Flattened ``size``^3 down-samplings of (N, D, H, W) volumes, each divided by its mean."""
    feats = np.stack([resize(np.asarray(v, dtype=np.float32), (size,) * 3).ravel() for v in volumes])
    return feats / np.maximum(feats.mean(1, keepdims=True), 1e-6)


def ridge_age_baseline(features: np.ndarray, ages: np.ndarray, seed: int = 0, folds: int = 5) -> dict:
    """Cross-validated ridge regression of age on voxels, beside predicting the training mean.

    Predictions are clipped to the training fold's age range. Returns out-of-fold MAEs
    of ridge and of the mean predictor, Pearson r, and the predictions.
    """
    ages = np.asarray(ages, dtype=float)
    if len(ages) < 2 * folds:
        raise BrainAgeError(f"The baseline needs at least {2 * folds} labelled subjects for {folds}-fold CV, got {len(ages)}.")
    cv = KFold(folds, shuffle=True, random_state=seed)
    model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 5, 13)))
    pred = cross_val_predict(model, features, ages, cv=cv)
    mean_pred = np.empty_like(ages)
    for train, test in cv.split(features):
        mean_pred[test] = ages[train].mean()
        # a linear model can extrapolate far outside the ages it saw on an atypical image
        pred[test] = np.clip(pred[test], ages[train].min(), ages[train].max())
    return {
        "mae_ridge": float(np.mean(np.abs(pred - ages))),
        "mae_mean": float(np.mean(np.abs(mean_pred - ages))),
        "r_ridge": float(np.corrcoef(pred, ages)[0, 1]),
        "pred": pred,
    }


def tissue_contrast(cohort: Cohort, volumes: np.ndarray) -> pd.DataFrame:
    """Per-subject median intensity in template GM and WM masks and their ratio, from (N, D, H, W) MNI-space volumes."""
    if volumes.ndim != 4:
        raise BrainAgeError(f"Expected (N, D, H, W) volumes, got shape {volumes.shape}.")
    maps = tissue_maps(DEFAULT_SHAPE)
    shape = volumes.shape[1:]
    gm = resize(maps["gm"] * (maps["gm"] > 0.6), shape) > 0.5
    wm = resize(maps["wm"] * (maps["wm"] > 0.9), shape) > 0.5
    rows = []
    for i, v in enumerate(volumes):
        v = np.asarray(v, dtype=np.float32)
        g, w = float(np.median(v[gm])), float(np.median(v[wm]))
        rows.append({"participant_id": cohort.table["participant_id"].iloc[i], "site": cohort.table["site"].iloc[i],
                     "age": cohort.table["age"].iloc[i], "gm": g, "wm": w, "wm_gm_ratio": w / g if g > 0 else np.nan})
    return pd.DataFrame(rows)
