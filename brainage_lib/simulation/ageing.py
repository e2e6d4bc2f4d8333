"""The simulator's model of development and ageing, as functions of biological age.

Every trajectory is relative to the MNI152 2009 template (young adults, ~25 y), so
each returns 1 (or 0 for added effects) near age 25. Directions follow the
literature summarised in SPEC §1: cortical GM rises to a peak around 6-10 y then
thins, faster after 60; WM volume and T1 WM/GM contrast rise in childhood
(myelination, steep in the first two years), WM volume falls after ~50; ventricles
and sulci widen in later life; T1-hypointense WM lesions appear after ~50.
"""
from __future__ import annotations

import numpy as np

GM_PEAK_AGE = 8.0


def gm_relative(age: np.ndarray | float) -> np.ndarray:
    """Cortical GM fraction relative to the template.

    Rises to a peak at ~8 y; thins by 1 %/y in adolescence (8-25 y), 0.4 %/y in
    adulthood and 0.8 %/y after 60.
    """
    b = np.asarray(age, dtype=np.float64)
    teen = 0.010 * (np.clip(b, GM_PEAK_AGE, 25.0) - 25.0)
    adult = 0.004 * np.maximum(b - 25.0, 0.0) + 0.004 * np.maximum(b - 60.0, 0.0)
    peak = 1.0 - 0.010 * (GM_PEAK_AGE - 25.0)
    growth = peak - 0.30 * np.clip(1.0 - b / GM_PEAK_AGE, 0.0, 1.0) ** 2
    return np.where(b < GM_PEAK_AGE, growth, 1.0 - teen - adult)


def wm_relative(age: np.ndarray | float) -> np.ndarray:
    """WM volume relative to the template: steep growth in early childhood, slower into the 20s, 0.5 %/y loss after 50."""
    b = np.asarray(age, dtype=np.float64)
    return 1.0 - 0.25 * np.exp(-b / 2.0) - 0.15 * np.exp(-b / 12.0) - 0.005 * np.maximum(b - 50.0, 0.0)


def wm_boundary_shift_mm(age: np.ndarray | float) -> np.ndarray:
    """Outward shift (mm) of the WM/GM boundary relative to the template: negative while WM is
    still growing (about -3 mm at birth, -0.6 mm at 8 y) and again as WM atrophies after 50.

    This is the shape side of WM growth and loss: the boundary moves and the cortical
    ribbon above it narrows or widens, a pattern change and not only a change in amount.
    """
    return 8.0 * (wm_relative(age) - 1.0)


def myelination(age: np.ndarray | float) -> np.ndarray:
    """Fraction of adult T1 WM/GM contrast: 0 at birth, ~0.87 at 2 y, ~0.99 by 20 y."""
    b = np.asarray(age, dtype=np.float64)
    return np.clip(1.0 - 0.9 * np.exp(-b / 0.9) - 0.1 * np.exp(-b / 10.0), 0.0, 1.0)


def ventricle_expansion_mm(age: np.ndarray | float) -> np.ndarray:
    """Outward displacement (mm) of periventricular tissue: none before 35 y, ~4 mm at 85 y."""
    b = np.asarray(age, dtype=np.float64)
    return 4.0 * (np.maximum(b - 35.0, 0.0) / 50.0) ** 2


def lesion_rate(age: np.ndarray | float) -> np.ndarray:
    """Expected number of T1-hypointense WM lesions: none before 50 y, ~5 at 70 y."""
    b = np.asarray(age, dtype=np.float64)
    return 0.25 * np.maximum(b - 50.0, 0.0)


def wm_intensity(age: np.ndarray | float, i_gm: float, i_wm: float) -> np.ndarray:
    """T1 WM intensity: darker than GM at birth (inverted contrast), isointense at ~4 months, adult later."""
    m = myelination(age)
    return i_gm + (i_wm - i_gm) * (1.4 * m - 0.4)
