"""Training and prediction for the DIFF paper's semi-supervised diffusion autoencoder.

``train_diffae`` draws shuffled batches from one dataset that holds labelled and
unlabelled slices (age NaN), so each batch mixes both in the cohort's proportion;
``diffae_loss`` adds the age MSE over the batch's labelled rows only, so unlabelled
images reach the weights through the diffusion loss alone. Adam, bf16 autocast on
CUDA, the age head's validation MAE selects the epoch whose weights are kept (after
re-estimating the head's BatchNorm statistics, see ``recalibrate_head_bn``), and
checkpoints hold weights, both configs and provenance. The loop runs on the training
engine (``brainage_lib.engine.fabric``): a resumable stage, DDP with several devices.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset, Subset

from brainage_lib.data.cohort import Cohort, load_cohort
from brainage_lib.data.sources import open_cohort
from brainage_lib.data.splits import stratified_split
from brainage_lib.engine.fabric import (Engine, RNGState, Stage, as_engine, code_version, data_fingerprint, fit,
                                        local_share, sync_batchnorm, sync_gradients)
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.diff import diffae as diffae_module
from brainage_lib.papers.diff.diffae import (AGE_LOSSES, DiffAE, DiffAEConfig, DiffAELoss, diffae_loss, make_scheduler,
                                        predict_age)
from brainage_lib.papers.diff.roles import split_single_cohort

__all__ = ["DiffSplits", "DiffTrainConfig", "DiffTrainResult", "als_survival", "dataset_ages",
           "open_diff_cohorts", "parse_widths", "predict_diffae", "recalibrate_head_bn",
           "split_training_cohort", "train_diffae"]


@dataclass(frozen=True)
class DiffTrainConfig:
    """Optimisation of the diffusion autoencoder (the paper names Adam and nothing else).

    Parameters
    ----------
    epochs, batch_size, lr
        Passes over the training slices (labelled + unlabelled), images per batch, Adam's rate.
    age_loss
        Units of the age MSE added to the noise MSE (``diffae_loss``): ``"years"`` (the
        paper's eq. 6) or ``"standardised"`` (the years² term divided by the labelled
        training ages' variance).
    amp
        bf16 autocast on CUDA (ignored on CPU).
    val_every
        Epochs between validations of the age head (the last epoch is always validated).
    """

    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-4
    age_loss: str = "years"
    amp: bool = True
    val_every: int = 1
    num_workers: int = 0
    seed: int = 0
    max_steps: int | None = None  # stop after this many optimiser steps (a dry run); None: train every epoch

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2 or self.lr <= 0 or self.val_every < 1:
            raise BrainAgeError(f"DiffTrainConfig: epochs={self.epochs} and val_every={self.val_every} must be >= 1, "
                                f"batch_size={self.batch_size} >= 2 (BatchNorm in the age head) and lr={self.lr} > 0.")
        if self.age_loss not in AGE_LOSSES:
            raise BrainAgeError(f"DiffTrainConfig: age_loss={self.age_loss!r}; choose one of {', '.join(AGE_LOSSES)}.")


@dataclass
class DiffTrainResult:
    model: DiffAE  # holds the best-validation weights, in eval mode
    history: pd.DataFrame  # epoch, loss, noise_mse, age_mse, labelled, unlabelled, val_mae, lr, seconds
    best_epoch: int
    wall_time_s: float
    stage_dir: Path | None = None  # the stage's checkpoint folder; a saved model takes in its final checkpoint


@dataclass(frozen=True)
class DiffSplits:
    """Row indices into the training cohort: ``train`` (labelled + all unlabelled), ``val``, ``heldout``."""

    train: np.ndarray
    val: np.ndarray
    heldout: np.ndarray


def parse_widths(text: str) -> tuple[int, ...]:
    """``"32,64,96,128"`` -> ``(32, 64, 96, 128)``; a bad list raises BrainAgeError naming it."""
    try:
        widths = tuple(int(w) for w in str(text).split(",") if w.strip())
    except ValueError:
        widths = ()
    if not widths or min(widths) < 1:
        raise BrainAgeError(f"Channel list {text!r}: write positive integers separated by commas, e.g. '32,64,96,128'.")
    return widths


def split_training_cohort(ages: np.ndarray, val_fraction: float, heldout_fraction: float, seed: int = 0) -> DiffSplits:
    """Age-stratified split of the labelled rows into train / validation / held-out healthy.

    Unlabelled rows (NaN age) all go to ``train``: they only feed the diffusion loss.
    ``val`` selects the epoch (model selection); ``heldout`` is never used in training or
    selection and fits the age-bias correction.
    """
    ages = np.asarray(ages, dtype=float)
    lab = np.flatnonzero(~np.isnan(ages))
    if not (0 < val_fraction and 0 < heldout_fraction and val_fraction + heldout_fraction < 1):
        raise BrainAgeError(f"VAL_FRACTION={val_fraction} and HELDOUT_FRACTION={heldout_fraction} must be positive "
                            "and sum to less than 1.")
    sizes = (1 - val_fraction - heldout_fraction, val_fraction, heldout_fraction)
    tr, va, ho = (lab[p] for p in stratified_split(ages[lab], sizes, seed=seed))
    if min(len(tr), len(va), len(ho)) < 3:
        raise BrainAgeError(f"Training cohort has {len(lab)} labelled subjects: train/val/held-out of {len(tr)}/{len(va)}/"
                            f"{len(ho)}; each needs at least 3. Raise N_TRAIN or the fractions.")
    return DiffSplits(np.sort(np.concatenate([tr, np.flatnonzero(np.isnan(ages))])), va, ho)


def open_diff_cohorts(data_dir: str = "", n_train: int = 0, n_test: int = 0, n_als: int = 0, seed: int = 0,
                      shape: int | None = None) -> dict[str, Cohort]:
    """The roles: ``train`` (lifespan_train, unlabelled rows allowed), ``test`` (clinical_test), ``als``.

    Simulated by default (``n_*`` = 0: the preset's size; ``shape`` None or 0: the 2 mm MNI
    grid); with ``data_dir``, its sub-folders ``lifespan_train/``, ``clinical_test/`` and ``als_like/``,
    or, when ``data_dir`` is one cohort folder, that cohort split by ``roles.split_single_cohort``
    (seeded by ``seed``; ``als`` only where it has rows of group ALS).
    """
    roles = {"train": ("lifespan_train", n_train), "test": ("clinical_test", n_test), "als": ("als_like", n_als)}
    if data_dir:
        root = Path(data_dir).expanduser()
        missing = [p for p, _ in roles.values() if not (root / p / "participants.tsv").is_file()]
        if missing and (root / "participants.tsv").is_file():
            return split_single_cohort(load_cohort(root, allow_unlabelled=True), seed=seed)
        if missing:
            raise BrainAgeError(f"DATA_DIR {data_dir} needs one cohort folder per role, or is itself one cohort folder "
                                f"(its own participants.tsv); missing: "
                                f"{', '.join(f'{p}/participants.tsv' for p in missing)}.")
    return {role: open_cohort(preset, data_dir, allow_unlabelled=role == "train", n=n or None, seed=seed,
                              shape=shape or None) for role, (preset, n) in roles.items()}


def als_survival(cohort: Cohort) -> np.ndarray:
    """``survival_months`` of a disease cohort as floats; raises BrainAgeError if missing."""
    t = cohort.table
    if "survival_months" not in t or t["survival_months"].isna().any():
        raise BrainAgeError(f"{cohort.root}/participants.tsv: the ALS cohort needs a numeric 'survival_months' column "
                            "(months from scan to death) on every row.")
    return t["survival_months"].to_numpy(dtype=float)


def dataset_ages(ds: Dataset) -> np.ndarray:
    """The targets of a ``CachedArrayDataset`` (NaN for unlabelled) in item order."""
    if hasattr(ds, "ages") and hasattr(ds, "indices"):
        return np.asarray(ds.ages, dtype=float)[ds.indices]
    return np.array([float(ds[i][1]) for i in range(len(ds))])


@torch.no_grad()
def recalibrate_head_bn(model: DiffAE, ds: Dataset, device: torch.device, batch_size: int = 64) -> None:
    """Re-estimate the age head's BatchNorm statistics on ``ds`` with the current weights ("precise BN").

    The running averages lag behind an encoder that changes every step, and ``z_sem``
    varies little across images, so stale statistics can shift eval-mode predictions by
    decades. Here ``z_sem`` of every image is computed in eval mode and the head's
    BatchNorm layers take the exact mean and variance of their inputs (dropout off, as
    at inference). Leaves the model in eval mode.

    Each BatchNorm layer gets what a training-mode pass of all of ``z`` would give it after
    a reset, with momentum 1 (``F.batch_norm`` called as ``BatchNorm1d`` calls it), also
    for a ``SyncBatchNorm`` head (DDP on CUDA): its training mode would average the
    statistics over the processes, which all hold the same ``z``.
    """
    model.eval()
    z = torch.cat([model.encode(x.to(device)) for x, _ in DataLoader(ds, batch_size=batch_size)])  # (N, z_dim)
    for layer in model.age_head:
        if isinstance(layer, _BatchNorm):
            layer.reset_running_stats()
            layer.num_batches_tracked.add_(1)
            z = F.batch_norm(z, layer.running_mean, layer.running_var, layer.weight, layer.bias, True, 1.0, layer.eps)
            layer.momentum = 0.1
        else:
            z = layer(z)


@torch.no_grad()
def predict_diffae(model: DiffAE, ds: Dataset, device: torch.device, batch_size: int = 64) -> np.ndarray:
    """Brain-predicted ages in years for every item of ``ds`` (in order), fp32, eval mode."""
    out = [predict_age(model, x.to(device)).float().cpu().numpy()
           for x, _ in DataLoader(ds, batch_size=batch_size, shuffle=False)]
    return np.concatenate(out) if out else np.zeros(0)


def train_diffae(config: DiffAEConfig, train: Dataset, val: Dataset, cfg: DiffTrainConfig,
                 device: Engine | torch.device | str, desc: str = "DiffAE", progress: bool = True) -> DiffTrainResult:
    """Train a ``DiffAE`` jointly (encoder, noise U-Net, age head) on labelled + unlabelled slices.

    The age head's output is in standardised units of the labelled training ages (their
    mean and sd go into the model's config as ``age_offset``/``age_scale``); the age loss
    is taken in ``cfg.age_loss`` units. The weights of the epoch with the lowest
    validation MAE (years) are kept.

    Runs as the resumable stage ``desc`` of ``device`` (an :class:`Engine`; a plain device
    trains without checkpoints): it resumes from its last checkpoint or loads its final
    one; with ``devices > 1`` it trains with DDP, the global batch staying ``cfg.batch_size``
    (see ``_fit_diffae`` for what matches one process).
    """
    engine = as_engine(device)
    ages = dataset_ages(train)
    labelled = ages[~np.isnan(ages)]
    if labelled.size < 2 or len(val) < 1:
        raise BrainAgeError(f"train_diffae: {labelled.size} labelled training and {len(val)} validation images; "
                            "need at least 2 and 1.")
    config = replace(config, age_offset=float(labelled.mean()), age_scale=float(labelled.std() or 1.0))
    stage = None
    if engine.checkpoints is not None:
        stage = engine.stage(desc, {"kind": "diffae", "model": config, "config": cfg, "train": data_fingerprint(train),
                                    "val": data_fingerprint(val), "code": code_version(_fit_diffae, fit, diffae_module)})
    return engine.run(_fit_diffae, stage, config, train, val, cfg, desc, progress, amp=cfg.amp,
                      batch_size=cfg.batch_size)


def _fit_diffae(fabric, stage: Stage | None, config: DiffAEConfig, train: Dataset, val: Dataset, cfg: DiffTrainConfig,
                desc: str, progress: bool) -> DiffTrainResult:
    """The loop of :func:`train_diffae` on one Fabric process (see ``engine.fabric``).

    With ``world`` processes each takes its share of every global batch. The noise and
    timesteps are drawn for the whole global batch on every process (one generator, in
    step everywhere) and each keeps its rows, so they are the one-process draws. The
    loss is split so the processes' gradients sum to the global batch's: the noise term
    weighted by the process's share of the batch's images, the age term by its share of
    the batch's labelled images that reach the head. On one process nothing is weighted.
    What still differs from one process: the head's dropout masks (each process draws
    its own rows'), and, on CPU, its BatchNorm: there each process normalises its own
    labelled rows and only processes with two or more run the head (CUDA converts it to
    ``SyncBatchNorm``: statistics over the global batch's labelled rows, as on one device).
    """
    ages = dataset_ages(train)
    device, rank, world = fabric.device, fabric.global_rank, fabric.world_size
    torch.manual_seed(cfg.seed)
    model = sync_batchnorm(fabric, DiffAE(config).to(device))
    local_bn = world > 1 and any(isinstance(m, _BatchNorm) and not isinstance(m, torch.nn.SyncBatchNorm)
                                 for m in model.age_head.modules())
    sched = make_scheduler(config)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    val_ages = dataset_ages(val)
    train_labelled = Subset(train, np.flatnonzero(~np.isnan(ages)).tolist())

    def step(run):
        (b, (x, y)), = run
        with fabric.autocast():
            if world == 1:
                loss = diffae_loss(model, x, y, sched, noise_gen, age_loss=cfg.age_loss)
            else:
                noise, t, head, w_noise, w_age = _shard(b, x, ages, sched, noise_gen, rank, world, local_bn)
                loss = diffae_loss(model, x, y, sched, noise_gen, age_loss=cfg.age_loss, noise=noise, t=t, head=head)
                loss = DiffAELoss(loss.noise_mse * w_noise + loss.age_mse * w_age, loss.noise_mse * w_noise,
                                  loss.age_mse * w_age)
        opt.zero_grad(set_to_none=True)
        fabric.backward(loss.total)
        sync_gradients(fabric, [model])
        opt.step()
        n_lab = (~torch.isnan(y)).sum()  # tensors on the device: read once per epoch, not per step
        return {"loss": loss.total.detach().double(), "noise_mse": loss.noise_mse.detach().double(),
                "age_mse": loss.age_mse.detach().double(), "labelled": n_lab, "unlabelled": len(y) - n_lab}

    def end_of_epoch(epoch, sums, steps):
        validate = (epoch + 1) % cfg.val_every == 0 or epoch == cfg.epochs - 1 or state["steps"] == cfg.max_steps
        val_mae = np.nan
        if validate:
            recalibrate_head_bn(model, train_labelled, device)
            val_mae = float(np.mean(np.abs(predict_diffae(model, val, device) - val_ages)))
        row = {"epoch": epoch, **{k: sums.get(k, 0.0) / max(steps, 1) for k in ("loss", "noise_mse", "age_mse")},
               **{k: int(sums.get(k, 0)) for k in ("labelled", "unlabelled")}, "val_mae": val_mae, "lr": cfg.lr}
        return row, val_mae if validate else None

    state = {"model": model, "opt": opt, "rng": RNGState(order=gen, noise=noise_gen)}
    history, trained_s, best_epoch = fit(
        fabric, stage, state, train, step, end_of_epoch, lambda: copy.deepcopy(model.state_dict()),
        epochs=cfg.epochs, batch_size=cfg.batch_size, order=gen, max_steps=cfg.max_steps, num_workers=cfg.num_workers,
        drop_last=len(train) > cfg.batch_size,  # no batch of one for BatchNorm
        start_epoch=model.train, desc=desc, progress=progress,
        postfix=lambda r: {"noise": f"{r['noise_mse']:.3f}", "age": f"{r['age_mse']:.3f}", "val_mae": f"{r['val_mae']:.2f}"})
    if state["best_state"] is None:
        raise BrainAgeError("train_diffae: the validation MAE was never finite; the training diverged. Lower LR.")
    model.load_state_dict(state["best_state"])
    return DiffTrainResult(model.eval(), history, best_epoch, trained_s, stage.dir if stage is not None else None)


def _shard(batch: list[int], x: torch.Tensor, ages: np.ndarray, sched, gen: torch.Generator, rank: int, world: int,
           local_bn: bool) -> tuple[torch.Tensor, torch.Tensor, bool, float, float]:
    """One process's part of a global batch: its rows of the batch's noise and timesteps, whether it runs the
    age head, and the weights of its noise and age terms (shares of the global batch's images and head rows)."""
    noise = torch.randn((len(batch), *x.shape[1:]), generator=gen, device=x.device, dtype=x.dtype)
    t = torch.randint(0, sched.num_train_timesteps, (len(batch),), generator=gen, device=x.device)
    lab = [int((~np.isnan(ages[local_share(batch, r, world)])).sum()) for r in range(world)]
    if local_bn:  # each process's own BatchNorm statistics: a process needs two labelled rows
        runs = [n >= 2 for n in lab]
    else:  # one head over the global batch's labelled rows (no BatchNorm, or synchronised)
        runs = [sum(lab) >= 2] * world
    used = sum(n for n, r in zip(lab, runs) if r)
    w_age = lab[rank] / used if runs[rank] and used else 0.0
    return noise[rank::world], t[rank::world], runs[rank], len(local_share(batch, rank, world)) / len(batch), w_age

