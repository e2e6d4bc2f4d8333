"""Throughput of the LSTM paper's two models (``make bench``)."""
from __future__ import annotations

import time

import torch

from brainage_lib.papers.lstm.evaluation import LSTM_NAME, build_models


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
