"""A real training stage timed for a few steps: what ``make gpu-check`` extrapolates from.

``time_stage`` runs a stage's own training function (``StageBench.engine_run``: batch loader,
engine and checkpoints, as in a notebook) on an
:class:`~brainage_lib.engine.fabric.Engine` with a temporary checkpoint folder, stopped after
``steps`` optimiser steps. The engine notes the time after every step: the first step (cuDNN's
kernel search, first allocations, compilation) and the set-up before it are kept apart; the mean
of the later steps is the time per step. On CUDA the profiler records the kernels run between the
first and the last step, and their summed time over that wall time is the share of time the
GPU was busy (1.0: it never waited on Python, the loader or a synchronisation). On a CPU that
share is None.
"""
from __future__ import annotations

import tempfile
import time

import torch

from brainage_lib.engine.fabric import Engine

__all__ = ["gpu_busy_share", "time_stage"]


class _StepClock(list):
    """The engine's per-step clock; starts the profiler after the first step and stops it after the last.

    The steps do not wait for the device (their losses stay on it), so on CUDA the clock waits
    for it after the first and after the last step: the time between them is the device's time
    for the later steps, not Python's time to queue them.
    """

    def __init__(self, steps: int, profiler=None, device: torch.device | None = None) -> None:
        super().__init__()
        self.steps, self.profiler, self.error, self.device = steps, profiler, None, device

    def append(self, t: float) -> None:
        if self.device is not None and self.device.type == "cuda" and len(self) in (0, self.steps - 1):
            torch.cuda.synchronize(self.device)
            t = time.perf_counter()
        super().append(t)
        if self.profiler is None or self.error is not None:
            return
        try:  # a profiler that fails costs the busy share, never the timing
            if len(self) == 1:
                self.profiler.start()
            elif len(self) == self.steps:
                self.profiler.stop()
        except Exception as exc:  # noqa: BLE001
            self.error = f"{type(exc).__name__}: {exc}"[:300]


def _kernel_seconds(profiler) -> float:
    """Summed device time (kernels, copies) of the events the profiler recorded, in seconds."""
    total = 0.0
    for e in profiler.key_averages():
        total += float(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0.0)) or 0.0)
    return total / 1e6


def gpu_busy_share(kernel_s: float, wall_s: float) -> float | None:
    """Busy share of a device from its kernels' summed time and the wall time, clipped to [0, 1]; None without time."""
    if wall_s <= 0:
        return None
    return float(min(max(kernel_s / wall_s, 0.0), 1.0))


def time_stage(engine_run, device: torch.device, bf16: bool, steps: int, compile: bool = False) -> dict:
    """Run ``engine_run(engine, bf16, steps)`` once and time it (see the module docstring); ``compile``: on an
    engine that compiles the generators and regressors (the first step then includes their compilation).

    Returns ``steps``, ``wall_s`` (the whole call), ``setup_s`` (before the first step, less
    one step), ``first_step_s``, ``step_s`` (mean of the later steps), ``checkpoint_s``
    (writing the stage's final checkpoint), ``gpu_busy`` (CUDA only, else None) and
    ``peak_memory_gib`` (CUDA only).
    """
    if steps < 2:
        raise ValueError("time_stage needs at least 2 steps (the first one is a warm-up)")
    cuda = device.type == "cuda"
    profiler = None
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
    clock = _StepClock(steps, profiler, device)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(device, 1, tmp, compile=compile)
        engine.step_clock = clock
        t0 = time.perf_counter()
        engine_run(engine, bf16, steps)
        if cuda:
            torch.cuda.synchronize(device)
        wall = time.perf_counter() - t0
        stage = engine.last_stage
    if len(clock) != steps:
        raise RuntimeError(f"the stage stopped after {len(clock)} of {steps} steps")
    timed = float(clock[-1] - clock[0])
    step_s = timed / (steps - 1)
    out = {"steps": steps, "wall_s": wall, "first_step_s": float(clock[0] - t0), "step_s": step_s,
           "setup_s": max(float(clock[0] - t0) - step_s, 0.0), "checkpoint_s": stage.save_seconds if stage else 0.0,
           "gpu_busy": None, "peak_memory_gib": None}
    if cuda:
        out["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
        try:
            if clock.error:
                raise RuntimeError(clock.error)
            out["gpu_busy"] = gpu_busy_share(_kernel_seconds(profiler), timed)
        except Exception as exc:  # noqa: BLE001 - reported beside the timing
            out["gpu_busy_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return out
