"""Joint training of the TGB paper's GAN and task-guided branch (sections 2.1-2.2, eq. 5).

``GANTrainer.step`` follows the authors' public trainer (``core/trainer_tf.py`` of
``ruizhe-l/tgb-gan``): for each batch of real images ``x`` with ages ``y`` it computes,
from one forward pass ``G(x)``,

1. the critic loss ``E[D(G(x))] - E[D(x)] + GP`` (WGAN-GP, eq. 1), and
2. the generator loss ``-E[D(G(x))] + alpha * L1(x, G(x))`` (eqs. 2-3) and, for TGB,
   ``+ beta * (y - R(G(x)))^2`` (eqs. 4-5), where the attached regressor ``R`` is trained
   by the same loss: G and R are trained jointly, end to end,

and applies the generator, critic and branch gradients once, together. With
``n_critic > 1`` (WGAN-GP's Algorithm 1, an option) the step instead takes ``n_critic``
consecutive batches: one critic update on each, each with fresh fakes, then one generator
(+ branch) update on the last; ``train_gan`` cuts each epoch into such groups.

Choices the paper leaves open, stated here and in the notebook:

- ``n_critic``: 1 in every profile, as in the authors' trainer (a parameter).
- The paper says only "Adam, learning rate 1e-4, x0.8 every 10 epochs"; the GAN's Adam
  uses ``betas=(0.5, 0.9)`` (the usual WGAN-GP setting), the attached regressor
  PyTorch's defaults, as the stand-alone regressors.
- The branch predicts age in years (eq. 4 as written); its output bias starts at the
  training set's mean age so the task term starts near ``beta * var(age)`` rather than
  ``beta * mean(age)^2`` (the paper balanced the terms to similar sizes).
- Model selection: the epoch with the lowest validation ``alpha*L1 + beta*task``
  (the adversarial term is not comparable across epochs) is kept.

On CUDA the step runs under bf16 autocast and, with ``channels_last``, in the
channels-last-3d memory format; on CPU in fp32.

``train_gan`` runs on the project's training engine (``brainage_lib.engine.fabric``): on an
``Engine`` with a checkpoint folder the training is a resumable stage (it continues from its
last checkpoint, or loads its final one), and with ``devices > 1`` each process takes its
share of every global batch. Each process scales its losses by its share of the global
batch and the gradients are summed over the processes before every optimiser step (by
hand, not by DDP modules: the gradient penalty's double backward and the joint updates of
three networks from one batch do not fit DDP's one-backward-per-forward hooks); the
penalty's ``eps`` are drawn for the whole global batch and shared out the same way, so a
DDP run takes the steps of one process.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from brainage_lib.engine.fabric import (Engine, RNGState, Stage, as_engine, code_version, compiled, data_fingerprint,
                                        fit, sync_gradients)
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.tgb.gan import TGBCritic, TGBGenerator, critic_loss, generator_loss

__all__ = ["GANResult", "GANTrainConfig", "GANTrainer", "reconstruct", "reconstruction_l1", "to_memory_format",
           "train_gan"]


@dataclass(frozen=True)
class GANTrainConfig:
    """Optimisation of the GAN (+ branch); defaults are the paper's (100 epochs, batch 20, Adam 1e-4 x0.8/10)."""

    epochs: int = 100
    batch_size: int = 20
    lr: float = 1e-4
    lr_step: int = 10  # epochs between learning-rate decays
    lr_gamma: float = 0.8
    betas: tuple[float, float] = (0.5, 0.9)  # Adam betas of generator and critic (paper: not given)
    n_critic: int = 1  # 1: one joint update per batch (the authors' trainer); k > 1: k critic updates per generator update
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    channels_last: bool = True  # channels-last-3d memory format on CUDA (ignored on CPU)
    num_workers: int = 0
    seed: int = 0
    max_steps: int | None = None  # stop after this many (generator) steps (a dry run); None: train every epoch

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.n_critic < 1:
            raise BrainAgeError(f"GANTrainConfig: epochs={self.epochs}, batch_size={self.batch_size} and "
                                f"n_critic={self.n_critic} must be at least 1.")


def to_memory_format(module: nn.Module, device: torch.device, channels_last: bool) -> nn.Module:
    """Move ``module`` to ``device``; on CUDA with ``channels_last`` also to channels-last-3d."""
    module.to(device)
    if channels_last and device.type == "cuda":
        module.to(memory_format=torch.channels_last_3d)
    return module


class GANTrainer:
    """Optimisers, schedulers and the update step of the GAN and (for TGB) its regressor branch.

    Parameters
    ----------
    generator, critic
        ``TGBGenerator`` and ``TGBCritic``; ``generator.config`` holds alpha, beta, lambda_gp.
    cfg
        Optimisation settings.
    device
        Where to train, when no ``fabric`` is given (a one-device Fabric is made for it).
    regressor
        The task-guided branch (a ``TGBRegressor``); None trains the plain GAN (REG-GAN).
    age_mean
        Training mean age, the initial output bias of ``regressor``.
    fabric
        The Lightning Fabric (process) to train on: its device, autocast, backward and,
        with several processes, the sum of the gradients before each optimiser step.
    """

    def __init__(self, generator: TGBGenerator, critic: TGBCritic, cfg: GANTrainConfig,
                 device: torch.device | str | None = None, regressor: nn.Module | None = None,
                 age_mean: float | None = None, fabric=None) -> None:
        if fabric is None:
            fabric = Engine(device if device is not None else "auto").fabric(cfg.amp)
        device = fabric.device
        self.fabric, self.rank, self.world = fabric, fabric.global_rank, fabric.world_size
        self.gen, self.critic, self.reg, self.cfg, self.device = generator, critic, regressor, cfg, device
        self.gcfg = generator.config
        self.channels_last = cfg.channels_last and device.type == "cuda"
        for m in (generator, critic, regressor):
            if m is not None:
                to_memory_format(m, device, cfg.channels_last)
        if regressor is not None and age_mean is not None:
            with torch.no_grad():
                regressor.head[-1].bias.fill_(float(age_mean))  # type: ignore[index]
        g_params = list(generator.parameters())
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=cfg.betas)
        self.opts = [self.opt_g, self.opt_d]
        if regressor is not None:
            self.opt_r = torch.optim.Adam(regressor.parameters(), lr=cfg.lr)
            self.opts.append(self.opt_r)
        self.scheds = [torch.optim.lr_scheduler.StepLR(o, step_size=cfg.lr_step, gamma=cfg.lr_gamma) for o in self.opts]
        self.gp_rng = torch.Generator(device=device).manual_seed(cfg.seed)
        # the training step's forward passes (torch.compile when the engine compiles; never the critic)
        self.gen_fwd = compiled(fabric, generator)
        self.reg_fwd = compiled(fabric, regressor) if regressor is not None else None

    def _autocast(self):
        return self.fabric.autocast()

    def _input(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True).float()
        return x.contiguous(memory_format=torch.channels_last_3d) if self.channels_last else x

    def _backward(self, loss: torch.Tensor, share: float | None) -> None:
        """Backward of ``loss`` (float32), times this process's share of the global batch when there are several."""
        loss = loss.float()
        self.fabric.backward(loss if share is None else loss * share)

    def _gp_eps(self, x: torch.Tensor, global_size: int) -> torch.Tensor | None:
        """With several processes: this process's share of the penalty's ``eps`` drawn for the whole global batch.

        One process draws them in ``gradient_penalty`` (None here), as before.
        """
        if self.world == 1:
            return None
        shape = (global_size,) + (1,) * (x.ndim - 1)  # (B_global, 1, 1, 1, 1)
        eps = torch.rand(shape, generator=self.gp_rng, device=x.device, dtype=x.dtype)
        return eps[self.rank::self.world]  # the items local_share gives this process

    def step(self, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
             global_sizes: Sequence[int] | None = None) -> dict[str, float]:
        """One training step on ``batches`` of ``(x, age)``, images ``(B, 1, D, H, W)`` and ages ``(B,)``; returns the losses.

        One batch: the joint update of the authors' trainer. ``n_critic`` batches: a critic
        update on each, then one generator (+ branch) update on the last (critic terms averaged).
        ``global_sizes``: the size of the global batch each batch is this process's share of
        (None: the batches are whole). With several processes the losses returned are this
        process's shares, whose sum over the processes is the global batch's loss.
        """
        if not batches:
            raise BrainAgeError("GANTrainer.step needs at least one batch.")
        sizes = [len(x) for x, _ in batches] if global_sizes is None else [int(n) for n in global_sizes]
        shares = [len(x) / n if self.world > 1 else None for (x, _), n in zip(batches, sizes)]
        self.gen.train(), self.critic.train()
        if self.reg is not None:
            self.reg.train()
        if len(batches) == 1:
            return self._joint_step(*batches[0], sizes[0], shares[0])
        crit: list[torch.Tensor] = []
        for (x, _), n, share in zip(batches, sizes, shares):
            x = self._input(x)
            with torch.no_grad(), self._autocast():
                fake = self.gen_fwd(x)
            with self._autocast():
                c = critic_loss(self.critic, x, fake, self.gcfg.lambda_gp, self.gp_rng, self._gp_eps(x, n))
            self.opt_d.zero_grad(set_to_none=True)
            self._backward(c.total, share)
            sync_gradients(self.fabric, [self.critic])
            self.opt_d.step()
            terms = torch.stack([t.detach().float() for t in c])  # total, wasserstein, gp
            crit.append(terms if share is None else terms * share)
        x, age = self._input(batches[-1][0]), batches[-1][1].to(self.device).float()
        with self._autocast():
            g = self._generator_loss(self.gen_fwd(x), x, age)
        self._zero_gen()
        self._backward(g.total, shares[-1])
        self._step_gen()
        return self._losses(torch.stack(crit).mean(0), g, shares[-1])

    def _joint_step(self, x: torch.Tensor, age: torch.Tensor, global_size: int, share: float | None) -> dict[str, float]:
        """Critic, generator and branch gradients from one batch and one ``G(x)``, applied together."""
        x, age = self._input(x), age.to(self.device).float()
        with self._autocast():
            fake = self.gen_fwd(x)
            c = critic_loss(self.critic, x, fake.detach(), self.gcfg.lambda_gp, self.gp_rng,
                            self._gp_eps(x, global_size))
        self.opt_d.zero_grad(set_to_none=True)
        self._backward(c.total, share)
        with self._autocast():
            g = self._generator_loss(fake, x, age)
        self._zero_gen()
        self._backward(g.total, share)
        sync_gradients(self.fabric, [self.critic])
        self.opt_d.step()
        self._step_gen()
        terms = torch.stack([t.detach().float() for t in c])
        return self._losses(terms if share is None else terms * share, g, share)

    def _generator_loss(self, fake: torch.Tensor, x: torch.Tensor, age: torch.Tensor):
        """Generator (+ branch) loss with the critic frozen, so its gradients are not touched."""
        for p in self.critic.parameters():
            p.requires_grad_(False)
        try:
            return generator_loss(self.critic, fake, x, self.gcfg.alpha, self.reg_fwd,
                                  age if self.reg is not None else None, self.gcfg.beta)
        finally:
            for p in self.critic.parameters():
                p.requires_grad_(True)

    def _zero_gen(self) -> None:
        self.opt_g.zero_grad(set_to_none=True)
        if self.reg is not None:
            self.opt_r.zero_grad(set_to_none=True)

    def _step_gen(self) -> None:
        sync_gradients(self.fabric, [self.gen, self.reg])  # stepped together: one collective
        self.opt_g.step()
        if self.reg is not None:
            self.opt_r.step()

    @staticmethod
    def _losses(critic_terms: torch.Tensor, g, share: float | None = None) -> dict[str, torch.Tensor]:
        """The step's losses as detached float64 tensors on the device (read once per epoch, not per step)."""
        critic_means = dict(zip(("critic", "wasserstein", "gp"), critic_terms.double().unbind()))
        terms = {"gen": g.total, "adversarial": g.adversarial, "l1": g.l1, "task": g.task}
        gen = {k: torch.as_tensor(v, device=critic_terms.device).detach().double() for k, v in terms.items()}
        return {**critic_means, **(gen if share is None else {k: v * share for k, v in gen.items()})}

    def end_epoch(self) -> None:
        for s in self.scheds:
            s.step()

    @torch.no_grad()
    def validate(self, dataset: Dataset, batch_size: int = 8) -> dict[str, float]:
        """Mean L1 reconstruction error and (with a branch) mean squared age error of ``R(G(x))`` on ``dataset``."""
        self.gen.eval()
        if self.reg is not None:
            self.reg.eval()
        l1, task, n = 0.0, 0.0, 0
        for x, age in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            x = self._input(x)
            with self._autocast():
                fake = self.gen(x)  # float32: the generator's head runs in fp32
                if self.reg is not None:
                    pred = self.reg(fake).reshape(-1)
                    task += float(((pred - age.to(self.device).float()) ** 2).sum())
            l1 += float((fake - x).abs().flatten(1).mean(1).sum())
            n += len(x)
        l1, task = l1 / max(n, 1), task / max(n, 1)
        return {"val_l1": l1, "val_task": task, "val_objective": self.gcfg.alpha * l1 + self.gcfg.beta * task}

    def state(self) -> dict[str, dict]:
        out = {"generator": self.gen.state_dict(), "critic": self.critic.state_dict()}
        if self.reg is not None:
            out["branch"] = self.reg.state_dict()
        return copy.deepcopy(out)

    def load_state(self, state: dict[str, dict]) -> None:
        self.gen.load_state_dict(state["generator"])
        self.critic.load_state_dict(state["critic"])
        if self.reg is not None:
            self.reg.load_state_dict(state["branch"])

    def checkpoint_state(self) -> dict[str, object]:
        """The networks, optimisers and schedulers, named for a stage's state dict."""
        out: dict[str, object] = {"generator": self.gen, "critic": self.critic}
        if self.reg is not None:
            out["branch"] = self.reg
        names = ("g", "d", "r")
        out.update({f"opt_{k}": o for k, o in zip(names, self.opts)})
        out.update({f"sched_{k}": s for k, s in zip(names, self.scheds)})
        return out


@dataclass
class GANResult:
    generator: TGBGenerator  # best-validation weights
    critic: TGBCritic
    branch: nn.Module | None  # the task-guided regressor (TGB) or None (plain GAN)
    history: pd.DataFrame  # epoch, training losses (mean over steps), validation L1/task/objective, lr, seconds
    best_epoch: int
    wall_time_s: float  # training seconds, summed over the epochs (across resumes; kept when the stage is loaded)
    stage_key: str | None = None  # identity of the training stage (configuration, data, code); None without one


def train_gan(generator: TGBGenerator, critic: TGBCritic, train: Dataset, cfg: GANTrainConfig,
              device: Engine | torch.device | str, regressor: nn.Module | None = None, val: Dataset | None = None,
              desc: str = "GAN", progress: bool = True) -> GANResult:
    """Train the GAN (with ``regressor``: GAN + task-guided branch, jointly) on ``train``, as the stage ``desc``.

    Each epoch passes over ``train`` once: ``GANTrainer.step`` on every group of
    ``cfg.n_critic`` consecutive batches (see the module docstring). With a validation set
    the epoch with the lowest validation ``alpha*L1 + beta*task`` is kept; without one,
    the last epoch. ``device`` is an :class:`Engine` (or a device: one process, no
    checkpoints); on an engine with a checkpoint folder the stage resumes from its last
    checkpoint, or loads its final one, and with ``devices > 1`` it trains with DDP (the
    global batch stays ``cfg.batch_size``).
    """
    engine = as_engine(device)
    stage = None
    if engine.checkpoints is not None:
        models = [m for m in (generator, critic, regressor) if m is not None]
        stage = engine.stage(desc, {"kind": "gan", "config": cfg, "generator": repr(generator), "critic": repr(critic),
                                    "regressor": repr(regressor), "gan_config": generator.config,
                                    "critic_config": critic.config,
                                    "regressor_config": getattr(regressor, "config", None),
                                    "train": data_fingerprint(train), "val": data_fingerprint(val),
                                    "code": code_version(_fit_gan, fit, *models)})
    return engine.run(_fit_gan, stage, generator, critic, train, cfg, regressor, val, desc, progress, amp=cfg.amp,
                      batch_size=cfg.batch_size, last_batch=len(train) % cfg.batch_size)


def _fit_gan(fabric, stage: Stage | None, generator: TGBGenerator, critic: TGBCritic, train: Dataset,
             cfg: GANTrainConfig, regressor: nn.Module | None, val: Dataset | None, desc: str,
             progress: bool) -> GANResult:
    """The GAN's step (``GANTrainer.step`` on each group of ``n_critic`` batches) and epoch end in
    :func:`engine.fabric.fit`, on one Fabric process."""
    ages = np.array([float(train[i][1]) for i in range(len(train))])
    if np.isnan(ages).any():
        raise BrainAgeError("train_gan needs labelled training images (the task-guided branch regresses age).")
    trainer = GANTrainer(generator, critic, cfg, regressor=regressor, age_mean=float(ages.mean()), fabric=fabric)
    gen = torch.Generator().manual_seed(cfg.seed)

    def end_of_epoch(epoch, sums, steps):  # steps: the epoch's generator updates
        lr = trainer.opt_g.param_groups[0]["lr"]
        trainer.end_epoch()
        row = {"epoch": epoch, **{k: v / max(steps, 1) for k, v in sums.items()}}
        if val is not None and len(val):
            row.update(trainer.validate(val))
        return {**row, "lr": lr}, row.get("val_objective", -epoch)  # no validation: the last epoch wins

    state = {**trainer.checkpoint_state(), "rng": RNGState(order=gen, gp=trainer.gp_rng)}
    history, trained_s, best_epoch = fit(
        fabric, stage, state, train, lambda run: trainer.step([xy for _, xy in run], [len(b) for b, _ in run]),
        end_of_epoch, trainer.state, epochs=cfg.epochs, batch_size=cfg.batch_size, order=gen,
        max_steps=cfg.max_steps, num_workers=cfg.num_workers, group=cfg.n_critic,
        postfix=lambda r: {"l1": f"{r['l1']:.4f}", "task": f"{r['task']:.2f}",
                           "val": f"{r.get('val_objective', np.nan):.3f}"}, desc=desc, progress=progress)
    if state["best_state"] is not None:
        trainer.load_state(state["best_state"])
    for m in (generator, critic, regressor):
        if m is not None:
            m.eval()
    return GANResult(generator, critic, regressor, history, best_epoch, trained_s,
                     stage.key if stage is not None else None)


@torch.no_grad()
def reconstruct(generator: TGBGenerator, images: np.ndarray, device: torch.device, batch_size: int = 8,
                amp: bool = True) -> np.ndarray:
    """``G(x)`` for images ``(N, D, H, W)`` (e.g. rows of a cached array), as float32 ``(N, D, H, W)``."""
    generator.eval()
    out = []
    use_amp = amp and device.type == "cuda"
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(np.asarray(images[start:start + batch_size], dtype=np.float32))[:, None].to(device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            y = generator(x)
        out.append(y.float()[:, 0].cpu().numpy())  # (B, D, H, W)
    return np.concatenate(out) if out else np.zeros((0, *np.shape(images)[1:]), np.float32)


def reconstruction_l1(generator: TGBGenerator, images: np.ndarray, device: torch.device, batch_size: int = 8) -> np.ndarray:
    """Per-image L1 reconstruction error ``mean |x - G(x)|`` (eq. 2), shape ``(N,)``."""
    errs = []
    for start in range(0, len(images), batch_size):
        x = np.asarray(images[start:start + batch_size], dtype=np.float32)
        rec = reconstruct(generator, x, device, batch_size)
        errs.append(np.abs(rec - x).reshape(len(x), -1).mean(1))
    return np.concatenate(errs) if errs else np.zeros(0)
