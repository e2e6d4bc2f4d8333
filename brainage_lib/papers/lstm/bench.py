"""Throughput of the LSTM paper's two models (``make bench``) and their stages for ``make gpu-check``."""
from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from brainage_lib.data.datasets import SliceSequenceDataset, VolumeDataset
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.papers.lstm.evaluation import CNN3D_NAME, LSTM_NAME, build_models, parse_shape
from brainage_lib.run.params import load_profile
from brainage_lib.run.timing import StageBench
from brainage_lib.simulation.presets import get_preset, sample_demographics

__all__ = ["bench_lstm", "gpu_stages", "time_epoch"]

TINY_SETTING = {"atlas": (36, 40, 36), "slice_size": 34, "width": 0.125}


def time_epoch(model: torch.nn.Module, x: torch.Tensor, steps: int = 3) -> float:
    """Seconds per training step (forward + backward + Adam) on batch ``x``."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    y = torch.zeros(x.shape[0], device=x.device)
    for i in range(steps + 1):
        if i == 1:
            if x.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
        loss = (model(x).reshape(-1) - y).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    if x.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def bench_lstm(device: torch.device, steps: int = 3) -> dict[str, float]:
    """Training samples/s of both models, batch 1 (the paper's), fp32 and (CUDA) bf16 autocast.

    Paper input sizes on CUDA; on CPU a reduced size (atlas 64x80x56, 36^2 slices, width 0.5) said in the keys.
    """
    if device.type == "cuda":
        atlas, size, width, tag = (128, 160, 112), 50, 1.0, "paper"
    else:
        atlas, size, width, tag = (64, 80, 56), 36, 0.5, "cpu-reduced"
    out = {}
    for name, model in build_models(atlas, size, 4, width).items():
        model.to(device)
        x = (torch.randn(1, atlas[2], size, size) if name == LSTM_NAME else torch.randn(1, 1, *atlas)).to(device)
        key = f"lstm_{tag}_{'lstm2d' if name == LSTM_NAME else 'resnet3d'}"
        out[f"{key}_fp32_train_samples_per_s"] = round(1 / time_epoch(model, x, steps), 2)
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out[f"{key}_bf16_train_samples_per_s"] = round(1 / time_epoch(model, x, steps), 2)
    return out


def _train_step(name: str, s: dict, device: torch.device, bf16: bool, batch: int) -> Callable[[], None]:
    """One Adam step (MAE loss) of model ``name`` on ``batch`` random inputs, as ``train_models`` trains it."""
    model = build_models(s["atlas"], s["slice_size"], s["pool_k"], s["width"], stem_kernel=s["stem_kernel"])[name]
    model.to(device)
    gen = torch.Generator(device=device).manual_seed(0)
    if name == LSTM_NAME:
        x = torch.randn(batch, s["atlas"][2], s["slice_size"], s["slice_size"], device=device, generator=gen)
    else:
        x = torch.randn(batch, 1, *s["atlas"], device=device, generator=gen)  # (B, 1, X, Y, Z)
        if device.type == "cuda":
            model, x = model.to(memory_format=torch.channels_last_3d), x.contiguous(memory_format=torch.channels_last_3d)
    y = torch.zeros(batch, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(x).reshape(-1)
        loss = (pred.float() - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def gpu_stages(paper: bool = True) -> list[StageBench]:
    """Both models with the paper profile's schedule: each trained on the 80 % discovery split (0-22 y) and on
    its part aged up to ``YOUNG_MAX_AGE`` (its size estimated from ``nihpd_like``'s age distribution)."""
    p = load_profile("03_lstm", "paper")
    s = {"atlas": parse_shape(p["ATLAS_SHAPE"]), "slice_size": p["SLICE_SIZE"], "width": p["WIDTH"]} if paper \
        else dict(TINY_SETTING)
    s.update(pool_k=p["POOL_K"], stem_kernel=p["STEM_KERNEL"])
    preset = get_preset("nihpd_like")
    n_train = round(0.8 * preset.n)
    ages = sample_demographics(preset, preset.n, np.random.default_rng(0))["age"].to_numpy()
    n_young = round(n_train * float(np.mean(ages <= p["YOUNG_MAX_AGE"])))
    setting = f"atlas {'x'.join(map(str, s['atlas']))}, slices {s['slice_size']}^2, width {s['width']}"
    def engine_run(name: str):
        def run(engine, bf16: bool, steps: int):
            models = build_models(s["atlas"], s["slice_size"], s["pool_k"], s["width"], stem_kernel=s["stem_kernel"])
            model = models[name]
            if engine.device.type == "cuda" and name == CNN3D_NAME:
                model = model.to(memory_format=torch.channels_last_3d)
            n, rng = steps * p["BATCH_SIZE"], np.random.default_rng(0)
            ages = rng.uniform(0, 22, n).astype(np.float32)
            if name == LSTM_NAME:
                ds = SliceSequenceDataset(rng.random((n, s["atlas"][2], s["slice_size"], s["slice_size"]),
                                                     dtype=np.float32).astype(np.float16), ages)
            else:
                ds = VolumeDataset(rng.random((n, *s["atlas"]), dtype=np.float32).astype(np.float16), ages)
            cfg = TrainConfig(epochs=1, batch_size=p["BATCH_SIZE"], loss="l1", amp=bf16, max_steps=steps)
            return train_regressor(model, ds, None, cfg, engine, name, progress=False)
        return run

    out = []
    for name in (LSTM_NAME, CNN3D_NAME):
        runs = ((f"{name}, 0-22 y", n_train, p["EPOCHS"]), (f"{name}, 0-{p['YOUNG_MAX_AGE']:g} y", n_young, p["EPOCHS"]))
        out.append(StageBench("03_lstm", name, setting, p["BATCH_SIZE"],
                              lambda dev, bf16, batch, name=name: _train_step(name, s, dev, bf16, batch), runs,
                              engine_run=engine_run(name)))
    return out
