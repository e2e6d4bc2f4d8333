"""Unit tests for the TGB paper's regressor, GAN, losses and synthesis planner."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.tgb.gan import (GANConfig, TGBCritic, TGBGenerator, critic_loss, generator_loss,
                                         gradient_penalty, interpolate_latents, plan_synthesis)
from brainage_lib.papers.tgb.regressor import RegressorConfig, TGBRegressor, he_init

torch.set_num_threads(1)

SMALL_GAN = GANConfig(width=1 / 16)  # channels (4, 8, 16, 32, 32) / (32, 32, 16, 8, 4)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def conv(cin: int, cout: int, k: int) -> int:
    """Weights + biases of a Conv3d / ConvTranspose3d with a k^3 kernel."""
    return k**3 * cin * cout + cout


def linear(fin: int, fout: int) -> int:
    return fin * fout + fout


# ---- (a) parameter counts at paper size, from the layer formulas ----------------

def test_regressor_param_count_paper_size() -> None:
    chans = [1, 16, 32, 64, 128, 256]
    expected = 0
    for cin, cout in zip(chans[:-1], chans[1:]):
        expected += conv(cin, cout, 3) + conv(cout, cout, 3) + conv(cin, cout, 1)
    flat = 256 * 3 * 3 * 3  # 96 / 2^5 = 3 per side
    assert flat == 6912
    for fin, fout in [(flat, 2048), (2048, 1024), (1024, 64), (64, 1)]:
        expected += linear(fin, fout)
    with torch.device("meta"):
        model = TGBRegressor()
    assert model.config.flat_features == 6912
    assert n_params(model) == expected == 19_899_153


def test_generator_and_critic_param_count_paper_size() -> None:
    enc = [1, 64, 128, 256, 512, 512]
    encoder = sum(conv(cin, cout, 3) for cin, cout in zip(enc[:-1], enc[1:]))
    dec = [512, 512, 256, 128, 64]
    decoder = conv(512, 512, 3)  # first decoder level, at latent resolution
    for cin, cout in zip(dec[:-1], dec[1:]):
        decoder += conv(cin, cout, 2) + conv(cout, cout, 3)  # 2x up-conv, then 3x3x3
    decoder += conv(64, 1, 1)  # output head
    critic = encoder + conv(512, 1, 1)
    with torch.device("meta"):
        gen, crit = TGBGenerator(), TGBCritic()
    assert n_params(gen.encoder) == encoder
    assert n_params(gen) == encoder + decoder == 31_680_065
    assert n_params(crit) == critic == 11_726_465


# ---- (b) small-size forward / backward shapes -----------------------------------

def test_regressor_small_forward_backward() -> None:
    torch.manual_seed(0)
    cfg = RegressorConfig(input_shape=(32, 64, 32), width=0.25, fc_units=(32, 16))
    assert cfg.level_channels == (4, 8, 16, 32, 64)
    assert cfg.flat_features == 64 * 1 * 2 * 1  # each side // 32
    model = TGBRegressor(cfg)
    x = torch.rand(2, 1, 32, 64, 32, requires_grad=True)
    y = model(x)
    assert y.shape == (2,)
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert all(p.grad is not None for p in model.parameters())


def test_regressor_shape_errors() -> None:
    with pytest.raises(BrainAgeError, match="too small"):
        RegressorConfig(input_shape=(16, 96, 96))
    model = TGBRegressor(RegressorConfig(input_shape=(32, 32, 32), width=0.125, fc_units=(8,)))
    with pytest.raises(BrainAgeError, match="input_shape"):
        model(torch.zeros(1, 1, 64, 32, 32))


def test_gan_small_forward_backward() -> None:
    torch.manual_seed(0)
    gen, crit = TGBGenerator(SMALL_GAN), TGBCritic(SMALL_GAN)
    x = torch.rand(2, 1, 32, 16, 16)
    z = gen.encode(x)
    assert z.shape == (2, 32, 2, 1, 1)  # spatial / 16
    fake = gen(x)
    assert fake.shape == x.shape
    score = crit(fake)
    assert score.shape == (2,)
    (-score.mean()).backward()
    assert all(p.grad is not None for p in gen.parameters())
    with pytest.raises(BrainAgeError, match="divisible by 16"):
        gen.encode(torch.zeros(1, 1, 24, 16, 16))


@pytest.mark.parametrize("output", ["linear", "relu"])
def test_generator_output_head_is_the_papers_1x1x1_convolution(output) -> None:
    """The decoder ends in a 1x1x1 convolution with no squashing (the paper), or a ReLU after it (the authors' code)."""
    torch.manual_seed(0)
    gen = TGBGenerator(GANConfig(width=1 / 16, output=output))
    x = torch.rand(2, 1, 32, 16, 16)
    with torch.no_grad():
        h = gen.decoder(gen.encode(x))
        w, b = gen.head.weight[:, :, 0, 0, 0], gen.head.bias  # (1, C), (1,)
        by_hand = torch.einsum("oc,bcdhw->bodhw", w, h) + b.reshape(1, -1, 1, 1, 1)
        fake = gen(x)
    expected = by_hand.clamp_min(0) if output == "relu" else by_hand
    assert torch.allclose(fake, expected, atol=1e-5)
    assert gen.head.kernel_size == (1, 1, 1)
    if output == "linear":
        with torch.no_grad():
            gen.head.bias.fill_(-5.0)  # an unbounded head reaches below 0 (and exactly 0), which a sigmoid cannot
            assert float(gen(x).min()) < 0
    with pytest.raises(BrainAgeError, match="output"):
        GANConfig(output="sigmoid")


def test_paper_size_forward_shapes_on_meta() -> None:
    with torch.device("meta"):  # shape propagation only: no memory, no compute
        reg, gen, crit = TGBRegressor(), TGBGenerator(), TGBCritic()
        x = torch.empty(2, 1, 96, 96, 96)
        assert reg.features(x).shape == (2, 256, 3, 3, 3)  # 96 / 2^5 = 3 per side
        assert reg(x).shape == (2,)
        assert gen.encode(x).shape == (2, 512, 6, 6, 6) and gen(x).shape == x.shape
        assert crit(x).shape == (2,)


def test_age_and_image_outputs_are_float32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    reg = TGBRegressor(RegressorConfig(input_shape=(32, 32, 32), width=0.125, fc_units=(16, 8)))
    with torch.no_grad():
        reg.head[-1].weight.zero_()
        reg.head[-1].bias.fill_(16.877)  # bf16 would round it to 16.875
    gen = TGBGenerator(SMALL_GAN)
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        age, fake = reg(x), gen(x)
        assert reg.head[-1](torch.zeros(1, 8)).dtype == torch.bfloat16  # a Linear alone would give bf16
        assert gen.decoder(gen.encode(x)).dtype == torch.bfloat16  # and so does the decoder
    assert age.dtype == torch.float32 and fake.dtype == torch.float32
    assert age.tolist() == pytest.approx([16.877, 16.877], abs=1e-5)
    assert fake.shape == x.shape


def test_he_init_std() -> None:
    torch.manual_seed(0)
    cases = [  # (layer, fan-in by hand)
        (nn.Conv3d(8, 16, kernel_size=3), 8 * 27),
        (nn.ConvTranspose3d(64, 32, kernel_size=2, stride=2), 64),  # one tap per voxel
        (nn.Linear(100, 50), 100),
    ]
    for layer, fan_in in cases:
        he_init(layer)
        assert layer.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.05)
        assert torch.count_nonzero(layer.bias) == 0


# ---- (c) losses against hand-computed cases --------------------------------------

class LinearCritic(nn.Module):
    """f(x) = sum(w * x) per sample; grad_x f = w everywhere."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.w * x).flatten(1).sum(1)


class HalfSquareCritic(nn.Module):
    """f(x) = 0.5 * sum(x^2) per sample; grad_x f = x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.flatten(1).pow(2).sum(1)


def test_gradient_penalty_linear_critic() -> None:
    w = torch.tensor([[[[[3.0, 0.0], [0.0, 4.0]]]]])  # (1, 1, 1, 2, 2), ||w|| = 5
    critic = LinearCritic(w.clone())
    real, fake = torch.rand(3, 1, 1, 2, 2), torch.rand(3, 1, 1, 2, 2)
    gp = gradient_penalty(critic, real, fake, lambda_gp=10.0)
    assert gp.item() == pytest.approx(10.0 * (5.0 - 1.0) ** 2, rel=1e-6)  # 160
    # d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w / ||w||: the graph reaches w
    gp.backward()
    torch.testing.assert_close(critic.w.grad, 2 * 10.0 * 4.0 * w / 5.0)


def test_gradient_penalty_is_per_sample() -> None:
    # grad of 0.5||x||^2 at x_hat_b is x_hat_b; real = 2 * ones, fake = 0 gives
    # x_hat_b = 2 eps_b * ones(4) with norm 4 eps_b, eps_b drawn from the same seed.
    real, fake = torch.full((2, 1, 1, 2, 2), 2.0), torch.zeros(2, 1, 1, 2, 2)
    gp = gradient_penalty(HalfSquareCritic(), real, fake, 10.0, torch.Generator().manual_seed(7))
    eps = torch.rand(2, generator=torch.Generator().manual_seed(7)).numpy()
    expected = 10.0 * np.mean((4.0 * eps - 1.0) ** 2)
    assert gp.item() == pytest.approx(expected, rel=1e-5)
    assert expected != pytest.approx(10.0 * (4.0 * eps.mean() - 1.0) ** 2, rel=1e-3)


def test_critic_and_generator_loss_hand_values() -> None:
    w = torch.full((1, 1, 1, 2, 2), 0.5)  # ||w|| = 1 -> zero penalty
    critic = LinearCritic(w)
    real, fake = torch.ones(2, 1, 1, 2, 2), torch.zeros(2, 1, 1, 2, 2)
    c = critic_loss(critic, real, fake, lambda_gp=10.0)
    assert c.wasserstein.item() == pytest.approx(0.0 - 2.0)  # f(0) - f(1) = -sum(w)
    assert c.gp.item() == pytest.approx(0.0, abs=1e-6)
    assert c.total.item() == pytest.approx(-2.0, abs=1e-6)

    class ConstReg(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.full((x.shape[0],), 3.0)

    age = torch.tensor([1.0, 5.0])  # squared errors 4 and 4
    g = generator_loss(critic, fake, real, alpha=10.0, regressor=ConstReg(), age=age, beta=0.1)
    assert g.adversarial.item() == pytest.approx(0.0)  # -f(0)
    assert g.l1.item() == pytest.approx(1.0)
    assert g.task.item() == pytest.approx(4.0)
    assert g.total.item() == pytest.approx(0.0 + 10.0 * 1.0 + 0.1 * 4.0)
    plain = generator_loss(critic, fake, real, alpha=10.0)
    assert plain.task.item() == 0.0 and plain.total.item() == pytest.approx(10.0)
    with pytest.raises(BrainAgeError, match="age"):
        generator_loss(critic, fake, real, regressor=ConstReg())


def test_task_loss_reaches_generator_and_regressor() -> None:
    torch.manual_seed(0)
    gen, crit = TGBGenerator(SMALL_GAN), TGBCritic(SMALL_GAN)
    reg = TGBRegressor(RegressorConfig(input_shape=(32, 32, 32), width=0.125, fc_units=(8,)))
    x = torch.rand(2, 1, 32, 32, 32)
    loss = generator_loss(crit, gen(x), x, regressor=reg, age=torch.tensor([8.0, 20.0]))
    (0.1 * loss.task).backward()
    assert gen.head.weight.grad is not None and gen.head.weight.grad.abs().sum() > 0
    assert reg.head[-1].weight.grad is not None


# ---- (d) plan_synthesis ---------------------------------------------------------

def _bin_counts(ages: np.ndarray, lo: int, hi: int) -> np.ndarray:
    return np.histogram(ages, bins=np.arange(lo, hi + 2))[0]  # bins [k, k+1)


def test_plan_synthesis_properties() -> None:
    # bins: [6,7) 3 images, [7,8) [8,9) [9,10) 25 each, [10,11) none, [11,12) 25, [12,13) 4
    ages = np.concatenate([
        [6.2, 6.5, 6.8], np.linspace(7.02, 9.98, 75), np.linspace(11.02, 11.98, 25),
        [12.1, 12.3, 12.5, 12.8],
    ])
    min_per_bin = 20
    plan = plan_synthesis(ages, min_per_bin=min_per_bin, rng=1)
    real = _bin_counts(ages, 6, 12)
    np.testing.assert_array_equal(real, [3, 25, 25, 25, 0, 25, 4])
    short = {6, 10, 12}
    assert len(plan) >= int(np.clip(min_per_bin - real, 0, None).sum())
    for i, j, eps, label in plan:
        yi, yj = ages[i], ages[j]
        assert yi < yj and 0.0 <= eps <= 1.0
        assert label == pytest.approx(eps * yi + (1 - eps) * yj)
        assert yi - 1e-12 <= label <= yj + 1e-12
        # some anchor y_s in a short bin has both images strictly within 1 year
        lo, hi = max(yi, yj - 1.0), min(yj, yi + 1.0)
        assert lo < hi
        assert any(lo < b + 1 and hi > b for b in short)
    labels = np.array([p.target_age for p in plan])
    total = real + _bin_counts(labels, 6, 12)
    assert np.all(total >= min_per_bin), total


def test_plan_synthesis_hand_case_and_determinism() -> None:
    ages = np.array([5.5, 6.5])  # the only pair; bins [5,6) and [6,7) need 2 more each
    plan = plan_synthesis(ages, min_per_bin=3, rng=0)
    assert {(p.i, p.j) for p in plan} == {(0, 1)}
    labels = np.array([p.target_age for p in plan])
    assert (labels < 6).sum() >= 2 and (labels >= 6).sum() >= 2
    assert plan == plan_synthesis(ages, min_per_bin=3, rng=0)
    assert plan_synthesis(ages, min_per_bin=1) == []


def test_plan_synthesis_errors() -> None:
    # bins [6,7) and [7,8) are empty and 5.4 -> 8.5 is more than 2 years apart
    with pytest.raises(BrainAgeError, match=r"bin \[6, 7\)"):
        plan_synthesis(np.array([5.2, 5.4, 8.5, 8.7]), min_per_bin=2, rng=0)
    # the oldest image sits on its bin's lower edge: nothing older to pair with
    with pytest.raises(BrainAgeError, match=r"bin \[6, 7\)"):
        plan_synthesis(np.array([5.0, 5.5, 6.0]), min_per_bin=2, rng=0)
    with pytest.raises(BrainAgeError, match="1-D"):
        plan_synthesis(np.array([]))


# ---- (e) latent interpolation ----------------------------------------------------

def test_interpolate_latents_endpoints_and_mix() -> None:
    torch.manual_seed(0)
    gen = TGBGenerator(SMALL_GAN).eval()
    x_i, x_j = torch.rand(2, 1, 16, 16, 32), torch.rand(2, 1, 16, 16, 32)
    with torch.no_grad():
        z_i, z_j = gen.encode(x_i), gen.encode(x_j)
        s1 = interpolate_latents(gen, x_i, x_j, 1.0)
        s0 = interpolate_latents(gen, x_i, x_j, 0.0)
        assert s1.shape == x_i.shape
        torch.testing.assert_close(s1, gen.decode(z_i), rtol=0, atol=0)
        torch.testing.assert_close(s0, gen.decode(z_j), rtol=0, atol=0)
        assert not torch.equal(s1, s0)
        # per-sample eps: the decoder must receive 0.25 z_i + 0.75 z_j for sample 0
        # and 0.75 z_i + 0.25 z_j for sample 1
        seen: list[torch.Tensor] = []
        decode = gen.decode
        gen.decode = lambda z: seen.append(z) or decode(z)  # type: ignore[method-assign]
        mix = interpolate_latents(gen, x_i, x_j, torch.tensor([0.25, 0.75]))
    assert mix.shape == x_i.shape
    want = torch.stack([0.25 * z_i[0] + 0.75 * z_j[0], 0.75 * z_i[1] + 0.25 * z_j[1]])
    assert (z_i - z_j).abs().max() > 1e-2  # the mix is distinguishable
    torch.testing.assert_close(seen[0], want)
