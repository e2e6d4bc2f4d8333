"""Is an image in the space the notebooks expect: skull-stripped, registered to MNI152?

The same criteria serve ``brainage validate`` (a warning per kind) and the notebooks'
guard (``require_preprocessed``: stop before training, name the files, say which
``brainage preprocess`` recipe makes them usable):

- orientation: RAS or LAS, as MNI152 images are stored;
- voxel size: between 0.5 and 3 mm;
- field of view: centre within 30 mm of MNI152's, extent within 35 % of it;
- skull: with the voxels read, a foreground (voxels above 10 % of the 99th percentile)
  larger than ``SKULL_ML``: a skull-stripped brain is about 1.0-1.9 L, a head 3-5 L.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from brainage_lib import registry
from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation.anatomy import MNI_EXTENT, MNI_ORIGIN

SKULL_ML = 2500.0  # foreground volume above which the skull (and scalp) is taken to be present
SPACE_KINDS = ("orientation", "voxel", "fov", "skull")
GUARD_KINDS = ("orientation", "fov", "skull")  # what stops a notebook; an unusual voxel size is only a warning


def space_observations(img: nib.spatialimages.SpatialImage, data: np.ndarray | None = None) -> dict[str, str]:
    """Far-from-MNI observations of one image, kind -> detail (empty when it looks registered and brain-only).

    ``data`` (the voxels, optional) enables the skull check; without it only the header is used.
    """
    out: dict[str, str] = {}
    shape = img.shape[:3]
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    try:
        orient = "".join(nib.aff2axcodes(img.affine))
    except Exception:  # noqa: BLE001 - a broken affine is reported as an unknown orientation
        orient = "?"
    if orient not in ("RAS", "LAS"):
        out["orientation"] = f"orientation {orient}"
    if zooms.max() > 3.0 or zooms.min() < 0.5:
        out["voxel"] = "voxel size " + "x".join(f"{z:.2g}" for z in zooms) + " mm"
    corners = np.array([[i, j, k, 1] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)])
    world = (img.affine @ corners.T)[:3]
    extent, centre = world.max(1) - world.min(1), (world.max(1) + world.min(1)) / 2
    if np.any(np.abs(centre - (MNI_ORIGIN + MNI_EXTENT / 2)) > 30) or np.any(np.abs(extent / MNI_EXTENT - 1) > 0.35):
        out["fov"] = f"field of view centre {np.round(centre)}, extent {np.round(extent)} mm"
    if data is not None:
        ml = foreground_ml(np.asarray(data, dtype=np.float32), zooms)
        if ml > SKULL_ML:
            out["skull"] = f"foreground {ml / 1000:.1f} L, more than a brain"
    return out


def foreground_ml(data: np.ndarray, zooms: Sequence[float]) -> float:
    """Volume in mL of the voxels above 10 % of the image's 99th percentile."""
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return 0.0
    hi = float(np.percentile(finite, 99))
    return float((data > 0.1 * hi).sum() * np.prod(zooms) / 1000.0) if hi > 0 else 0.0


def space_report(paths: Sequence[str | Path], read_voxels: int = 5) -> dict[str, list[str]]:
    """Far-from-MNI images among ``paths``, kind -> ["file (detail)", ...].

    Headers are read for every image; the voxels (for the skull check) of the first
    ``read_voxels`` images and of any image whose header already looks far from MNI.
    """
    seen: dict[str, list[str]] = {k: [] for k in SPACE_KINDS}
    for i, p in enumerate(paths):
        img = nib.load(str(p))
        obs = space_observations(img)
        if i < read_voxels or obs:
            obs = space_observations(img, np.asanyarray(img.dataobj))
        for kind, detail in obs.items():
            seen[kind].append(f"{p} ({detail})")
    return seen


def require_preprocessed(paths: Sequence[str | Path], recipe: str, allow_unregistered: bool = False,
                         examples: int = 5) -> list[str]:
    """Stop a notebook whose images are not brain-only in MNI space; returns the warnings when allowed.

    Orientation, field of view and skull (``GUARD_KINDS``) stop it; an unusual voxel size does not.

    Raises ``BrainAgeError`` naming the files and the ``brainage preprocess --recipe <recipe>``
    command, unless ``allow_unregistered`` (then the same findings are returned as warnings).
    """
    if recipe not in registry.recipe_names():
        raise BrainAgeError(f"Unknown preprocessing recipe '{recipe}'; choose one of {', '.join(registry.recipe_names())}.")
    seen = space_report(paths)
    found = []
    for kind, files in seen.items():
        if files and kind in GUARD_KINDS:
            more = f" and {len(files) - examples} more" if len(files) > examples else ""
            found.append(f"{kind}: {len(files)} image(s), e.g. {'; '.join(files[:examples])}{more}")
    if found and not allow_unregistered:
        raise BrainAgeError(
            "These images are not skull-stripped T1s registered to MNI152 space, as this notebook expects:\n  - "
            + "\n  - ".join(found) + f"\nRun `brainage preprocess RAW OUT --recipe {recipe}` and point DATA_DIR at OUT, "
            "or set ALLOW_UNREGISTERED=True to train on them as they are.")
    return found


def check_input_space(cohorts: Sequence, recipe: str, data_dir: str, allow_unregistered: bool = False) -> list[str]:
    """The notebooks' guard on their ``DATA_DIR`` cohorts (objects with ``.paths``); simulated cohorts pass.

    Prints and returns the findings when ``allow_unregistered``; raises as ``require_preprocessed`` otherwise.
    """
    if not data_dir:
        return []
    found = require_preprocessed([p for c in cohorts for p in c.paths], recipe, allow_unregistered)
    for line in found:
        print(f"WARNING (ALLOW_UNREGISTERED=True): not in MNI space / not skull-stripped: {line}")
    return found
