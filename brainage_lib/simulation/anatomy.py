"""MNI152 anatomy on a chosen grid: tissue maps, regions from MNI coordinates, smooth fields.

All maps come from the MNI152 2009 template and tissue-probability maps shipped
inside the nilearn wheel (no download). The field of view is always the
template's (-98..98, -134..98, -72..116 mm); ``shape`` only sets the sampling.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from brainage_lib.errors import BrainAgeError

MNI_ORIGIN = np.array([-98.0, -134.0, -72.0])  # mm, centre of voxel (0, 0, 0)
MNI_EXTENT = np.array([196.0, 232.0, 188.0])  # mm, first to last voxel centre
DEFAULT_SHAPE = (99, 117, 95)  # the 2 mm MNI grid

# Lobes and regions as boxes in MNI millimetres: (x_abs_min, x_abs_max, y_min, y_max, z_min, z_max).
# Rough, deliberately simple definitions: they only have to be reproducible and documented.
REGIONS: dict[str, tuple[float, float, float, float, float, float]] = {
    "frontal": (0, 99, 5, 99, -30, 99),
    "parietal": (0, 99, -75, -15, 20, 99),
    "occipital": (0, 99, -134, -70, -20, 99),
    "temporal": (32, 99, -70, 20, -50, 10),
    "motor": (0, 99, -35, 0, 35, 99),
    "cerebellum": (0, 99, -134, -40, -99, -22),
    "medial_temporal": (16, 38, -42, -8, -28, -4),
}


@dataclass(frozen=True)
class Grid:
    """A sampling of the MNI field of view."""

    shape: tuple[int, int, int]

    @property
    def voxel_size(self) -> np.ndarray:
        return MNI_EXTENT / (np.asarray(self.shape) - 1)

    @property
    def affine(self) -> np.ndarray:
        aff = np.eye(4)
        aff[:3, :3] = np.diag(self.voxel_size)
        aff[:3, 3] = MNI_ORIGIN
        return aff

    def mm_coordinates(self) -> np.ndarray:
        """MNI coordinates of every voxel, shape (3, X, Y, Z)."""
        axes = [MNI_ORIGIN[i] + np.arange(self.shape[i]) * self.voxel_size[i] for i in range(3)]
        return np.stack(np.meshgrid(*axes, indexing="ij"))


def make_grid(shape: tuple[int, int, int] | None = None, voxel_size: float | None = None) -> Grid:
    """Grid from an explicit shape or an isotropic voxel size in mm (not both)."""
    if shape is not None and voxel_size is not None:
        raise BrainAgeError("Give either a shape or a voxel size, not both.")
    if voxel_size is not None:
        if not 0.5 <= voxel_size <= 12:
            raise BrainAgeError(f"Voxel size {voxel_size} mm is outside 0.5-12 mm.")
        shape = tuple(int(round(e / voxel_size)) + 1 for e in MNI_EXTENT)
    shape = tuple(int(s) for s in (shape or DEFAULT_SHAPE))
    if len(shape) != 3 or min(shape) < 8 or max(shape) > 400:
        raise BrainAgeError(f"Shape {shape} must be three sizes between 8 and 400 voxels.")
    return Grid(shape)  # type: ignore[arg-type]


def resample_to_grid(data: np.ndarray, src_voxel_mm: float, grid: Grid) -> np.ndarray:
    """Resample a template-space array onto ``grid`` (anti-aliased trilinear)."""
    sigma = np.maximum(grid.voxel_size / src_voxel_mm - 1.0, 0.0) * 0.5
    if sigma.max() > 0:
        data = ndimage.gaussian_filter(data, sigma)
    t = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None, None]
    out = F.interpolate(t, size=grid.shape, mode="trilinear", align_corners=True)
    return out[0, 0].numpy()


@lru_cache(maxsize=8)
def tissue_maps(shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    """Template T1, GM, WM, CSF and brain mask on a grid, float32 in [0, 1].

    CSF is what the brain mask holds beyond GM and WM; the three tissues sum to the
    mask. A ventricle map (central CSF) is derived for ventricular enlargement.
    """
    from nilearn import datasets

    grid = Grid(shape)
    raw = {
        "t1": datasets.load_mni152_template(resolution=1),
        "gm": datasets.load_mni152_gm_template(resolution=1),
        "wm": datasets.load_mni152_wm_template(resolution=1),
        "mask": datasets.load_mni152_brain_mask(resolution=1),
    }
    maps = {}
    for key, img in raw.items():
        arr = np.asarray(img.get_fdata(dtype=np.float32))
        maps[key] = np.clip(resample_to_grid(arr, 1.0, grid), 0.0, 1.0)
    mask = maps["mask"]
    gm, wm = maps["gm"] * mask, maps["wm"] * mask
    total = gm + wm
    over = total > mask
    scale = np.where(over, mask / np.maximum(total, 1e-6), 1.0)
    gm, wm = gm * scale, wm * scale
    maps.update(gm=gm, wm=wm, csf=np.clip(mask - gm - wm, 0.0, 1.0))
    xyz = grid.mm_coordinates()
    central = (np.abs(xyz[0]) < 25) & (xyz[1] > -45) & (xyz[1] < 25) & (xyz[2] > -5) & (xyz[2] < 35)
    maps["ventricles"] = (maps["csf"] * central * (maps["csf"] > 0.5)).astype(np.float32)
    return {k: v.astype(np.float32) for k, v in maps.items()}


def region_map(spec: str, shape: tuple[int, int, int], smooth_mm: float = 4.0) -> np.ndarray:
    """A smooth [0, 1] map of a region inside the brain.

    ``spec`` is a region name (see ``REGIONS``), ``sphere:x,y,z,r`` in MNI mm, or
    several of these joined by ``+`` (their union).
    """
    grid = Grid(shape)
    xyz = grid.mm_coordinates()
    union = np.zeros(shape, dtype=bool)
    for part in spec.split("+"):
        part = part.strip()
        if part.startswith("sphere:"):
            try:
                x, y, z, r = (float(v) for v in part[len("sphere:"):].split(","))
            except ValueError:
                raise BrainAgeError(f"Region '{part}': write a sphere as sphere:x,y,z,r in MNI mm, e.g. sphere:0,30,20,25.") from None
            union |= ((xyz[0] - x) ** 2 + (xyz[1] - y) ** 2 + (xyz[2] - z) ** 2) <= r**2
        elif part in REGIONS:
            ax0, ax1, y0, y1, z0, z1 = REGIONS[part]
            ax = np.abs(xyz[0])
            union |= (ax >= ax0) & (ax <= ax1) & (xyz[1] >= y0) & (xyz[1] <= y1) & (xyz[2] >= z0) & (xyz[2] <= z1)
        else:
            names = ", ".join(sorted(REGIONS))
            raise BrainAgeError(f"Unknown region '{part}'. Use one of: {names}; sphere:x,y,z,r; or several joined by '+'.")
    brain = tissue_maps(shape)["mask"] > 0.5
    sigma = smooth_mm / grid.voxel_size
    out = ndimage.gaussian_filter((union & brain).astype(np.float32), sigma)
    peak = out.max()
    if peak <= 0:
        raise BrainAgeError(f"Region '{spec}' does not overlap the brain; choose MNI coordinates inside it.")
    return (np.clip(out / peak, 0, 1) * (tissue_maps(shape)["mask"] > 0.05)).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int, int], control: int | tuple[int, int, int],
                 channels: int = 1, device: torch.device | str | None = None) -> torch.Tensor:
    """Random smooth field: N(0, 1) values on a coarse control grid, trilinearly upsampled (on ``device``).

    Returns a tensor of shape (channels, X, Y, Z); values keep roughly unit scale.
    """
    ctrl = (control,) * 3 if isinstance(control, int) else control
    coarse = torch.from_numpy(rng.standard_normal((1, channels, *ctrl)).astype(np.float32)).to(device or "cpu")
    return F.interpolate(coarse, size=shape, mode="trilinear", align_corners=True)[0]
