"""Timing helpers shared by the model benchmarks."""
from __future__ import annotations

import time
from typing import Callable

import torch

__all__ = ["samples_per_second", "sync"]


def sync(device: torch.device) -> None:
    """Wait for queued CUDA work so that wall-clock timings are honest."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def samples_per_second(step: Callable[[], None], device: torch.device, batch: int, n_iter: int, warmup: int = 2) -> float:
    """Run ``step`` ``warmup`` times untimed, then ``n_iter`` times timed; ``batch * n_iter / seconds``."""
    for _ in range(warmup):
        step()
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n_iter):
        step()
    sync(device)
    return round(batch * n_iter / (time.perf_counter() - t0), 2)
