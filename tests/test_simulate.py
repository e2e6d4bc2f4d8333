"""The simulator: determinism, consistency with its ground truth, the age signal, the effect region."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import tree_digest

from brainage_lib.cli import main
from brainage_lib.data.baseline import downsample_features, ridge_age_baseline
from brainage_lib.data.cohort import balance_by_sex, load_cohort
from brainage_lib.data.transforms import load_volume
from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation import ageing
from brainage_lib.simulation.anatomy import MNI_EXTENT, make_grid, region_map, tissue_maps
from brainage_lib.simulation.presets import PRESETS
from brainage_lib.simulation.render import tissues_at_age
from brainage_lib.simulation.simulate import simulate_cohort


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = simulate_cohort("nihpd_like", tmp_path / "a", n=4, seed=11, shape=(20, 24, 20), progress=False)
    b = simulate_cohort("nihpd_like", tmp_path / "b", n=4, seed=11, shape=(20, 24, 20), progress=False)
    c = simulate_cohort("nihpd_like", tmp_path / "c", n=4, seed=12, shape=(20, 24, 20), progress=False)
    da, db, dc = tree_digest(a), tree_digest(b), tree_digest(c)
    assert sorted(da) == sorted(db)
    assert all(da[k][2] == db[k][2] for k in da)  # byte-identical contents
    img = "sub-nihpd0001/anat/sub-nihpd0001_T1w.nii.gz"
    assert da[img][2] != dc[img][2]


def test_ground_truth_matches_participants(tmp_path):
    root = simulate_cohort("lifespan_train", tmp_path / "life", n=30, seed=2, shape=(20, 24, 20), progress=False)
    part = pd.read_csv(root / "participants.tsv", sep="\t", dtype=str, keep_default_na=False)
    truth = pd.read_csv(root / "ground_truth" / "subjects.tsv", sep="\t")
    assert list(part["participant_id"]) == list(truth["participant_id"])
    labelled = part["age"] != "n/a"
    assert (~labelled).sum() > 0  # lifespan_train has unlabelled subjects
    assert labelled.tolist() == truth["labelled"].tolist()
    np.testing.assert_allclose(part.loc[labelled, "age"].astype(float), truth.loc[labelled, "age"], atol=1e-9)
    np.testing.assert_allclose(truth["brain_age"], truth["age"] + truth["gap"], atol=1e-3)
    assert set(part["site"]) <= set(json.loads((root / "ground_truth" / "sites.json").read_text()))
    sim = json.loads((root / "ground_truth" / "simulation.json").read_text())
    assert sim["n"] == 30 and sim["shape"] == [20, 24, 20] and sim["effect_region"] == PRESETS["lifespan_train"].effect_region
    assert sim["effect_rate"] == PRESETS["lifespan_train"].effect_rate and sim["expected_change_ages"] == [30.0, 80.0]
    # the loader sees exactly the labelled subjects as labelled
    cohort = load_cohort(root, allow_unlabelled=True)
    assert np.isnan(cohort.ages).sum() == (~labelled).sum()
    np.testing.assert_allclose(cohort.ground_truth()["gap"], truth["gap"])


def test_images_are_mni_grid_int16_skull_stripped(tiny_abide):
    cohort = load_cohort(tiny_abide, check_data=True)
    img = nib.load(cohort.paths[0])
    assert img.shape == (24, 24, 24) and img.get_data_dtype() == np.int16
    np.testing.assert_allclose(img.affine[:3, 3], [-98, -134, -72])
    np.testing.assert_allclose(np.diag(img.affine)[:3], MNI_EXTENT / 23)
    data = load_volume(cohort.paths[0])
    assert data[0, 0, 0] == 0 and data[-1, -1, -1] == 0  # background outside the brain
    assert data.max() > 300


def test_als_survival_depends_on_severity(tmp_path):
    root = simulate_cohort("als_like", tmp_path / "als", n=72, seed=0, shape=(16, 18, 16), progress=False)
    part = pd.read_csv(root / "participants.tsv", sep="\t")
    truth = pd.read_csv(root / "ground_truth" / "subjects.tsv", sep="\t")
    assert (part["group"] == "ALS").all() and part["survival_months"].between(2, 180).all()
    r = np.corrcoef(truth["severity"], np.log(part["survival_months"]))[0, 1]
    assert r < -0.2  # more severe disease, shorter survival
    assert (root / "ground_truth" / "disease_map.nii.gz").is_file()


def test_abide_like_sex_balancing_keeps_pairs(tmp_path):
    root = simulate_cohort("abide_like", tmp_path / "ab", n=200, seed=1, shape=(12, 12, 12), progress=False)
    t = load_cohort(root).table
    n_f = (t["sex"] == "F").sum()
    assert n_f == round(200 * 431 / 1150)
    assert len(balance_by_sex(t)) == 2 * n_f  # every female has a male partner in her 1-y bin
    assert t["age"].between(5, 24).all()
    young, middle = ((t["age"] >= 5) & (t["age"] < 7)).sum(), ((t["age"] >= 9) & (t["age"] < 12)).sum()
    assert middle > 3 * young  # few at 5-6, many at 9-12


def test_age_signal_is_present(tmp_path):
    root = simulate_cohort("lifespan_train", tmp_path / "sig", n=80, seed=4, shape=(32, 32, 32), progress=False)
    cohort = load_cohort(root, allow_unlabelled=True).labelled()
    vols = np.stack([load_volume(p) for p in cohort.paths])
    res = ridge_age_baseline(downsample_features(vols, 12), cohort.ages, seed=0)
    assert res["mae_ridge"] < 0.8 * res["mae_mean"]
    assert res["r_ridge"] > 0.5


def test_effect_region_moves_the_effect_map(tmp_path):
    kw = dict(n=2, seed=0, shape=(24, 28, 24), progress=False)
    front = simulate_cohort("abide_like", tmp_path / "f", effect_region="frontal", **kw)
    back = simulate_cohort("abide_like", tmp_path / "o", effect_region="occipital", **kw)

    def centroid_y(path):
        img = nib.load(path)
        d = np.asarray(img.dataobj, dtype=float)
        ijk = np.argwhere(d > 0.5 * d.max())
        return (img.affine @ np.c_[ijk, np.ones(len(ijk))].T)[1].mean()

    assert centroid_y(front / "ground_truth" / "effect_map.nii.gz") > 10
    assert centroid_y(back / "ground_truth" / "effect_map.nii.gz") < -60
    # the expected age change follows the region
    assert centroid_y(front / "ground_truth" / "expected_change.nii.gz") > centroid_y(back / "ground_truth" / "expected_change.nii.gz") + 40


def test_sphere_region_and_bad_regions():
    m = region_map("sphere:0,-60,10,20", (24, 28, 24))
    grid = make_grid((24, 28, 24))
    xyz = grid.mm_coordinates()
    peak = np.unravel_index(np.argmax(m), m.shape)
    assert np.linalg.norm(xyz[:, peak[0], peak[1], peak[2]] - np.array([0, -60, 10])) < 25
    with pytest.raises(BrainAgeError, match="Unknown region 'nose'"):
        region_map("nose", (24, 28, 24))
    with pytest.raises(BrainAgeError, match="sphere:x,y,z,r"):
        region_map("sphere:1,2", (24, 28, 24))
    with pytest.raises(BrainAgeError, match="does not overlap"):
        region_map("sphere:0,0,500,5", (24, 28, 24))


def test_ageing_directions_follow_the_literature():
    ages = np.linspace(0, 95, 951)
    gm = ageing.gm_relative(ages)
    assert 6 <= ages[np.argmax(gm)] <= 10  # cortical GM peaks in childhood
    assert gm[ages == 70][0] - gm[ages == 80][0] > gm[ages == 30][0] - gm[ages == 40][0]  # faster after 60
    wm = ageing.wm_relative(ages)
    assert wm[ages == 2][0] - wm[ages == 0][0] > 3 * (wm[ages == 12][0] - wm[ages == 10][0])  # steep early growth
    assert wm[ages == 80][0] < wm[ages == 45][0]  # loss after ~50
    m = ageing.myelination(ages)
    assert np.all(np.diff(m) >= 0) and m[0] == 0 and m[ages == 2][0] > 0.8
    assert ageing.wm_intensity(0.0, 0.5, 0.8) < 0.5 < ageing.wm_intensity(10.0, 0.5, 0.8)  # inverted contrast at birth
    assert ageing.ventricle_expansion_mm(30) == 0 < ageing.ventricle_expansion_mm(80)
    assert ageing.lesion_rate(45) == 0 < ageing.lesion_rate(75)


def test_refuses_to_overwrite_a_non_simulated_folder(tmp_path):
    precious = tmp_path / "real"
    precious.mkdir()
    (precious / "participants.tsv").write_text("keep me")
    with pytest.raises(BrainAgeError, match="already exists"):
        simulate_cohort("abide_like", precious, n=2, shape=(12, 12, 12), progress=False)
    with pytest.raises(BrainAgeError, match="not a simulated cohort"):
        simulate_cohort("abide_like", precious, n=2, shape=(12, 12, 12), overwrite=True, progress=False)
    assert (precious / "participants.tsv").read_text() == "keep me"
    sim = simulate_cohort("abide_like", tmp_path / "sim", n=2, shape=(12, 12, 12), progress=False)
    simulate_cohort("abide_like", sim, n=3, shape=(12, 12, 12), overwrite=True, progress=False)
    assert len(load_cohort(sim)) == 3
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob(".*old*"))



def test_a_failing_build_leaves_the_old_cohort_and_no_partial_folder(tmp_path):
    """simulate_cohort and simulate_native_cohort share one build-then-move: a failure midway changes nothing."""
    from brainage_lib.simulation.native import simulate_native_cohort
    from brainage_lib.simulation.simulate import build_cohort_folder

    sim = simulate_cohort("abide_like", tmp_path / "sim", n=2, shape=(12, 12, 12), progress=False)
    before = tree_digest(sim)

    def fail(root):
        (root / "participants.tsv").write_text("half written")
        raise OSError("disk full")

    with pytest.raises(BrainAgeError, match="Writing the cohort to .* failed"):
        build_cohort_folder(sim, fail, overwrite=True)
    assert tree_digest(sim) == before
    assert not list(tmp_path.glob(".*partial*")) and not list(tmp_path.glob(".*old*"))
    precious = tmp_path / "real"
    precious.mkdir()
    (precious / "participants.tsv").write_text("keep me")
    with pytest.raises(BrainAgeError, match="not a simulated cohort"):  # refused before anything is simulated
        simulate_native_cohort("abide_like", precious, n=2, shape=(12, 12, 12), overwrite=True, progress=False)
    assert (precious / "participants.tsv").read_text() == "keep me"

def test_cli_simulate_then_validate(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["simulate", "--preset", "mghbch_like", "--out", str(out), "--n", "3", "--shape", "16", "--quiet"]) == 0
    assert main(["validate", str(out), "--quiet"]) == 0
    assert main(["simulate", "--preset", "nope", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "Unknown preset 'nope'" in err and "abide_like" in err
    assert main(["simulate", "--preset", "abide_like", "--out", str(tmp_path / "y"), "--shape", "16", "16"]) == 2
    assert main(["presets"]) == 0


def test_voxel_size_sets_the_grid():
    g = make_grid(voxel_size=4.0)
    np.testing.assert_allclose(g.voxel_size, 4.0, atol=0.1)
    assert g.shape == (50, 59, 48)
    with pytest.raises(BrainAgeError):
        make_grid((32, 32, 32), voxel_size=2.0)


def test_negative_seed_is_refused_with_a_message(tmp_path, capsys):
    assert main(["simulate", "--preset", "abide_like", "--out", str(tmp_path / "x"), "--seed", "-1", "--n", "2",
                 "--shape", "16", "--quiet"]) == 2
    assert "Seed -1 must be a non-negative integer" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_out_that_is_or_lies_inside_a_file_is_refused(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    args = ["simulate", "--preset", "abide_like", "--n", "2", "--shape", "16", "--quiet", "--out"]
    assert main(args + [str(afile)]) == 2
    assert f"{afile} is an existing file, not a folder" in capsys.readouterr().err
    assert main(args + [str(afile / "sub" / "deeper")]) == 2
    assert f"{afile} is a file, not a folder" in capsys.readouterr().err
    assert afile.read_text() == "keep me" and sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_reference_images_and_expected_change_in_normalised_units(tmp_path):
    root = simulate_cohort("abide_like", tmp_path / "ref", n=3, seed=1, shape=(24, 28, 24), progress=False)
    gt = root / "ground_truth"
    young, old = (np.asarray(nib.load(gt / f"reference_{k}.nii.gz").dataobj, dtype=float) for k in ("young", "old"))
    change = np.asarray(nib.load(gt / "expected_change.nii.gz").dataobj, dtype=float)
    subject = load_volume(load_cohort(root).paths[0])
    # raw units like the subject images: background 0, brain in the hundreds
    assert young.min() == 0 and old.min() == 0 and 0.5 < young.max() / subject.max() < 1.5
    np.testing.assert_allclose(change, np.abs(old / old.max() - young / young.max()), atol=1e-6)
    assert json.loads((gt / "simulation.json").read_text())["expected_change_ages"] == [8.0, 20.0]


def test_abide_like_images_as_after_nonlinear_registration(tmp_path):
    root = simulate_cohort("abide_like", tmp_path / "ab", n=40, seed=2, shape=(12, 12, 12), progress=False)
    truth = pd.read_csv(root / "ground_truth" / "subjects.tsv", sep="\t")
    sites = json.loads((root / "ground_truth" / "sites.json").read_text())
    assert (truth["head_scale"] == 1.0).all()  # no head-size variation left
    assert {s["field_strength"] for s in sites.values()} == {"3T"} and len(sites) == 17
    ratio = np.array([s["i_gm"] / s["i_wm"] for s in sites.values()])
    assert ratio.std() > 0.005  # each site has its own contrast ...
    assert ratio.std() < 0.25 * (0.58 / 0.78 - 0.50 / 0.86)  # ... but spread well inside the 1.5T-3T gap
    other = simulate_cohort("lifespan_train", tmp_path / "life", n=10, seed=2, shape=(12, 12, 12), progress=False)
    assert pd.read_csv(other / "ground_truth" / "subjects.tsv", sep="\t")["head_scale"].std() > 0.005


def test_regional_loss_is_exact_and_never_clipped():
    shape = (24, 28, 24)
    anat = {k: torch.from_numpy(v) for k, v in tissue_maps(shape).items()}
    effect = torch.from_numpy(region_map("frontal", shape))
    rate = PRESETS["abide_like"].effect_rate
    inside, outside = (effect > 0.95).numpy(), (effect == 0).numpy()
    gm = anat["gm"].numpy() > 0.3
    delta = {}
    for age in (8.0, 20.0):
        with_effect, without = tissues_at_age(anat, age, effect, rate), tissues_at_age(anat, age, effect, 0.0)
        np.testing.assert_allclose(with_effect["gm"], without["gm"] * (1 - rate * age * effect), atol=1e-6)
        np.testing.assert_allclose(sum(with_effect.values()), anat["mask"], atol=1e-5)
        assert min(float(v.min()) for v in with_effect.values()) >= -1e-6
        delta[age] = with_effect["gm"].numpy()
    dgm = np.abs(delta[20.0] - delta[8.0])
    assert dgm[inside & gm].mean() > 2.0 * dgm[outside & gm].mean()  # the region thins visibly faster


def test_cli_effect_rate_reaches_the_ground_truth(tmp_path):
    out = tmp_path / "rate"
    assert main(["simulate", "--preset", "abide_like", "--out", str(out), "--n", "2", "--shape", "16", "--effect-rate",
                 "0.004", "--quiet"]) == 0
    assert json.loads((out / "ground_truth" / "simulation.json").read_text())["effect_rate"] == 0.004
    assert main(["simulate", "--preset", "abide_like", "--out", str(tmp_path / "bad"), "--n", "2", "--shape", "16",
                 "--effect-rate", "0.5", "--quiet"]) == 2
