"""The three papers' input transforms, from a T1w NIfTI to a float array.

- TGB: 96^3 volume, zero-mean then min-max to [0, 1].
- DIFF: mid-axial slice resized to 128x128, min-max to [0, 1].
- LSTM: volume in a 128x160x112 atlas space, each axial slice resized to 50x50,
  z-scored per subject; shape (112, 50, 50). Its 3D baseline takes the atlas-space
  volume itself, z-scored (``AtlasVolume``).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from brainage_lib.errors import BrainAgeError


def load_volume(path: str | Path) -> np.ndarray:
    """Read a T1w NIfTI as float32 in RAS orientation; errors name the file."""
    try:
        img = nib.as_closest_canonical(nib.load(str(path)))
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as exc:  # noqa: BLE001
        raise BrainAgeError(f"{path}: cannot read image data ({type(exc).__name__}: {exc}). Run `brainage validate` on the cohort.") from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise BrainAgeError(f"{path}: expected a 3D volume, got shape {data.shape}.")
    if not np.isfinite(data).all():
        raise BrainAgeError(f"{path}: contains NaN/inf voxels. Replace them and re-save the image.")
    return data


def resize(array: np.ndarray, shape: tuple[int, ...], antialias: bool = False) -> np.ndarray:
    """Linear resize of a 2D or 3D array to ``shape``."""
    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    mode = "bilinear" if array.ndim == 2 else "trilinear"
    if antialias and array.ndim == 2:
        out = F.interpolate(t, size=shape, mode=mode, align_corners=False, antialias=True)
    else:
        out = F.interpolate(t, size=shape, mode=mode, align_corners=False)
    return out[0, 0].numpy()


def minmax(x: np.ndarray) -> np.ndarray:
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


@dataclass(frozen=True)
class Transform:
    """Base: a named, parameterised map from a volume to an array; ``key`` identifies it in the cache."""

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def key(self) -> str:
        blob = json.dumps({"name": self.name, **asdict(self)}, sort_keys=True)
        return f"{self.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    @property
    def out_shape(self) -> tuple[int, ...]:
        raise NotImplementedError

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        raise NotImplementedError


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


@dataclass(frozen=True)
class DIFFSlice(Transform):
    """DIFF: the axial slice at ``z_fraction`` of the volume's height, resized to ``size``^2, min-max to [0, 1]."""

    size: int = 128
    z_fraction: float = 0.5

    @property
    def out_shape(self) -> tuple[int, ...]:
        return (self.size, self.size)

    def __call__(self, volume: np.ndarray) -> np.ndarray:
        z = int(round((volume.shape[2] - 1) * self.z_fraction))
        x = resize(volume[:, :, z], self.out_shape, antialias=True)
        return minmax(x).astype(np.float32)


@dataclass(frozen=True)
class LSTMSlices(Transform):
    """LSTM: resize to the atlas grid, each axial slice to ``slice_size``^2, z-score per subject.

    Output (n_slices, slice_size, slice_size) with n_slices = ``atlas_shape[2]``.
    """

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


TRANSFORMS = {"tgb": TGBVolume, "diff": DIFFSlice, "lstm": LSTMSlices, "atlas": AtlasVolume}


def get_transform(name: str, **params) -> Transform:
    """A transform by short name (``tgb``, ``diff``, ``lstm``) with optional parameters."""
    if name not in TRANSFORMS:
        raise BrainAgeError(f"Unknown transform '{name}'. Choose one of: {', '.join(TRANSFORMS)}.")
    cls = TRANSFORMS[name]
    unknown = set(params) - set(cls.__dataclass_fields__)
    if unknown:
        raise BrainAgeError(f"Unknown parameter(s) {sorted(unknown)} for transform '{name}'; allowed: {sorted(cls.__dataclass_fields__)}.")
    return cls(**params)
