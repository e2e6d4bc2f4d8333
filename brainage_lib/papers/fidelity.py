"""Paper fidelity, listed once per wing: every deviation from the paper with the paper's setting, ours, and why.

Each wing holds one ``DEVIATIONS`` list (``papers/<p>/deviations.py``) of :class:`Deviation`; its notebook
renders it with :func:`markdown` and records it with :func:`record`, so the summary and the index link it.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

__all__ = ["Deviation", "markdown", "record"]


@dataclass(frozen=True)
class Deviation:
    """One place where this companion's default differs from (or reads) the paper."""

    what: str  # e.g. "Adam betas"
    paper: str  # the paper's setting, or "not stated"
    ours: str  # our default (the paper profile's)
    why: str


def markdown(deviations: Sequence[Deviation]) -> str:
    """The list as a Markdown table."""
    esc = lambda s: str(s).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    rows = [f"| {esc(d.what)} | {esc(d.paper)} | {esc(d.ours)} | {esc(d.why)} |" for d in deviations]
    return "\n".join(["| what | paper | ours | why |", "|---|---|---|---|", *rows])


def record(rec, deviations: Sequence[Deviation]) -> None:
    """Record the list as ``deviations`` in the results (the index page renders it)."""
    rec.record("deviations", [asdict(d) for d in deviations])
