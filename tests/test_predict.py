"""`brainage predict`: a model saved by a notebook, applied to its cohort, gives back the notebook's predictions."""
from __future__ import annotations

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
