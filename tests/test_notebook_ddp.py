"""``DEVICES=2`` from a notebook: ``brainage run 01_tgb|02_diff --profile smoke -p DEVICES=2`` through papermill, on
two CPU (gloo) processes per training stage, against the shared ``DEVICES=1`` smoke run of the same cohort.

Inside a Jupyter kernel Fabric refuses to spawn processes; the engine starts them as a separate command
(``engine.launch``), and each stage is read back here from rank 0's final checkpoint. What must match, with the
tolerances of the DDP tests (``tests/test_engine.py``, ``tests/test_tgb.py``, ``tests/test_diff.py``):

- what no DDP stage touches (cohorts, splits, synthesis counts, the brainageR-style baseline): exactly;
- 01_tgb's REG (no BatchNorm, no dropout): its recorded errors within 1e-5, as the engine's test;
- the GANs (smoke: learning rate 1e-3, ten times the DDP test's) and the diffusion autoencoder (its age head's
  BatchNorm normalises each process's own rows on a CPU): their training losses within 1e-2 (relative), as
  ``test_ddp_with_a_batchnorm_head_on_cpu_trains`` states; Adam turns summation-order rounding into steps of the
  learning rate's size, so the models downstream of these stages differ, and are not compared;
- the BatchNorm CNN baselines of 02_diff (per-process statistics on a CPU): they train to the end, finite.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_smoke_notebook, smoke_root

from brainage_lib.engine.fabric import final_checkpoint
from brainage_lib.run.runner import run_notebook

pytestmark = pytest.mark.notebook


@pytest.fixture(scope="module")
def ddp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddp")


def _ddp_run(name: str, out: Path, tmp_path_factory) -> Path:
    shared = smoke_root(tmp_path_factory)  # the same simulated cohorts and cache as the DEVICES=1 run
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINAGE_DATA", str(shared / "data"))
    mp.setenv("BRAINAGE_CACHE", str(shared / "cache"))
    try:
        return run_notebook(name, profile="smoke", params={"DEVICES": 2}, output_dir=out, progress=False)
    finally:
        mp.undo()


def _records(root: Path, name: str) -> dict:
    records = json.loads((root / "results" / f"{name}.json").read_text())["records"]
    return {k: r.get("value") for k, r in records.items()}


def _history(root: Path, name: str, stage: str) -> list[dict]:
    (folder,) = [p for p in (root / "checkpoints" / name / "stages").glob(f"{stage}-*")
                 if re.fullmatch(re.escape(stage) + "-[0-9a-f]{12}", p.name) and final_checkpoint(p)]
    return torch.load(final_checkpoint(folder), map_location="cpu", weights_only=False)["history"]


def _stage_lines(rendered: Path) -> list[str]:
    nb = json.loads(rendered.read_text())
    text = "".join("".join(o.get("text", "")) for c in nb["cells"] for o in c.get("outputs", []))
    return [line for line in text.splitlines() if line.startswith("[stage ")]


def _trained_by_workers(rendered: Path, stages: list[str]) -> None:
    """Each stage trained in the DDP processes (from scratch), then read back in the kernel (loaded)."""
    lines = _stage_lines(rendered)
    for stage in stages:
        mine = [line for line in lines if line.startswith(f"[stage {stage}]")]
        assert [("from scratch" in m, "finished stage loaded" in m) for m in mine] == [(True, False), (False, True)], \
            (stage, mine)


def _close(a: float, b: float, tol: float) -> bool:
    """Within ``tol``, relative or absolute (the DDP tests' ``atol``)."""
    return math.isclose(a, b, rel_tol=tol, abs_tol=tol)


def test_01_tgb_on_two_processes_matches_one(tmp_path_factory, ddp_root):
    one, _ = run_smoke_notebook("01_tgb", tmp_path_factory)
    rendered = _ddp_run("01_tgb", ddp_root, tmp_path_factory)
    gans = ["REG-GAN", "REG-GAN-TGB"]
    _trained_by_workers(rendered, ["REG", *gans, "REG on REG-GAN", "REG on REG-GAN-TGB"])
    a, b = _records(one, "01_tgb"), _records(ddp_root, "01_tgb")
    assert a.keys() == b.keys()
    exact = [k for k in a if k.startswith(("data.", "baseline.")) or k.endswith((".n_synthetic", ".n_training_total"))]
    assert exact and all(a[k] == b[k] for k in exact), [(k, a[k], b[k]) for k in exact if a[k] != b[k]]
    reg = [k for k in a if any(f".REG.{t}" in f".{k}" for t in ("mse", "mae", "6-10", "11-15", "16-22"))
           and isinstance(a[k], float)]
    assert len(reg) >= 8 and all(_close(a[k], b[k], 1e-5) for k in reg), \
        [(k, a[k], b[k]) for k in reg if not _close(a[k], b[k], 1e-5)]
    for gan in gans:
        h1, h2 = _history(one, "01_tgb", gan), _history(ddp_root, "01_tgb", gan)
        for r1, r2 in zip(h1, h2, strict=True):
            for term in ("critic", "wasserstein", "gp", "gen", "adversarial", "l1"):
                assert _close(r1[term], r2[term], 1e-2), (gan, term, r1[term], r2[term])


def test_02_diff_on_two_processes_matches_one(tmp_path_factory, ddp_root):
    one, _ = run_smoke_notebook("02_diff", tmp_path_factory)
    rendered = _ddp_run("02_diff", ddp_root, tmp_path_factory)
    _trained_by_workers(rendered, ["DiffAE"])
    a, b = _records(one, "02_diff"), _records(ddp_root, "02_diff")
    assert a.keys() == b.keys()
    exact = [k for k in a if k.startswith(("data.", "simulator.", "model.")) or ".brainager." in k and
             k.split(".")[0] in ("table1", "heldout", "truth") and "ks" not in k]
    assert len(exact) >= 20 and all(a[k] == b[k] for k in exact), [(k, a[k], b[k]) for k in exact if a[k] != b[k]]
    h1, h2 = _history(one, "02_diff", "DiffAE"), _history(ddp_root, "02_diff", "DiffAE")
    assert [(r["labelled"], r["unlabelled"]) for r in h1] == [(r["labelled"], r["unlabelled"]) for r in h2]
    assert all(_close(r1["noise_mse"], r2["noise_mse"], 1e-2) for r1, r2 in zip(h1, h2, strict=True))
    for stage in ("DenseNet121", "DeepBrainNet-style_CNN"):
        h = _history(ddp_root, "02_diff", stage)
        assert len(h) == len(_history(one, "02_diff", stage)) and np.isfinite([r["train_loss"] for r in h]).all()
    assert os.path.isfile(ddp_root / "rendered" / "02_diff.ipynb")
