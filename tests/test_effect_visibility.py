"""The simulated regional effect is visible in the images a model sees, wherever the region is.

A 300-subject ``abide_like`` cohort on the quick grid (48^3) is simulated for a lobe that
is not the preset's default and for a lobe-sized sphere around a point drawn at random
inside the brain. Its images go through TGB's own input transform (``TGBVolume``, 32^3,
min-max per image) and are scored by the TGB notebook's own functions
(``mean_difference_map``, ``reference_maps``, ``recovery_scores``), none of which the
simulator uses. A region smaller than the top 10 % is compared over as many voxels as its
core holds (``visibility.top_count``): the occipital box (4-6 % of the brain) and a sphere of
any size pass the same bars as a lobe.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from brainage_lib.data.cohort import load_cohort
from brainage_lib.data.transforms import load_volume
from brainage_lib.papers.tgb.transforms import TGBVolume
from brainage_lib.papers.tgb.regions import mean_difference_map, recovery_scores, reference_maps
from brainage_lib.simulation import visibility
from brainage_lib.simulation.anatomy import make_grid, region_map, tissue_maps
from brainage_lib.simulation.simulate import simulate_cohort

GRID, SIZE, N = (48, 48, 48), 32, 300


def random_sphere(seed: int = 20240607) -> str:
    """A sphere of radius 20-50 mm around a random brain voxel, redrawn (same seeded RNG) until it holds grey
    matter (its effect map is not empty)."""
    rng = np.random.default_rng(seed)
    grid = make_grid(GRID)
    brain = tissue_maps(GRID)["mask"] > 0.5
    inside, xyz = np.argwhere(brain), grid.mm_coordinates()
    while True:
        i, j, k = inside[rng.integers(len(inside))]
        spec = "sphere:{:.0f},{:.0f},{:.0f},".format(*xyz[:, i, j, k]) + f"{rng.uniform(20, 50):.0f}"
        if (region_map(spec, GRID) * tissue_maps(GRID)["gm"]).max() > 0.1:
            return spec


REGIONS = ["occipital", random_sphere()]


@pytest.fixture(scope="module", params=REGIONS)
def cohort(request, tmp_path_factory):
    t0 = time.perf_counter()
    root = simulate_cohort("abide_like", tmp_path_factory.mktemp("vis") / "c", n=N, seed=0, shape=GRID,
                           effect_region=request.param, progress=False)
    print(f"{request.param}: {N} subjects at {GRID[0]}^3 simulated in {time.perf_counter() - t0:.1f} s")
    return request.param, root


def test_real_and_oracle_difference_maps_find_the_region(cohort):
    region, root = cohort
    c = load_cohort(root)
    tgb = TGBVolume(size=SIZE)
    young, old = c.ages <= 9, c.ages >= 18
    assert young.sum() >= 30 and old.sum() >= 15
    images = {g: np.stack([tgb(load_volume(p)) for p, keep in zip(c.paths, sel) if keep]) for g, sel in
              (("young", young), ("old", old))}
    refs = reference_maps(root / "ground_truth", tgb)
    real = recovery_scores(mean_difference_map(images["young"], images["old"]), refs["effect"], refs["mask"], 10.0)
    gt = root / "ground_truth"
    oracle_map = np.abs(tgb(load_volume(gt / "reference_old.nii.gz")) - tgb(load_volume(gt / "reference_young.nii.gz")))
    oracle = recovery_scores(oracle_map, refs["effect"], refs["mask"], 10.0)
    np.testing.assert_allclose(refs["oracle"], oracle_map, atol=1e-6)  # the TGB notebook's oracle is this map
    print(f"{region}: real Dice {real['dice_top']:.3f} (r {real['pearson_r']:.2f}), oracle Dice {oracle['dice_top']:.3f}, "
          f"chance {real['chance']:.2f}")
    assert real["dice_top"] >= 0.3
    assert oracle["dice_top"] >= 0.6
    # the library's own scores (used by notebook 00) agree with the TGB notebook's
    maps = visibility.ground_truth_maps(gt, SIZE)
    np.testing.assert_allclose(maps["oracle"], oracle_map, atol=1e-6)
    assert visibility.visibility_scores(maps)["oracle_dice_top"] == pytest.approx(oracle["dice_top"])
    vis = visibility.difference_visibility(np.concatenate([images["young"], images["old"]]),
                                           np.r_[c.ages[young], c.ages[old]], refs["effect"], refs["mask"], 9, 18)
    assert vis["dice_top"] == pytest.approx(real["dice_top"], abs=1e-9)


def test_without_the_effect_the_region_is_not_found(tmp_path):
    """Control: the same preset with ``effect_rate=0`` leaves only global ageing, which misses the region."""
    for region in REGIONS:
        root = simulate_cohort("abide_like", tmp_path / region.replace(":", "_"), n=1, shape=GRID, effect_region=region,
                               effect_rate=0.0, progress=False)
        s = visibility.visibility_scores(visibility.ground_truth_maps(root / "ground_truth", SIZE))
        print(f"{region}, no effect: oracle Dice {s['oracle_dice_top']:.3f}, share inside {s['share_inside']:.3f} "
              f"(region {s['region_fraction']:.3f})")
        assert s["oracle_dice_top"] < 0.4


def test_model_input_and_top_dice_match_the_tgb_transform_and_score():
    rng = np.random.default_rng(0)
    vol = rng.gamma(2.0, 100.0, (30, 36, 28)).astype(np.float32)
    np.testing.assert_allclose(visibility.model_input(vol, 20), TGBVolume(size=20)(vol), atol=1e-6)
    a, b = rng.random((12, 12, 12)), rng.random((12, 12, 12))
    mask = rng.random((12, 12, 12)) > 0.3
    assert visibility.top_dice(a, b, mask, 10.0) == pytest.approx(recovery_scores(a, b, mask, 10.0)["dice_top"])
    assert visibility.top_dice(a, a, mask, 10.0) == 1.0
