"""Input transforms, from a T1w NIfTI to a float array: the base class, reading and resizing.

Each paper's own transforms live in its wing (``papers/<paper>/transforms.py``) and are declared
in its ``Paper``; :func:`get_transform` finds them by short name through ``brainage_lib.registry``.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import ClassVar
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F

from brainage_lib import registry
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
    """Base: a named, parameterised map from a volume to an array; ``key`` identifies it in the cache.

    ``inputs`` says how a network takes one output: ``volume`` (1, D, H, W), ``slice`` (1, H, W) or
    ``slice_sequence`` (S, H, W), the last without a channel axis.
    """

    inputs: ClassVar[str] = "volume"

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


def transforms() -> dict[str, type[Transform]]:
    """Every paper's transforms by short name (``tgb``, ``diff``, ``lstm``, ``atlas``, ...)."""
    return {name: registry.load(ref) for name, ref in registry.transform_refs().items()}


def __getattr__(name: str):
    if name == "TRANSFORMS":  # the merged view, built when first asked for
        return transforms()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_transform(name: str, **params) -> Transform:
    """A transform by short name (``tgb``, ``diff``, ``lstm``, ...) with optional parameters."""
    known = registry.transform_refs()
    if name not in known:
        raise BrainAgeError(f"Unknown transform '{name}'. Choose one of: {', '.join(known)}.")
    cls = registry.load(known[name])
    unknown = set(params) - set(cls.__dataclass_fields__)
    if unknown:
        raise BrainAgeError(f"Unknown parameter(s) {sorted(unknown)} for transform '{name}'; allowed: {sorted(cls.__dataclass_fields__)}.")
    return cls(**params)
