"""Timing and FLOP-counting helpers shared by the model benchmarks and ``make gpu-check``."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["StageBench", "count_flops", "samples_per_second", "sync"]


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


class _GlobalOnly:
    """Stands in for ``FlopCounterMode``'s module tracker, whose backward hooks break a double backward
    (WGAN-GP's gradient penalty); only the global count is used here."""

    parents = ("Global",)

    def __enter__(self) -> "_GlobalOnly":
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of the matrix products, convolutions and attention that ``fn()`` runs, forward and backward,
    as ``torch.utils.flop_counter.FlopCounterMode`` counts them (element-wise work and optimiser updates are
    not counted: the usual "model FLOPs")."""
    counter = FlopCounterMode(display=False)
    counter.mod_tracker = _GlobalOnly()
    with counter:
        fn()
    return counter.get_total_flops()


@dataclass(frozen=True)
class StageBench:
    """One training stage of a notebook's paper profile, as ``make gpu-check`` measures and extrapolates it.

    ``make_step(device, bf16, batch)`` builds the stage's networks and optimisers on ``device`` and
    returns one optimiser step on random inputs of ``batch`` samples (bf16 autocast if asked).
    ``runs`` lists each training of this stage in the paper profile as (label, training samples
    per epoch, epochs); ``engine_run`` trains the real stage for a few steps; ``count_batch`` is the smallest batch the step runs with (FLOPs scale
    linearly with the batch, so a paper-size count on a CPU can use it).
    """

    notebook: str
    name: str
    setting: str
    batch: int
    make_step: Callable[[torch.device, bool, int], Callable[[], object]]
    runs: tuple[tuple[str, int, int], ...]
    drop_last: bool = False  # the training loader drops an incomplete last batch
    count_batch: int = 1
    # ``engine_run(engine, bf16, steps)``: the stage's own training function on random data at these sizes, on
    # ``engine`` (loader, engine and checkpoints as the notebook runs them), stopped after ``steps`` optimiser steps
    engine_run: Callable[[object, bool, int], object] | None = None

    def steps_per_epoch(self, samples: int) -> int:
        return samples // self.batch if self.drop_last else math.ceil(samples / self.batch)

    @property
    def total_steps(self) -> int:
        """Optimiser steps of every training of this stage in the paper profile."""
        return sum(self.steps_per_epoch(n) * epochs for _, n, epochs in self.runs)
