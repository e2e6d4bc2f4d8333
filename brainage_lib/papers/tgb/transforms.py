"""TGB's input: a 96^3 volume, zero-mean then min-max to [0, 1]."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from brainage_lib.data.transforms import Transform, minmax, resize


@dataclass(frozen=True)
class TGBVolume(Transform):
    """TGB: resize to ``size``^3, subtract the mean, min-max to [0, 1]."""

    size: int = 96

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.size,) * 3

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        x = resize(volume, self.out_shape)
        return minmax(x - x.mean()).astype(np.float32)
