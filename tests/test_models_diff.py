"""Unit tests for the DIFF paper's diffusion autoencoder, 2D baselines and statistics."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import statsmodels.api as sm
import torch
from monai.networks.nets.diffusion_model_unet import DiffusionUNetResnetBlock
from scipy import stats as sps
from torch import nn

from brainage_lib.errors import BrainAgeError
from brainage_lib.metrics import stats
from brainage_lib.papers.diff.baselines import BrainAgeRGP, DeepBrainNet2D, SliceCNNConfig, densenet121_2d
from brainage_lib.papers.diff.diffae import (DiffAE, DiffAEConfig, _slerp, _ZResnetBlock, ddim_decode, ddim_encode,
                                        diffae_loss, interpolate, make_scheduler, predict_age)

torch.set_num_threads(1)

TINY = DiffAEConfig(image_size=32, channels=(8, 16), num_res_blocks=1, norm_groups=8, z_dim=16,
                    head_hidden=(32, 16), ddim_steps=10, age_offset=50.0, age_scale=20.0)
NAN = float("nan")


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def perturb(model: nn.Module, seed: int = 0, std: float = 0.05) -> None:
    """Add noise to every weight: MONAI zero-initialises output convs, so z_sem has no effect at init."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(std * torch.randn(p.shape, generator=gen))


def images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """Smooth blobs in [0, 1] of shape (n, 1, size, size)."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    centre = 0.4 * (torch.rand(n, 2, generator=gen) - 0.5)
    radius = 0.4 + 0.3 * torch.rand(n, generator=gen)
    d2 = (yy - centre[:, 0, None, None]) ** 2 + (xx - centre[:, 1, None, None]) ** 2
    return torch.exp(-d2 / radius[:, None, None] ** 2).unsqueeze(1)


@pytest.fixture(scope="module")
def trained() -> tuple[DiffAE, torch.Tensor]:
    """A tiny DiffAE trained for 60 steps on four fixed images."""
    torch.manual_seed(0)
    model, x = DiffAE(TINY), images(4, seed=1)
    sched, gen = make_scheduler(TINY), torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    age = torch.tensor([30.0, 45.0, NAN, 70.0])
    for _ in range(60):
        opt.zero_grad()
        diffae_loss(model, x, age, sched, gen).total.backward()
        opt.step()
    return model.eval(), x


# ---- architecture -------------------------------------------------------------

def test_paper_size_model() -> None:
    model = DiffAE()
    cfg = model.config
    assert 0.9 * 10.12e6 < n_params(model) < 1.1 * 10.12e6  # paper: 10.12 M in total
    assert [b.resnets[0].out_channels for b in model.unet.down_blocks] == [32, 32, 64, 96, 128]  # the paper's widths
    assert all(len(b.resnets) == 3 for b in model.unet.down_blocks)
    assert len(model.unet.middle_block.attentions) == len(model.encoder.middle_block.attentions) == 3
    head = [m for m in model.age_head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in head] == [(512, 128), (128, 32), (32, 1)]
    assert [m.p for m in model.age_head if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert cfg.train_timesteps == 1000 and cfg.image_size == 128
    with torch.no_grad():
        assert model.encode(torch.rand(1, 1, 128, 128)).shape == (1, 512)


def test_config_and_input_errors() -> None:
    with pytest.raises(BrainAgeError, match="norm_groups"):
        DiffAEConfig(channels=(32, 48), norm_groups=32)
    with pytest.raises(BrainAgeError, match="ddim_steps"):
        DiffAEConfig(ddim_steps=1000)
    with pytest.raises(BrainAgeError, match="divisible"):
        DiffAE(TINY).encode(torch.rand(1, 1, 33, 33))


def test_unet_shape_and_z_sem_conditioning() -> None:
    torch.manual_seed(0)
    model = DiffAE(TINY).eval()
    perturb(model)
    x_t, t = torch.randn(2, 1, 32, 32), torch.tensor([10, 500])
    z1, z2 = torch.randn(2, TINY.z_dim), torch.randn(2, TINY.z_dim)
    with torch.no_grad():
        e1, e1b, e2 = model(x_t, t, z1), model(x_t, t, z1), model(x_t, t, z2)
    assert e1.shape == x_t.shape
    assert torch.equal(e1, e1b)
    assert (e1 - e2).abs().mean() > 1e-3 * e1.abs().mean()
    with pytest.raises(BrainAgeError, match="z_sem"):
        model(x_t, t, z1[:, :-1])


def test_every_noise_unet_resblock_is_scaled_by_its_own_z_projection() -> None:
    unet, encoder = DiffAE().unet, DiffAE().encoder
    blocks = [m for m in unet.modules() if isinstance(m, DiffusionUNetResnetBlock)]
    # paper U-Net, 5 levels: 3 per level down, 4 per level up (MONAI adds one for the skips), 2 in the middle
    assert len(blocks) == 5 * 3 + 5 * 4 + 2 and all(isinstance(b, _ZResnetBlock) for b in blocks)
    assert all((b.z_proj.in_features, b.z_proj.out_features) == (512, b.out_channels) for b in blocks)
    assert not hasattr(unet, "class_embedding") or unet.class_embedding is None
    assert not any(isinstance(m, _ZResnetBlock) for m in encoder.modules())  # the encoder has no z_sem


def test_z_block_is_monai_block_times_one_plus_projected_z() -> None:
    """``_ZResnetBlock`` = MONAI's block with ``norm2(h) * (1 + W SiLU(z))`` before SiLU and conv2."""
    torch.manual_seed(0)
    monai_block = DiffusionUNetResnetBlock(2, in_channels=8, out_channels=16, temb_channels=12, norm_num_groups=8)
    perturb(monai_block)  # MONAI zero-initialises conv2
    block = _ZResnetBlock(monai_block, z_dim=5)
    x, temb, z = torch.randn(3, 8, 6, 6), torch.randn(3, 12), torch.randn(3, 5)
    with torch.no_grad():
        out = block(x, torch.cat([temb, z], 1))
        act = nn.functional.silu
        h = monai_block.conv1(act(monai_block.norm1(x))) + monai_block.time_emb_proj(act(temb))[:, :, None, None]
        h = monai_block.norm2(h) * (1 + block.z_proj(act(z)))[:, :, None, None]
        expected = monai_block.skip_connection(x) + monai_block.conv2(act(h))
        torch.testing.assert_close(out, expected)
        block.z_proj.weight.zero_()
        block.z_proj.bias.zero_()
        torch.testing.assert_close(block(x, torch.cat([temb, z], 1)), monai_block(x, temb))


def test_trained_decoder_uses_z_sem(trained: tuple[DiffAE, torch.Tensor]) -> None:
    """After training (no perturbation), a different z_sem of the same scale changes the predicted noise.

    (The four blobs' own z_sem barely differ after so few steps, so a random one is used.
    At init the change is exactly 0; after 60 steps it is ~3e-4 to 1e-2 of the output,
    depending on the seed, hence the low bound.)
    """
    model, x = trained
    sched = make_scheduler(TINY)
    t = torch.tensor([50, 200, 400, 800])
    x_t = sched.add_noise(2 * x - 1, torch.randn(x.shape, generator=torch.Generator().manual_seed(1)), t)
    with torch.no_grad():
        z = model.encode(x)
        other = z.std() * torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
        e_own, e_other = model(x_t, t, z), model(x_t, t, other)
    assert (e_own - e_other).pow(2).mean() > 1e-4 * e_own.pow(2).mean()


def test_encoder_separates_images_at_init() -> None:
    """Brain-like slices give clearly different z_sem before any training (quick-profile widths).

    With MONAI's zero-initialised conv2 in every encoder block the encoder was linear up to
    the attention and its pooled output carried little beyond mean intensity: relative
    spread ~1e-2 here. DiffAE-style init (non-zero residual branches) gives ~0.1-0.2.
    """
    x = torch.tensor(synthetic_slices(8, np.random.default_rng(0), size=32)[0], dtype=torch.float32)[:, None]
    cfg = DiffAEConfig(image_size=32, channels=(16, 32, 48, 64), num_res_blocks=1, norm_groups=8,
                       mid_attention_blocks=1, z_dim=32)
    for seed in range(3):
        torch.manual_seed(seed)
        with torch.no_grad():
            z = DiffAE(cfg).eval().encode(x)  # (8, z_dim)
        spread = (z - z.mean(0)).norm(dim=1).pow(2).mean().sqrt() / z.norm(dim=1).mean()
        assert spread > 5e-2, f"seed {seed}: relative spread of z_sem across images {spread:.1e}"
    blocks = [m for m in DiffAE(cfg).encoder.modules() if isinstance(m, DiffusionUNetResnetBlock)]
    assert all(b.conv2.conv.weight.abs().sum() > 0 and not b.time_emb_proj.bias.any() for b in blocks)


# ---- loss ---------------------------------------------------------------------

def test_one_optimiser_step_lowers_loss() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = DiffAE(TINY)
    # distinct intensities keep z_sem apart across the batch: the head's ReLU -> BatchNorm
    # makes the age loss very steep when the rows of z_sem nearly coincide
    x = images(12, seed=2) * (0.3 + 0.7 * torch.rand(12, 1, 1, 1, generator=gen))
    age = 20 + 60 * torch.rand(12, generator=gen)
    age[::4] = NAN
    sched = make_scheduler(TINY)

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # same dropout masks; the generator fixes noise and timesteps
        return diffae_loss(model, x, age, sched, torch.Generator().manual_seed(7)).total

    before = loss()
    before.backward()
    grad_sq = sum(p.grad.pow(2).sum() for p in model.parameters() if p.grad is not None)
    expected_drop = 0.05 * before.item()  # first-order decrease of an SGD step of this size
    torch.optim.SGD(model.parameters(), lr=expected_drop / grad_sq.item()).step()
    with torch.no_grad():
        after = loss()
    assert before.item() - after.item() > 0.25 * expected_drop


def test_unlabelled_batch_has_zero_age_loss_and_no_head_gradient() -> None:
    model, x = DiffAE(TINY), images(3, seed=3)
    out = diffae_loss(model, x, torch.full((3,), NAN), make_scheduler(TINY), torch.Generator().manual_seed(0))
    assert out.age_mse.item() == 0.0 and not out.age_mse.requires_grad
    assert torch.equal(out.total, out.noise_mse)
    out.total.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.age_head.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.unet.parameters())


def test_age_mse_uses_labelled_items_only() -> None:
    torch.manual_seed(0)
    model, x = DiffAE(TINY).eval(), images(4, seed=4)
    age = torch.tensor([NAN, 40.0, NAN, 65.0])
    sched = make_scheduler(TINY)
    years = diffae_loss(model, x, age, sched, torch.Generator().manual_seed(0))
    std = diffae_loss(model, x, age, sched, torch.Generator().manual_seed(0), age_loss="standardised")
    with torch.no_grad():
        pred_years = model.age_from_latent(model.encode(x))[[1, 3]]
    expected = ((pred_years - age[[1, 3]]) ** 2).mean()  # paper eq. 6, years²
    assert years.age_mse.item() == pytest.approx(expected.item(), rel=1e-5)
    assert std.age_mse.item() == pytest.approx(expected.item() / TINY.age_scale**2, rel=1e-5)
    assert torch.equal(years.noise_mse, std.noise_mse)
    with pytest.raises(BrainAgeError, match="age_loss"):
        diffae_loss(model, x, age, sched, age_loss="sd")
    # eval mode: one labelled image is enough (BatchNorm uses its running statistics)
    one_eval = diffae_loss(model, x, torch.tensor([NAN, 40.0, NAN, NAN]), sched)
    with torch.no_grad():
        pred_one = model.age_from_latent(model.encode(x[1:2]))
    assert one_eval.age_mse.item() == pytest.approx(((pred_one - 40.0) ** 2).item(), rel=1e-5)


def test_one_labelled_image_in_a_training_batch_gives_no_age_gradient() -> None:
    """1 labelled + 3 unlabelled, training mode: the age term is skipped (exact 0, head not called)."""
    torch.manual_seed(0)
    model = DiffAE(TINY).train()
    calls: list[int] = []
    model.age_head.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    x = images(4, seed=6).requires_grad_(True)
    out = diffae_loss(model, x, torch.tensor([NAN, 40.0, NAN, NAN]), make_scheduler(TINY),
                      torch.Generator().manual_seed(0))
    assert calls == [] and out.age_mse.item() == 0.0 and not out.age_mse.requires_grad
    assert torch.equal(out.total, out.noise_mse)
    out.total.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.age_head.parameters())
    # with two labels the head runs on the labelled rows only: no age gradient reaches the others
    x.grad = None
    two = diffae_loss(model, x, torch.tensor([NAN, 40.0, NAN, 65.0]), make_scheduler(TINY))
    two.age_mse.backward()
    assert calls == [2] and x.grad[[1, 3]].abs().sum() > 0
    assert torch.equal(x.grad[[0, 2]], torch.zeros_like(x.grad[[0, 2]]))


# ---- DDIM ---------------------------------------------------------------------

def test_ddim_matches_closed_form_for_zero_noise_prediction() -> None:
    """At init MONAI's zero output conv makes eps == 0: x_T = sqrt(abar_T / abar_0) * (2x - 1)."""
    model, x = DiffAE(TINY), images(2, seed=5)
    sched, z = make_scheduler(TINY), torch.randn(2, TINY.z_dim)
    x_t = ddim_encode(model, x, z, sched, steps=7)
    abar = sched.alphas_cumprod.double()
    expected = torch.sqrt(abar[999] / abar[0]).float() * (2 * x - 1)
    torch.testing.assert_close(x_t, expected, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(ddim_decode(model, x_t, z, sched, steps=7), x, rtol=1e-3, atol=1e-4)


def test_ddim_roundtrip_is_deterministic_and_reconstructs(trained: tuple[DiffAE, torch.Tensor]) -> None:
    model, x = trained
    sched = make_scheduler(TINY)
    z = model.encode(x).detach()
    x_t1, x_t2 = ddim_encode(model, x, z, sched, 50), ddim_encode(model, x, z, sched, 50)
    assert torch.equal(x_t1, x_t2)
    rec1, rec2 = ddim_decode(model, x_t1, z, sched, 50), ddim_decode(model, x_t1, z, sched, 50)
    assert torch.equal(rec1, rec2)
    rec_err = (rec1 - x).pow(2).mean()
    rand_err = (torch.rand(x.shape, generator=torch.Generator().manual_seed(0)) - x).pow(2).mean()
    other_err = (x.roll(1, 0) - x).pow(2).mean()  # another training image
    assert rec_err < 0.1 * rand_err and rec_err < other_err


def test_interpolation_endpoints_are_reconstructions(trained: tuple[DiffAE, torch.Tensor]) -> None:
    model, x = trained
    frames = interpolate(model, x[:2], x[2:], [0.0, 0.5, 1.0], steps=5)
    assert frames.shape == (3, 2, 1, 32, 32)
    assert frames.min() >= 0 and frames.max() <= 1
    sched = make_scheduler(TINY)
    for k, xs in ((0, x[:2]), (2, x[2:])):
        z = model.encode(xs).detach()
        rec = ddim_decode(model, ddim_encode(model, xs, z, sched, 5), z, sched, 5)
        torch.testing.assert_close(frames[k], rec, atol=1e-4, rtol=1e-4)
    ages = predict_age(model, x)
    assert ages.shape == (4,) and torch.isfinite(ages).all() and model.training is False


def test_slerp_hand_worked() -> None:
    a = torch.tensor([[1.0, 0.0]]).reshape(1, 1, 1, 2)
    b = torch.tensor([[0.0, 2.0]]).reshape(1, 1, 1, 2)
    mid = _slerp(a, b, 0.5).flatten()
    s = math.sin(math.pi / 4) / math.sin(math.pi / 2)
    torch.testing.assert_close(mid, torch.tensor([s, 2 * s]))
    torch.testing.assert_close(_slerp(a, b, 0.0), a)


# ---- statistics -----------------------------------------------------------------

AGE = np.array([22.0, 35.0, 41.0, 50.0, 58.0, 63.0, 71.0, 79.0])
PRED = np.array([30.0, 38.0, 45.0, 49.0, 55.0, 61.0, 64.0, 70.0])


def test_pearson_matches_numpy_formula() -> None:
    dx, dy = PRED - PRED.mean(), AGE - AGE.mean()
    r = (dx * dy).sum() / np.sqrt((dx**2).sum() * (dy**2).sum())
    n = AGE.size
    p = 2 * sps.t.sf(abs(r) * np.sqrt((n - 2) / (1 - r**2)), n - 2)
    assert stats.pearson(PRED, AGE) == pytest.approx((r, p), rel=1e-9)


def test_bias_correction_matches_statsmodels_ols() -> None:
    fit = sm.OLS(PRED, sm.add_constant(AGE)).fit()
    bc = stats.bias_correct(PRED, AGE)
    assert (bc.intercept, bc.slope) == pytest.approx(tuple(fit.params), rel=1e-9)
    np.testing.assert_allclose(bc.pad(PRED, AGE), fit.resid, atol=1e-9)
    np.testing.assert_allclose(bc.apply(PRED, AGE), AGE + fit.resid, atol=1e-9)
    exact = stats.bias_correct(10 + 0.5 * AGE, AGE)  # a perfect linear bias is removed exactly
    np.testing.assert_allclose(exact.apply([40.0], [60.0]), [60.0])


def test_regression_metrics_hand_worked() -> None:
    m = stats.regression_metrics(AGE + 20.0, AGE)  # perfect correlation, 20 years off
    ss_tot = ((AGE - AGE.mean()) ** 2).sum()
    assert m["r"] == pytest.approx(1.0) and m["mae"] == pytest.approx(20.0)
    assert m["r2"] == pytest.approx(1 - AGE.size * 400.0 / ss_tot) and m["r2"] < 0
    np.testing.assert_allclose(stats.brain_pad(PRED, AGE), PRED - AGE)
    with pytest.raises(BrainAgeError):
        stats.regression_metrics([1.0, NAN, 3.0], [1.0, 2.0, 3.0])


def test_ks_and_wilcoxon_hand_worked() -> None:
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.5, 5.0, 6.0])
    grid = np.concatenate([a, b])
    d = max(abs((a <= g).mean() - (b <= g).mean()) for g in grid)
    assert stats.ks_2samp(a, b)[0] == pytest.approx(d)
    # differences 1, 2, 3, -4, 5: W- = 4; exact two-sided p by enumerating sign patterns
    x, y = np.array([1.0, 2.0, 3.0, 0.0, 5.0]), np.array([0.0, 0.0, 0.0, 4.0, 0.0])
    sums = [sum(c) for k in range(6) for c in itertools.combinations(range(1, 6), k)]
    p = 2 * sum(s <= 4 for s in sums) / len(sums)
    assert stats.wilcoxon_paired(x, y) == pytest.approx((4.0, p))


# ---- baselines ------------------------------------------------------------------

def test_baseline_forward_shapes() -> None:
    with torch.no_grad():
        assert densenet121_2d().eval()(torch.rand(2, 1, 32, 32)).shape == (2, 1)
    torch.manual_seed(0)
    cnn = DeepBrainNet2D(SliceCNNConfig(channels=(4, 8, 8), fc_units=16))
    assert cnn(torch.rand(2, 1, 32, 32)).shape == (2, 1)
    slices = torch.rand(3, 5, 32, 32)
    per_slice = cnn.eval()(slices.reshape(15, 1, 32, 32)).reshape(3, 5).detach()
    torch.testing.assert_close(cnn.predict_subjects(slices), per_slice.median(1).values)
    head = DeepBrainNet2D().head
    assert any(isinstance(m, nn.Linear) and m.out_features == 1024 for m in head)


def synthetic_slices(n: int, rng: np.random.Generator, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """WM disk, GM rim and a CSF 'ventricle' whose radius grows linearly with age."""
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    r = np.hypot(yy, xx)
    ages = rng.uniform(20, 80, n)
    out = np.zeros((n, size, size))
    for i, age in enumerate(ages):
        ventricle = 1.5 + 4.0 * (age - 20) / 60 + rng.normal(0, 0.3)
        img = np.select([r < ventricle, r < 7.5, r < 10], [0.2, 0.8, 0.5], 0.0)
        out[i] = np.clip(img + rng.normal(0, 0.03, img.shape) * (r < 10), 0, 1)
    return out, ages


def test_brainager_gp_recovers_planted_age_signal() -> None:
    x, y = synthetic_slices(60, np.random.default_rng(0))
    with pytest.raises(BrainAgeError, match="fit"):
        BrainAgeRGP().predict(x)
    model = BrainAgeRGP().fit(x[:40], y[:40])
    old, young = model.tissue_maps(x[[np.argmax(y), np.argmin(y)]])  # (3, H, W) each: CSF, GM, WM
    assert old[0, 12, 12] > 0.5 and young[2, 12, 7] > 0.5 and young[1, 12, 3] > 0.5
    assert young[0, 12, 12] < old[0, 12, 12]
    mae = np.abs(model.predict(x[40:]) - y[40:]).mean()
    mae_mean = np.abs(y[:40].mean() - y[40:]).mean()
    assert mae < 0.6 * mae_mean


def test_brainager_tissue_maps_follow_each_images_own_contrast() -> None:
    """Each slice gets its own mixture: a site-like gain/offset change leaves its tissue maps unchanged."""
    x, _ = synthetic_slices(3, np.random.default_rng(1))
    brain = x > 0.05
    shifted = np.where(brain, 0.6 * x + 0.25, 0.0)  # darker contrast, brighter floor: GM now above the old WM mean
    model = BrainAgeRGP(smooth_sigma=0.0)
    maps, maps_shifted = model.tissue_maps(x), model.tissue_maps(np.concatenate([shifted[:1], x[1:]]))
    np.testing.assert_allclose(maps_shifted[0], maps[0], atol=1e-3)
    np.testing.assert_array_equal(maps_shifted[1:], maps[1:])  # other images are not affected
    np.testing.assert_allclose(maps.sum(1), brain.astype(float), atol=1e-9)  # memberships sum to 1 in the brain
    wm = x[0] > 0.7
    assert maps[0, 2][wm].mean() > 0.9 and maps[0, 0][brain[0] & (x[0] < 0.3)].mean() > 0.9
    np.testing.assert_array_equal(model.tissue_maps(x), maps)  # deterministic
    with pytest.raises(BrainAgeError, match="image 0"):
        model.tissue_maps(np.zeros((1, 8, 8)))
