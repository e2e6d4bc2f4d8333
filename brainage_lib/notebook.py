"""A notebook's one set-up call: ``cfg, engine, rec = start(NB, globals(), data=...)``.

It resolves the parameters (the notebook's cell, its profile file and the run's overrides), seeds
every generator from ``SEED``, opens the training engine on ``DEVICE`` with ``DEVICES`` processes
and the notebook's stage checkpoints (``FORCE`` retrains; ``COMPILE``: ``torch.compile``), opens the
recorder (with the paper's short name, title and table titles from its wing, found through
``brainage_lib.registry``), and shows the profile banner, the provenance, the engine's stages and the parameter table.
"""
from __future__ import annotations

import time
from typing import Any, NamedTuple

from brainage_lib import registry
from brainage_lib.engine.fabric import Engine
from brainage_lib.run.measured import compile_choice
from brainage_lib.run.params import Params, resolve_params
from brainage_lib.run.provenance import provenance_text
from brainage_lib.run.results import Recorder
from brainage_lib.run.seeding import seed_everything

__all__ = ["Start", "start"]


class Start(NamedTuple):
    cfg: Params
    engine: Engine | None
    rec: Recorder
    t_start: float


def start(notebook: str, namespace: dict[str, Any], data: str, train: bool = True, show: bool = True) -> Start:
    """Parameters, seeds, engine (None unless ``train``), recorder and start time of ``notebook``; ``data`` labels the
    data in the results (e.g. ``DATA_DIR or "simulated"``)."""
    cfg = resolve_params(notebook, namespace)
    seed_everything(namespace["SEED"])
    engine = (Engine(namespace["DEVICE"], namespace["DEVICES"], cfg.checkpoint_dir / "stages", namespace["FORCE"])
              if train else None)
    device = engine.device if engine is not None else None
    compiling = None
    if engine is not None and "COMPILE" in namespace:
        engine.compile, compiling = compile_choice(namespace["COMPILE"], engine.device, notebook)
    paper = registry.paper_of_notebook(notebook)
    numbers = paper.load("numbers") if paper is not None and paper.numbers else None
    rec = cfg.recorder(data, device=device, paper=getattr(numbers, "PAPER", None))
    t_start = time.time()
    if show:
        from IPython.display import Markdown, display

        display(Markdown(cfg.banner()))
        print(*([provenance_text(device)] + ([engine.banner()] if engine is not None else [])
                + ([compiling] if compiling else [])), sep="\n")
        display(cfg.table())
    return Start(cfg, engine, rec, t_start)
