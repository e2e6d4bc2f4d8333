"""bf16 autocast against fp32 where it matters most: WGAN-GP's gradient penalty and one GAN step.

The penalty differentiates the critic twice (``create_graph``), and its target, a gradient norm
of 1, is a small difference of large numbers: the place where bf16's 8-bit mantissa could hurt.
Both comparisons start from the same weights, inputs and penalty draws:

- ``gradient_penalty``: the penalty's value in fp32 and under bf16 autocast, and its gradient
  with respect to the critic's weights (relative difference of the two gradients and their cosine);
- ``gan_step``: one ``GANTrainer.step`` (the paper profile's ``n_critic`` critic updates, then
  the generator's) on a Fabric with precision ``32-true`` and one with ``bf16-mixed``: each loss
  term, and the weight updates of generator and critic (relative difference and cosine).

At the paper's sizes on CUDA; at tiny ones on a CPU (bf16 autocast runs there too), which tests
the code and says nothing of a GPU.
"""
from __future__ import annotations

import copy

import torch

from brainage_lib.papers.tgb.gan import GANConfig, TGBCritic, TGBGenerator, gradient_penalty
from brainage_lib.papers.tgb.bench import CUDA_SETTING, TINY_SETTING
from brainage_lib.papers.tgb.training import GANTrainConfig, GANTrainer
from brainage_lib.run.params import load_profile

__all__ = ["compare_precisions", "format_precisions"]


def _vector(tensors) -> torch.Tensor:
    return torch.cat([t.detach().float().reshape(-1) for t in tensors])


def _agreement(ref: torch.Tensor, other: torch.Tensor) -> dict[str, float]:
    """Relative difference ``|other - ref| / |ref|`` and cosine of two flat vectors."""
    ref, other = ref.double(), other.double()
    norm = float(ref.norm())
    return {"relative_difference": float((other - ref).norm()) / norm if norm else float("nan"),
            "cosine": float(torch.nn.functional.cosine_similarity(ref, other, dim=0))}


def _fabric(device: torch.device, precision: str):
    from lightning_fabric import Fabric

    cuda = device.type == "cuda"
    return Fabric(accelerator="cuda" if cuda else "cpu", devices=[device.index or 0] if cuda else 1,
                  precision=precision)


def _penalty(critic: TGBCritic, real, fake, lambda_gp: float, eps, bf16: bool) -> tuple[float, torch.Tensor]:
    critic.zero_grad(set_to_none=True)
    with torch.autocast(device_type=real.device.type, dtype=torch.bfloat16, enabled=bf16):
        gp = gradient_penalty(critic, real, fake, lambda_gp, eps=eps)
    gp.float().backward()
    grads = (p.grad if p.grad is not None else torch.zeros_like(p) for p in critic.parameters())
    return float(gp.detach()), _vector(grads)


def compare_precisions(device: torch.device, paper: bool) -> dict:
    """The comparisons of the module docstring; plain numbers (JSON)."""
    s = CUDA_SETTING if paper else TINY_SETTING
    n_critic = int(load_profile("01_tgb", "paper")["N_CRITIC"])
    gcfg = GANConfig(width=s["gan_width"])
    torch.manual_seed(0)
    gen, critic = TGBGenerator(gcfg).to(device), TGBCritic(gcfg).to(device)
    g = torch.Generator(device=device).manual_seed(0)
    shape = (s["batch"], 1, *(s["size"],) * 3)
    real = torch.rand(shape, device=device, generator=g)
    with torch.no_grad():
        fake = gen(real)
    eps = torch.rand((s["batch"], 1, 1, 1, 1), device=device, generator=g)
    gp32, grad32 = _penalty(critic, real, fake, gcfg.lambda_gp, eps, False)
    gp16, grad16 = _penalty(critic, real, fake, gcfg.lambda_gp, eps, True)
    out = {"setting": f"{s['size']}^3, batch {s['batch']}, GAN width {s['gan_width']}, n_critic {n_critic}",
           "gradient_penalty": {"fp32": gp32, "bf16": gp16,
                                "relative_difference": abs(gp16 - gp32) / max(abs(gp32), 1e-12),
                                "critic_gradient": _agreement(grad32, grad16)}}
    age = 6 + 18 * torch.rand(s["batch"], device=device, generator=g)
    start = {"generator": copy.deepcopy(gen.state_dict()), "critic": copy.deepcopy(critic.state_dict())}
    steps = {}
    for precision in ("32-true", "bf16-mixed"):
        g_net, c_net = TGBGenerator(gcfg), TGBCritic(gcfg)
        g_net.load_state_dict(start["generator"])
        c_net.load_state_dict(start["critic"])
        trainer = GANTrainer(g_net, c_net, GANTrainConfig(n_critic=n_critic, amp=precision != "32-true"),
                             fabric=_fabric(device, precision))
        losses = {k: float(v) for k, v in trainer.step([(real, age)] * n_critic).items()}
        delta = {name: _vector(net.state_dict()[k] - start[name][k].to(device) for k in start[name])
                 for name, net in (("generator", g_net), ("critic", c_net))}
        steps[precision] = (losses, delta)
    (l32, d32), (l16, d16) = steps["32-true"], steps["bf16-mixed"]
    out["gan_step"] = {"losses_fp32": l32, "losses_bf16": l16,
                       "generator_update": _agreement(d32["generator"], d16["generator"]),
                       "critic_update": _agreement(d32["critic"], d16["critic"])}
    return out


def format_precisions(res: dict) -> list[str]:
    """Three lines for the device table."""
    gp, step = res["gradient_penalty"], res["gan_step"]
    def apart(a: dict) -> str:
        return f"{100 * a['relative_difference']:.2f} % apart (cosine {a['cosine']:.4f})"

    return [f"bf16 vs fp32 ({res['setting']}):",
            f"  gradient penalty {gp['fp32']:.4g} (fp32) vs {gp['bf16']:.4g} (bf16): "
            f"{100 * gp['relative_difference']:.2f} % apart; its critic gradient {apart(gp['critic_gradient'])}",
            f"  one GAN step: generator update {apart(step['generator_update'])}, "
            f"critic update {apart(step['critic_update'])}"]


DEVICE_CHECK = (compare_precisions, format_precisions)  # the wing's Paper(device_check=...): run, lines
