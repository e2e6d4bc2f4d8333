"""`make paper-dryrun`: every notebook's paper profile, at the paper's sizes, on tiny cohorts (minutes on a CPU).

The rehearsal a GPU run deserves: the paper's networks at the paper's input sizes go through
every training stage (two optimiser steps each), evaluation, figures and claims.
"""
from __future__ import annotations

import json

import pytest
import yaml

from brainage_lib import paths
from brainage_lib.cli import main
from brainage_lib.run.params import load_dry_run
from brainage_lib.run.runner import notebook_names

pytestmark = [pytest.mark.paper_dryrun, pytest.mark.notebook]
TRAINING = ("01_tgb", "02_diff", "03_lstm")


@pytest.fixture(scope="module")
def dryrun(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper_dryrun")
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINAGE_DATA", str(out / "data"))
    mp.setenv("BRAINAGE_CACHE", str(out / "cache"))
    try:
        assert main(["run", "all", "--profile", "paper", "-p", "DRY_RUN=True", "--output-dir", str(out), "--quiet"]) == 0
    finally:
        mp.undo()
    return out


def test_every_notebook_ran_and_says_it_was_a_dry_run(dryrun):
    for nb in notebook_names():
        doc = json.loads((dryrun / "results" / f"{nb}.json").read_text())
        if nb == "04_summary":
            assert doc["records"]["runs.01_tgb.profile"]["value"] == "paper (dry run)"
            continue
        assert doc["profile"] == "paper (dry run)" and doc["params"]["DRY_RUN"] is True, nb
        rendered = json.loads((dryrun / "rendered" / f"{nb}.ipynb").read_text())
        shown = [o for c in rendered["cells"] for o in c.get("outputs", []) if "text/markdown" in o.get("data", {})]
        assert "".join(shown[0]["data"]["text/markdown"]).startswith("## DRY RUN"), f"{nb}: no dry-run banner first"


def test_the_paper_sizes_ran_on_the_tiny_cohorts(dryrun):
    for nb in TRAINING:
        paper = yaml.safe_load((paths.params_dir() / f"{nb}.paper.yaml").read_text())
        params = json.loads((dryrun / "results" / f"{nb}.json").read_text())["params"]
        overlay = load_dry_run(nb)
        assert {k: params[k] for k in paper if k not in overlay and k != "DRY_RUN"} == \
            {k: v for k, v in paper.items() if k not in overlay and k != "DRY_RUN"}, nb
        assert {k: params[k] for k in overlay} == overlay
    tgb = json.loads((dryrun / "results" / "01_tgb.json").read_text())["records"]
    assert tgb["data.N"]["value"] == load_dry_run("01_tgb")["N_SUBJECTS"]
    assert all(tgb[f"training.{m}.reg_best_epoch"]["value"] == 0 for m in ("REG", "REG-GAN", "REG-GAN-TGB"))
