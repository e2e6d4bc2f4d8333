"""Figures of the LSTM notebook: age distributions (paper Fig. 1), training curves, cumulative
scores (Figs. 4-5) and predicted vs chronological age.

A panel whose data this run does not have (no replication cohort, an untrained regime) is
drawn empty with "not testable" and the reason, never left out.
"""
from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from brainage_lib.metrics.scores import cumulative_score
from brainage_lib.papers.lstm.evaluation import CS_LEVELS, EVALUATIONS, MODELS, REGIMES, Evaluation, evaluation_title

__all__ = ["age_distributions", "cumulative_scores", "predicted_vs_true", "training_curves"]


def _not_testable(ax: Axes, title: str, reason: str) -> None:
    """An empty panel saying why it has no data."""
    ax.text(0.5, 0.5, "not testable:\n" + textwrap.fill(reason, 40), ha="center", va="center", fontsize=7,
            transform=ax.transAxes, wrap=True)
    ax.set_title(title, fontsize=9)
    ax.set_axis_off()  # not set_yticks([]): that would clear the ticks of a panel sharing this y axis


def age_distributions(train_ages: np.ndarray, test_ages: np.ndarray, replication_ages: np.ndarray | None,
                      no_replication: str | None = None) -> Figure:
    """Stacked histogram of the discovery split beside the replication cohort's (or why there is none)."""
    fig, ax = plt.subplots(1, 2, figsize=(9, 3))
    top = max(22.0, float(np.max(np.concatenate([train_ages, test_ages]))))  # the paper's 0-22 y, or wider
    ax[0].hist([train_ages, test_ages], bins=22, range=(0, top), stacked=True, label=["train", "test"])
    ax[0].set_title("discovery (nihpd_like)")
    ax[0].legend()
    ax[0].set_xlabel("age (years)")
    if replication_ages is None:
        _not_testable(ax[1], "replication (mghbch_like)", no_replication or "no replication cohort")
    else:
        top_r = max(6.0, float(np.max(replication_ages)))  # the paper's 0-6 y, or wider
        ax[1].hist(replication_ages, bins=12, range=(0, top_r))
        ax[1].set_title("replication (mghbch_like)")
        ax[1].set_xlabel("age (years)")
    return fig


def training_curves(history: pd.DataFrame, target_sd: Mapping[tuple[str, str], float], young: str,
                    missing: Mapping[str, str] | None = None) -> Figure:
    """Training MAE in years per epoch, one panel per regime.

    ``history`` has ``epoch``, ``train_loss`` (standardised), ``model`` and ``regime`` columns;
    ``target_sd[(regime, model)]`` turns a loss back into years; a regime in ``missing``
    (regime -> reason) was not trained.
    """
    fig, axes = plt.subplots(1, 2, figsize=(9, 3), sharey=True)
    for ax, regime in zip(axes, REGIMES):
        title = f"trained on {regime if regime == '0-22' else young} y"
        if regime in (missing or {}):
            _not_testable(ax, title, missing[regime])
            continue
        for name in MODELS:
            h = history[(history.model == name) & (history.regime == regime)]
            ax.plot(h["epoch"], h["train_loss"] * target_sd[(regime, name)], label=name)
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("training MAE (years)")
    axes[0].legend()
    return fig


def _per_evaluation(evals: Mapping[str, Evaluation], missing: Mapping[str, str] | None, young: str,
                    draw: Callable[[Axes, Evaluation], None]) -> tuple[Figure, np.ndarray]:
    """One panel per evaluation of ``EVALUATIONS``: ``draw`` where it was run, the reason from ``missing`` elsewhere."""
    fig, axes = plt.subplots(1, len(EVALUATIONS), figsize=(13, 3.6))
    for ax, key in zip(axes, EVALUATIONS):
        if key not in evals:
            _not_testable(ax, evaluation_title(key, young), (missing or {}).get(key, "not evaluated"))
            continue
        draw(ax, evals[key])
        ax.set_title(evals[key].title, fontsize=9)
    return fig, axes


def cumulative_scores(evals: Mapping[str, Evaluation], young: str, missing: Mapping[str, str] | None = None) -> Figure:
    """CS(alpha) in percent of both models, one panel per evaluation, alpha from 0 to the last CS level."""
    alphas = np.concatenate([[0.0], CS_LEVELS])

    def draw(ax: Axes, ev: Evaluation) -> None:
        for name in MODELS:
            ax.plot(alphas, 100 * cumulative_score(ev.errors(name), alphas), label=name)
        ax.set_xlabel("error level alpha (years)")
        ax.set_ylim(0, 100)

    fig, axes = _per_evaluation(evals, missing, young, draw)
    axes[0].set_ylabel("CS (%)")
    axes[0].legend()
    return fig


def predicted_vs_true(evals: Mapping[str, Evaluation], young: str, missing: Mapping[str, str] | None = None) -> Figure:
    """Predicted against chronological age of both models, one panel per evaluation, with the identity line."""

    def draw(ax: Axes, ev: Evaluation) -> None:
        for name in MODELS:
            ax.scatter(ev.ages, ev.preds[name], s=8, alpha=0.6, label=name)
        lo, hi = float(ev.ages.min()), float(ev.ages.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel("age (years)")

    fig, axes = _per_evaluation(evals, missing, young, draw)
    axes[0].set_ylabel("predicted age")
    axes[0].legend()
    return fig
