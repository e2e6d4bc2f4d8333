"""brainage companion: a runnable companion to three brain-age papers."""
from __future__ import annotations

from brainage_lib.errors import BrainAgeError

__version__ = "0.1.0"
__all__ = ["BrainAgeError", "__version__"]
