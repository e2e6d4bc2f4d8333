"""Preprocessed arrays cached on disk, keyed by cohort and transform, memory-mapped.

A training epoch then reads float16 arrays from a memory map: no NIfTI decoding
or resampling. A cache file is built under a temporary name and renamed into place
only when complete, so an interrupted build never leaves a corrupt cache.
"""
from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from brainage_lib import paths
from brainage_lib.data.cohort import Cohort
from brainage_lib.data.transforms import Transform, load_volume
from brainage_lib.run.progress import tqdm

CACHE_DTYPE = np.float16


def cache_path(cohort: Cohort, transform: Transform, root: Path | None = None) -> Path:
    root = root or paths.cache_dir()
    return root / f"{cohort.name}-{cohort.fingerprint()}" / f"{transform.key}.npy"


def cached_array(cohort: Cohort, transform: Transform, root: Path | None = None, progress: bool = True,
                 workers: int = 2) -> np.ndarray:
    """Return the transformed images of ``cohort`` as a read-only memory map (N, *out_shape).

    Row ``i`` is ``transform(load_volume(cohort.paths[i]))``; built once, then reused
    until the cohort's table or files change.
    """
    target = cache_path(cohort, transform, root)
    if target.is_file():
        return np.load(target, mmap_mode="r")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.stem}.{os.getpid()}.partial.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=CACHE_DTYPE, shape=(len(cohort), *transform.out_shape))
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            arrays = pool.map(lambda p: transform(load_volume(p)), cohort.paths)
            for i, arr in enumerate(tqdm(arrays, total=len(cohort), desc=f"cache {transform.name}", disable=not progress, unit="img")):
                out[i] = arr
        out.flush()
        del out
        meta = {"transform": transform.key, "participants": list(cohort.table["participant_id"]), "dtype": str(np.dtype(CACHE_DTYPE))}
        target.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return np.load(target, mmap_mode="r")
