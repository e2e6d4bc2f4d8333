"""Training throughput of the TGB notebook's models: samples per second.

Three steps, each on random volumes with Adam:

- ``reg``: one REG update (MSE on age), as in the stand-alone regressors;
- ``gan``: one ``GANTrainer.step`` of REG-GAN with the paper profile's ``n_critic``
  (``N_CRITIC`` in ``notebooks/params/01_tgb.paper.yaml``, 5): a critic update with
  gradient penalty on each of ``n_critic`` batches, then one generator update on
  adversarial + alpha*L1; its rate counts all ``n_critic`` batches, i.e. real images
  per second of a training epoch;
- ``gan_tgb``: the same with the task-guided branch attached and updated jointly.

On CUDA: the paper's sizes (96^3 volumes, full widths, batch 20) in fp32, bf16
autocast, and bf16 autocast with the channels-last-3d memory format. On CPU: the
quick profile's sizes (32^3 volumes, REG width 0.25, GAN width 0.125, batch 4) in fp32
only; bf16 is skipped there (the notebooks use it only on CUDA).

``gpu_stages`` gives the same steps to ``make gpu-check``, with the paper profile's schedule.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from brainage_lib.data.datasets import VolumeDataset
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.papers.tgb.gan import GANConfig, TGBCritic, TGBGenerator
from brainage_lib.papers.tgb.regressor import RegressorConfig, TGBRegressor
from brainage_lib.papers.tgb.evaluation import split_counts
from brainage_lib.papers.tgb.paper import N_BALANCED, N_TRAINING_TOTAL
from brainage_lib.papers.tgb.training import GANTrainConfig, GANTrainer, to_memory_format, train_gan
from brainage_lib.run.params import load_profile
from brainage_lib.run.timing import StageBench, samples_per_second

__all__ = ["bench_tgb", "gpu_stages"]

CUDA_SETTING = {"size": 96, "batch": 20, "reg_width": 1.0, "gan_width": 1.0}
CPU_SETTING = {"size": 32, "batch": 4, "reg_width": 0.25, "gan_width": 0.125}
TINY_SETTING = {"size": 32, "batch": 2, "reg_width": 0.125, "gan_width": 0.0625}


def _reg_step(device: torch.device, s: dict, x: torch.Tensor, age: torch.Tensor, amp: bool,
              channels_last: bool) -> Callable[[], None]:
    model = to_memory_format(TGBRegressor(RegressorConfig(input_shape=(s["size"],) * 3, width=s["reg_width"])),
                             device, channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    xin = x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x
    target = (age - 14.0) / 4.0

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp):
            pred = model(xin).reshape(-1)
        loss = F.mse_loss(pred.float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _gan_step(device: torch.device, s: dict, x: torch.Tensor, age: torch.Tensor, amp: bool, channels_last: bool,
              branch: bool, n_critic: int) -> Callable[[], None]:
    gcfg = GANConfig(width=s["gan_width"])
    reg = TGBRegressor(RegressorConfig(input_shape=(s["size"],) * 3, width=s["reg_width"])) if branch else None
    trainer = GANTrainer(TGBGenerator(gcfg), TGBCritic(gcfg), GANTrainConfig(n_critic=n_critic, amp=amp,
                                                                             channels_last=channels_last),
                         device, regressor=reg, age_mean=14.0)
    batches = [(x, age)] * n_critic  # the same volumes each critic update: the timing does not depend on them
    return lambda: trainer.step(batches)


def _inputs(device: torch.device, s: dict, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, 1, *(s["size"],) * 3, device=device, generator=gen)  # (B, 1, S, S, S) in [0, 1]
    return x, 6 + 18 * torch.rand(batch, device=device, generator=gen)


def gpu_stages(paper: bool = True) -> list[StageBench]:
    """REG, GAN and GAN + task-guided branch steps (at the paper's sizes, or tiny ones) with the paper schedule.

    The paper profile trains REG three times (on the 640 real training images, then on each
    GAN's augmented set of ~940) for ``REG_EPOCHS``, and each GAN once for ``GAN_EPOCHS``, batch 20.
    """
    s = {**(CUDA_SETTING if paper else TINY_SETTING)}
    p = load_profile("01_tgb", "paper")
    n_critic = int(p["N_CRITIC"])
    n_train = split_counts(N_BALANCED)[0]
    setting = f"{s['size']}^3, REG width {s['reg_width']}, GAN width {s['gan_width']}, n_critic {n_critic}"

    def reg(dev: torch.device, bf16: bool, batch: int):
        return _reg_step(dev, s, *_inputs(dev, s, batch), bf16, dev.type == "cuda")

    def gan(branch: bool):
        return lambda dev, bf16, batch: _gan_step(dev, s, *_inputs(dev, s, batch), bf16, dev.type == "cuda", branch,
                                                  n_critic)

    def engine_reg(engine, bf16: bool, steps: int):
        model = to_memory_format(TGBRegressor(RegressorConfig(input_shape=(s["size"],) * 3, width=s["reg_width"])),
                                 engine.device, True)
        cfg = TrainConfig(epochs=1, batch_size=s["batch"], lr=1e-4, loss="mse", amp=bf16, max_steps=steps)
        return train_regressor(model, _volumes(s, steps * s["batch"]), None, cfg, engine, "REG", progress=False)

    def engine_gan(branch: bool):
        def run(engine, bf16: bool, steps: int):
            gcfg = GANConfig(width=s["gan_width"])
            reg = TGBRegressor(RegressorConfig(input_shape=(s["size"],) * 3, width=s["reg_width"])) if branch else None
            cfg = GANTrainConfig(epochs=1, batch_size=s["batch"], n_critic=n_critic, amp=bf16, max_steps=steps)
            return train_gan(TGBGenerator(gcfg), TGBCritic(gcfg), _volumes(s, steps * n_critic * s["batch"]), cfg,
                             engine, regressor=reg, desc="GAN", progress=False)
        return run

    regs = (("REG", n_train, p["REG_EPOCHS"]), ("REG on REG-GAN's set", N_TRAINING_TOTAL, p["REG_EPOCHS"]),
            ("REG on REG-GAN-TGB's set", N_TRAINING_TOTAL, p["REG_EPOCHS"]))
    return [StageBench("01_tgb", "REG", setting, s["batch"], reg, regs, engine_run=engine_reg),
            StageBench("01_tgb", "GAN", setting, s["batch"], gan(False), (("REG-GAN's GAN", n_train, p["GAN_EPOCHS"]),),
                       engine_run=engine_gan(False)),
            StageBench("01_tgb", "GAN+TGB", setting, s["batch"], gan(True),
                       (("REG-GAN-TGB's GAN and branch", n_train, p["GAN_EPOCHS"]),), engine_run=engine_gan(True))]


def _volumes(s: dict, n: int):
    """``n`` random float16 volumes of the setting's size with ages, as the notebook's cached cohort holds them."""
    rng = np.random.default_rng(0)
    vols = rng.random((n, *(s["size"],) * 3), dtype=np.float32).astype(np.float16)
    return VolumeDataset(vols, rng.uniform(6, 24, n).astype(np.float32))


def bench_tgb(device: torch.device | str = "cpu", n_iter: int = 5) -> dict:
    """Training samples/s per model and precision, e.g. ``train_tgb_gan_tgb_bf16_samples_per_s``.

    Keys: ``train_tgb_{reg,gan,gan_tgb}_{fp32,bf16,bf16_channels_last}_samples_per_s`` (the
    bf16 ones on CUDA only), ``tgb_bench_setting`` (a sentence naming the sizes) and, in place
    of the rate, ``train_tgb_..._error`` where a configuration does not fit in GPU memory.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    s = CUDA_SETTING if cuda else CPU_SETTING
    size, batch = s["size"], s["batch"]
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(batch, 1, size, size, size, device=dev, generator=gen)  # (B, 1, S, S, S) in [0, 1]
    age = 6 + 18 * torch.rand(batch, device=dev, generator=gen)
    n_critic = int(load_profile("01_tgb", "paper")["N_CRITIC"])
    variants = [("fp32", False, False)] + ([("bf16", True, False), ("bf16_channels_last", True, True)] if cuda else [])
    out: dict = {"tgb_bench_setting": (
        f"{'CUDA, the paper' if cuda else 'CPU, the quick profile'}'s sizes: {size}^3 volumes, batch {batch}, REG width "
        f"{s['reg_width']}, GAN width {s['gan_width']}, GAN steps with n_critic {n_critic} (the paper "
        f"profile's; samples/s counts the {n_critic} critic batches per generator update); "
        + ("fp32, bf16 autocast, bf16 + channels-last-3d" if cuda else "fp32 only (bf16 skipped on CPU)"))}
    for prec, amp, cl in variants:
        for name, make in (("reg", lambda: _reg_step(dev, s, x, age, amp, cl)),
                           ("gan", lambda: _gan_step(dev, s, x, age, amp, cl, False, n_critic)),
                           ("gan_tgb", lambda: _gan_step(dev, s, x, age, amp, cl, True, n_critic))):
            key = f"train_tgb_{name}_{prec}_samples_per_s"
            torch.manual_seed(0)
            per_step = batch * (1 if name == "reg" else n_critic)
            try:
                out[key] = samples_per_second(make(), dev, per_step, n_iter)
            except torch.cuda.OutOfMemoryError as exc:
                out[key.replace("_samples_per_s", "_error")] = f"out of memory at batch {batch}: {str(exc)[:120]}"
            if cuda:
                torch.cuda.empty_cache()
    return out
