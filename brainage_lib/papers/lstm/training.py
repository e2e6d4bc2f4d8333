"""The LSTM paper's four trainings (two models x two age ranges) and their predictions."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainage_lib.engine.training import TrainConfig, TrainResult, save_checkpoint, train_regressor
from brainage_lib.papers.lstm.data import LSTMData
from brainage_lib.papers.lstm.evaluation import CNN3D_NAME, MODELS, REGIMES, Evaluation
from brainage_lib.run.seeding import seed_everything

__all__ = ["evaluations", "predict_all", "train_models"]


def train_models(data: LSTMData, build: Callable[[], dict[str, torch.nn.Module]], tcfg: TrainConfig,
                 device: torch.device, seed: int, checkpoint_dir: Path, params: dict
                 ) -> tuple[dict[tuple[str, str], TrainResult], pd.DataFrame]:
    """Train each model on each regime's discovery subjects; save every checkpoint.

    Each training starts from ``seed_everything(seed)`` and fresh weights from ``build()``;
    the last epoch's weights are kept (the paper has no validation set).

    Returns
    -------
    trained
        ``{(regime, model name): TrainResult}``.
    history
        Every training's per-epoch history, with ``model`` and ``regime`` columns.
    """
    trained, histories = {}, []
    for regime in REGIMES:
        for name in MODELS:
            seed_everything(seed)
            model = build()[name]
            if device.type == "cuda" and name == CNN3D_NAME:
                model = model.to(memory_format=torch.channels_last_3d)
            ds = data.dataset(name, "discovery", data.train_indices(regime))
            res = train_regressor(model, ds, None, tcfg, device, desc=f"{name} [{regime}]")
            trained[(regime, name)] = res
            histories.append(res.history.assign(model=name, regime=regime))
            save_checkpoint(checkpoint_dir / f"{regime}_{name.replace('+', '_').replace(' ', '')}.pt", res.model,
                            {"params": params, "model": name, "regime": regime},
                            {"target_mean": res.target_mean, "target_sd": res.target_sd})
    return trained, pd.concat(histories)


def predict_all(trained: dict[tuple[str, str], TrainResult], data: LSTMData,
                device: torch.device) -> dict[tuple[str, str, str], np.ndarray]:
    """Predicted ages ``{(regime, cohort, model): (N,)}``.

    Every model predicts the whole replication cohort; on the discovery test set the 0-22 y
    models predict every subject, the young ones only those of their own age range
    (``data.young_test_idx``, in test-set order).
    """
    pred = {}
    for name in MODELS:
        for regime in REGIMES:
            pred[(regime, "replication", name)] = trained[(regime, name)].predict(data.dataset(name, "replication"), device)
        pred[("0-22", "discovery", name)] = trained[("0-22", name)].predict(
            data.dataset(name, "discovery", data.test_idx), device)
        pred[("young", "discovery", name)] = (
            trained[("young", name)].predict(data.dataset(name, "discovery", data.young_test_idx), device)
            if len(data.young_test_idx) else np.empty(0))
    return pred


def evaluations(data: LSTMData, pred: dict[tuple[str, str, str], np.ndarray], young: str) -> dict[str, Evaluation]:
    """The three evaluations of the paper's tables 1-3, keyed by ``Evaluation.key``."""
    test_ids = data.disc.table["participant_id"].iloc[data.test_idx].to_numpy()
    repl_ids = data.repl.table["participant_id"].to_numpy()
    out = {}
    for regime, cohort, ids, ages in (("0-22", "discovery", test_ids, data.disc.ages[data.test_idx]),
                                      ("0-22", "replication", repl_ids, data.repl.ages),
                                      ("young", "replication", repl_ids, data.repl.ages)):
        ev = Evaluation(regime, cohort, young, ages, {m: pred[(regime, cohort, m)] for m in MODELS}, ids,
                        data.disc.ages[data.train_indices(regime)])
        out[ev.key] = ev
    return out
