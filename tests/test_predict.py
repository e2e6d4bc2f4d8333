"""`brainage predict`: a model saved by a notebook, applied to its cohort, gives back the notebook's predictions."""
from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import run_smoke_notebook

from brainage_lib.cli import main
from brainage_lib.errors import BrainAgeError
from brainage_lib.inference.cards import load_model
from brainage_lib.inference.predict import predict_cohort

METHODS = ("REG", "REG-GAN", "REG-GAN-TGB")


@pytest.fixture(scope="module")
def tgb(tmp_path_factory):
    out, _ = run_smoke_notebook("01_tgb", tmp_path_factory)
    cohort = next(p for p in (out / "data").rglob("participants.tsv") if "abide_like" in str(p)).parent
    return out, cohort, pd.read_csv(out / "results" / "01_tgb.predictions.csv")


@pytest.mark.notebook
def test_predict_reproduces_the_notebooks_test_predictions(tgb, tmp_path):
    out, cohort, recorded = tgb
    for m in METHODS:
        model = out / "checkpoints" / "01_tgb" / "models" / f"{m}.model.pt"
        frame = predict_cohort(model, cohort, torch.device("cpu"), out_csv=tmp_path / f"{m}.csv")
        got = frame.set_index("participant_id").loc[recorded["participant_id"]]
        np.testing.assert_allclose(got["predicted_age"], recorded[m], rtol=0, atol=1e-3)
        np.testing.assert_allclose(got["brain_pad"], recorded[m] - recorded["age"], rtol=0, atol=1e-3)
        _, card = load_model(model)
        assert card.paper == "TGB" and card.model == m and card.profile == "smoke"
        assert card.test_mae == pytest.approx(np.abs(recorded[m] - recorded["age"]).mean(), rel=1e-5)
        bc = card.bias_correction
        if bc is not None:  # corrected PAD = pred - (slope * age + intercept), by hand
            np.testing.assert_allclose(frame["brain_pad_corrected"],
                                       frame["predicted_age"] - (bc["slope"] * frame["age"] + bc["intercept"]), atol=1e-9)
        assert pd.read_csv(tmp_path / f"{m}.csv").shape[0] == len(frame)


@pytest.mark.notebook
def test_a_shared_copy_predicts_the_same_and_leaves_the_notebooks_model_alone(tgb, tmp_path, capsys):
    """`brainage model FILE --share OUT`: weights and card only, smaller, the same predictions."""
    out, cohort, recorded = tgb
    model = out / "checkpoints" / "01_tgb" / "models" / "REG.model.pt"
    before = model.read_bytes()
    assert main(["model", str(model)]) == 0
    assert "training stage it came from" in capsys.readouterr().out
    copy = tmp_path / "shared" / "REG.model.pt"
    assert main(["model", str(model), "--share", str(copy)]) == 0
    assert "weights and card" in capsys.readouterr().out
    assert set(torch.load(copy, weights_only=True)) == {"state_dict", "card"} and copy.stat().st_size < len(before)
    assert load_model(copy)[1] == load_model(model)[1]  # the card as it was
    assert main(["model", str(model), "--share", str(copy.parent)]) == 0  # a folder: the copy keeps the file's name
    assert f"wrote {copy.resolve()}" in capsys.readouterr().out
    got = predict_cohort(copy, cohort, torch.device("cpu")).set_index("participant_id").loc[recorded["participant_id"]]
    np.testing.assert_allclose(got["predicted_age"], recorded["REG"], rtol=0, atol=1e-3)
    assert model.read_bytes() == before
    assert main(["model", str(model), "--share", str(model)]) == 2  # never over the model itself
    assert "is the model itself" in capsys.readouterr().err and model.read_bytes() == before


@pytest.mark.notebook
def test_predict_refuses_another_grid_or_pipeline(tgb, tmp_path, capsys):
    out, cohort, _ = tgb
    model = out / "checkpoints" / "01_tgb" / "models" / "REG.model.pt"
    other = tmp_path / "other"
    shutil.copytree(cohort, other, ignore=shutil.ignore_patterns("ground_truth"))
    for f in other.glob("sub-*/anat/*_T1w.nii.gz"):  # the same images on a 2x coarser grid
        img = nib.load(str(f))
        data = np.asarray(img.dataobj)[::2, ::2, ::2]
        nib.save(nib.Nifti1Image(data, img.affine @ np.diag([2.0, 2.0, 2.0, 1.0])), str(f))
    with pytest.raises(BrainAgeError, match="not in the space REG was trained in: grid"):
        predict_cohort(model, other, torch.device("cpu"))
    (other / "dataset_description.json").unlink()
    assert main(["predict", str(other), "--model", str(model), "--out", str(tmp_path / "x.csv")]) == 2
    assert "unknown pipeline" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
    with pytest.raises(BrainAgeError, match="inside the cohort folder"):
        predict_cohort(model, cohort, torch.device("cpu"), out_csv=cohort / "p.csv")
    with pytest.raises(BrainAgeError, match="No saved model"):
        load_model(tmp_path / "missing.model.pt")


def simulated_dir(out, preset: str, n: int, shape: int):
    """The smoke run's simulated cohort folder of ``preset`` (found by its settings, never simulated again here)."""
    from brainage_lib.data.sources import simulated_cohort_dir

    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINAGE_DATA", str(out / "data"))
    try:
        found = simulated_cohort_dir(preset, n=n, seed=0, shape=shape)
    finally:
        mp.undo()
    assert (found / "ground_truth" / "simulation.json").is_file()
    return found


def check_reproduced(frame: pd.DataFrame, recorded: pd.DataFrame, column: str) -> None:
    """``predict``'s rows for the recorded subjects equal the notebook's predictions (years, float16 inputs)."""
    got = frame.set_index("participant_id").loc[recorded["participant_id"]]
    assert len(got) == len(recorded) > 0
    np.testing.assert_allclose(got["predicted_age"], recorded[column], rtol=0, atol=1e-3)
    np.testing.assert_allclose(got["brain_pad"], recorded[column] - recorded["age"], rtol=0, atol=1e-3)


@pytest.mark.notebook
def test_predict_reproduces_02_diff_test_predictions(tmp_path_factory, tmp_path):
    """The DiffAE and both CNN baselines, applied to the clinical test cohort, give the recorded test predictions;
    each card carries the test MAE and the bias correction that the notebook fitted on its held-out healthy set."""
    from brainage_lib.metrics.stats import bias_correct
    from brainage_lib.run.results import load_results

    out, _ = run_smoke_notebook("02_diff", tmp_path_factory)
    params = load_results("02_diff", output_dir=out)["params"]
    cohort = simulated_dir(out, "clinical_test", params["N_TEST"], params["SHAPE"])
    rows = pd.read_csv(out / "results" / "02_diff.predictions.csv")
    test, heldout = rows[rows["evaluation"] == "test"], rows[rows["evaluation"] == "heldout"]
    for m in ("diffae", "densenet121", "deepbrainnet"):
        model = out / "checkpoints" / "02_diff" / "models" / f"{m}.model.pt"
        assert main(["predict", str(cohort), "--model", str(model), "--out", str(tmp_path / f"{m}.csv")]) == 0
        frame = pd.read_csv(tmp_path / f"{m}.csv", dtype={"participant_id": str})
        check_reproduced(frame, test, m)
        _, card = load_model(model)
        assert (card.paper, card.model, card.inputs, card.profile) == ("DIFF", m, "slice", "smoke")
        assert card.test_mae == pytest.approx(np.abs(test[m] - test["age"]).mean(), rel=1e-6)
        slope, intercept = card.bias_correction["slope"], card.bias_correction["intercept"]
        bc = bias_correct(heldout[m].to_numpy(), heldout["age"].to_numpy())  # refitted from the saved predictions
        assert (slope, intercept) == pytest.approx((bc.slope, bc.intercept), rel=1e-5)
        np.testing.assert_allclose(frame["brain_pad_corrected"],
                                   frame["predicted_age"] - (slope * frame["age"] + intercept), atol=1e-5)


@pytest.mark.notebook
def test_predict_reproduces_03_lstm_predictions(tmp_path_factory):
    """Each of the four trainings, applied to a whole cohort folder, gives the recorded predictions: the 0-22 y
    models on the discovery test split, the young models on the replication cohort."""
    from brainage_lib.papers.lstm import evaluation as L
    from brainage_lib.papers.lstm.data import DISCOVERY, REPLICATION
    from brainage_lib.run.results import load_results

    out, _ = run_smoke_notebook("03_lstm", tmp_path_factory)
    res = load_results("03_lstm", output_dir=out)
    p, young = res["params"], f"0-{res['params']['YOUNG_MAX_AGE']:g}"
    rows = pd.read_csv(out / "results" / "03_lstm.predictions.csv")
    cohorts = {"0-22": (DISCOVERY, p["N_DISCOVERY"], "discovery test (trained 0-22)"),
               "young": (REPLICATION, p["N_REPLICATION"], f"replication (trained {young})")}
    for regime, (preset, n, title) in cohorts.items():
        cohort, recorded = simulated_dir(out, preset, n, p["SHAPE"]), rows[rows["evaluation"] == title]
        for name, inputs in ((L.LSTM_NAME, "slice_sequence"), (L.CNN3D_NAME, "volume")):
            model = out / "checkpoints" / "03_lstm" / "models" / f"{regime}_{name.replace('+', '_')}.model.pt"
            frame = predict_cohort(model, cohort, torch.device("cpu"))
            check_reproduced(frame, recorded, name)
            _, card = load_model(model)
            assert (card.paper, card.inputs, card.bias_correction) == ("LSTM", inputs, None)
            assert frame["brain_pad_corrected"].isna().all()
            if regime == "0-22":
                assert card.test_mae == pytest.approx(np.abs(recorded[name] - recorded["age"]).mean(), rel=1e-6)


class _MeanVoxel(torch.nn.Module):
    """A stand-in network: the mean of its input."""

    def forward(self, x):
        return x.flatten(1).mean(1)


def test_predict_reads_preprocessed_names_and_old_style_folders(tiny_abide, tmp_path, monkeypatch, capsys):
    """The same images named sMRIPrep-style and old-style (sub-<id>_T1w.nii.gz) give the same predictions; the
    old-style folder is said to be one."""
    from brainage_lib.inference import predict
    from brainage_lib.inference.cards import ModelCard

    monkeypatch.setenv("BRAINAGE_CACHE", str(tmp_path / "cache"))
    made = {"Name": "brainage preprocess", "Recipe": "tgb"}
    folders = {}
    for style in ("old", "new"):
        root = shutil.copytree(tiny_abide, tmp_path / style, ignore=shutil.ignore_patterns("ground_truth"))
        (root / "dataset_description.json").write_text(json.dumps({"Name": style, "GeneratedBy": [made]}))
        if style == "new":
            for img in root.glob("sub-*/anat/*_T1w.nii.gz"):
                img.rename(img.with_name(img.name.replace("_T1w", "_space-MNI152NLin2009aSym_res-24x24x24_desc-preproc_T1w")))
        folders[style] = root
    img = nib.load(str(next(folders["old"].glob("sub-*/anat/*_T1w.nii.gz"))))
    card = ModelCard(paper="TGB", notebook="01_tgb", model="REG", architecture="TGBRegressor", config={},
                     transform={"name": "tgb", "size": 24}, inputs="volume", profile="smoke", seed=0,
                     training_data="test", space={"generated_by": [made], "shape": [24, 24, 24],
                                                  "affine": np.round(img.affine, 3).tolist()}, test_mae=None)
    monkeypatch.setattr(predict, "load_model", lambda path, device=None: (_MeanVoxel(), card))
    frames = {}
    for style in ("new", "old"):
        frames[style] = predict.predict_cohort("model.pt", folders[style], torch.device("cpu"))
        assert ("old-style" in capsys.readouterr().out) == (style == "old")
    assert len(frames["new"]) == 12 and frames["new"]["predicted_age"].notna().all()
    pd.testing.assert_frame_equal(frames["new"], frames["old"])
