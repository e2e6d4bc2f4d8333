"""Smoke run of notebook 02_diff (PROFILE=smoke), asserting on its recorded results."""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from conftest import run_smoke_notebook
from scipy import stats as sps

from brainage_lib.metrics.verdicts import LEARNED_FRACTION, TRACK_ALPHA
from brainage_lib.papers.diff.evaluation import MODELS, paper_magnitude
from brainage_lib.inference.cards import load_model
from brainage_lib.papers.diff.training import open_diff_cohorts
from brainage_lib.run.results import load_results

pytestmark = pytest.mark.notebook
BASELINES = [m for m in MODELS if m != "diffae"]


@pytest.fixture(scope="module")
def diff_run(tmp_path_factory):
    out, rendered = run_smoke_notebook("02_diff", tmp_path_factory)
    res = load_results("02_diff", output_dir=out)
    return out, rendered, res, {k: v["value"] for k, v in res["records"].items()}


@pytest.fixture(scope="module")
def cohorts(diff_run):
    """The notebook's three cohorts, re-opened from the smoke run's simulated data (no re-simulation)."""
    out, _, res, _ = diff_run
    p = res["params"]
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINAGE_DATA", str(out / "data"))
    mp.setenv("BRAINAGE_CACHE", str(out / "cache"))
    try:
        return open_diff_cohorts("", p["N_TRAIN"], p["N_TEST"], p["N_ALS"], seed=0, shape=p["SHAPE"])
    finally:
        mp.undo()


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
    for m in BASELINES:
        for q in ("ks", "ks_p", "ks_corrected", "ks_p_corrected"):
            assert 0 <= rec[f"pad.{m}.{q}"] <= 1, (m, q)
        assert rec[f"table2.{m}.ks"] == rec[f"pad.{m}.ks"]


def test_02_diff_truth_correlations_match_the_simulators_gaps(diff_run, cohorts):
    """PAD vs hidden gap and the simulator's own gap-survival r, recomputed from the ground truth."""
    out, _, _, rec = diff_run
    pred = pd.read_csv(out / "results" / "02_diff.predictions.csv", dtype={"participant_id": str})
    gap = {k: cohorts[k].ground_truth().set_index("participant_id")["gap"] for k in ("test", "als")}
    test, als = (pred[pred["evaluation"] == k].set_index("participant_id") for k in ("test", "als"))
    held = pred[pred["evaluation"] == "heldout"]
    for m in MODELS:
        fit = sps.linregress(held["age"], held[m])
        for name, d in (("test", test), ("als", als)):
            pad, g = d[m] - d["age"], gap[name].loc[d.index]
            pad_c = d[m] - (fit.slope * d["age"] + fit.intercept)
            assert rec[f"truth.{m}.{name}_r_gap"] == pytest.approx(sps.pearsonr(pad, g).statistic, abs=1e-5)
            assert rec[f"truth.{m}.{name}_r_gap_corrected"] == pytest.approx(sps.pearsonr(pad_c, g).statistic, abs=1e-4)
        assert rec[f"pad.{m}.bias_slope"] == pytest.approx(fit.slope, abs=1e-4)
        pad_c = als[m] - (fit.slope * als["age"] + fit.intercept)
        assert rec[f"pad.{m}.survival_r_corrected"] == pytest.approx(
            sps.pearsonr(pad_c, als["survival_months"]).statistic, abs=1e-4)
    r_sim = sps.pearsonr(gap["als"].loc[als.index], als["survival_months"]).statistic
    assert rec["simulator.als_gap_survival_r"] == pytest.approx(r_sim, abs=1e-9)
    assert r_sim < 0  # the simulator shortens survival with the hidden gap


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


def test_02_diff_splits_checkpoint_and_claims(diff_run, cohorts):
    out, _, res, rec = diff_run
    train_ages = cohorts["train"].ages
    assert rec["data.train.N"] == len(train_ages) == res["params"]["N_TRAIN"]
    assert rec["data.train.labelled"] == int((~np.isnan(train_ages)).sum())
    assert rec["data.split.train"] + rec["data.split.val"] + rec["data.split.heldout"] == rec["data.train.N"]
    assert 0 < rec["data.split.train_unlabelled"] == int(np.isnan(train_ages).sum())
    model, card = load_model(out / "checkpoints" / "02_diff" / "models" / "diffae.model.pt")
    assert model.config.image_size == res["params"]["SLICE_SIZE"] and card.training["config"]["epochs"] == 2
    assert card.training["config"]["age_loss"] == res["params"]["AGE_LOSS"] and card.seed == res["params"]["SEED"]
    assert not list((out / "checkpoints" / "02_diff").glob("*.pt"))  # one file per trained model: models/*.model.pt
    labelled = train_ages[~np.isnan(train_ages)]
    assert labelled.min() < model.config.age_offset < labelled.max() and model.config.age_scale > 1
    # the recorded size is the probe's; the checkpoint's model has the same architecture
    assert rec["model.diffae.params_M"] == pytest.approx(sum(p.numel() for p in model.parameters()) / 1e6, abs=1e-9)
    claims = {k.removeprefix("claims."): v for k, v in rec.items() if k.startswith("claims.")}
    assert {"ours_lowest_mae", "ours_survival_positive_significant", "pad_spread_wider_significantly",
            "survival_stronger_than_baselines", "sim_survival_sign", "sim_survival_stronger_than_baselines",
            "sim_spread_follows_gap", "sim_als_pad_nearest_gap", "sim_mean_pad_sign", "reconstructions_faithful",
            "interpolation_ages_monotone"} <= set(claims)
    # verdicts re-derived from the saved predictions: the learning gate is decided on the held-out healthy set
    # (reference: that set's own mean age), the tracking gate on the clinical test set
    pred = pd.read_csv(out / "results" / "02_diff.predictions.csv")
    test, held, als = (pred.query(f"evaluation == '{k}'") for k in ("test", "heldout", "als"))
    ref = np.abs(held["age"] - held["age"].mean()).mean()
    assert rec["gate.heldout_mean_prediction_mae"] == pytest.approx(ref, abs=1e-6)
    assert rec["gate.test_mean_prediction_mae"] == pytest.approx(np.abs(test["age"] - test["age"].mean()).mean())
    mae = {m: np.abs(test[m] - test["age"]).mean() for m in MODELS}
    learned = {m: np.abs(held[m] - held["age"]).mean() < LEARNED_FRACTION * ref for m in MODELS}
    tracks = {m: sps.pearsonr(test[m], test["age"]).statistic > 0 and sps.pearsonr(test[m], test["age"]).pvalue
              < TRACK_ALPHA for m in MODELS}
    for m in MODELS:  # every gate recorded with the numbers that passed or failed it
        g = res["records"][f"gates.learned.{m}"]
        assert g["value"] == learned[m] and f"{np.abs(held[m] - held['age']).mean():.2f} y" in g["evidence"]
        assert res["records"][f"gates.tracks_age.{m}"]["value"] == tracks[m]
    # a reduced profile: a rule that holds is "direction only" for a claim with a paper number
    word = lambda ok: "direction only" if ok else "not reproduced"  # noqa: E731
    passed = lambda names: all(learned[m] and tracks[m] for m in names)  # noqa: E731
    judged = lambda ok, names, w=word: w(ok) if passed(names) else "not testable"  # noqa: E731
    assert claims["ours_lowest_mae"] == judged(all(mae["diffae"] < mae[m] for m in BASELINES), MODELS)
    pad = {m: als[m] - als["age"] for m in MODELS}
    pm = {m: sps.pearsonr(pad["diffae"] + pad[m], pad["diffae"] - pad[m]) for m in BASELINES}
    assert claims["pad_spread_wider_significantly"] == judged(
        all(pm[m].statistic > 0 and pm[m].pvalue < 0.05 for m in BASELINES), MODELS)
    r, p = rec["table1.diffae.survival_r"], rec["table1.diffae.survival_p"]
    # on simulated data the survival sign and the mean-PAD sign are the simulator's choice
    assert claims["ours_survival_positive_significant"] == claims["ours_negative_mean_pad"] == "not testable"
    check = lambda ok: "passed" if ok else "failed"  # noqa: E731
    assert claims["sim_survival_sign"] == judged(r < 0 and p < 0.05, ["diffae"], check)
    for key, verdict in claims.items():  # a reason is recorded exactly where a claim is not testable
        assert bool(res["records"][f"claims.{key}"].get("reason")) == (verdict == "not testable"), key
    on = {k: res["records"][f"claims.{k}"].get("judged_on") for k in claims}  # the data each claim was judged on
    assert on["ours_lowest_mae"] == on["sim_ours_tracks_gap_best"] == "clinical_test (simulated)"
    assert on["pad_spread_wider_significantly"] == on["sim_survival_sign"] == "als_like (simulated)"
    assert on["reconstructions_faithful"] == "held-out healthy set and clinical_test (simulated)"
    faithful = rec["fig4.recon_mse"] < 0.25 * rec["fig4.other_image_mse"]  # no paper number: reproduced on its rule
    assert claims["reconstructions_faithful"] == ("reproduced" if faithful else "not reproduced")
    assert finite(rec["fig3.row1.age_spearman"]) and rec["fig3.z_sem_share"] >= 0
    for row in ("row1", "row2"):  # the z_sem-only interpolation: its share of the age head's difference, by hand
        head = rec[f"fig3.{row}.latent_age_last"] - rec[f"fig3.{row}.latent_age_first"]
        moved = rec[f"fig3.{row}.zsem_age_last"] - rec[f"fig3.{row}.zsem_age_first"]
        assert rec[f"fig3.{row}.zsem_age_share"] == pytest.approx(moved / head)


def test_02_diff_records_magnitudes_and_deviations(diff_run):
    """Every claim with a paper number carries its magnitudes: the paper's value beside this run's paired bootstrap
    interval, whose estimate is recomputed here from the saved predictions."""
    out, _, res, rec = diff_run
    pred = pd.read_csv(out / "results" / "02_diff.predictions.csv")
    test = pred.query("evaluation == 'test'")
    for m in BASELINES:
        est = np.abs(test["diffae"] - test["age"]).mean() - np.abs(test[m] - test["age"]).mean()
        assert rec[f"mag.mae_diff.{m}"] == pytest.approx(est, abs=1e-6)
        assert rec[f"mag.mae_diff.{m}.low"] <= est <= rec[f"mag.mae_diff.{m}.high"]
        assert res["records"][f"mag.mae_diff.{m}"]["paper"] == pytest.approx(paper_magnitude("mae_diff", m))
    for key in ("ours_lowest_mae", "ours_joint_highest_r", "survival_stronger_than_baselines",
                "pad_spread_wider_significantly", "ours_negative_mean_pad"):
        e = res["records"][f"claims.{key}"]
        assert e["magnitudes"] and all({"paper", "low", "high", "inside", "text"} <= set(m) for m in e["magnitudes"])
    mags = res["records"]["claims.ours_largest_pad_spread"]["magnitudes"]
    assert [m["paper"] for m in mags] == pytest.approx([19.55, 16.32, 19.23])
    # a reduced profile holds no claim with a paper number to the paper's magnitudes: at best direction only
    assert all(rec[k] != "reproduced" for k in rec if k.startswith("claims.") and res["records"][k].get("magnitudes"))
    assert {d["what"] for d in res["records"]["deviations"]["value"]} >= {"Checkpoint tested", "Baselines"}


def test_02_diff_renders_figures_and_html(diff_run):
    out, rendered, res, rec = diff_run
    assert rendered == out / "rendered" / "02_diff.ipynb"
    html = (out / "rendered" / "02_diff.html").read_text()
    assert html.count("data:image/png;base64") >= 5 and "REDUCED run" in html
    # the verdict words rendered in the closing cell are the recorded ones, in recording order
    rendered_verdicts = re.findall(
        r"<strong>(NOT REPRODUCED|REPRODUCED|DIRECTION ONLY|UNSTABLE|NOT TESTABLE|PASSED|FAILED)</strong>", html)
    recorded = [v.upper() for k, v in rec.items() if k.startswith("claims.")]
    assert rendered_verdicts == recorded and recorded
    # the sentences that read recorded numbers say what the numbers say
    share = rec["fig3.z_sem_share"]
    assert f"{100 * share:.1f} %" in html
    barely, draws = "the decoder barely uses <code>z_sem</code>", "the decoder draws on <code>z_sem</code>"
    assert (barely in html) == (share < 0.1) and (draws in html) == (share >= 0.1)
    n_unlab = rec["data.split.train_unlabelled"]
    assert f"+ {n_unlab} unlabelled ({100 * n_unlab / rec['data.split.train']:.0f} %" in html
    assert "Gates: did each model learn?" in html and "Noise U-Net blocks and parameter count" in html
    for name in ("fig2_als_pad_boxplot", "fig3_latent_interpolation", "fig3_zsem_interpolation", "fig4_reconstructions",
                 "training_curves", "test_scatter"):
        assert (out / "figures" / "02_diff" / f"{name}.png").is_file()
        side = json.loads((out / "figures" / "02_diff" / f"{name}.json").read_text())
        assert side["params"]["SLICE_SIZE"] == res["params"]["SLICE_SIZE"]
