"""Unit tests for the DIFF training loop (brainage_lib.papers.diff.training) and its tables (brainage_lib.papers.diff.evaluation)."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats as sps
from torch.utils.data import TensorDataset

from brainage_lib.data.datasets import SliceDataset
from brainage_lib.engine.fabric import Engine, Stage, epoch_order, global_batches, local_share
from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.diff.diffae import DiffAE, DiffAEConfig, diffae_loss, make_scheduler
from brainage_lib.papers.diff import training as diff
from brainage_lib.papers.diff.claims import claims
from brainage_lib.papers.diff.evaluation import evaluate, numbers, record_evaluation, reference_numbers, wide_table
from brainage_lib.papers.diff.training import (DiffTrainConfig, als_survival, open_diff_cohorts,
                                               parse_widths, predict_diffae, recalibrate_head_bn,
                                               split_training_cohort, train_diffae)
from brainage_lib.run.results import Recorder

torch.set_num_threads(1)
TINY = DiffAEConfig(image_size=16, channels=(8, 16), num_res_blocks=1, norm_groups=8, mid_attention_blocks=1,
                    z_dim=16, head_hidden=(16, 8), ddim_steps=5)
CPU = torch.device("cpu")
NAN = float("nan")


def blob_slices(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Discs whose radius and brightness follow age: (n, size, size) in [0, 1] and ages 20-80."""
    rng = np.random.default_rng(seed)
    ages = rng.uniform(20, 80, n)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    radius = 2 + 5 * (ages - 20) / 60
    imgs = np.exp(-(r[None] / radius[:, None, None]) ** 2) * (0.4 + 0.6 * (ages[:, None, None] - 20) / 60)
    return np.clip(imgs + rng.normal(0, 0.02, imgs.shape), 0, 1).astype(np.float32), ages


# ---- semi-supervised training --------------------------------------------------

def test_training_loop_feeds_unlabelled_images_with_nan_ages(monkeypatch) -> None:
    imgs, ages = blob_slices(24, seed=0)
    ages[[1, 5, 9, 13, 17, 21]] = NAN  # a quarter unlabelled
    seen: list[tuple[int, int]] = []
    units: set[str] = set()

    def spy(model, x, age, scheduler, generator=None, **kw):
        seen.append((x.shape[0], int(torch.isnan(age).sum())))
        units.add(kw["age_loss"])
        return diffae_loss(model, x, age, scheduler, generator, **kw)

    monkeypatch.setattr(diff, "diffae_loss", spy)
    train = SliceDataset(imgs, ages, np.arange(20))
    val = SliceDataset(imgs, ages, np.array([20, 22, 23]))
    res = train_diffae(TINY, train, val, DiffTrainConfig(epochs=2, batch_size=6, lr=1e-3, age_loss="standardised"),
                       CPU, progress=False)
    assert units == {"standardised"}
    n_unlabelled = int(np.isnan(ages[:20]).sum())
    # drop_last: 3 full batches of 6 per epoch, every image passes through the loss unfiltered
    assert [b for b, _ in seen] == [6] * 6
    assert sum(u for _, u in seen) == res.history["unlabelled"].sum() > 0
    assert any(0 < u < 6 for _, u in seen)  # batches mix labelled and unlabelled slices
    assert (res.history["labelled"] + res.history["unlabelled"] == 18).all()
    assert res.history["unlabelled"].sum() <= 2 * n_unlabelled
    labelled = ages[:20][~np.isnan(ages[:20])]
    assert res.model.config.age_offset == pytest.approx(labelled.mean())  # standardised on labelled rows only
    assert res.model.config.age_scale == pytest.approx(labelled.std())


def test_age_gradient_ignores_unlabelled_pixels() -> None:
    """Unlabelled images reach the weights only through the diffusion loss."""
    torch.manual_seed(0)
    model = DiffAE(TINY).train()
    imgs, ages = blob_slices(6, seed=1)
    x = torch.from_numpy(imgs)[:, None]
    age = torch.tensor(ages, dtype=torch.float32)
    age[[1, 4]] = NAN
    x_other = x.clone()
    x_other[[1, 4]] = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(5))

    def grads(inputs: torch.Tensor, part: str) -> list[torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(3)  # same dropout masks
        out = diffae_loss(model, inputs, age, make_scheduler(TINY), torch.Generator().manual_seed(9))
        getattr(out, part).backward()
        return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in model.parameters()]

    for a, b in zip(grads(x, "age_mse"), grads(x_other, "age_mse")):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    diffusion = [(a - b).abs().max().item() for a, b in zip(grads(x, "noise_mse"), grads(x_other, "noise_mse"))]
    assert max(diffusion) > 1e-6


def test_tiny_training_run_learns() -> None:
    imgs, ages = blob_slices(48, seed=2)
    ages_semi = ages.copy()
    ages_semi[::6] = NAN
    train = SliceDataset(imgs, ages_semi, np.arange(40))
    val = SliceDataset(imgs, ages, np.arange(40, 48))
    res = train_diffae(TINY, train, val, DiffTrainConfig(epochs=12, batch_size=8, lr=2e-3, seed=1), CPU, progress=False)
    h = res.history
    assert h["noise_mse"].iloc[-3:].mean() < 0.5 * h["noise_mse"].iloc[0]
    assert h["age_mse"].iloc[-3:].mean() < h["age_mse"].iloc[0]
    mae_mean = np.abs(ages[40:] - np.nanmean(ages_semi[:40])).mean()  # predicting the training mean
    pred = predict_diffae(res.model, val, CPU)
    assert np.abs(pred - ages[40:]).mean() == pytest.approx(h["val_mae"].min(), rel=1e-4)  # kept the best epoch
    assert h["val_mae"].min() < 0.8 * mae_mean
    assert res.best_epoch == int(h["val_mae"].idxmin())


def test_recalibrated_batchnorm_matches_hand_statistics() -> None:
    torch.manual_seed(0)
    model = DiffAE(TINY)
    imgs, ages = blob_slices(10, seed=3)
    ds = SliceDataset(imgs, ages)
    recalibrate_head_bn(model, ds, CPU, batch_size=4)
    with torch.no_grad():
        z = model.encode(torch.from_numpy(imgs)[:, None])
        a = torch.relu(model.age_head[0](z))  # input of the first BatchNorm
    bn = model.age_head[2]
    torch.testing.assert_close(bn.running_mean, a.mean(0), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(bn.running_var, a.var(0, unbiased=True), rtol=1e-4, atol=1e-6)
    assert not model.training and bn.momentum == 0.1


def test_saved_model_roundtrip(tmp_path) -> None:
    """The DiffAE's one saved file: weights and card; load_model rebuilds it from the card and predicts the same."""
    from dataclasses import asdict

    from brainage_lib.inference.cards import ModelCard, export_model, load_model

    imgs, ages = blob_slices(12, seed=4)
    train, val = SliceDataset(imgs, ages, np.arange(9)), SliceDataset(imgs, ages, np.arange(9, 12))
    tcfg = DiffTrainConfig(epochs=1, batch_size=4)
    res = train_diffae(TINY, train, val, tcfg, CPU, progress=False)
    card = ModelCard(paper="DIFF", notebook="02_diff", model="diffae", architecture="DiffAE",
                     config=asdict(res.model.config), transform={"name": "diff", "size": 16}, inputs="slice",
                     profile="unit", seed=0, training_data="blobs", space={}, test_mae=None,
                     training={"config": asdict(tcfg), "best_epoch": res.best_epoch + 1})
    path = export_model(tmp_path / "diffae.model.pt", res.model, card)
    blob = torch.load(path, weights_only=True)
    assert set(blob) == {"state_dict", "card"} and "git" in blob["card"]["provenance"]
    model, loaded = load_model(path)
    assert model.config == res.model.config and loaded.training["config"]["batch_size"] == 4
    assert loaded.profile == "unit"
    np.testing.assert_allclose(predict_diffae(model, val, CPU), predict_diffae(res.model, val, CPU), rtol=1e-6)


def test_config_and_input_errors(tmp_path) -> None:
    with pytest.raises(BrainAgeError, match="batch_size"):
        DiffTrainConfig(batch_size=1)
    assert DiffTrainConfig().age_loss == "years"  # the paper's eq. 6
    with pytest.raises(BrainAgeError, match="age_loss"):
        DiffTrainConfig(age_loss="sd")
    assert parse_widths(" 32, 64,96 ") == (32, 64, 96)
    with pytest.raises(BrainAgeError, match="comma"):
        parse_widths("32;64")
    (tmp_path / "lifespan_train").mkdir()
    (tmp_path / "lifespan_train" / "participants.tsv").write_text("participant_id\tage\n")
    with pytest.raises(BrainAgeError, match="clinical_test/participants.tsv, als_like/participants.tsv"):
        open_diff_cohorts(str(tmp_path))
    with pytest.raises(BrainAgeError, match="train_diffae"):
        train_diffae(TINY, TensorDataset(torch.rand(2, 1, 16, 16), torch.full((2,), NAN)),
                     TensorDataset(torch.rand(1, 1, 16, 16), torch.ones(1)), DiffTrainConfig(epochs=1), CPU)


def test_als_survival_requires_the_column(cohort_writer, tmp_path) -> None:
    from brainage_lib.data.cohort import load_cohort

    rows = [{"participant_id": f"sub-{i}", "age": 50 + i, "sex": "F", "site": "A"} for i in range(3)]
    with pytest.raises(BrainAgeError, match="survival_months"):
        als_survival(load_cohort(cohort_writer(tmp_path / "c", rows)))
    rows = [{**r, "survival_months": 10.0 * (i + 1)} for i, r in enumerate(rows)]
    np.testing.assert_array_equal(als_survival(load_cohort(cohort_writer(tmp_path / "d", rows))), [10.0, 20.0, 30.0])


def test_split_training_cohort() -> None:
    ages = np.random.default_rng(0).uniform(18, 95, 200)
    ages[::5] = NAN
    s = split_training_cohort(ages, 0.1, 0.15, seed=1)
    allidx = np.concatenate([s.train, s.val, s.heldout])
    assert sorted(allidx.tolist()) == list(range(200))  # disjoint and complete
    assert np.isnan(ages[s.train]).sum() == 40 and not np.isnan(ages[np.r_[s.val, s.heldout]]).any()
    assert (len(s.val), len(s.heldout)) == (16, 24)  # of 160 labelled
    assert abs(np.mean(ages[s.heldout]) - np.nanmean(ages)) < 6  # stratified by age
    with pytest.raises(BrainAgeError, match="at least 3"):
        split_training_cohort(ages[:12], 0.1, 0.1)
    with pytest.raises(BrainAgeError, match="sum to less than 1"):
        split_training_cohort(ages, 0.5, 0.5)


# ---- the training engine: resumable stages, DDP ---------------------------------

class Killed(Exception):
    pass


def _semi_data():
    """20 training slices (8 unlabelled) and 4 validation slices."""
    imgs, ages = blob_slices(24, seed=0)
    semi = ages.copy()
    semi[[0, 3, 4, 7, 9, 13, 15, 17]] = NAN
    return SliceDataset(imgs, semi, np.arange(20)), SliceDataset(imgs, ages, np.arange(20, 24))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_diffae_stage_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch) -> None:
    """Killed right after a mid-epoch checkpoint, the stage resumes to the same weights and history; then it loads."""
    train, val = _semi_data()
    cfg = DiffTrainConfig(epochs=3, batch_size=6, lr=1e-3, seed=2)  # drop_last: 3 batches of 6 per epoch
    whole = train_diffae(TINY, train, val, cfg, Engine("cpu", checkpoints=tmp_path / "a"), progress=False)
    saves = {"n": 0}
    real_save = Stage.save

    def save_then_die(self, fabric, state, final=False):
        real_save(self, fabric, state, final)
        saves["n"] += 1
        if saves["n"] == 5:  # 3 in-epoch and 1 end-of-epoch save in epoch 0; the 5th: epoch 1 after batch 1 of 3
            raise Killed

    engine = Engine("cpu", checkpoints=tmp_path / "b", save_every_s=0)
    monkeypatch.setattr(Stage, "save", save_then_die)
    with pytest.raises(Killed):
        train_diffae(TINY, train, val, cfg, engine, progress=False)
    monkeypatch.setattr(Stage, "save", real_save)
    (last,) = (tmp_path / "b").glob("DiffAE-*/last.ckpt")
    assert not list((tmp_path / "b").glob("DiffAE-*/final.ckpt"))
    resumed = train_diffae(TINY, train, val, cfg, engine, progress=False)
    assert engine.log[-1]["status"] == "resumed" and engine.log[-1]["epoch"] == 1
    assert _same(_weights(resumed.model), _weights(whole.model))
    assert resumed.history.drop(columns="seconds").equals(whole.history.drop(columns="seconds"))
    assert resumed.best_epoch == whole.best_epoch and resumed.model.config == whole.model.config
    again = train_diffae(TINY, train, val, cfg, engine, progress=False)
    assert engine.log[-1]["status"] == "loaded" and not last.exists()
    assert _same(_weights(again.model), _weights(whole.model))
    assert again.history.drop(columns="seconds").equals(whole.history.drop(columns="seconds"))
    assert again.wall_time_s == pytest.approx(again.history["seconds"].sum())
    train_diffae(TINY, train, val, replace(cfg, age_loss="standardised"), engine, progress=False)
    assert engine.log[-1]["status"] == "trained"  # another training config: another stage


def test_ddp_on_two_processes_matches_one(tmp_path) -> None:
    """Two gloo processes, each half of every global batch of 6, train the function one process trains.

    The age head here is one linear layer: with BatchNorm in the head, each CPU process
    would normalise its own labelled rows (``SyncBatchNorm``, which makes them one batch,
    needs CUDA), and dropout masks are drawn per process; neither is one-process training,
    so neither is in this check. Everything else is: the noise and timesteps (drawn for the
    global batch), the noise term weighted by each process's share of the images, the age
    term by its share of the labelled images (a process with none still runs the head).
    Compared within float rounding: the losses of every epoch, validation MAE, and what the
    trained model computes (noise prediction, ``z_sem``, predicted ages). Not weight by
    weight: a few biases cannot change the output (a key bias under softmax, a bias ahead of
    a one-channel GroupNorm), their exact gradient is 0, and Adam turns its rounding noise
    into steps of the learning rate's size, differently on one and two processes.
    """
    train, val = _semi_data()
    config = replace(TINY, head_hidden=())
    cfg = DiffTrainConfig(epochs=2, batch_size=6, lr=1e-3, seed=0)
    gen, unlabelled = torch.Generator().manual_seed(cfg.seed), np.isnan(train.ages)
    shares = [[int((~unlabelled[local_share(b, r, 2)]).sum()) for r in (0, 1)]  # labelled rows per process
              for _ in range(cfg.epochs) for b in global_batches(epoch_order(20, gen), 6, drop_last=True)]
    assert [0, 2] in shares and [1, 1] in shares  # a process without labelled rows, processes with one each
    one = train_diffae(config, train, val, cfg, Engine("cpu", 1, tmp_path / "one"), progress=False)
    engine = Engine("cpu", 2, tmp_path / "two")
    two = train_diffae(config, train, val, cfg, engine, progress=False)
    assert [e["status"] for e in engine.log] == ["loaded"]  # rank 0's final checkpoint, read back here
    h1, h2 = one.history, two.history
    assert h2[["labelled", "unlabelled"]].equals(h1[["labelled", "unlabelled"]]) and two.best_epoch == one.best_epoch
    for col in ("loss", "noise_mse", "age_mse", "val_mae"):
        np.testing.assert_allclose(h2[col], h1[col], rtol=1e-5, err_msg=col)
    g = torch.Generator().manual_seed(0)
    x_t, t, z = torch.randn(4, 1, 16, 16, generator=g), torch.tensor([10, 200, 500, 900]), torch.randn(4, 16, generator=g)
    x = torch.from_numpy(train.array[:4])[:, None]
    with torch.no_grad():
        torch.testing.assert_close(two.model(x_t, t, z), one.model(x_t, t, z), rtol=0, atol=1e-5)
        torch.testing.assert_close(two.model.encode(x), one.model.encode(x), rtol=0, atol=1e-5)
        untrained = DiffAE(one.model.config).eval()
        assert (untrained(x_t, t, z) - one.model(x_t, t, z)).abs().max() > 1e-3  # it did train
    np.testing.assert_allclose(predict_diffae(two.model, val, CPU), predict_diffae(one.model, val, CPU), atol=1e-3)


def test_ddp_with_a_batchnorm_head_on_cpu_trains(tmp_path) -> None:
    """With the paper's head (BatchNorm, dropout) two CPU processes train to the end, over the same global batches.

    Each normalises its own labelled rows; one with fewer than two skips the head, so the
    processes' gradients cover different parameters, and they still agree on what to sum.
    Not compared with one process (see the test above).
    """
    train, val = _semi_data()
    cfg = DiffTrainConfig(epochs=2, batch_size=6, lr=1e-3, seed=0)
    one = train_diffae(TINY, train, val, cfg, CPU, progress=False)
    two = train_diffae(TINY, train, val, cfg, Engine("cpu", 2, tmp_path), progress=False)
    assert two.history[["labelled", "unlabelled"]].equals(one.history[["labelled", "unlabelled"]])
    assert np.isfinite(two.history[["loss", "val_mae"]].to_numpy()).all()
    np.testing.assert_allclose(two.history["noise_mse"], one.history["noise_mse"], rtol=1e-2)


def test_a_process_share_of_a_global_batch() -> None:
    """Noise rows, head decision and loss weights of each process (``_shard``), by hand."""
    ages = np.array([NAN, 30, 40, NAN, 50, NAN, 60, 70])
    batch = [0, 1, 2, 3, 4, 5]  # rank 0 of 2 takes items 0, 2, 4 (2 labelled), rank 1 items 1, 3, 5 (1 labelled)
    x = torch.zeros(3, 1, 4, 4)
    sched = make_scheduler(TINY)
    whole = torch.Generator().manual_seed(4)
    noise = torch.randn(6, 1, 4, 4, generator=whole)
    t = torch.randint(0, sched.num_train_timesteps, (6,), generator=whole)
    for rank in (0, 1):
        n, tt, head, w_noise, w_age = diff._shard(batch, x, ages, sched, torch.Generator().manual_seed(4), rank, 2, False)
        assert torch.equal(n, noise[rank::2]) and torch.equal(tt, t[rank::2])
        assert head and w_noise == 0.5 and w_age == (2 / 3, 1 / 3)[rank]  # one head over the 3 labelled rows
        _, _, head, _, w_age = diff._shard(batch, x, ages, sched, torch.Generator(), rank, 2, True)
        assert (head, w_age) == ((True, 1.0), (False, 0.0))[rank]  # own BatchNorm statistics need two rows
    _, _, head, _, w_age = diff._shard([0, 1, 3, 5], x[:2], ages, sched, torch.Generator(), 1, 2, False)
    assert (head, w_age) == (False, 0.0)  # one labelled row in the global batch: no age term anywhere


def test_head_forced_on_no_labelled_row_is_an_exact_zero_in_the_graph() -> None:
    torch.manual_seed(0)
    model = DiffAE(TINY).train()
    x = torch.rand(3, 1, 16, 16)
    out = diffae_loss(model, x, torch.full((3,), NAN), make_scheduler(TINY), torch.Generator().manual_seed(0), head=True)
    assert out.age_mse.item() == 0.0 and out.age_mse.requires_grad  # backward reaches the head (SyncBatchNorm's collective)
    out.total.backward()
    assert all(p.grad is not None and not p.grad.any() for p in model.age_head.parameters())
    skipped = diffae_loss(model, x, torch.tensor([30.0, 40.0, NAN]), make_scheduler(TINY), head=False)
    assert skipped.age_mse.item() == 0.0 and not skipped.age_mse.requires_grad


def test_recalibration_of_a_sync_batchnorm_head_equals_the_plain_one() -> None:
    """The statistics are set without a training-mode pass, so a SyncBatchNorm head (DDP on CUDA) needs no collective."""
    torch.manual_seed(0)
    plain = DiffAE(TINY)
    synced = torch.nn.SyncBatchNorm.convert_sync_batchnorm(DiffAE(TINY))
    synced.load_state_dict(plain.state_dict())
    imgs, ages = blob_slices(10, seed=3)
    ds = SliceDataset(imgs, ages)
    recalibrate_head_bn(plain, ds, CPU, batch_size=4)
    recalibrate_head_bn(synced, ds, CPU, batch_size=4)
    assert isinstance(synced.age_head[2], torch.nn.SyncBatchNorm)
    assert _same(_weights(synced), _weights(plain))


# ---- tables --------------------------------------------------------------------

AGE_T = np.array([50.0, 55.0, 60.0, 65.0, 70.0, 75.0, 80.0, 85.0])
AGE_A = np.array([45.0, 52.0, 58.0, 61.0, 66.0, 70.0, 77.0])
SURV = np.array([30.0, 12.0, 40.0, 22.0, 18.0, 35.0, 9.0])
AGE_H = np.array([20.0, 35.0, 50.0, 65.0, 80.0])


@pytest.fixture
def tables(tmp_path):
    gen = np.random.default_rng(0)
    noise = {m: gen.normal(0, 3, AGE_A.size) for m in ("diffae", "densenet121")}
    test_pred = {"diffae": AGE_T + 5.0, "densenet121": 0.5 * AGE_T + 30.0}
    als_pred = {m: AGE_A + noise[m] for m in test_pred}
    als_pred["diffae"] = als_pred["diffae"] - 0.6 * (SURV - SURV.mean())  # PAD falls with survival
    held_pred = {"diffae": 10.0 + 0.8 * AGE_H, "densenet121": 0.5 * AGE_H + 30.0}
    ev = evaluate(AGE_T, test_pred, AGE_A, als_pred, SURV, AGE_H, held_pred,
                  test_gap=np.linspace(-3, 3, AGE_T.size), als_gap=np.linspace(2, -2, AGE_A.size))
    rec = Recorder("unit_diff", "smoke", "simulated", output_dir=tmp_path)
    record_evaluation(rec, ev, reference_numbers(AGE_T, SURV, np.linspace(2, -2, AGE_A.size), heldout_age=AGE_H))
    return ev, rec, test_pred, als_pred


@pytest.mark.filterwarnings("ignore:An input array is constant")
def test_evaluate_hand_worked(tables) -> None:
    ev, _, test_pred, als_pred = tables
    ours = ev["diffae"]
    assert ours["test_mae"] == pytest.approx(5.0) and ours["test_r"] == pytest.approx(1.0)
    ss_tot = ((AGE_T - AGE_T.mean()) ** 2).sum()
    assert ours["test_r2"] == pytest.approx(1 - AGE_T.size * 25.0 / ss_tot)
    pad = als_pred["diffae"] - AGE_A
    assert ours["pad_mean"] == pytest.approx(pad.mean()) and ours["pad_sd"] == pytest.approx(pad.std(ddof=1))
    assert ours["survival_r"] == pytest.approx(np.corrcoef(pad, SURV)[0, 1])
    # held-out predictions 10 + 0.8 age exactly: the corrected PAD subtracts that line
    assert (ours["bias_slope"], ours["bias_intercept"]) == pytest.approx((0.8, 10.0))
    pad_c = als_pred["diffae"] - (0.8 * AGE_A + 10.0)
    assert ours["pad_mean_corrected"] == pytest.approx(pad_c.mean())
    assert ours["survival_r_corrected"] == pytest.approx(np.corrcoef(pad_c, SURV)[0, 1])
    assert ours["test_mae_corrected"] == pytest.approx(np.abs(test_pred["diffae"] - 0.8 * AGE_T - 10.0).mean())
    # the baseline's bias is exactly linear: corrected test PAD is 0 everywhere
    assert ev["densenet121"]["test_mae_corrected"] == pytest.approx(0.0, abs=1e-9)
    pad_d = als_pred["densenet121"] - AGE_A
    grid = np.concatenate([pad, pad_d])
    d = max(abs((pad <= g).mean() - (pad_d <= g).mean()) for g in grid)
    assert ev["densenet121"]["ks"] == pytest.approx(d) and 0 <= ev["densenet121"]["ks_p"] <= 1
    assert "ks" not in ours
    assert np.isnan(ours["truth_test_r_gap"])  # a constant PAD has no correlation
    gap_a = np.linspace(2, -2, AGE_A.size)
    assert ours["truth_als_r_gap"] == pytest.approx(sps.pearsonr(pad, gap_a).statistic)
    assert ours["truth_als_r_gap_corrected"] == pytest.approx(sps.pearsonr(pad_c, gap_a).statistic)
    # the gap-following spread is the OLS slope of PAD on gap times sd(gap); the error is the MAE against brain age
    fit = sps.linregress(gap_a, pad)
    assert ours["truth_als_gap_spread"] == pytest.approx(fit.slope * gap_a.std(ddof=1))
    assert ours["truth_als_mae_gap"] == pytest.approx(np.abs(als_pred["diffae"] - (AGE_A + gap_a)).mean())
    assert ours["pad_mean_corrected_p"] == pytest.approx(sps.ttest_1samp(pad_c, 0).pvalue)
    # a constant model's corrected PAD is 0 up to rounding: no correlation, no t-test
    const = evaluate(AGE_T, {"diffae": np.full(8, 60.0)}, AGE_A, {"diffae": np.full(7, 60.0)}, SURV, AGE_H,
                     {"diffae": np.full(5, 60.0)})["diffae"]
    assert np.isnan(const["survival_r_corrected"]) and np.isnan(const["pad_mean_corrected_p"])


def test_recorded_tables_and_claims(tables) -> None:
    ev, rec, _, _ = tables
    t1 = wide_table(rec, "table1")
    assert t1.loc["test_mae", ("Ours (DiffAE)", "this run")] == pytest.approx(5.0)
    assert t1.loc["test_mae", ("Ours (DiffAE)", "paper")] == 5.0
    assert t1.loc["survival_p", ("DenseNet121", "paper")] == 0.61
    t2 = wide_table(rec, "table2")
    assert t2.loc["ks", ("DenseNet121", "paper")] == 0.32
    assert rec.doc["records"]["pad.diffae.pad_mean_corrected"]["value"] == pytest.approx(ev["diffae"]["pad_mean_corrected"])
    ref = rec.get("gate.test_mean_prediction_mae")
    assert ref == pytest.approx(np.abs(AGE_T - AGE_T.mean()).mean())
    assert rec.get("simulator.als_gap_survival_r") == pytest.approx(sps.pearsonr(np.linspace(2, -2, 7), SURV).statistic)
    values = lambda: {k: e["value"] for k, e in rec.doc["records"].items()}  # noqa: E731
    expected = numbers(ev, reference_numbers(AGE_T, SURV, np.linspace(2, -2, 7), heldout_age=AGE_H))
    assert {k: values()[k] for k in expected} == {k: None if np.isnan(v) else pytest.approx(v)  # NaN is stored as null
                                                 for k, v in expected.items()}
    # both learned on the held-out healthy set (MAE 3.6 and 10 < 0.8 x 18) and track age on the test set (r = 1):
    # the comparisons are judged
    ref_h = rec.get("gate.heldout_mean_prediction_mae")
    assert ref_h == pytest.approx(18.0) and rec.get("heldout.diffae.mae") == pytest.approx(3.6)
    assert rec.get("heldout.densenet121.mae") == pytest.approx(10.0) and 10.0 < 0.8 * ref_h
    found = {v.key: v for v in claims(values(), simulated=True)}
    assert found["ours_lowest_mae"].outcome is True and found["ours_joint_highest_r"].outcome is True  # r = 1 for both
    assert found["ours_survival_positive_significant"].outcome is None  # the simulator's sign: not testable
    sr, sp = ev["diffae"]["survival_r"], ev["diffae"]["survival_p"]
    assert found["sim_survival_sign"].outcome is bool(sr < 0 and sp < 0.05)
    # fig. 3: predicted ages along z_sem running from old to young on an old -> young row count as monotone
    for row, (rho, first, last) in {"row1": (1.0, 25.0, 75.0), "row2": (-0.9, 90.0, 40.0)}.items():
        for k, v in (("zsem_age_spearman", rho), ("age_spearman", rho), ("true_age_first", first),
                     ("true_age_last", last), ("zsem_age_share", 0.7)):
            rec.record(f"fig3.{row}.{k}", v)
    rec.record("fig3.z_sem_share", 0.123)
    rec.record("fig4.recon_mse", 0.001)
    rec.record("fig4.other_image_mse", 0.01)
    found = {v.key: v for v in claims(values(), simulated=False)}
    monotone = found["interpolation_ages_monotone"]
    assert monotone.outcome is True and "12.3 %" in monotone.evidence
    assert found["reconstructions_faithful"].outcome is True and "sim_survival_sign" not in found
    rec.record("fig3.row2.zsem_age_spearman", 0.9)  # moving towards the older end: wrong direction
    assert {v.key: v.outcome for v in claims(values(), simulated=False)}["interpolation_ages_monotone"] is False
