"""Model seeds: a paper notebook trains every model once per model seed on the same cohort.

``SEEDS`` (a count) and ``SEED`` (the first model seed) decide the seeds ``SEED, SEED+1, ...``;
``DATA_SEED`` seeds the simulated cohort and stays fixed. The notebook runs its own seed and
:func:`run_other_seeds` runs the same notebook, headless, once per further seed with the same
parameters (``SEEDS=1``) into ``<output root>/seeds/seed-<s>/``, where each seed keeps its own
results, figures and resumable training stages (resume and ``FORCE`` work per seed as for one
run). :func:`combine` then records, for every claim, its verdict on each seed and the reported
verdict (``metrics.verdicts.combine_seeds``: shared by at least 80 % of the seeds, else
unstable), and for every number with a paper value its mean and sd over the seeds.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from brainage_lib import paths
from brainage_lib.errors import BrainAgeError
from brainage_lib.metrics.verdicts import NOT_TESTABLE, combine_seeds, is_finite
from brainage_lib.run.params import Params
from brainage_lib.run.progress import tqdm
from brainage_lib.run.results import Recorder, load_results

__all__ = ["combine", "other_seeds", "run_other_seeds", "seed_output_dir", "seeds_table"]


def seed_output_dir(output_dir: str | None, seed: int) -> Path:
    """Where the run of model seed ``seed`` writes its results, figures, checkpoints and rendering."""
    return paths.output_root(output_dir) / "seeds" / f"seed-{seed}"


def other_seeds(seed: int, n: int) -> list[int]:
    """The model seeds after the first: ``seed + 1, ..., seed + n - 1``."""
    if n < 1:
        raise BrainAgeError(f"SEEDS must be at least 1, got {n}.")
    return [seed + k for k in range(1, n)]


def run_other_seeds(cfg: Params, n: int | None = None) -> dict[int, dict]:
    """Run this notebook once per further model seed (same cohort, same parameters) and return their results.

    The runs go one after another into :func:`seed_output_dir`; a finished stage there is loaded, an
    interrupted one resumes. Returns ``{seed: results document}``; empty for ``SEEDS=1`` and in a dry run.
    """
    from brainage_lib.run.runner import run_notebook  # the runner imports this package's parameters module

    n = int(cfg.values.get("SEEDS", 1) if n is None else n)
    seed = int(cfg.core["SEED"])
    seeds = other_seeds(seed, n)
    if not seeds or cfg.dry_run:
        return {}
    overrides = {k: v for k, v in cfg.values.items() if cfg.sources.get(k) == "override"}
    core = {k: cfg.core[k] for k in ("DATA_DIR", "DATA_SEED", "DEVICE", "DEVICES", "FORCE") if k in cfg.core}
    out: dict[int, dict] = {}
    for s in tqdm(seeds, desc=f"{cfg.notebook}: model seeds {seeds[0]}-{seeds[-1]}", unit="seed"):
        where = seed_output_dir(cfg.output_dir, s)
        params = {**overrides, **core, "SEED": s, "SEEDS": 1}
        try:
            run_notebook(cfg.notebook, cfg.profile, params, output_dir=where, html=False, progress=False)
        except BrainAgeError as exc:
            raise BrainAgeError(f"Model seed {s} of {cfg.notebook} failed; its outputs are in {where}.\n{exc}") from None
        out[s] = load_results(cfg.notebook, where)
    return out


def combine(rec: Recorder, others: Mapping[int, dict]) -> pd.DataFrame:
    """Record the verdict of every claim over the seeds, and mean and sd of every number with a paper value.

    ``rec`` holds this run's (the first seed's) records; ``others`` the results of the other seeds
    (:func:`run_other_seeds`). Each ``claims.<key>`` record keeps its own seed's verdict as
    ``per_seed`` beside the others' and takes the combined verdict with its ``agreement``. Returns
    :func:`seeds_table`. With no other seed nothing changes.
    """
    if not others:
        return seeds_table(rec.doc)
    seed = int(rec.doc["params"].get("SEED", 0))
    docs = {seed: rec.doc, **{int(s): d for s, d in others.items()}}
    for key, e in list(rec.doc["records"].items()):
        if key.startswith("claims."):
            per = {str(s): d["records"].get(key, {}).get("value", NOT_TESTABLE) for s, d in docs.items()}
            verdict, agreement = combine_seeds(list(per.values()))
            rec.update(key, value=verdict, per_seed=per, agreement=agreement)
        elif "paper" in e and is_finite(e.get("value")):
            vals = [d["records"].get(key, {}).get("value") for d in docs.values()]
            vals = np.array([float(v) for v in vals if is_finite(v)])
            rec.update(key, seeds_mean=float(vals.mean()), seeds_sd=float(vals.std(ddof=1)) if len(vals) > 1 else 0.0,
                       seeds_n=int(len(vals)))
    return seeds_table(rec.doc)


def seeds_table(doc: dict) -> pd.DataFrame:
    """Per claim: the reported verdict, the verdict on each seed and the agreement."""
    rows = []
    for key, e in doc["records"].items():
        if key.startswith("claims.") and "rule" in e:
            per = e.get("per_seed") or {str(doc["params"].get("SEED", 0)): e["value"]}
            rows.append({"claim": key[len("claims."):], "verdict": e["value"],
                         **{f"seed {s}": v for s, v in per.items()},
                         "agreement": e.get("agreement", f"{e['value']} in 1 of 1 seeds")})
    return pd.DataFrame(rows).set_index("claim") if rows else pd.DataFrame()


def mean_sd(entry: Mapping[str, Any], spec: str = ".3g") -> str:
    """``mean ± sd (n seeds)`` of a record combined over seeds, else its value."""
    if "seeds_mean" in entry:
        return f"{entry['seeds_mean']:{spec}} ± {entry['seeds_sd']:{spec}} ({entry['seeds_n']} seeds)"
    v = entry.get("value")
    return format(float(v), spec) if is_finite(v) else str(v)
