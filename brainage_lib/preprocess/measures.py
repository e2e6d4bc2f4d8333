"""Image-quality measures of one scan, taken in the scanner's space (after MRIQC's definitions, simplified).

- ``bias_field_range``: the bias field N4 removed (image before / after), 99th over 1st percentile in the mask;
  1 is a flat field, 1.5 a field that varies by half across the head.
- ``snr``: mean over standard deviation of the intensities inside the brain mask (MRIQC's ``snr`` of one tissue
  class, here the whole brain, so it also falls with low grey/white contrast).
- ``efc``: entropy focus criterion of the whole image, 0 (all signal in one voxel) to 1 (signal spread evenly):
  ghosting and blurring raise it.
- ``log_jacobian_range``: for a nonlinear registration, the 1st and 99th percentiles of the log-determinant of
  the warp's Jacobian inside the template's brain: how far the warp compresses and expands the brain.
"""
from __future__ import annotations

import numpy as np


def bias_field_range(before: np.ndarray, after: np.ndarray, mask: np.ndarray) -> float:
    """99th over 1st percentile of ``before / after`` inside ``mask``, where both are positive."""
    use = mask & (before > 0) & (after > 0)
    field = before[use] / after[use]
    lo, hi = np.percentile(field, [1, 99]) if field.size else (1.0, 1.0)
    return float(hi / lo)


def snr(image: np.ndarray, mask: np.ndarray) -> float:
    """Mean over (sample) standard deviation of ``image`` inside ``mask``."""
    x = image[mask].astype(np.float64)
    return float(x.mean() / x.std(ddof=1)) if x.size > 1 and x.std() > 0 else 0.0


def efc(image: np.ndarray) -> float:
    """Entropy focus criterion, normalised to [0, 1] (MRIQC: Atkinson et al. 1997)."""
    x = np.clip(image.astype(np.float64).ravel(), 0, None)
    n = x.size
    b_max = np.sqrt((x**2).sum())
    if b_max == 0:
        return 0.0
    e_max = n * (1 / np.sqrt(n)) * np.log(1 / np.sqrt(n))
    p = x[x > 0] / b_max
    return float((p * np.log(p)).sum() / e_max)


def log_jacobian_range(log_jacobian: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """1st and 99th percentiles of the log-Jacobian determinant inside ``mask``."""
    lo, hi = np.percentile(log_jacobian[mask], [1, 99])
    return float(lo), float(hi)
