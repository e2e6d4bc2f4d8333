"""Every reported number goes through ``Recorder.record`` into ``results/<notebook>.json``.

Tables in the notebook and the summary are built from these records, never
retyped. While a notebook runs, records go to ``<notebook>.partial.json``; the
previous complete results file is replaced only by ``finalize()`` at the end, so
a failed run never corrupts what an earlier run wrote.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainage_lib import paths
from brainage_lib.errors import BrainAgeError
from brainage_lib.provenance import provenance


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


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class Recorder:
    """Collects a notebook's reported numbers with the paper's values beside them."""

    def __init__(self, notebook: str, profile: str, data: str, params: dict | None = None,
                 output_dir: str | os.PathLike | None = None, device: Any = None):
        self.notebook = notebook
        self.dir = paths.results_dir(output_dir)
        self.path = self.dir / f"{notebook}.json"
        self.partial = self.dir / f"{notebook}.partial.json"
        self._t0 = time.time()
        self.doc: dict[str, Any] = {
            "notebook": notebook, "profile": profile, "data": data, "params": to_jsonable(params or {}),
            "provenance": provenance(device), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "records": {},
        }

    def record(self, key: str, value: Any, paper: Any = None, unit: str | None = None, note: str | None = None) -> Any:
        """Record ``value`` under ``key`` (dotted names group tables); returns ``value`` for chaining."""
        entry = {"value": to_jsonable(value)}
        if paper is not None:
            entry["paper"] = to_jsonable(paper)
        if unit:
            entry["unit"] = unit
        if note:
            entry["note"] = note
        self.doc["records"][key] = entry
        _atomic_write(self.partial, json.dumps(self.doc, indent=1, sort_keys=False) + "\n")
        return value

    def get(self, key: str) -> Any:
        return self.doc["records"][key]["value"]

    def table(self, prefix: str) -> pd.DataFrame:
        """Records under ``prefix.`` as a table: paper value, this run's value, profile and data."""
        rows = []
        for key, e in self.doc["records"].items():
            if key.startswith(prefix + ".") or key == prefix:
                rows.append({"quantity": key[len(prefix) + 1:] or key, "paper": e.get("paper"), "this run": e["value"],
                             "unit": e.get("unit", ""), "profile": self.doc["profile"], "data": self.doc["data"]})
        return pd.DataFrame(rows)

    def finalize(self) -> Path:
        """Write the complete results file (atomically) and remove the partial one."""
        self.doc["wall_time_s"] = round(time.time() - self._t0, 1)
        self.doc["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        _atomic_write(self.path, json.dumps(self.doc, indent=1) + "\n")
        self.partial.unlink(missing_ok=True)
        return self.path


def load_results(notebook: str, output_dir: str | os.PathLike | None = None) -> dict:
    """The last complete results of a notebook."""
    f = paths.results_dir(output_dir) / f"{notebook}.json"
    if not f.is_file():
        raise BrainAgeError(f"No results for {notebook} at {f}: run `make {notebook}` first.")
    return json.loads(f.read_text())
