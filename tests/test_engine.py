"""The training engine: same numbers as a plain DataLoader loop, resumable stages, and DDP equal to one process."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from brainage_lib.data.datasets import VolumeDataset
from brainage_lib.engine.fabric import Engine, Stage, batch_loader, epoch_order
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.tgb.regressor import RegressorConfig, TGBRegressor

CPU = torch.device("cpu")


def _data(n=12, seed=0):
    rng = np.random.default_rng(seed)
    ages = rng.uniform(5, 20, n).astype(np.float32)
    vols = (rng.normal(size=(n, 32, 32, 32)) + ages[:, None, None, None] / 10).astype(np.float16)
    return VolumeDataset(vols, ages)


def _model(seed=0):
    torch.manual_seed(seed)
    return TGBRegressor(RegressorConfig(input_shape=(32, 32, 32), width=0.125, fc_units=(8,)))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b, atol=0.0):
    return all(torch.allclose(a[k], b[k], atol=atol, rtol=0) for k in a)


def _history(res):
    return res.history.drop(columns="seconds")


def test_epoch_order_is_the_dataloader_order():
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    loader = DataLoader(list(range(10)), batch_size=4, shuffle=True, generator=g1)
    for _ in range(3):
        assert torch.cat(list(loader)).tolist() == epoch_order(10, g2).tolist()


def test_batch_loader_leaves_the_global_rng_alone():
    """Dropout draws from torch's global generator: loading batches must not move it (a seeded DataLoader does not)."""
    ds = _data(8)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    assert len(list(batch_loader(ds, CPU)([[0, 1, 2, 3], [4, 5, 6, 7]]))) == 2
    assert torch.equal(torch.rand(3), expected)


def test_same_weights_as_a_plain_dataloader_loop():
    """The engine's loop on one CPU process equals the textbook loop (independent code) bit for bit."""
    ds, cfg = _data(), TrainConfig(epochs=3, batch_size=4, lr=1e-3, lr_step=2, seed=5)
    ref = _model()
    ages = ds.ages.astype(np.float64)
    mean, sd = float(ages.mean()), float(ages.std())
    opt = torch.optim.Adam(ref.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_gamma)
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(cfg.seed))
    for _ in range(cfg.epochs):
        ref.train()
        for x, y in loader:
            loss = nn.L1Loss()(ref(x).reshape(-1).float(), ((y - mean) / sd).float())
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    res = train_regressor(_model(), ds, None, cfg, CPU, progress=False)
    assert _same(_weights(res.model), _weights(ref))


class Killed(Exception):
    pass


def test_a_stage_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    """Killed right after its n-th checkpoint (mid-epoch ones every step), a stage resumes to the same weights."""
    ds, val = _data(12), _data(6, seed=1)
    cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-3, lr_step=2, seed=2)
    whole = train_regressor(_model(), ds, val, cfg, Engine("cpu", checkpoints=tmp_path / "a"), "REG", progress=False)
    saves = {"n": 0}
    real_save = Stage.save

    def save_then_die(self, fabric, state, final=False):
        real_save(self, fabric, state, final)
        saves["n"] += 1
        if saves["n"] == 5:  # epoch 1, batch 1 of 3: a mid-epoch checkpoint
            raise Killed

    engine = Engine("cpu", checkpoints=tmp_path / "b", save_every_s=0)
    monkeypatch.setattr(Stage, "save", save_then_die)
    with pytest.raises(Killed):
        train_regressor(_model(), ds, val, cfg, engine, "REG", progress=False)
    monkeypatch.setattr(Stage, "save", real_save)
    (last,) = (tmp_path / "b").glob("REG-*/last.ckpt")
    assert not list((tmp_path / "b").glob("REG-*/final.ckpt"))
    resumed = train_regressor(_model(seed=9), ds, val, cfg, engine, "REG", progress=False)
    assert engine.log[-1]["status"] == "resumed" and engine.log[-1]["epoch"] == 1
    assert _same(_weights(resumed.model), _weights(whole.model))
    assert _history(resumed).equals(_history(whole)) and resumed.best_epoch == whole.best_epoch
    again = train_regressor(_model(seed=7), ds, val, cfg, engine, "REG", progress=False)
    assert engine.log[-1]["status"] == "loaded"
    assert _same(_weights(again.model), _weights(whole.model)) and _history(again).equals(_history(whole))
    assert not last.exists()  # the finished stage keeps only final.ckpt


def test_a_changed_parameter_or_force_retrains(tmp_path):
    ds = _data(8)
    cfg = TrainConfig(epochs=1, batch_size=4, seed=0)
    engine = Engine("cpu", checkpoints=tmp_path)
    train_regressor(_model(), ds, None, cfg, engine, "REG", progress=False)
    train_regressor(_model(), ds, None, TrainConfig(epochs=1, batch_size=4, seed=0, lr=2e-4), engine, "REG",
                    progress=False)
    train_regressor(_model(), _data(8, seed=3), None, cfg, engine, "REG", progress=False)
    assert [e["status"] for e in engine.log] == ["trained"] * 3
    assert len(list(tmp_path.glob("REG-*/final.ckpt"))) == 3
    forced = Engine("cpu", checkpoints=tmp_path, force=True)
    train_regressor(_model(), ds, None, cfg, forced, "REG", progress=False)
    assert forced.log[-1]["status"] == "trained"


def test_devices_that_do_not_divide_the_batch_fall_back(tmp_path, capsys):
    """A batch of 5 cannot be shared by 2 processes: the stage trains on one, and says so."""
    res = train_regressor(_model(), _data(10), None, TrainConfig(epochs=1, batch_size=5), Engine("cpu", 2, tmp_path),
                          "REG", progress=False)
    assert "1 process(es) train this stage" in capsys.readouterr().out
    train_regressor(_model(), _data(9), None, TrainConfig(epochs=1, batch_size=4), Engine("cpu", 2, tmp_path / "b"),
                    "REG", progress=False)  # a last batch of 1 cannot be split over 2
    assert "(the last one 1) cannot be shared by 2 processes: 1 process(es)" in capsys.readouterr().out
    ref = train_regressor(_model(), _data(10), None, TrainConfig(epochs=1, batch_size=5), CPU, progress=False)
    assert _same(_weights(res.model), _weights(ref.model))
    with pytest.raises(BrainAgeError, match="DEVICES=0"):
        Engine("cpu", 0)


def test_ddp_on_two_processes_matches_one(tmp_path):
    """Two gloo processes, each half of every global batch of 4, end with the one-process weights."""
    ds, val = _data(12), _data(4, seed=1)
    cfg = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=1)
    one = train_regressor(_model(), ds, val, cfg, Engine("cpu", 1, tmp_path / "one"), "REG", progress=False)
    two_engine = Engine("cpu", 2, tmp_path / "two")
    two = train_regressor(_model(), ds, val, cfg, two_engine, "REG", progress=False)
    assert [e["status"] for e in two_engine.log] == ["loaded"]  # rank 0's final checkpoint, read back here
    assert _same(_weights(two.model), _weights(one.model), atol=1e-5)
    assert not _same(_weights(two.model), _weights(_model()), atol=1e-3)  # it did train
    assert np.allclose(two.history["train_loss"], one.history["train_loss"], atol=1e-5)
    assert two.best_epoch == one.best_epoch


def test_a_saved_model_is_its_stage_final_checkpoint(tmp_path):
    """One file per trained model: the saved model holds the stage's final checkpoint, a re-run loads the stage from
    it, and a model saved under the same name by another stage hands the first one's checkpoint back to its folder."""
    from dataclasses import asdict

    from brainage_lib.inference.cards import ModelCard, export_model, load_model, share_model

    ds, stages, path = _data(8), tmp_path / "stages", tmp_path / "models" / "REG.model.pt"
    cfgs = {"a": TrainConfig(epochs=2, batch_size=4, seed=0), "b": TrainConfig(epochs=2, batch_size=4, seed=0, lr=3e-4)}

    def train(which, force=False):
        engine = Engine("cpu", checkpoints=stages, force=force)
        res = train_regressor(_model(seed=5), ds, None, cfgs[which], engine, "REG", progress=False)
        return res, engine.log[-1]["status"]

    def save(res, which):
        card = ModelCard(paper="TGB", notebook="01_tgb", model="REG", architecture="TGBRegressor",
                         config=asdict(res.model.config), transform={"name": "tgb", "size": 32}, inputs="volume",
                         profile="unit", seed=0, training_data=which, space={}, test_mae=None)
        return export_model(path, res.model, card, res.stage_dir)

    def files():
        return sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.suffix in (".ckpt", ".pt"))

    a, status = train("a")
    assert status == "trained" and save(a, "a") == path
    assert files() == ["models/REG.model.pt"]  # the stage's final checkpoint is the saved model
    blob = torch.load(path, weights_only=True)
    assert {"state_dict", "card", "model", "opt", "history"} <= set(blob) and blob["stage"]["name"] == "REG"
    model, card = load_model(path)
    assert card.training_data == "a" and _same(_weights(model), _weights(a.model))
    again, status = train("a")
    assert status == "loaded" and _same(_weights(again.model), _weights(a.model)) and _history(again).equals(_history(a))
    assert "1 finished stage(s)" in Engine("cpu", checkpoints=stages).banner()

    b, _ = train("b")
    save(b, "b")  # the same name: a's checkpoint goes back to a's folder
    assert sorted(files()) == sorted([f"stages/{a.stage_dir.name}/final.ckpt", "models/REG.model.pt"])
    assert load_model(path)[1].training_data == "b"
    a2, status = train("a")
    assert status == "loaded" and _same(_weights(a2.model), _weights(a.model))
    b2, status = train("b")
    assert status == "loaded" and _same(_weights(b2.model), _weights(b.model))

    forced, status = train("a", force=True)
    assert status == "trained" and _same(_weights(forced.model), _weights(a.model))  # same seed, same weights
    save(forced, "a")
    assert sorted(files()) == sorted([f"stages/{b.stage_dir.name}/final.ckpt", "models/REG.model.pt"])
    assert load_model(path)[1].training_data == "a" and train("b")[1] == "loaded" and train("a")[1] == "loaded"

    other = share_model(path, tmp_path / "other.model.pt")  # weights and card only
    share_model(other, path)  # written over a's saved model: a's checkpoint goes back to its folder first
    assert sorted(files()) == sorted([f"stages/{a.stage_dir.name}/final.ckpt", f"stages/{b.stage_dir.name}/final.ckpt",
                                      "models/REG.model.pt", "other.model.pt"])
    assert set(torch.load(path, weights_only=True)) == {"state_dict", "card"} and train("a")[1] == "loaded"
