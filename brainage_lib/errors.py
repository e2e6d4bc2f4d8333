"""The one exception type for problems a user can cause and fix."""
from __future__ import annotations


class BrainAgeError(Exception):
    """A problem with the user's input or configuration.

    The message names the file, row or parameter at fault and says what to do.
    """
