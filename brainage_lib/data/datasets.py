"""Torch datasets over cached arrays: volumes, slices and slice sequences."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset


class CachedArrayDataset(Dataset):
    """Items ``(x, age)`` from a (memory-mapped) array and a target vector.

    Parameters
    ----------
    array : (N, ...) array, e.g. from ``cache.cached_array``.
    ages : (N,) targets; NaN marks an unlabelled image.
    indices : which rows to expose (default: all).
    channel : add a leading channel axis (volumes and slices), not for slice sequences.
    """

    def __init__(self, array: np.ndarray, ages: np.ndarray, indices: Sequence[int] | None = None, channel: bool = True):
        if len(array) != len(ages):
            raise ValueError(f"array has {len(array)} rows but ages has {len(ages)}")
        self.array, self.ages = array, np.asarray(ages, dtype=np.float32)
        self.indices = np.arange(len(array)) if indices is None else np.asarray(indices)
        self.channel = channel

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        row = int(self.indices[i])
        x = torch.from_numpy(np.array(self.array[row], dtype=np.float32))
        if self.channel:
            x = x[None]  # (1, ...)
        return x, torch.tensor(self.ages[row])


def VolumeDataset(array: np.ndarray, ages: np.ndarray, indices: Sequence[int] | None = None) -> CachedArrayDataset:
    """3D volumes as (1, D, H, W)."""
    return CachedArrayDataset(array, ages, indices, channel=True)


def SliceDataset(array: np.ndarray, ages: np.ndarray, indices: Sequence[int] | None = None) -> CachedArrayDataset:
    """2D slices as (1, H, W)."""
    return CachedArrayDataset(array, ages, indices, channel=True)


def SliceSequenceDataset(array: np.ndarray, ages: np.ndarray, indices: Sequence[int] | None = None) -> CachedArrayDataset:
    """Slice stacks as (S, H, W): one sequence element per slice."""
    return CachedArrayDataset(array, ages, indices, channel=False)
