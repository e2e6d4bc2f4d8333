"""Smoke run of notebook 02_diff (PROFILE=smoke), asserting on its recorded results."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import run_smoke_notebook
from scipy import stats as sps

from brainage_lib.diff import load_diffae
from brainage_lib.diff_eval import MODELS
from brainage_lib.results import load_results

pytestmark = pytest.mark.notebook
BASELINES = [m for m in MODELS if m != "diffae"]


@pytest.fixture(scope="module")
def diff_run(tmp_path_factory):
    out, rendered = run_smoke_notebook("02_diff", tmp_path_factory)
    res = load_results("02_diff", output_dir=out)
    return out, rendered, res, {k: v["value"] for k, v in res["records"].items()}


def finite(v) -> bool:
    return v is not None and math.isfinite(v)


def test_02_diff_records_table1_for_all_four_models(diff_run):
    _, _, res, rec = diff_run
    assert res["profile"] == "smoke" and res["data"] == "simulated"
    for m in MODELS:
        for q in ("test_r", "test_r_p", "test_mae", "test_r2", "survival_r", "survival_p"):
            assert finite(rec[f"table1.{m}.{q}"]), (m, q)
        assert -1 <= rec[f"table1.{m}.test_r"] <= 1 and 0 <= rec[f"table1.{m}.survival_p"] <= 1
        assert rec[f"table1.{m}.test_mae"] > 0
    paper = {k: v.get("paper") for k, v in res["records"].items()}
    assert (paper["table1.diffae.test_r"], paper["table1.diffae.test_mae"], paper["table1.diffae.test_r2"]) == (0.83, 5.0, 0.65)
    assert paper["table1.diffae.survival_r"] == 0.24 and paper["table1.deepbrainnet.survival_p"] == 0.28
    assert paper["table2.diffae.pad_mean"] == -6.19 and paper["table2.brainager.ks"] == 0.47


def test_02_diff_pad_statistics_and_ks(diff_run):
    _, _, _, rec = diff_run
    for m in MODELS:
        for q in ("pad_mean", "pad_sd", "pad_mean_corrected", "pad_sd_corrected", "survival_r_corrected",
                  "bias_slope", "bias_intercept"):
            assert finite(rec[f"pad.{m}.{q}"]), (m, q)
        assert rec[f"table2.{m}.pad_sd"] >= 0
        for q in ("test_r_gap", "test_r_gap_corrected", "als_r_gap", "als_r_gap_corrected"):
            assert f"truth.{m}.{q}" in rec
    for m in BASELINES:
        for q in ("ks", "ks_p", "ks_corrected", "ks_p_corrected"):
            assert 0 <= rec[f"pad.{m}.{q}"] <= 1, (m, q)
        assert rec[f"table2.{m}.ks"] == rec[f"pad.{m}.ks"]
    # the simulator shortens survival with the hidden gap: its own correlation is negative
    assert rec["simulator.als_gap_survival_r"] < 0


def test_02_diff_tables_match_the_saved_predictions(diff_run):
    """Recompute table 1-2 entries from the per-subject predictions with scipy."""
    out, _, _, rec = diff_run
    pred = pd.read_csv(out / "results" / "02_diff.predictions.csv")
    test, als, held = (pred[pred["evaluation"] == s] for s in ("test", "als", "heldout"))
    assert len(test) == rec["data.test.N"] and len(als) == rec["data.als.N"] and len(held) == rec["data.split.heldout"]
    for m in MODELS:
        r = sps.pearsonr(test[m], test["age"]).statistic
        assert rec[f"table1.{m}.test_r"] == pytest.approx(r, abs=1e-6)
        assert rec[f"table1.{m}.test_mae"] == pytest.approx(np.abs(test[m] - test["age"]).mean(), abs=1e-4)
        pad = als[m] - als["age"]
        assert rec[f"table2.{m}.pad_mean"] == pytest.approx(pad.mean(), abs=1e-4)
        assert rec[f"table1.{m}.survival_r"] == pytest.approx(sps.pearsonr(pad, als["survival_months"]).statistic, abs=1e-5)
        fit = sps.linregress(held["age"], held[m])
        pad_c = als[m] - (fit.slope * als["age"] + fit.intercept)
        assert rec[f"pad.{m}.pad_mean_corrected"] == pytest.approx(pad_c.mean(), abs=1e-3)
    for m in BASELINES:
        d = sps.ks_2samp(als["diffae"] - als["age"], als[m] - als["age"]).statistic
        assert rec[f"table2.{m}.ks"] == pytest.approx(d, abs=1e-9)


def test_02_diff_splits_checkpoint_and_claims(diff_run):
    out, _, _, rec = diff_run
    assert rec["data.split.train"] + rec["data.split.val"] + rec["data.split.heldout"] == rec["data.train.N"] == 64
    assert 0 < rec["data.split.train_unlabelled"] == rec["data.train.N"] - rec["data.train.labelled"]
    model, meta = load_diffae(out / "cache" / "checkpoints" / "02_diff-smoke-seed0" / "diffae.pt")
    assert model.config.image_size == 32 and meta["config"]["train"]["epochs"] == 2
    claims = {k.removeprefix("claims."): v for k, v in rec.items() if k.startswith("claims.")}
    assert {"ours_lowest_mae", "ours_survival_positive_significant", "ks_all_significant",
            "sim_survival_sign", "reconstructions_faithful", "interpolation_ages_monotone"} <= set(claims)
    assert {v for k, v in claims.items() if not k.startswith("sim_")} <= {"reproduced", "not reproduced"}
    assert {claims["sim_survival_sign"], claims["sim_ours_tracks_gap_best"]} <= {"passed", "failed"}
    preds = pd.read_csv(out / "results" / "02_diff.predictions.csv")
    assert set(preds["evaluation"]) >= {"test", "als"} and {"diffae", "densenet121"} <= set(preds.columns)
    assert finite(rec["fig4.recon_mse"]) and finite(rec["fig3.row1.age_spearman"]) and rec["fig3.z_sem_share"] >= 0


def test_02_diff_renders_figures_and_html(diff_run):
    out, rendered, _, _ = diff_run
    assert rendered == out / "rendered" / "02_diff.ipynb"
    html = (out / "rendered" / "02_diff.html").read_text()
    assert html.count("data:image/png;base64") >= 5 and "REDUCED run" in html and "REPRODUCED" in html
    for name in ("fig2_als_pad_boxplot", "fig3_latent_interpolation", "fig4_reconstructions", "training_curves",
                 "test_scatter"):
        assert (out / "figures" / "02_diff" / f"{name}.png").is_file()
        side = json.loads((out / "figures" / "02_diff" / f"{name}.json").read_text())
        assert side["params"]["SLICE_SIZE"] == 32
