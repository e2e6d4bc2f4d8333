"""Where a preprocessed scan's files go, and how each is written: through a temporary name, then a rename.

A scan's record (``_qc.json``) is written last and removed first, so a scan counts as finished only
once all its files are in place; ``remove_outputs`` clears a scan that failed or was stopped.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from brainage_lib.preprocess.recipes import SPACE


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary name in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp{os.getpid()}-{path.name}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """An MNI-space NIfTI (qform/sform code 4), written atomically."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=4)
    img.header.set_sform(affine, code=4)
    atomic_write(path, lambda p: nib.save(img, str(p)))


def output_paths(out_anat: Path, stem: str) -> dict[str, Path]:
    """Each output of one scan by kind; ``xfm`` is a prefix completed by the transform's suffix."""
    return {"t1w": out_anat / f"{stem}_T1w.nii.gz", "mask": out_anat / f"{stem}_space-{SPACE}_desc-brain_mask.nii.gz",
            "qc": out_anat / f"{stem}_qc.json", "figure": out_anat.parent / "figures" / f"{stem}_desc-qc.png",
            "xfm": out_anat / f"{stem}_from-T1w_to-{SPACE}_mode-image"}


def scan_files(where: dict[str, Path]) -> list[Path]:
    """Every file of one scan that exists now, its record first, including half-written temporary files."""
    xfm = where["xfm"]
    found = [where["qc"], where["t1w"], where["mask"], where["figure"], *sorted(xfm.parent.glob(f"{xfm.name}*"))]
    for folder in {where["t1w"].parent, where["figure"].parent}:
        stem = where["qc"].name[: -len("_qc.json")]
        found += sorted(folder.glob(f".tmp*-{stem}_*"))
    return [p for p in found if p.is_file()]


def remove_outputs(where: dict[str, Path]) -> None:
    """Remove one scan's outputs, its record first (never anything of another scan)."""
    for p in scan_files(where):
        p.unlink(missing_ok=True)
