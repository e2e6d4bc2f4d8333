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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from brainage_lib import paths
from brainage_lib.errors import BrainAgeError
from brainage_lib.metrics.verdicts import Claim, Gate, Magnitude, decide
from brainage_lib.run.figures import save_figure
from brainage_lib.run.jsonable import to_jsonable
from brainage_lib.run.provenance import provenance


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


KINDS = ("claim", "check")


def predictions_path(notebook: str, results_dir: Path) -> Path:
    return Path(results_dir) / f"{notebook}.predictions.csv"


def claims_frame(doc: dict) -> pd.DataFrame:
    """All ``claims.*`` records of a results document as a table."""
    rows = []
    for key, e in doc["records"].items():
        if key.startswith("claims.") and "rule" in e:
            rows.append({"key": key[len("claims."):], "kind": e.get("kind", "claim"), "claim": e.get("note", ""),
                         "verdict": e["value"], "paper": e.get("paper", ""), "this run": e.get("evidence", ""),
                         "judged on": e.get("judged_on", ""), "rule": e.get("rule", ""), "reason": e.get("reason", ""),
                         "magnitude": "; ".join(m.get("text", "") for m in e.get("magnitudes", [])),
                         "seeds": e.get("agreement", "")})
    cols = ["key", "kind", "claim", "verdict", "paper", "this run", "judged on", "rule", "reason", "magnitude", "seeds"]
    return pd.DataFrame(rows, columns=cols)


def gates_frame(doc: dict) -> pd.DataFrame:
    """All ``gates.*`` records of a results document: which model passed which gate, with its numbers."""
    rows = [{"gate": key[len("gates."):], "model": e.get("model", ""), "passed": e["value"], "rule": e.get("rule", ""),
             "this run": e.get("evidence", ""), "judged on": e.get("judged_on", "")}
            for key, e in doc["records"].items() if key.startswith("gates.")]
    return pd.DataFrame(rows, columns=["gate", "model", "passed", "rule", "this run", "judged on"])


class Recorder:
    """Collects a notebook's reported numbers with the paper's values beside them."""

    def __init__(self, notebook: str, profile: str, data: str, params: dict | None = None,
                 output_dir: str | os.PathLike | None = None, device: Any = None, paper: dict | None = None):
        """``paper`` describes the paper a notebook reproduces, for the summary and the index page:
        ``{"short": "TGB", "title": ..., "tables": {record prefix: table title}}`` and optionally
        ``"bootstrap_evaluations"`` (the ``evaluation`` values whose predictions are compared)."""
        self.notebook = notebook
        self.output_dir = output_dir
        self.device = device
        self.dir = paths.results_dir(output_dir)
        self.path = self.dir / f"{notebook}.json"
        self.partial = self.dir / f"{notebook}.partial.json"
        self._t0 = time.time()
        self.doc: dict[str, Any] = {
            "notebook": notebook, "profile": profile, "data": data, "params": to_jsonable(params or {}),
            "provenance": provenance(device), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "records": {},
        }
        if paper is not None:
            missing = {"short", "title", "tables"} - set(paper)
            if missing:
                raise BrainAgeError(f"Recorder(paper=...) needs the keys {sorted(missing)}.")
            self.doc["paper"] = to_jsonable(paper)
        self._predictions: pd.DataFrame | None = None

    def record(self, key: str, value: Any, paper: Any = None, unit: str | None = None, note: str | None = None,
               **fields: Any) -> Any:
        """Record ``value`` under ``key`` (dotted names group tables); returns ``value`` for chaining.

        Extra keyword ``fields`` (strings or numbers) are stored beside the value.
        """
        entry = {"value": to_jsonable(value)}
        if paper is not None:
            entry["paper"] = to_jsonable(paper)
        if unit:
            entry["unit"] = unit
        if note:
            entry["note"] = note
        entry.update({k: v for k, v in ((k, to_jsonable(v)) for k, v in fields.items()) if v is not None})
        self.doc["records"][key] = entry
        self._save_partial()
        return value

    def _save_partial(self) -> None:
        """Write the records so far to ``<notebook>.partial.json`` (the complete file waits for ``finalize``)."""
        _atomic_write(self.partial, json.dumps(self.doc, indent=1, sort_keys=False) + "\n")

    def update(self, key: str, **fields: Any) -> None:
        """Change or add fields of the record ``key`` (e.g. its value combined over seeds)."""
        self.doc["records"][key].update({k: to_jsonable(v) for k, v in fields.items()})
        self._save_partial()

    def claim(self, key: str, claim: str, outcome: bool | None, evidence: str, rule: str,
              paper: str | None = None, kind: str = "claim", untestable_because: str | None = None,
              judged_on: str | None = None, magnitudes: Sequence[Magnitude] = ()) -> str:
        """Record the verdict on one of the paper's claims as ``claims.<key>``; returns the verdict.

        ``outcome`` True/False is the result of applying ``rule`` to this run's numbers;
        None (or a reason in ``untestable_because``) means the claim cannot be judged on
        this data. ``kind="check"`` marks a check against the simulator's ground truth
        rather than a claim of the paper. ``evidence`` states this run's numbers and
        ``judged_on`` (optional) the data they come from, e.g. ``"clinical_test (simulated)"``.
        ``magnitudes`` puts each paper number beside this run's bootstrap interval; the verdict
        follows ``metrics.verdicts.decide`` (reproduced needs them inside in the paper profile).
        """
        if kind not in KINDS:
            raise BrainAgeError(f"claim kind must be one of {list(KINDS)}, not {kind!r}.")
        if not isinstance(untestable_because, str) or not untestable_because:
            untestable_because = None  # None or a table's NaN: testable
        if isinstance(outcome, float) and math.isnan(outcome):
            outcome = None
        verdict = decide(outcome, untestable_because, magnitudes, self.doc["profile"] == "paper", kind)
        self.record(f"claims.{key}", verdict, paper=paper, note=claim, kind=kind, evidence=evidence, rule=rule,
                    reason=untestable_because, judged_on=judged_on,
                    direction=None if outcome is None else bool(outcome),
                    magnitudes=[{**m.as_dict(), "text": m.text()} for m in magnitudes] or None)
        return verdict

    def record_claims(self, claims: Sequence[Claim]) -> list[str]:
        """Record each of a paper's ``claims`` with :meth:`claim` (``claims.<key>``); one Markdown line per claim,
        with its verdict word, the paper's number, this run's evidence, the reason where not testable and the
        magnitudes."""
        lines = []
        for c in claims:
            word = self.claim(c.key, c.claim, c.outcome, c.evidence, c.rule, paper=c.paper, kind=c.kind,
                              untestable_because=c.reason, judged_on=c.judged_on, magnitudes=c.magnitudes)
            check = " (simulator check)" if c.kind == "check" else ""
            paper = f"paper: {c.paper}; " if c.paper else ""
            why = f"; {c.reason}" if c.reason else ""
            sizes = "".join(f"; {m.text()}" for m in c.magnitudes)
            lines.append(f"- **{word.upper()}**{check}: {c.claim} ({paper}this run: {c.evidence}{why}{sizes}).")
        return lines

    def gate(self, g: Gate) -> bool:
        """Record one model's gate (``gates.<key>``) with the numbers that passed or failed it; returns passed."""
        self.record(f"gates.{g.key}", bool(g.passed), model=g.model, rule=g.rule, evidence=g.evidence,
                    judged_on=g.judged_on)
        return bool(g.passed)

    def gates(self) -> pd.DataFrame:
        """The gates recorded so far (:func:`gates_frame`)."""
        return gates_frame(self.doc)

    def claims(self) -> pd.DataFrame:
        """The claims recorded so far: claim, verdict, paper, this run's evidence, rule."""
        return claims_frame(self.doc)

    def save_predictions(self, frame: pd.DataFrame) -> None:
        """Per-subject predictions (one column per method), written beside the results by ``finalize``.

        Required columns: ``evaluation`` (which test set and training regime), ``participant_id``
        and ``age``; every other numeric column is one method's predicted age. The summary
        resamples these rows to put bootstrap intervals on differences between methods.
        """
        missing = {"evaluation", "participant_id", "age"} - set(frame.columns)
        if missing:
            raise BrainAgeError(f"save_predictions: columns {sorted(missing)} are missing.")
        self._predictions = frame.copy()

    def figure(self, fig: Figure, name: str, caption: str = "", formats: tuple[str, ...] = ("png", "pdf")) -> Path:
        """Save ``fig`` as ``figures/<notebook>/<name>.png`` (+PDF) with this run's parameters and provenance, and, in a
        notebook, show it (once: it is closed after)."""
        path = save_figure(fig, self.notebook, name, params=self.doc["params"], output_dir=self.output_dir,
                           formats=formats, caption=caption, device=self.device)
        _show(fig)
        return path

    def get(self, key: str) -> Any:
        return self.doc["records"][key]["value"]

    def values(self) -> dict[str, Any]:
        """Every record's value by key (what a paper's ``claims`` and ``gates`` judge)."""
        return {k: e["value"] for k, e in self.doc["records"].items()}

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
        if self._predictions is not None:
            _atomic_write(predictions_path(self.notebook, self.dir), self._predictions.to_csv(index=False))
        _atomic_write(self.path, json.dumps(self.doc, indent=1) + "\n")
        self.partial.unlink(missing_ok=True)
        return self.path


def _show(fig: Figure) -> None:
    """Display ``fig`` in a Jupyter kernel and close it; outside one, leave it to the caller."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None or getattr(shell, "kernel", None) is None:
        return
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig)
    plt.close(fig)


def load_predictions(notebook: str, output_dir: str | os.PathLike | None = None) -> pd.DataFrame | None:
    """The per-subject predictions saved with a notebook's last complete results, or None."""
    f = predictions_path(notebook, paths.results_dir(output_dir))
    return pd.read_csv(f) if f.is_file() else None


def load_results(notebook: str, output_dir: str | os.PathLike | None = None) -> dict:
    """The last complete results of a notebook."""
    f = paths.results_dir(output_dir) / f"{notebook}.json"
    if not f.is_file():
        raise BrainAgeError(f"No results for {notebook} at {f}: run `make {notebook}` first.")
    return json.loads(f.read_text())
