"""The LSTM paper's four trainings (two models x two age ranges) and their predictions."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from brainage_lib.engine.fabric import Engine, as_engine
from brainage_lib.engine.training import TrainConfig, TrainResult, train_regressor
from brainage_lib.papers.lstm.data import LSTMData
from brainage_lib.papers.lstm.evaluation import CNN3D_NAME, EVALUATIONS, MODELS, Evaluation
from brainage_lib.run.seeding import seed_everything

__all__ = ["evaluations", "predict_all", "train_models"]


def train_models(data: LSTMData, build: Callable[[], dict[str, torch.nn.Module]], tcfg: TrainConfig,
                 device: Engine | torch.device, seed: int) -> tuple[dict[tuple[str, str], TrainResult], pd.DataFrame]:
    """Train each model on each regime's discovery subjects (``data.regimes``).

    Each training starts from ``seed_everything(seed)`` and fresh weights from ``build()``;
    the last epoch's weights are kept (the paper has no validation set). Each is a stage of
    ``device`` (an ``Engine``): it resumes or loads from the engine's checkpoints.

    Returns
    -------
    trained
        ``{(regime, model name): TrainResult}``.
    history
        Every training's per-epoch history, with ``model`` and ``regime`` columns.
    """
    trained, histories = {}, []
    engine = as_engine(device)
    for regime in data.regimes:
        for name in MODELS:
            seed_everything(seed)
            model = build()[name]
            if engine.device.type == "cuda" and name == CNN3D_NAME:
                model = model.to(memory_format=torch.channels_last_3d)
            ds = data.dataset(name, "discovery", data.train_indices(regime))
            res = train_regressor(model, ds, None, tcfg, engine, desc=f"{name} [{regime}]")
            trained[(regime, name)] = res
            histories.append(res.history.assign(model=name, regime=regime))
    return trained, pd.concat(histories)


def predict_all(trained: dict[tuple[str, str], TrainResult], data: LSTMData,
                device: torch.device) -> dict[tuple[str, str, str], np.ndarray]:
    """Predicted ages ``{(regime, cohort, model): (N,)}`` of every trained model.

    Every model predicts the whole replication cohort, when there is one; on the discovery test
    set the 0-22 y models predict every subject, the young ones only those of their own age range
    (``data.young_test_idx``, in test-set order).
    """
    pred = {}
    for name in MODELS:
        for regime in data.regimes:
            if data.repl is not None:
                pred[(regime, "replication", name)] = trained[(regime, name)].predict(
                    data.dataset(name, "replication"), device)
            idx = data.test_idx if regime == "0-22" else data.young_test_idx
            pred[(regime, "discovery", name)] = (trained[(regime, name)].predict(
                data.dataset(name, "discovery", idx), device) if len(idx) else np.empty(0))
    return pred


def evaluations(data: LSTMData, pred: dict[tuple[str, str, str], np.ndarray], young: str) -> dict[str, Evaluation]:
    """The evaluations of tables 1-3 that this data allows (not in ``data.not_testable()``), by ``Evaluation.key``."""
    out = {}
    for key, (regime, cohort) in EVALUATIONS.items():
        if key in data.not_testable():
            continue
        c = data.cohort(cohort)
        idx = data.test_idx if cohort == "discovery" else np.arange(len(c))
        preds = {m: pred[(regime, cohort, m)] for m in MODELS}
        out[key] = Evaluation(regime, cohort, young, c.ages[idx], preds, c.table["participant_id"].iloc[idx].to_numpy(),
                              data.disc.ages[data.train_indices(regime)])
    return out
