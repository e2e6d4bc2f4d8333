"""DRY_RUN: the profile's architectures and input sizes on tiny cohorts, a fixed number of optimiser steps."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from brainage_lib import paths
from brainage_lib.data.datasets import VolumeDataset
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.diff.diffae import DiffAEConfig
from brainage_lib.papers.tgb.gan import GANConfig, TGBCritic, TGBGenerator
from brainage_lib.papers.diff.training import DiffTrainConfig, train_diffae
from brainage_lib.papers.tgb.training import GANTrainConfig, train_gan
from brainage_lib.run.params import DRY_RUN_STEPS, load_dry_run, resolve_params
from brainage_lib.run.runner import check_run, notebook_names, parameter_types, parameters_namespace

# the parameters that set a notebook's networks and input sizes: a dry run never changes them
ARCHITECTURE = {
    "00_cohorts": {"SHAPE"},
    "01_tgb": {"SHAPE", "SIZE", "REG_WIDTH", "GAN_WIDTH", "N_CRITIC"},
    "02_diff": {"SHAPE", "SLICE_SIZE", "CHANNELS", "NUM_RES_BLOCKS", "NORM_GROUPS", "MID_ATTENTION_BLOCKS", "Z_DIM",
                "DBN_CHANNELS"},
    "03_lstm": {"SHAPE", "ATLAS_SHAPE", "SLICE_SIZE", "POOL_K", "WIDTH", "STEM_KERNEL"},
}


def cfg_of(nb: str, profile: str, **values):
    return resolve_params(nb, parameters_namespace(nb, PROFILE=profile, **values))


@pytest.mark.parametrize("nb", sorted(ARCHITECTURE))
def test_dry_run_files_shrink_cohorts_never_networks(nb):
    overlay = load_dry_run(nb)
    types = parameter_types(nb)
    assert overlay, f"{nb} has no dry-run values"
    assert not set(overlay) & ARCHITECTURE[nb], f"{nb}.dryrun.yaml changes an architecture or input size"
    for key, value in overlay.items():
        assert key in types and isinstance(value, types[key][0]), f"{nb}.dryrun.yaml: {key} = {value!r}"


def test_every_training_notebook_takes_dry_run_false_in_every_profile():
    for nb in ("01_tgb", "02_diff", "03_lstm"):
        assert parameter_types(nb)["DRY_RUN"] == ((bool,), True)
        for profile in ("smoke", "quick", "paper"):
            assert yaml.safe_load((paths.params_dir() / f"{nb}.{profile}.yaml").read_text())["DRY_RUN"] is False


def test_dry_run_takes_the_paper_sizes_and_the_tiny_cohort():
    paper = yaml.safe_load((paths.params_dir() / "01_tgb.paper.yaml").read_text())
    cfg = cfg_of("01_tgb", "paper", DRY_RUN=True, N_PERM=3)
    assert cfg.dry_run and cfg.max_steps == DRY_RUN_STEPS and cfg.label == "paper (dry run)"
    assert cfg.N_SUBJECTS == load_dry_run("01_tgb")["N_SUBJECTS"] and cfg.sources["N_SUBJECTS"] == "dry run"
    assert cfg.N_PERM == 3 and cfg.sources["N_PERM"] == "override"  # an explicit value beats the dry run's
    assert (cfg.SIZE, cfg.REG_WIDTH, cfg.GAN_WIDTH) == (paper["SIZE"], paper["REG_WIDTH"], paper["GAN_WIDTH"])
    banner = cfg.banner()
    assert banner.startswith("## DRY RUN") and "NO number in this notebook is a result" in banner
    assert "`DRY_RUN` = True" in banner and "`N_SUBJECTS` = 24" in banner
    plain = cfg_of("01_tgb", "paper")
    assert not plain.dry_run and plain.max_steps is None and "DRY RUN" not in plain.banner()


def test_a_notebook_without_training_takes_dry_run_from_the_runner():
    ns = parameters_namespace("00_cohorts", PROFILE="paper", DRY_RUN=True)  # as papermill injects it
    cfg = resolve_params("00_cohorts", ns)
    assert cfg.dry_run and cfg.N_SUBJECTS == load_dry_run("00_cohorts")["N_SUBJECTS"]
    assert cfg.as_dict()["DRY_RUN"] is True and "DRY RUN" in cfg.banner()
    assert check_run("00_cohorts", "paper", {"DRY_RUN": True})[1] == {"DRY_RUN": True}
    with pytest.raises(BrainAgeError, match="expects bool"):
        check_run("00_cohorts", "paper", {"DRY_RUN": 3})
    assert "04_summary" in notebook_names()
    with pytest.raises(BrainAgeError, match="Unknown parameter"):
        check_run("04_summary", "paper", {"DRY_RUN": True})


@pytest.fixture
def adam_steps(monkeypatch) -> list:
    """One entry per Adam step taken while the test runs."""
    steps = []
    orig = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (steps.append(1), orig(self, *a, **k))[1])
    return steps


def test_train_regressor_stops_after_max_steps(adam_steps):
    steps = adam_steps
    gen = np.random.default_rng(0)
    ds = VolumeDataset(gen.random((12, 4, 4, 4)).astype(np.float32), gen.uniform(5, 20, 12))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 1))
    res = train_regressor(model, ds, ds, TrainConfig(epochs=5, batch_size=2, max_steps=3), torch.device("cpu"),
                          progress=False)
    assert len(steps) == 3 and len(res.history) == 1 and np.isfinite(res.history["val_mae"].iloc[0])
    full = train_regressor(model, ds, None, TrainConfig(epochs=2, batch_size=4), torch.device("cpu"), progress=False)
    assert len(steps) == 3 + 2 * 3 and len(full.history) == 2


def test_gan_and_diffae_stop_after_max_steps(adam_steps):
    steps = adam_steps
    gen = np.random.default_rng(0)
    vols = VolumeDataset(gen.random((8, 16, 16, 16)).astype(np.float32), gen.uniform(5, 20, 8))
    gcfg = GANConfig(width=0.0625)
    res = train_gan(TGBGenerator(gcfg), TGBCritic(gcfg), vols, GANTrainConfig(epochs=3, batch_size=2, max_steps=2),
                    torch.device("cpu"), val=vols, progress=False)
    assert len(steps) == 2 * 2 and len(res.history) == 1  # generator and critic each stepped twice
    steps.clear()
    slices = VolumeDataset(gen.random((12, 16, 16)).astype(np.float32), gen.uniform(20, 80, 12))
    dcfg = DiffAEConfig(image_size=16, channels=(8, 8), num_res_blocks=1, norm_groups=4, mid_attention_blocks=1, z_dim=8)
    res = train_diffae(dcfg, slices, slices, DiffTrainConfig(epochs=3, batch_size=4, max_steps=2), torch.device("cpu"),
                       progress=False)
    assert len(steps) == 2 and len(res.history) == 1 and np.isfinite(res.history["val_mae"].iloc[0])
