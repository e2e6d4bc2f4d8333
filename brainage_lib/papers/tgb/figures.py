"""Figures of the TGB notebook: Fig. 2 (error per age group), Fig. 3 (slices and difference maps), training curves."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from brainage_lib.papers.tgb.evaluation import squared_error_by_year

METHOD_COLOURS = {"REG": "black", "REG-GAN": "tab:blue", "REG-GAN-TGB": "tab:red"}


def fig2_mse_by_age(test_age: np.ndarray, preds: dict[str, np.ndarray], train_age: np.ndarray) -> Figure:
    """Mean ± sd of the squared error per 1-year group for each method; train/test counts of real images as bars."""
    years = np.arange(int(np.floor(min(np.min(test_age), np.min(train_age)))),
                      int(np.floor(max(np.max(test_age), np.max(train_age)))) + 1)
    fig, ax = plt.subplots(figsize=(10, 4.2))
    bars = ax.twinx()
    n_train = pd.Series(np.floor(train_age).astype(int)).value_counts().reindex(years, fill_value=0)
    n_test = pd.Series(np.floor(test_age).astype(int)).value_counts().reindex(years, fill_value=0)
    bars.bar(years + 0.5 - 0.2, n_train.to_numpy(), width=0.4, color="0.8", label="train (real)")
    bars.bar(years + 0.5 + 0.2, n_test.to_numpy(), width=0.4, color="pink", label="test (real)")
    bars.set_ylabel("number of real images")
    ax.set_zorder(bars.get_zorder() + 1)
    ax.patch.set_visible(False)
    offsets = np.linspace(-0.2, 0.2, len(preds))
    for off, (name, pred) in zip(offsets, preds.items()):
        g = squared_error_by_year(test_age, pred)
        ax.errorbar(g.index + 0.5 + off, g["mse"], yerr=g["sd"].fillna(0), fmt="o-", ms=4, capsize=2, lw=1,
                    color=METHOD_COLOURS.get(name), label=name)
    ax.set_xticks(years + 0.5, [f"{y}-{y + 1}" for y in years], rotation=60, fontsize=8)
    ax.set_xlabel("age group (years)")
    ax.set_ylabel("MSE (years²), mean ± sd")
    ax.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = bars.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _axial(vol: np.ndarray, index: int) -> np.ndarray:
    return np.rot90(vol[:, :, index])


def _sagittal(vol: np.ndarray, index: int) -> np.ndarray:
    return np.rot90(vol[index, :, :])


def fig3_slices_and_maps(examples: dict[str, dict[float, np.ndarray]], diff_maps: dict[str, np.ndarray],
                         effect: np.ndarray | None = None, slice_fraction: float = 50 / 96) -> Figure:
    """Fig. 3: example images per source and age (columns), |age 20 - age 8| maps, and the true effect map.

    ``examples[source][age]`` is one volume (real or synthesised); ``diff_maps[source]`` a
    difference map. Rows: axial and sagittal views at ``slice_fraction`` of each axis
    (the paper shows slice 50 of 96 in both views).
    """
    cols: list[tuple[str, np.ndarray, str]] = []
    for src, by_age in examples.items():
        for age, vol in by_age.items():
            cols.append((f"{src}\nage {age:g}", vol, "gray"))
    for src, d in diff_maps.items():
        cols.append((f"|age 20 - age 8|\n{src} (max {float(d.max()):.3f})", d, "hot"))
    if effect is not None:
        cols.append(("true effect map\n(simulator)", effect, "viridis"))
    fig, axes = plt.subplots(2, len(cols), figsize=(1.65 * len(cols), 3.9), squeeze=False)
    for c, (title, vol, cmap) in enumerate(cols):
        idx = [int(round(slice_fraction * (s - 1))) for s in vol.shape]
        for r, view in enumerate((_axial(vol, idx[2]), _sagittal(vol, idx[0]))):
            ax = axes[r, c]
            vmax = None if cmap == "gray" else float(np.percentile(vol, 99.9)) or None
            ax.imshow(view, cmap=cmap, vmin=0 if cmap != "gray" else None, vmax=vmax)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=7)
        axes[0, 0].set_ylabel("axial", fontsize=8)
        axes[1, 0].set_ylabel("sagittal", fontsize=8)
    fig.tight_layout()
    return fig


def gan_history(histories: dict[str, pd.DataFrame]) -> Figure:
    """Training curves of each GAN: L1, task loss, Wasserstein estimate and the validation objective."""
    keys = [("l1", "L1 (train)"), ("task", "task L2 (train)"), ("wasserstein", "critic: E[D(G(x))] - E[D(x)]"),
            ("val_objective", "validation alpha*L1 + beta*task")]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 2.8))
    for ax, (k, label) in zip(axes, keys):
        for name, h in histories.items():
            if k in h and h[k].notna().any():
                ax.plot(h["epoch"] + 1, h[k], "o-", ms=3, color=METHOD_COLOURS.get(name), label=name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("epoch")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def synthesis_fill(fills: dict[str, pd.DataFrame], min_per_bin: int) -> Figure:
    """Real and synthesised training images per 1-year bin for each GAN, with the target minimum."""
    fig, axes = plt.subplots(1, len(fills), figsize=(5.5 * len(fills), 3.0), squeeze=False)
    for ax, (name, f) in zip(axes[0], fills.items()):
        x = np.arange(len(f))
        ax.bar(x, f["real"], color="0.6", label="real")
        ax.bar(x, f["synthetic"], bottom=f["real"], color=METHOD_COLOURS.get(name), alpha=0.7, label="synthesised")
        ax.axhline(min_per_bin, color="k", ls="--", lw=1, label=f"minimum {min_per_bin}")
        ax.set_xticks(x, f["bin"], rotation=60, fontsize=7)
        ax.set_title(f"{name}: {int(f['real'].sum())} real + {int(f['synthetic'].sum())} synthesised", fontsize=9)
        ax.set_xlabel("age bin (years)")
        ax.legend(fontsize=7)
    axes[0, 0].set_ylabel("training images")
    fig.tight_layout()
    return fig
