"""The progress bar every loop of the library uses: ``from brainage_lib.run.progress import tqdm``.

Interactively (JupyterLab with ipywidgets, a terminal) it is ``tqdm.auto``'s: a widget in a
notebook, text in a terminal. A headless rendering cannot keep a widget's state (the offline
HTML would show nothing, or ``HBox(children=...)``), so the runner starts its kernels with
``BRAINAGE_TEXT_PROGRESS=1`` and there the bars are plain text, which the runner then
reduces to their final state.
"""
from __future__ import annotations

import os

TEXT_PROGRESS_ENV = "BRAINAGE_TEXT_PROGRESS"

if os.environ.get(TEXT_PROGRESS_ENV, "").strip() not in ("", "0"):
    from tqdm.std import tqdm
else:
    from tqdm.auto import tqdm

__all__ = ["TEXT_PROGRESS_ENV", "tqdm"]
