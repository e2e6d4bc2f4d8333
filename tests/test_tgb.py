"""TGB training, synthesis and region-recovery code on tiny inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from brainage_lib.data.datasets import VolumeDataset
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.tgb.gan import GANConfig, TGBCritic, TGBGenerator
from brainage_lib.papers.tgb.regressor import RegressorConfig, TGBRegressor
from brainage_lib.papers.tgb import synthesis as tgb_synthesis
from brainage_lib.papers.tgb import training as tgb
from brainage_lib.papers.tgb.transforms import TGBVolume
from brainage_lib.papers.tgb.claims import claims
from brainage_lib.papers.tgb.regions import recovery_scores, reference_maps
from brainage_lib.papers.tgb.synthesis import load_synthetic, synthesise
from brainage_lib.papers.tgb.training import GANTrainConfig, GANTrainer, train_gan


def tiny_gan():
    cfg = GANConfig(width=0.0625)
    return TGBGenerator(cfg), TGBCritic(cfg)


def test_recovery_scores_against_known_answers():
    ref = np.zeros((10, 10, 10))
    ref[:, :, :1] = 1.0  # the reference region: 10 % of the voxels
    mask = np.ones_like(ref, bool)
    hit = recovery_scores(ref * 3 + 0.01 * np.arange(1000).reshape(ref.shape) / 1000, ref, mask, top_percent=10)
    assert hit["dice_top"] == pytest.approx(1.0) and hit["pearson_r"] > 0.99 and hit["chance"] == pytest.approx(0.1)
    miss = recovery_scores(1 - ref, ref, mask, top_percent=10)
    assert miss["dice_top"] == 0.0 and miss["pearson_r"] == pytest.approx(-1.0)
    half = ref.copy()
    half[:5, :, :1] = 0
    half[:5, :, 1:2] = 1  # half of the top voxels moved out of the region
    assert recovery_scores(half, ref, mask, top_percent=10)["dice_top"] == pytest.approx(0.5)
    with pytest.raises(BrainAgeError):
        recovery_scores(ref, ref[:5], mask)


def test_synthesis_fills_bins_and_is_reused(tmp_path, monkeypatch):
    torch.manual_seed(0)
    gen, _ = tiny_gan()
    ages = np.array([6.2, 6.8, 7.1, 7.5, 7.9, 8.3, 8.6, 9.4])
    images = np.random.default_rng(0).random((len(ages), 16, 16, 16)).astype(np.float32)
    s = synthesise(gen, images, ages, tmp_path / "syn", torch.device("cpu"), min_per_bin=3, progress=False)
    assert s.images.shape[1:] == (16, 16, 16) and len(s) == len(s.images)
    lo, hi = np.minimum(s.pairs["age_i"], s.pairs["age_j"]), np.maximum(s.pairs["age_i"], s.pairs["age_j"])
    assert ((s.ages >= lo - 1e-9) & (s.ages <= hi + 1e-9)).all()
    np.testing.assert_allclose(s.ages, s.pairs["eps"] * s.pairs["age_i"] + (1 - s.pairs["eps"]) * s.pairs["age_j"], atol=1e-5)
    counts = np.bincount(np.floor(np.concatenate([ages, s.ages])).astype(int))[6:10]
    assert (counts >= 3).all()
    monkeypatch.setattr(tgb_synthesis, "_decode_pairs", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-decoded")))
    again = synthesise(gen, images, ages, tmp_path / "syn", torch.device("cpu"), min_per_bin=3, progress=False)
    assert len(again) == len(s) and np.array_equal(np.asarray(again.images), np.asarray(load_synthetic(tmp_path / "syn").images))


def test_joint_gan_and_branch_training_step_changes_weights():
    torch.manual_seed(0)
    gen, critic = tiny_gan()
    reg = TGBRegressor(RegressorConfig(input_shape=(32, 32, 32), width=0.125, fc_units=(16, 8, 4)))
    before = {k: v.clone() for k, v in list(gen.state_dict().items()) + [("reg." + k, v) for k, v in reg.state_dict().items()]}
    x = np.random.default_rng(1).random((4, 32, 32, 32)).astype(np.float32)
    ds = VolumeDataset(x, np.array([8.0, 10.0, 12.0, 14.0]))
    res = train_gan(gen, critic, ds, GANTrainConfig(epochs=1, batch_size=2, n_critic=1), torch.device("cpu"),
                    regressor=reg, progress=False)
    after = {k: v for k, v in list(res.generator.state_dict().items()) + [("reg." + k, v) for k, v in res.branch.state_dict().items()]}
    assert any(not torch.equal(before[k], after[k]) for k in before if not k.startswith("reg."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("reg."))  # the branch learns jointly
    assert len(res.history) == 1 and np.isfinite(res.history.select_dtypes("number").to_numpy()).all()


def test_one_batch_gets_one_joint_update_from_one_generator_pass():
    torch.manual_seed(0)
    gen, critic = tiny_gan()
    trainer = GANTrainer(gen, critic, GANTrainConfig(n_critic=1), torch.device("cpu"))
    x = torch.rand(2, 1, 16, 16, 16)
    calls = {"gen": 0, "critic_on_real": 0}
    gen.register_forward_pre_hook(lambda *_: calls.__setitem__("gen", calls["gen"] + 1))
    critic.register_forward_pre_hook(lambda _, args: calls.__setitem__(
        "critic_on_real", calls["critic_on_real"] + int(torch.equal(args[0], x))))
    d_before = [p.detach().clone() for p in critic.parameters()]
    trainer.step([(x, torch.tensor([8.0, 9.0]))])
    steps = {name: opt.state[opt.param_groups[0]["params"][0]]["step"] for name, opt in
             (("critic", trainer.opt_d), ("generator", trainer.opt_g))}
    assert steps == {"critic": 1, "generator": 1} and calls == {"gen": 1, "critic_on_real": 1}
    assert any(not torch.equal(a, b) for a, b in zip(d_before, critic.parameters()))


def test_each_critic_update_gets_a_fresh_real_batch():
    torch.manual_seed(0)
    gen, critic = tiny_gan()
    trainer = GANTrainer(gen, critic, GANTrainConfig(n_critic=2), torch.device("cpu"))
    batches = [(torch.rand(2, 1, 16, 16, 16), torch.tensor([8.0, 9.0])) for _ in range(2)]
    seen: list[torch.Tensor] = []
    critic.register_forward_pre_hook(lambda _, args: seen.append(args[0].detach().clone()))
    losses = trainer.step(batches)
    assert all(any(torch.equal(s, x) for s in seen) for x, _ in batches)  # the critic saw both real batches
    steps = {name: opt.state[opt.param_groups[0]["params"][0]]["step"] for name, opt in
             (("critic", trainer.opt_d), ("generator", trainer.opt_g))}
    assert steps == {"critic": 2, "generator": 1}
    assert np.isfinite(list(losses.values())).all()


def test_train_gan_groups_batches_by_n_critic(monkeypatch):
    sizes: list[int] = []
    step = GANTrainer.step
    monkeypatch.setattr(tgb.GANTrainer, "step",
                        lambda self, batches, *rest: sizes.append(len(batches)) or step(self, batches, *rest))
    gen, critic = tiny_gan()
    ds = VolumeDataset(np.random.default_rng(0).random((5, 16, 16, 16)).astype(np.float32), np.arange(8.0, 13.0))
    train_gan(gen, critic, ds, GANTrainConfig(epochs=2, batch_size=1, n_critic=2), torch.device("cpu"), progress=False)
    assert sizes == [2, 2, 1] * 2  # each epoch: every image once for the critic, a generator update every 2 batches


def test_reference_maps_on_the_input_grid(tiny_abide):
    refs = reference_maps(tiny_abide / "ground_truth", TGBVolume(size=32))
    assert {"effect", "mask"} <= set(refs)
    assert all(v.shape == (32, 32, 32) for v in refs.values())
    eff, mask = refs["effect"], refs["mask"]
    assert 0.05 < mask.mean() < 0.8 and eff.max() > 0.5
    assert eff[mask].mean() > 5 * eff[~mask].mean()  # the effect region lies inside the brain
    none = (reference_maps(None, TGBVolume(size=32)), reference_maps(tiny_abide, TGBVolume(size=32)))
    assert none == (None, None)  # real data: no ground truth


def test_claims_judged_from_records():
    def recs(**values):
        return {k.replace("__", "."): {"value": v} for k, v in values.items()}

    base = {"table1__REG__mae_mean": 1.7, "table1__REG__mse_mean": 5.2, "baseline__mean_prediction__mae": 3.5,
            "table1__REG-GAN__mae_mean": 1.9, "table1__REG-GAN__mse_mean": 6.7,
            "baseline__validation_mean_prediction__mae": 3.4, "validation__REG__mae": 1.8,
            "validation__REG-GAN__mae": 2.0, "reconstruction__REG-GAN__share": 0.95}
    verdict = {c.key: c.outcome for c in claims(recs(**base))}
    assert verdict["reg_learns"] is True  # REG beats the mean
    assert verdict["reg_gan_worse"] is True  # REG-GAN worse than REG
    assert sum(v is None for v in verdict.values()) == len(verdict) - 2  # nothing else was recorded
    base["table1__REG-GAN__mae_mean"] = 1.5
    assert {c.key: c.outcome for c in claims(recs(**base))}["reg_gan_worse"] is False
    base["validation__REG-GAN__mae"] = 3.0  # no better than predicting the validation mean: not testable
    c = {c.key: c for c in claims(recs(**base))}
    assert c["reg_gan_worse"].outcome is None and "REG-GAN did not learn" in c["reg_gan_worse"].reason
    assert c["reg_learns"].outcome is True and min(len(x.rule) for x in c.values()) > 10


# ---- train_gan on the training engine: resumable stages and DDP ---------------------------

def _gan_data(n, seed=0):
    rng = np.random.default_rng(seed)
    return VolumeDataset(rng.random((n, 16, 16, 16)).astype(np.float32), rng.uniform(6, 20, n))


def _gan_models(seed=0, branch=True):
    torch.manual_seed(seed)
    gen, critic = tiny_gan()
    reg = TGBRegressor(RegressorConfig(input_shape=(16,) * 3, width=0.125, channels=(16, 32, 64), fc_units=(8,)))
    return gen, critic, reg if branch else None


def _gan_weights(res):
    parts = (("generator", res.generator), ("critic", res.critic), ("branch", res.branch))
    return {f"{name}.{k}": v.detach().clone() for name, m in parts if m is not None for k, v in m.state_dict().items()}


def _same_weights(a, b, atol=0.0):
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


class Killed(Exception):
    pass


def test_a_gan_stage_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """Killed right after a mid-epoch checkpoint, a GAN + branch stage resumes to the same weights and history."""
    from brainage_lib.engine.fabric import Engine, Stage

    ds, val = _gan_data(6), _gan_data(3, seed=1)
    cfg = GANTrainConfig(epochs=2, batch_size=2, lr=1e-3, lr_step=1, n_critic=2, seed=3)  # 2 steps an epoch

    def run(engine, seed=0):
        gen, critic, reg = _gan_models(seed)
        return train_gan(gen, critic, ds, cfg, engine, regressor=reg, val=val, desc="GAN", progress=False)

    whole = run(Engine("cpu", checkpoints=tmp_path / "a"))
    saves = {"n": 0}
    real_save = Stage.save

    def save_then_die(self, fabric, state, final=False):
        real_save(self, fabric, state, final)
        saves["n"] += 1
        if saves["n"] == 4:  # 3 saves an epoch (2 steps, its end): epoch 1 after its first step
            raise Killed

    engine = Engine("cpu", checkpoints=tmp_path / "b", save_every_s=0)
    monkeypatch.setattr(Stage, "save", save_then_die)
    with pytest.raises(Killed):
        run(engine)
    monkeypatch.setattr(Stage, "save", real_save)
    (last,) = (tmp_path / "b").glob("GAN-*/last.ckpt")
    assert not list((tmp_path / "b").glob("GAN-*/final.ckpt"))
    resumed = run(engine, seed=9)
    assert engine.log[-1]["status"] == "resumed" and engine.log[-1]["epoch"] == 1
    assert _same_weights(_gan_weights(resumed), _gan_weights(whole))
    drop = ["seconds"]
    assert resumed.history.drop(columns=drop).equals(whole.history.drop(columns=drop))
    assert resumed.best_epoch == whole.best_epoch and resumed.stage_key == whole.stage_key is not None
    again = run(engine, seed=7)
    assert engine.log[-1]["status"] == "loaded"
    assert _same_weights(_gan_weights(again), _gan_weights(whole))
    assert again.history.equals(resumed.history) and again.wall_time_s == resumed.wall_time_s  # kept when loaded
    assert not last.exists()
    plain = train_gan(*_gan_models()[:2], ds, cfg, torch.device("cpu"), regressor=_gan_models()[2], val=val,
                      progress=False)
    assert plain.stage_key is None and _same_weights(_gan_weights(plain), _gan_weights(whole))


def test_synthesis_keys_on_the_generator_stage(tmp_path, monkeypatch):
    ages = np.array([6.2, 6.8, 7.1, 7.5, 7.9, 8.3])
    images = np.random.default_rng(0).random((len(ages), 16, 16, 16)).astype(np.float32)
    cpu = torch.device("cpu")
    s = synthesise(tiny_gan()[0], images, ages, tmp_path / "syn", cpu, min_per_bin=2, progress=False, stage_key="abc")
    assert s.meta["stage_key"] == "abc"
    decoded = []
    real_decode = tgb_synthesis._decode_pairs
    monkeypatch.setattr(tgb_synthesis, "_decode_pairs", lambda *a, **k: decoded.append(1) or real_decode(*a, **k))
    synthesise(tiny_gan()[0], images, ages, tmp_path / "syn", cpu, min_per_bin=2, progress=False, stage_key="abc")
    assert not decoded  # other weights, the same stage: the saved set
    synthesise(tiny_gan()[0], images, ages, tmp_path / "syn", cpu, min_per_bin=2, progress=False, stage_key="abd")
    assert decoded  # another stage: decoded again


@pytest.mark.parametrize("n_critic", [1, 2])
def test_gan_ddp_on_two_processes_matches_one(tmp_path, n_critic):
    """Two gloo processes (global batches of 4, 4 and 3 split 2/2 and 2/1), gradient penalty included, match one."""
    from brainage_lib.engine.fabric import Engine

    ds, val = _gan_data(11), _gan_data(2, seed=1)
    cfg = GANTrainConfig(epochs=2, batch_size=4, lr=1e-4, n_critic=n_critic, seed=1)

    def run(engine):
        gen, critic, reg = _gan_models()
        return train_gan(gen, critic, ds, cfg, engine, regressor=reg, val=val, desc="GAN", progress=False)

    one = run(Engine("cpu", 1, tmp_path / "one"))
    two_engine = Engine("cpu", 2, tmp_path / "two")
    two = run(two_engine)
    assert [e["status"] for e in two_engine.log] == ["loaded"]  # rank 0's final checkpoint, read back here
    assert _same_weights(_gan_weights(two), _gan_weights(one), atol=1e-5)
    start = _gan_weights(type("R", (), dict(zip(("generator", "critic", "branch"), _gan_models())))())
    assert not _same_weights(_gan_weights(two), start, atol=1e-4)  # it did train
    losses = ["critic", "wasserstein", "gp", "gen", "adversarial", "l1", "task", "val_objective"]
    assert np.allclose(two.history[losses], one.history[losses], atol=1e-5, rtol=1e-6)
    assert two.best_epoch == one.best_epoch
