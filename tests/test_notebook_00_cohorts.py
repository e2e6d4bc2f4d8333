"""Notebook smoke runs: each executed headlessly with PROFILE=smoke, asserting on its recorded results."""
from __future__ import annotations

import json
import math

import pytest
from conftest import run_smoke_notebook

from brainage_lib.errors import BrainAgeError
from brainage_lib.run.results import load_results
from brainage_lib.run.runner import run_notebook

pytestmark = pytest.mark.notebook
PRESETS = ["abide_like", "lifespan_train", "clinical_test", "als_like", "nihpd_like", "mghbch_like"]


@pytest.fixture(scope="module")
def cohorts_run(tmp_path_factory):
    return run_smoke_notebook("00_cohorts", tmp_path_factory)


def test_00_cohorts_records_every_cohort_and_baseline(cohorts_run):
    out, _ = cohorts_run
    res = load_results("00_cohorts", output_dir=out)
    assert res["profile"] == "smoke" and res["data"] == "simulated"
    rec = {k: v["value"] for k, v in res["records"].items()}
    for p in PRESETS:
        assert rec[f"cohort.{p}.N"] == min(48, {"als_like": 72}.get(p, 48))
        for k in ("mae_mean", "mae_ridge", "r_ridge", "gap_floor"):
            assert rec[f"baseline.{p}.{k}"] is not None and math.isfinite(rec[f"baseline.{p}.{k}"])
        assert rec[f"baseline.{p}.mae_ridge"] > rec[f"baseline.{p}.gap_floor"]
    # the wide-age cohorts carry an unmistakable age signal even at 32^3 and N=48
    assert rec["check.lifespan_train.ridge_beats_mean"] is True
    assert rec["baseline.lifespan_train.mae_ridge"] < 0.8 * rec["baseline.lifespan_train.mae_mean"]
    assert rec["cohort.lifespan_train.labelled"] < rec["cohort.lifespan_train.N"]  # unlabelled share
    assert rec["cohort.abide_like.sex_balanced_N"] == 2 * rec["cohort.abide_like.female"]
    assert res["records"]["cohort.abide_like.sex_balanced_N"]["paper"] == 862



def test_00_cohorts_records_effect_visibility(cohorts_run):
    out, _ = cohorts_run
    rec = {k: v["value"] for k, v in load_results("00_cohorts", output_dir=out)["records"].items()}
    for p in PRESETS:
        for k in ("share_inside", "region_fraction", "dice_top10", "oracle_dice_top10"):
            assert 0 <= rec[f"visibility.{p}.{k}"] <= 1
    # abide_like's region holds well over its share of the expected change and stands out of chance (0.10)
    assert rec["visibility.abide_like.share_inside"] > 2 * rec["visibility.abide_like.region_fraction"]
    assert rec["visibility.abide_like.dice_top10"] > 0.6 and rec["visibility.abide_like.oracle_dice_top10"] > 0.6
    assert rec["visibility.abide_like.real_dice_top10"] > 0.2  # 48 noisy subjects at 32^3


def test_00_cohorts_renders_figures_and_html(cohorts_run):
    out, rendered = cohorts_run
    assert rendered == out / "rendered" / "00_cohorts.ipynb"
    html = (out / "rendered" / "00_cohorts.html").read_text()
    assert html.count("data:image/png;base64") >= 6 and "REDUCED run" in html
    for name in ("age_histograms", "example_slices", "ground_truth_maps", "effect_visibility", "site_contrast",
                 "baseline_scatter"):
        assert (out / "figures" / "00_cohorts" / f"{name}.png").is_file()
        side = json.loads((out / "figures" / "00_cohorts" / f"{name}.json").read_text())
        assert side["params"]["SHAPE"] == 32
    run = json.loads((out / "rendered" / "00_cohorts.run.json").read_text())
    assert run["profile"] == "smoke" and run["wall_time_s"] > 0
    # progress bars render as their final state: one stream output per name and cell, no overwritten text
    nb = json.loads(rendered.read_text())
    for cell in nb["cells"]:
        streams = [o for o in cell.get("outputs", []) if o["output_type"] == "stream"]
        assert len(streams) == len({o["name"] for o in streams})
        assert not any("\r" in line.rstrip("\n").split("\r", 1)[-1] for o in streams for line in o["text"])
    assert html.count("simulate abide_like:") <= 2  # the final bar, where this run simulated the cohort


def test_failed_run_keeps_earlier_outputs(cohorts_run):
    out, _ = cohorts_run
    before_results = (out / "results" / "00_cohorts.json").read_bytes()
    before_html = (out / "rendered" / "00_cohorts.html").read_bytes()
    with pytest.raises(BrainAgeError, match="Unknown preset 'no_such_preset'"):
        run_notebook("00_cohorts", profile="smoke", params={"PRESETS": "no_such_preset"}, output_dir=out, progress=False)
    assert (out / "results" / "00_cohorts.json").read_bytes() == before_results
    assert (out / "rendered" / "00_cohorts.html").read_bytes() == before_html
    assert (out / "rendered" / "00_cohorts.failed.ipynb").is_file()
