"""LSTM's inputs: the volume in a 128x160x112 atlas space, each axial slice resized to 50x50 and z-scored per
subject, shape (112, 50, 50); its 3D baseline takes the atlas-space volume itself, z-scored (``AtlasVolume``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from brainage_lib.data.transforms import Transform, resize


@dataclass(frozen=True)
class LSTMSlices(Transform):
    """LSTM: resize to the atlas grid, each axial slice to ``slice_size``^2, z-score per subject.

    Output (n_slices, slice_size, slice_size) with n_slices = ``atlas_shape[2]``.
    """

    inputs: ClassVar[str] = "slice_sequence"

    atlas_shape: tuple[int, int, int] = (128, 160, 112)
    slice_size: int = 50

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.atlas_shape[2], self.slice_size, self.slice_size)

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        x = resize(volume, tuple(self.atlas_shape))  # (X, Y, Z)
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[:, None]  # (Z, 1, X, Y)
        s = F.interpolate(t, size=(self.slice_size,) * 2, mode="bilinear", align_corners=False, antialias=True)[:, 0]
        s = s.numpy()  # (Z, S, S)
        sd = float(s.std())
        return ((s - s.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)


@dataclass(frozen=True)
class AtlasVolume(Transform):
    """LSTM paper's 3D baseline input: the volume on the 128x160x112 atlas grid, z-scored per subject."""

    atlas_shape: tuple[int, int, int] = (128, 160, 112)

    @property
    def out_shape(self) -> tuple[int, ...]:
        return tuple(self.atlas_shape)

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        x = resize(volume, tuple(self.atlas_shape))
        sd = float(x.std())
        return ((x - x.mean()) / (sd if sd > 0 else 1.0)).astype(np.float32)
