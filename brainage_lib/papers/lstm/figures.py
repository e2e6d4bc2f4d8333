"""Figures of the LSTM notebook: age distributions (paper Fig. 1), training curves, cumulative
scores (Figs. 4-5) and predicted vs chronological age."""
from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from brainage_lib.metrics.scores import cumulative_score
from brainage_lib.papers.lstm.evaluation import CS_LEVELS, MODELS, REGIMES, Evaluation

__all__ = ["age_distributions", "cumulative_scores", "predicted_vs_true", "training_curves"]


def age_distributions(train_ages: np.ndarray, test_ages: np.ndarray, replication_ages: np.ndarray) -> Figure:
    """Stacked histogram of the discovery split (0-22 y) beside the replication cohort's (0-6 y)."""
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    ax[0].hist([train_ages, test_ages], bins=22, range=(0, 22), stacked=True, label=["train", "test"])
    ax[0].set_title("discovery (nihpd_like)")
    ax[0].legend()
    ax[1].hist(replication_ages, bins=12, range=(0, 6))
    ax[1].set_title("replication (mghbch_like)")
    for a in ax:
        a.set_xlabel("age (years)")
    return fig


def training_curves(history: pd.DataFrame, target_sd: Mapping[tuple[str, str], float], young: str) -> Figure:
    """Training MAE in years per epoch, one panel per regime.

    ``history`` has ``epoch``, ``train_loss`` (standardised), ``model`` and ``regime`` columns;
    ``target_sd[(regime, model)]`` turns a loss back into years.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
    for ax, regime in zip(axes, REGIMES):
        for name in MODELS:
            h = history[(history.model == name) & (history.regime == regime)]
            ax.plot(h["epoch"], h["train_loss"] * target_sd[(regime, name)], label=name)
        ax.set_title(f"trained on {regime if regime == '0-22' else young} y")
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("training MAE (years)")
    axes[0].legend()
    return fig


def cumulative_scores(evals: Mapping[str, Evaluation]) -> Figure:
    """CS(alpha) in percent of both models, one panel per evaluation, alpha from 0 to the last CS level."""
    alphas = np.concatenate([[0.0], CS_LEVELS])
    fig, axes = plt.subplots(1, len(evals), figsize=(13, 3.6))
    for ax, ev in zip(axes, evals.values()):
        for name in MODELS:
            ax.plot(alphas, 100 * cumulative_score(ev.errors(name), alphas), label=name)
        ax.set_title(ev.title, fontsize=9)
        ax.set_xlabel("error level alpha (years)")
        ax.set_ylim(0, 100)
    axes[0].set_ylabel("CS (%)")
    axes[0].legend()
    return fig


def predicted_vs_true(evals: Mapping[str, Evaluation]) -> Figure:
    """Predicted against chronological age of both models, one panel per evaluation, with the identity line."""
    fig, axes = plt.subplots(1, len(evals), figsize=(13, 3.6))
    for ax, ev in zip(axes, evals.values()):
        for name in MODELS:
            ax.scatter(ev.ages, ev.preds[name], s=8, alpha=0.6, label=name)
        lo, hi = float(ev.ages.min()), float(ev.ages.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_title(ev.title, fontsize=9)
        ax.set_xlabel("age (years)")
    axes[0].set_ylabel("predicted age")
    axes[0].legend()
    return fig
