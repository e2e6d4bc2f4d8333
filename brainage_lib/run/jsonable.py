"""Plain JSON values from numpy and pandas ones, for results files, figure sidecars and checkpoints."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from brainage_lib.errors import BrainAgeError


def to_jsonable(value: Any) -> Any:
    """Convert numpy/pandas values to JSON types; NaN and inf become None."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, (int, str)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    raise BrainAgeError(f"Cannot record a value of type {type(value).__name__}; record numbers, strings, lists or dicts.")
