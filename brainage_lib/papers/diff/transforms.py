"""DIFF's input: the mid-axial slice resized to 128x128, min-max to [0, 1]."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from brainage_lib.data.transforms import Transform, minmax, resize


@dataclass(frozen=True)
class DIFFSlice(Transform):
    """DIFF: the axial slice at ``z_fraction`` of the volume's height, resized to ``size``^2, min-max to [0, 1]."""

    inputs: ClassVar[str] = "slice"

    size: int = 128
    z_fraction: float = 0.5

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.size, self.size)

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        z = int(round((volume.shape[2] - 1) * self.z_fraction))
        x = resize(volume[:, :, z], self.out_shape, antialias=True)
        return minmax(x).astype(np.float32)
