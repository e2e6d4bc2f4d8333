"""``save_figure``: PNG (+PDF) into ``figures/<notebook>/`` with a provenance sidecar."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from brainage_lib import paths
from brainage_lib.run.jsonable import to_jsonable
from brainage_lib.run.provenance import provenance


def save_figure(fig: Figure, notebook: str, name: str, params: dict | None = None, output_dir: str | os.PathLike | None = None,
                formats: tuple[str, ...] = ("png", "pdf"), dpi: int = 130, caption: str = "", device: Any = None) -> Path:
    """Save ``fig`` as ``figures/<notebook>/<name>.<fmt>`` plus ``<name>.json`` (parameters, provenance, caption).

    Files are written under temporary names and renamed, so an interrupted save
    leaves the previous figure intact. Returns the PNG path.
    """
    out = paths.figures_dir(notebook, output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for fmt in formats:
        tmp = out / f".{name}.{os.getpid()}.{fmt}"
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt)
        os.replace(tmp, out / f"{name}.{fmt}")
    side = {"figure": name, "notebook": notebook, "caption": caption, "formats": list(formats),
            "params": to_jsonable(params or {}), "provenance": provenance(device)}
    tmp = out / f".{name}.{os.getpid()}.json"
    tmp.write_text(json.dumps(side, indent=1) + "\n")
    os.replace(tmp, out / f"{name}.json")
    return out / f"{name}.{formats[0]}"
