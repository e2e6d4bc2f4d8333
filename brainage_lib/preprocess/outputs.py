"""Where a preprocessed scan's files go, and how each is written: through a temporary name, then a rename.

Names follow sMRIPrep's derivatives: per scan (``sub-<id>[_ses-<s>]``) in its ``anat`` folder,
``<stem>_space-<tpl>_res-<grid>_desc-preproc_T1w.nii.gz`` and ``..._desc-brain_mask.nii.gz`` (each with a JSON
sidecar), the composite transforms ``<stem>_from-T1w_to-<tpl>_mode-image_xfm.h5`` and its inverse
``<stem>_from-<tpl>_to-T1w_mode-image_xfm.h5``, and the scan's record ``<stem>_qc.json``; beside ``anat``, in
``figures``, ``<stem>_desc-qc.png`` (the registered brain under the template's edges) and ``<stem>_desc-brainmask.png``
(the brain mask's outline on the image it was extracted from). A scan's record is
written last and removed first, so a scan counts as finished only once all its files are in place;
``remove_outputs`` clears a scan that failed or was stopped (old-style names of the scan included). A scan that
failed leaves only ``logs/<stem>_failed.json``, its reason.
"""
from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from brainage_lib.preprocess.recipes import SPACE

LOCK_NAME = ".lock"  # in OUT: held while a run checks the folder and writes dataset_description.json


def _tmp_name(path: Path) -> Path:
    """A temporary name beside ``path``, unique to this host and process (parts of a job array share OUT)."""
    host = "".join(c for c in socket.gethostname().split(".")[0] if c.isalnum()) or "host"
    return path.with_name(f".tmp{host}-{os.getpid()}-{path.name}")


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary name in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive POSIX lock on ``folder/.lock`` (parts of a job array writing one folder take turns).

    On a file system without locks (some cluster mounts) it goes on unlocked: what it guards is written by an
    atomic rename, and every part writes the same content.
    """
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_NAME, "a+b") as f:
        try:
            fcntl.lockf(f, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.lockf(f, fcntl.LOCK_UN)


def save_nifti(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """An MNI-space NIfTI (qform/sform code 4), written atomically."""
    img = nib.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_qform(affine, code=4)
    img.header.set_sform(affine, code=4)
    atomic_write(path, lambda p: nib.save(img, str(p)))


def output_paths(out_anat: Path, stem: str, res: str = "", space: str = SPACE) -> dict[str, Path]:
    """Each output of one scan by kind. ``res`` is the recipe's grid label (``Recipe.res``); sidecars are the
    images' names with ``.json`` for ``.nii.gz``."""
    grid = f"_space-{space}" + (f"_res-{res}" if res else "")
    t1w, mask = out_anat / f"{stem}{grid}_desc-preproc_T1w.nii.gz", out_anat / f"{stem}{grid}_desc-brain_mask.nii.gz"
    return {"t1w": t1w, "mask": mask, "t1w_json": sidecar(t1w), "mask_json": sidecar(mask),
            "xfm": out_anat / f"{stem}_from-T1w_to-{space}_mode-image_xfm.h5",
            "inv_xfm": out_anat / f"{stem}_from-{space}_to-T1w_mode-image_xfm.h5",
            "qc": out_anat / f"{stem}_qc.json", "figure": out_anat.parent / "figures" / f"{stem}_desc-qc.png",
            "mask_figure": out_anat.parent / "figures" / f"{stem}_desc-brainmask.png"}


def sidecar(image: Path) -> Path:
    """The JSON sidecar of a NIfTI image."""
    return image.with_name(image.name.removesuffix(".gz").removesuffix(".nii") + ".json")


def failure_path(out: Path, stem: str) -> Path:
    """Where the reason a scan failed is kept (read by the report; removed when the scan succeeds)."""
    return out / "logs" / f"{stem}_failed.json"


def scan_files(where: dict[str, Path]) -> list[Path]:
    """Every file of one scan that exists now, its record first, including half-written temporary files and the
    scan's files under the names written before the sMRIPrep-style ones (``<stem>_T1w.nii.gz`` in MNI space, the
    ``.mat`` and warp transforms)."""
    anat = where["qc"].parent
    stem = where["qc"].name[: -len("_qc.json")]
    found = [where["qc"], *(where[k] for k in ("t1w", "mask", "t1w_json", "mask_json", "xfm", "inv_xfm", "figure",
                                                   "mask_figure"))]
    found += sorted(anat.glob(f"{stem}_space-*_desc-*")) + sorted(anat.glob(f"{stem}_from-*_to-*_mode-image*"))
    found.append(anat / f"{stem}_T1w.nii.gz")
    for folder in {anat, where["figure"].parent}:
        found += sorted(folder.glob(f".tmp*-{stem}_*"))
    return [p for p in dict.fromkeys(found) if p.is_file()]


def remove_outputs(where: dict[str, Path]) -> None:
    """Remove one scan's outputs, its record first (never anything of another scan)."""
    for p in scan_files(where):
        p.unlink(missing_ok=True)


_M = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M


def _lookup3(data: bytes) -> int:
    """Bob Jenkins's lookup3 hash (``hashlittle``, seed 0): the checksum of HDF5's version-2 metadata."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n) & _M
    i = 0
    while n > 12:
        a = (a + int.from_bytes(data[i:i + 4], "little")) & _M
        b = (b + int.from_bytes(data[i + 4:i + 8], "little")) & _M
        c = (c + int.from_bytes(data[i + 8:i + 12], "little")) & _M
        a = (a - c) & _M; a ^= _rot(c, 4); c = (c + b) & _M  # noqa: E702
        b = (b - a) & _M; b ^= _rot(a, 6); a = (a + c) & _M  # noqa: E702
        c = (c - b) & _M; c ^= _rot(b, 8); b = (b + a) & _M  # noqa: E702
        a = (a - c) & _M; a ^= _rot(c, 16); c = (c + b) & _M  # noqa: E702
        b = (b - a) & _M; b ^= _rot(a, 19); a = (a + c) & _M  # noqa: E702
        c = (c - b) & _M; c ^= _rot(b, 4); b = (b + a) & _M  # noqa: E702
        n, i = n - 12, i + 12
    if n == 0:
        return c
    tail = data[i:i + n] + bytes(12 - n)
    a = (a + int.from_bytes(tail[0:4], "little")) & _M
    b = (b + int.from_bytes(tail[4:8], "little")) & _M
    c = (c + int.from_bytes(tail[8:12], "little")) & _M
    for x, y, k in (("c", "b", 14), ("a", "c", 11), ("b", "a", 25), ("c", "b", 16), ("a", "c", 4), ("b", "a", 14),
                    ("c", "b", 24)):
        v = {"a": a, "b": b, "c": c}
        v[x] = ((v[x] ^ v[y]) - _rot(v[y], k)) & _M
        a, b, c = v["a"], v["b"], v["c"]
    return c


def without_hdf5_times(blob: bytes) -> bytes:
    """An HDF5 file (ITK's ``.h5`` transforms) with the times in its object headers set to zero.

    HDF5 stamps each object with the second it was written, so two runs that compute the same transform would
    write different files. Only version-2 object headers whose stored checksum verifies are changed, and their
    checksum is recomputed; the transform's numbers are untouched.
    """
    out = bytearray(blob)
    i = 0
    while (i := out.find(b"OHDR", i)) >= 0:
        start, i = i, i + 4
        if start + 26 > len(out) or out[start + 4] != 2 or not out[start + 5] & 0x20:
            continue
        flags = out[start + 5]
        pos = start + 22 + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 0x03)
        end = pos + width + int.from_bytes(out[pos:pos + width], "little")
        if end + 4 > len(out) or _lookup3(bytes(out[start:end])) != int.from_bytes(out[end:end + 4], "little"):
            continue
        out[start + 6:start + 22] = bytes(16)
        out[end:end + 4] = _lookup3(bytes(out[start:end])).to_bytes(4, "little")
    return bytes(out)
