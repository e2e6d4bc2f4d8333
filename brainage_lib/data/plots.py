"""Plotting helpers shared by the notebooks (matplotlib/seaborn/nilearn; headless)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from brainage_lib.data.cohort import Cohort
from brainage_lib.data.transforms import load_volume


def age_histograms(cohorts: dict[str, Cohort], bins: int = 20) -> Figure:
    """Per cohort: age histogram stacked by site (left) and by sex (right)."""
    fig, axes = plt.subplots(len(cohorts), 2, figsize=(11, 2.4 * len(cohorts)), squeeze=False)
    for row, (name, c) in zip(axes, cohorts.items()):
        t = c.table.dropna(subset=["age"])
        sns.histplot(t, x="age", hue="site", multiple="stack", bins=bins, ax=row[0], legend=t["site"].nunique() <= 8)
        sns.histplot(t, x="age", hue="sex", multiple="dodge", bins=bins, ax=row[1])
        row[0].set_title(f"{name}: by site ({t['site'].nunique()} sites)", fontsize=9)
        row[1].set_title(f"{name}: by sex", fontsize=9)
        for ax in row:
            ax.set_xlabel("age (years)")
    fig.tight_layout()
    return fig


def _axial(vol: np.ndarray, z_fraction: float = 0.55) -> np.ndarray:
    return np.rot90(vol[:, :, int(round((vol.shape[2] - 1) * z_fraction))])


def example_slices(cohorts: dict[str, Cohort], per_row: int = 6) -> Figure:
    """Axial slices of subjects spread over each cohort's age range (youngest to oldest)."""
    fig, axes = plt.subplots(len(cohorts), per_row, figsize=(1.9 * per_row, 2.2 * len(cohorts)), squeeze=False)
    for row, (name, c) in zip(axes, cohorts.items()):
        t = c.table.dropna(subset=["age"]).sort_values("age")
        picks = t.iloc[np.unique(np.linspace(0, len(t) - 1, per_row).astype(int))]
        for ax in row:
            ax.axis("off")
        for ax, (_, r) in zip(row, picks.iterrows()):
            vol = load_volume(r["path"])
            ax.imshow(_axial(vol), cmap="gray", vmin=0, vmax=np.percentile(vol[vol > 0], 99.5) if (vol > 0).any() else 1)
            ax.set_title(f"{name}\n{r['age']:.1f} y, {r['sex']}, {r['site']}", fontsize=7)
    fig.tight_layout()
    return fig


def ground_truth_maps(cohorts: dict[str, Cohort]) -> Figure | None:
    """The simulator's effect map (and expected age change) of each simulated cohort over the MNI template."""
    from nilearn import datasets, plotting

    sims = {k: c for k, c in cohorts.items() if c.ground_truth_dir is not None}
    if not sims:
        return None
    bg = datasets.load_mni152_template(resolution=2)
    fig, axes = plt.subplots(len(sims), 2, figsize=(12, 2.3 * len(sims)), squeeze=False)
    for row, (name, c) in zip(axes, sims.items()):
        gt = c.ground_truth_dir
        plotting.plot_stat_map(nib.load(gt / "effect_map.nii.gz"), bg_img=bg, axes=row[0], display_mode="ortho",
                               cut_coords=(0, 10, 30), cmap="hot", colorbar=True, title=f"{name}: effect map", annotate=False)
        plotting.plot_stat_map(nib.load(gt / "expected_change.nii.gz"), bg_img=bg, axes=row[1], display_mode="ortho",
                               cut_coords=(0, 10, 30), cmap="hot", colorbar=True, title=f"{name}: |expected change|", annotate=False)
    return fig


def site_contrast(contrast: dict[str, pd.DataFrame]) -> Figure:
    """WM/GM intensity ratio per site for each cohort (site and field-strength differences)."""
    fig, axes = plt.subplots(1, len(contrast), figsize=(3.2 * len(contrast), 3.2), squeeze=False)
    for ax, (name, df) in zip(axes[0], contrast.items()):
        sns.boxplot(df, x="site", y="wm_gm_ratio", ax=ax, color="0.8", fliersize=1)
        ax.set_title(name, fontsize=9)
        ax.tick_params(axis="x", labelrotation=90, labelsize=6)
        ax.set_ylabel("WM / GM median intensity")
    fig.tight_layout()
    return fig


def predicted_vs_true(results: dict[str, tuple[np.ndarray, np.ndarray]], title: str = "") -> Figure:
    """Scatter of predicted against chronological age, one panel per entry, identity line dashed."""
    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.2), squeeze=False)
    for ax, (name, (age, pred)) in zip(axes[0], results.items()):
        ax.scatter(age, pred, s=6, alpha=0.6)
        lo, hi = float(np.nanmin(age)), float(np.nanmax(age))
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("age (years)")
        ax.set_ylabel("predicted age")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
