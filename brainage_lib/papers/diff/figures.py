"""Figures of the DIFF notebook: PAD boxplots (fig. 2), latent interpolations (fig. 3),
reconstructions (fig. 4) and training curves."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

__all__ = ["interpolation_grid", "pad_boxplot", "reconstruction_grid", "training_curves"]


def _show(ax: plt.Axes, img: np.ndarray, **kw) -> None:
    ax.imshow(np.rot90(np.asarray(img).squeeze()), cmap=kw.pop("cmap", "gray"), vmin=kw.pop("vmin", 0),
              vmax=kw.pop("vmax", 1), **kw)
    ax.set_xticks([])
    ax.set_yticks([])


def pad_boxplot(pads: Mapping[str, Mapping[str, np.ndarray]]) -> Figure:
    """One panel per PAD kind (e.g. raw, bias-corrected): a box and the points per model."""
    fig, axes = plt.subplots(1, len(pads), figsize=(5.2 * len(pads), 4.2), squeeze=False, sharey=False)
    for ax, (kind, per_model) in zip(axes[0], pads.items()):
        df = pd.DataFrame([(m, float(v)) for m, vals in per_model.items() for v in vals], columns=["model", "PAD"])
        sns.boxplot(df, x="model", y="PAD", ax=ax, color="0.85", fliersize=0)
        sns.stripplot(df, x="model", y="PAD", ax=ax, size=2.5, color="0.25", alpha=0.6, jitter=0.2)
        ax.axhline(0, color="tab:red", lw=0.8, ls="--")
        ax.set_title(f"ALS brain-PAD, {kind}", fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("brain-PAD (years)")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    return fig


def interpolation_grid(frames: np.ndarray, alphas: Sequence[float], age_latent: np.ndarray, age_image: np.ndarray,
                       row_titles: Sequence[str]) -> Figure:
    """Decoded frames ``(A, B, 1, H, W)``: one row per pair, one column per alpha.

    Under each frame: the age head on the interpolated ``z_sem`` and on the re-encoded image.
    """
    n_a, n_b = frames.shape[:2]
    fig, axes = plt.subplots(n_b, n_a, figsize=(1.75 * n_a, 2.15 * n_b), squeeze=False)
    for b in range(n_b):
        for a in range(n_a):
            ax = axes[b, a]
            _show(ax, frames[a, b])
            ax.set_xlabel(f"z: {age_latent[a, b]:.0f} y\nimg: {age_image[a, b]:.0f} y", fontsize=7)
            if b == 0:
                ax.set_title(f"α = {alphas[a]:.2f}", fontsize=8)
        axes[b, 0].set_ylabel(row_titles[b], fontsize=8)
    fig.tight_layout()
    return fig


def reconstruction_grid(originals: np.ndarray, recons: np.ndarray, titles: Sequence[str]) -> Figure:
    """Originals (top), DDIM reconstructions from their own ``(x_T, z_sem)`` (middle), |difference| (bottom)."""
    n = originals.shape[0]
    fig, axes = plt.subplots(3, n, figsize=(1.8 * n, 5.6), squeeze=False)
    for i in range(n):
        _show(axes[0, i], originals[i])
        axes[0, i].set_title(titles[i], fontsize=7)
        _show(axes[1, i], recons[i])
        _show(axes[2, i], np.abs(originals[i] - recons[i]), cmap="magma", vmax=0.25)
    for row, label in enumerate(("original", "reconstruction", "|difference|")):
        axes[row, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, age_loss: str = "years") -> Figure:
    """Noise MSE, age MSE (in ``age_loss`` units: years² or standardised) and validation MAE per epoch."""
    fig, axes = plt.subplots(1, 3, figsize=(11, 3))
    age_label = "age MSE (years²)" if age_loss == "years" else f"age MSE ({age_loss})"
    for ax, (col, label) in zip(axes, (("noise_mse", "noise MSE"), ("age_mse", age_label),
                                        ("val_mae", "validation MAE (years)"))):
        h = history.dropna(subset=[col])
        ax.plot(h["epoch"] + 1, h[col], marker="o", ms=3)
        ax.set_xlabel("epoch")
        ax.set_title(label, fontsize=9)
    fig.tight_layout()
    return fig
