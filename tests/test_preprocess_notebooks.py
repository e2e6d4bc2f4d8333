"""Each notebook records the same numbers on scanner-space heads after ``brainage preprocess`` as on the same
cohort simulated directly in MNI space.

One small ``abide_like`` cohort (``N`` subjects on the 4 mm grid) is simulated twice from one seed: in MNI space,
and as whole heads in scanner space (``--space native``: the same brains inside a skull, posed, in PSR orientation,
with a bias field). The heads go through each notebook's recipe; the notebook's smoke profile then runs once on the
preprocessed folder and once on the MNI-space folder (restricted to the subjects that preprocessing kept, so both
runs split the same subjects the same way).

Close means: every data and split record is identical, each test MAE the notebook records for a model is within
``TOLERANCE_Y`` years, and every input the notebook cached for a subject (its transform of the image) correlates at
least ``MIN_INPUT_R`` with that subject's input from the MNI-space folder (both stated and justified in
docs/your-own-data.md, "Same numbers after preprocessing").
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

for _module in ("ants", "deepbet", "nimare"):  # the optional preprocessing dependencies (make preprocess-deps)
    if importlib.util.find_spec(_module) is None:
        pytest.skip(f"{_module} is not installed: `make preprocess-deps` installs the preprocessing dependencies "
                    "(antspyx, deepbet, nimare)", allow_module_level=True)

from brainage_lib.cli import main  # noqa: E402
from brainage_lib.data.cohort import excluded_scans  # noqa: E402
from brainage_lib.data.validation import validate_cohort  # noqa: E402
from brainage_lib.inference.cards import load_model  # noqa: E402
from brainage_lib.preprocess.run import preprocess_cohort  # noqa: E402
from brainage_lib.run.results import load_results  # noqa: E402
from brainage_lib.run.runner import run_notebook  # noqa: E402
from brainage_lib.simulation.native import simulate_native_cohort  # noqa: E402
from brainage_lib.simulation.simulate import simulate_cohort  # noqa: E402

pytestmark = [pytest.mark.notebook, pytest.mark.preprocessing, pytest.mark.native_comparison]

N, SEED, VOXEL_MM = 20, 0, 4.0  # the smallest cohort every notebook's smoke profile runs on
TOLERANCE_Y = 2.5  # |test MAE after preprocessing - test MAE in MNI space|, years, per model (deterministic runs)
MIN_INPUT_R = 0.95  # per subject: a notebook's input after preprocessing vs the same brain's from the MNI-space folder
MIN_PROCESSED = 0.9  # share of the heads each recipe must bring through
NOTEBOOKS = {  # notebook: (recipe, recorded test MAE per model, parameters beyond the smoke profile)
    "01_tgb": ("tgb", [f"table1.{m}.mae_mean" for m in ("REG", "REG-GAN", "REG-GAN-TGB")], {}),
    "02_diff": ("diff", [f"table1.{m}.test_mae" for m in ("diffae", "densenet121", "brainager", "deepbrainnet")],
                {"VAL_FRACTION": 0.2, "HELDOUT_FRACTION": 0.2}),  # at least 3 validation and held-out subjects
    "03_lstm": ("lstm", [f"table1.{m}.Average" for m in ("3D-ResNet18", "2D-ResNet18+LSTM")], {}),
}


def _subset(src: Path, keep: set[str], dest: Path) -> Path:
    """A copy of cohort ``src`` holding only the participants in ``keep``."""
    dest.mkdir(parents=True)
    table = pd.read_csv(src / "participants.tsv", sep="\t", dtype=str)
    table[table["participant_id"].isin(keep)].to_csv(dest / "participants.tsv", sep="\t", index=False)
    shutil.copy(src / "dataset_description.json", dest)
    for sid in keep:
        shutil.copytree(src / sid, dest / sid)
    return dest


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("prep_notebooks")
    sim = {"n": N, "seed": SEED, "voxel_size": VOXEL_MM, "progress": False}
    return {"root": root, "mni": simulate_cohort("abide_like", root / "mni", **sim),
            "native": simulate_native_cohort("abide_like", root / "native", **sim)}


@pytest.fixture(scope="module")
def runs(base):
    """Per notebook: the preprocessing summary and the output folders of its run on each cohort."""
    root, out = base["root"], {}
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINAGE_DATA", str(root / "data"))
    mp.setenv("BRAINAGE_CACHE", str(root / "cache"))
    try:
        for nb, (recipe, _, params) in NOTEBOOKS.items():
            summary = preprocess_cohort(base["native"], root / f"prep-{recipe}", recipe, jobs=2, progress=False)
            kept = set(pd.read_csv(summary.out / "participants.tsv", sep="\t", dtype=str)["participant_id"])
            kept -= excluded_scans(summary.out)  # the notebook leaves out what qc.tsv excludes; so does the MNI side
            mni = _subset(base["mni"], kept, root / f"mni-{recipe}")
            folders = {}
            for kind, data in (("preprocessed", summary.out), ("mni", mni)):
                folders[kind] = root / f"run-{kind}"
                run_notebook(nb, profile="smoke", params={"DATA_DIR": str(data), **params}, output_dir=folders[kind],
                             html=False, progress=False)
            out[nb] = summary, folders
    finally:
        mp.undo()
    return out


def _exclude(qc_tsv: Path, participant: str) -> None:
    qc = pd.read_csv(qc_tsv, sep="\t", dtype=str, keep_default_na=False)
    qc.loc[qc["participant_id"] == participant, "exclude"] = "yes"
    qc.to_csv(qc_tsv, sep="\t", index=False)


def _records(folder: Path, nb: str) -> dict:
    return {k: v["value"] for k, v in load_results(nb, output_dir=folder)["records"].items()}


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_records_after_preprocessing_match_the_mni_simulation(runs, nb):
    summary, folders = runs[nb]
    assert summary.processed >= MIN_PROCESSED * N, summary.failed
    prep, mni = _records(folders["preprocessed"], nb), _records(folders["mni"], nb)
    data_keys = [k for k in mni if k.startswith(("data.", "split."))]
    assert data_keys and {k: prep[k] for k in data_keys} == pytest.approx({k: mni[k] for k in data_keys}, abs=1e-9)
    _, maes, _ = NOTEBOOKS[nb]
    diffs = {k: abs(prep[k] - mni[k]) for k in maes}
    print(nb, f"{summary.processed} of {N} kept;", {k: round(prep[k] - mni[k], 3) for k in maes})  # shown by pytest -rP
    assert max(diffs.values()) <= TOLERANCE_Y, diffs


def _cached_inputs(cache: Path, folder: str) -> dict[str, dict[str, np.ndarray]]:
    """Per input transform, each subject's row of the arrays the notebooks cached for cohort folder ``folder``."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for d in cache.glob(f"{folder}-*"):
        for meta in d.glob("*.json"):
            rows = np.load(meta.with_suffix(".npy"), mmap_mode="r")
            for i, pid in enumerate(json.loads(meta.read_text())["participants"]):
                out.setdefault(meta.stem.split("-")[0], {})[pid] = np.asarray(rows[i], dtype=np.float64).ravel()
    return out


@pytest.mark.parametrize("nb", NOTEBOOKS)
def test_notebook_inputs_after_preprocessing_match_the_mni_simulation(runs, base, nb):
    """What each notebook trains on, subject by subject: its input from the preprocessed head against the same
    brain's input from the MNI-space folder (the image-level check the test MAEs above cannot give)."""
    recipe = NOTEBOOKS[nb][0]
    prep = _cached_inputs(base["root"] / "cache", f"prep-{recipe}")
    mni = _cached_inputs(base["root"] / "cache", f"mni-{recipe}")
    assert prep and set(prep) == set(mni), (sorted(prep), sorted(mni))
    for transform, rows in prep.items():
        r = {pid: float(np.corrcoef(x, mni[transform][pid])[0, 1]) for pid, x in rows.items()}
        print(nb, transform, f"{len(r)} subjects, r median {np.median(list(r.values())):.4f}, min {min(r.values()):.4f}")
        assert len(r) >= 10 and min(r.values()) >= MIN_INPUT_R, r


def test_01_tgb_smoke_run_on_preprocessed_output(runs, base, tmp_path, capsys):
    """Raw heads -> preprocess -> notebook -> predict: the preprocessed folder passes validate and the notebook's
    input guard unchanged, the notebook and predict leave out the scans qc.tsv excludes, and a model it saved
    predicts the folder, but refuses the MNI-space simulation."""
    summary, folders = runs["01_tgb"]
    report = validate_cohort(summary.out)
    assert report.ok and not report.warnings, report.summary()
    res = load_results("01_tgb", output_dir=folders["preprocessed"])
    assert res["params"]["DATA_DIR"] == str(summary.out) and res["params"]["ALLOW_UNREGISTERED"] is False
    excluded = excluded_scans(summary.out)  # by its QC flags, if any
    assert res["records"]["data.N"]["value"] == summary.processed - len(excluded)
    rendered = folders["preprocessed"] / "rendered" / "01_tgb.ipynb"
    assert "WARNING (ALLOW_UNREGISTERED" not in rendered.read_text()
    model = folders["preprocessed"] / "checkpoints" / "01_tgb" / "models" / "REG-GAN-TGB.model.pt"
    _, card = load_model(model)
    assert card.space["generated_by"][0]["Recipe"] == "tgb" and card.space["shape"] == [99, 117, 95]
    dropped = sorted(set(pd.read_csv(summary.out / "participants.tsv", sep="\t", dtype=str)["participant_id"]) - excluded)[0]
    _exclude(summary.out / "qc.tsv", dropped)  # now by hand too: predict must skip it, and say so
    capsys.readouterr()
    assert main(["predict", str(summary.out), "--model", str(model), "--out", str(tmp_path / "p.csv")]) == 0
    got = pd.read_csv(tmp_path / "p.csv").set_index("participant_id")
    assert not (excluded | {dropped}) & set(got.index) and dropped in capsys.readouterr().out
    recorded = pd.read_csv(folders["preprocessed"] / "results" / "01_tgb.predictions.csv")
    recorded = recorded[recorded["participant_id"] != dropped]
    assert (got.loc[recorded["participant_id"], "predicted_age"].to_numpy()
            == pytest.approx(recorded["REG-GAN-TGB"].to_numpy(), abs=1e-3))
    assert main(["predict", str(base["mni"]), "--model", str(model), "--out", str(tmp_path / "q.csv")]) == 2
    assert json.loads((summary.out / "dataset_description.json").read_text())["GeneratedBy"][0]["Recipe"] == "tgb"
