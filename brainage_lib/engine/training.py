"""A small supervised training loop for age regressors, with validation-based model selection.

Targets are standardised with the training set's mean and sd (the network predicts
``(age - mean) / sd``; predictions are mapped back to years). With an L1 loss this is
the paper's MAE loss divided by a constant, which leaves Adam's steps unchanged but
spares the output layer from having to climb to the mean age at a 1e-4 learning rate.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from brainage_lib.engine.fabric import (Engine, RNGState, Stage, as_engine, code_version, compiled, data_fingerprint,
                                        fit, sync_batchnorm, sync_gradients)
from brainage_lib.errors import BrainAgeError


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are the LSTM paper's (Adam 1e-4 halved every 15 epochs, 60 epochs, batch 1, MAE)."""

    epochs: int = 60
    batch_size: int = 1
    lr: float = 1e-4
    lr_step: int = 15  # epochs between learning-rate decays
    lr_gamma: float = 0.5
    loss: str = "l1"  # "l1" (MAE) | "mse"
    weight_decay: float = 0.0
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    num_workers: int = 0
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (a dry run); None: train every epoch

    def __post_init__(self) -> None:
        if self.loss not in ("l1", "mse"):
            raise BrainAgeError(f"Unknown loss '{self.loss}': use 'l1' or 'mse'.")
        if self.epochs < 1 or self.batch_size < 1:
            raise BrainAgeError("epochs and batch_size must be at least 1.")


@dataclass
class TrainResult:
    model: nn.Module  # holds the best-validation weights
    history: pd.DataFrame  # epoch, train_loss, val_mae, lr, seconds
    best_epoch: int
    wall_time_s: float
    target_mean: float
    target_sd: float
    stage_dir: Path | None = None  # the stage's checkpoint folder; a saved model takes in its final checkpoint

    def predict(self, dataset: Dataset, device: torch.device, batch_size: int = 8) -> np.ndarray:
        return predict(self.model, dataset, device, self.target_mean, self.target_sd, batch_size)


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, device: torch.device, mean: float = 0.0, sd: float = 1.0,
            batch_size: int = 8, amp: bool = True) -> np.ndarray:
    """Predictions in years for every item of ``dataset`` (in order)."""
    model.eval()
    out = []
    use_amp = amp and device.type == "cuda"
    for x, _ in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            y = model(x.to(device, non_blocking=True))
        out.append(y.float().reshape(-1).cpu().numpy())
    return np.concatenate(out) * sd + mean if out else np.zeros(0)


def train_regressor(model: nn.Module, train: Dataset, val: Dataset | None, cfg: TrainConfig,
                    device: Engine | torch.device | str, desc: str = "train", progress: bool = True) -> TrainResult:
    """Train ``model`` to predict age, as the resumable stage ``desc`` of ``device`` (an :class:`Engine`).

    With a validation set, the weights of the epoch with the lowest validation MAE are
    kept (model selection); without one, the last epoch's weights (the paper's protocol
    when it names no validation set). On an engine with a checkpoint folder the stage
    resumes from its last checkpoint, or loads its final one; with ``devices > 1`` it
    trains with DDP (the global batch stays ``cfg.batch_size``).
    """
    engine = as_engine(device)
    stage = None
    if engine.checkpoints is not None:
        stage = engine.stage(desc, {"kind": "regressor", "config": cfg, "model": repr(model),
                                    "train": data_fingerprint(train), "val": data_fingerprint(val),
                                    "code": code_version(_fit_regressor, fit, model)})
    return engine.run(_fit_regressor, stage, model, train, val, cfg, desc, progress, amp=cfg.amp,
                      batch_size=cfg.batch_size, last_batch=len(train) % cfg.batch_size)


def _fit_regressor(fabric, stage: Stage | None, model: nn.Module, train: Dataset, val: Dataset | None, cfg: TrainConfig,
                   desc: str, progress: bool) -> TrainResult:
    """The regressor's step and epoch end in :func:`engine.fabric.fit`, on one Fabric process."""
    ages = np.array([float(train[i][1]) for i in range(len(train))])
    if np.isnan(ages).any():
        raise BrainAgeError("train_regressor needs labelled training items; drop unlabelled ones first.")
    mean, sd = float(ages.mean()), float(ages.std() or 1.0)
    world = fabric.world_size
    gen = torch.Generator().manual_seed(cfg.seed)
    model = sync_batchnorm(fabric, model.to(fabric.device))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    loss_fn = nn.L1Loss() if cfg.loss == "l1" else nn.MSELoss()
    val_ages = np.array([float(val[i][1]) for i in range(len(val))]) if val is not None else np.zeros(0)

    net = compiled(fabric, model)

    def step(run):
        (b, (x, y)), = run
        y = ((y - mean) / sd).float()
        with fabric.autocast():
            pred = net(x).reshape(-1)
        loss = loss_fn(pred.float(), y)
        opt.zero_grad(set_to_none=True)
        fabric.backward(loss if world == 1 else loss * (len(y) / len(b)))
        sync_gradients(fabric, [model])
        opt.step()
        return {"loss": loss.detach().double() * len(y), "n": len(y)}

    def end_of_epoch(epoch, sums, steps):
        lr = opt.param_groups[0]["lr"]
        sched.step()
        val_mae = np.nan
        if len(val_ages):
            val_mae = float(np.mean(np.abs(predict(model, val, fabric.device, mean, sd, amp=cfg.amp) - val_ages)))
        loss = sums.get("loss", 0.0) / max(sums.get("n", 0.0), 1)
        return ({"epoch": epoch, "train_loss": loss, "val_mae": val_mae, "lr": lr},
                val_mae if np.isfinite(val_mae) else -epoch)  # no validation: the last epoch wins

    state = {"model": model, "opt": opt, "sched": sched, "rng": RNGState(order=gen)}
    history, trained_s, best_epoch = fit(
        fabric, stage, state, train, step, end_of_epoch, lambda: copy.deepcopy(model.state_dict()),
        epochs=cfg.epochs, batch_size=cfg.batch_size, order=gen, max_steps=cfg.max_steps, num_workers=cfg.num_workers,
        start_epoch=model.train, postfix=lambda r: {"loss": f"{r['train_loss']:.3f}", "val_mae": f"{r['val_mae']:.2f}"},
        desc=desc, progress=progress)
    if state["best_state"] is not None:
        model.load_state_dict(state["best_state"])
    return TrainResult(model, history, best_epoch, trained_s, mean, sd, stage.dir if stage is not None else None)


def n_parameters(model: nn.Module) -> int:
    """How many parameters a network has."""
    return sum(p.numel() for p in model.parameters())
