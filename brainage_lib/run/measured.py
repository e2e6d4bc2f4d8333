"""Settings that ``make gpu-check`` decides on this machine: ``COMPILE=auto`` and ``PARALLEL=auto``.

``make gpu-check`` writes ``bench/gpu.json``: per training stage, the time per step eager and
compiled (``torch.compile``) and the peak GPU memory; per notebook, whether compiling saves time
over the paper profile's steps (compilation included) and its peak memory. A result counts only
for the GPU that measured it (its name) at the paper's sizes. Without one, ``auto`` takes the
setting that needs no measurement: no compilation, one notebook at a time.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from brainage_lib import paths
from brainage_lib.errors import BrainAgeError

__all__ = ["COMPILE_SETTINGS", "MEMORY_HEADROOM", "compile_choice", "gpu_check_file", "gpu_check_result",
           "parallel_choice"]

COMPILE_SETTINGS = ("auto", "on", "off")
MEMORY_HEADROOM = 0.9  # notebooks run together only while their summed peaks stay within this share of the GPU


def gpu_check_file() -> Path:
    return paths.project_root() / "bench" / "gpu.json"


def gpu_check_result(device_name: str, file: str | Path | None = None) -> dict[str, Any] | None:
    """``bench/gpu.json`` (or ``file``) when it was measured on a GPU of this name at the paper's sizes, else None."""
    f = Path(file) if file else gpu_check_file()
    try:
        res = json.loads(f.read_text())
    except (OSError, ValueError):
        return None
    if res.get("device") != device_name or res.get("sizes") != "paper":
        return None
    return res


def compile_choice(setting: str, device: torch.device, notebook: str,
                   file: str | Path | None = None) -> tuple[bool, str]:
    """Whether ``notebook`` compiles its generators and regressors, and why (a line for the notebook's banner).

    ``on`` and ``off`` are taken as given. ``auto`` compiles only on a GPU that ``make gpu-check``
    measured, and only where compiling made that notebook's stages faster over the paper
    profile's steps, compilation included.
    """
    value = str(setting).strip().lower()
    if value not in COMPILE_SETTINGS:
        raise BrainAgeError(f"COMPILE={setting!r}: choose one of {', '.join(COMPILE_SETTINGS)}.")
    if value != "auto":
        return value == "on", f"COMPILE={value}"
    if device.type != "cuda":
        return False, "COMPILE=auto: off on a CPU (compiling takes longer than it saves at these sizes)"
    name = torch.cuda.get_device_name(device)
    res = gpu_check_result(name, file)
    if res is None:
        return False, (f"COMPILE=auto: off; `make gpu-check` has not measured this GPU ({name}) at the paper's sizes, "
                       "and its bench/gpu.json decides")
    choice = (res.get("compile") or {}).get(notebook)
    if not choice or choice.get("faster") is None:
        return False, f"COMPILE=auto: off; gpu-check measured no compiled stage of {notebook} on {name}"
    on = bool(choice["faster"])
    return on, (f"COMPILE=auto: {'on' if on else 'off'} (gpu-check on {name}: {choice['eager_hours']:.2f} h eager vs "
                f"{choice['compiled_hours']:.2f} h compiled, compilation included)")


def parallel_choice(setting: str | int, notebooks: list[str], cuda: bool | None = None,
                    file: str | Path | None = None) -> tuple[int, str]:
    """How many of ``notebooks`` run at once, and why.

    A number is taken as given (at least 1). ``auto``: one at a time on a CPU (the notebooks share
    its cores) or on a GPU that ``make gpu-check`` has not measured; on a measured GPU, as many as
    any choice of them fits: the largest k whose k largest peak memories sum to at most
    ``MEMORY_HEADROOM`` of the GPU's memory.
    """
    value = str(setting).strip().lower()
    if value != "auto":
        try:
            n = int(value)
        except ValueError:
            raise BrainAgeError(f"PARALLEL={setting!r}: give a number of notebooks (1 or more) or auto.") from None
        if n < 1:
            raise BrainAgeError(f"PARALLEL={setting!r}: give 1 or more (or auto).")
        return min(n, max(len(notebooks), 1)), f"PARALLEL={n}"
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if not cuda:
        return 1, "PARALLEL=auto: one notebook at a time (no GPU: the notebooks would share the CPU cores)"
    name = torch.cuda.get_device_name(0)
    res = gpu_check_result(name, file)
    if res is None:
        return 1, (f"PARALLEL=auto: one notebook at a time; `make gpu-check` has not measured this GPU ({name}), "
                   "and its peak memory per notebook decides")
    peaks = (res.get("peak_memory_gib") or {})
    missing = [nb for nb in notebooks if not peaks.get(nb)]
    if missing:
        return 1, f"PARALLEL=auto: one notebook at a time; gpu-check has no peak memory for {', '.join(missing)}"
    total = torch.cuda.get_device_properties(0).total_memory / 2**30
    largest = sorted((float(peaks[nb]) for nb in notebooks), reverse=True)
    n = max(k for k in range(1, len(largest) + 1) if k == 1 or sum(largest[:k]) <= MEMORY_HEADROOM * total)
    return n, (f"PARALLEL=auto: {n} notebook(s) at a time (peaks {', '.join(f'{p:.1f}' for p in largest)} GiB "
               f"measured by gpu-check; {MEMORY_HEADROOM:.0%} of {total:.0f} GiB)")
