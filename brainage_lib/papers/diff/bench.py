"""Training throughput of the DIFF notebook's models: samples per second.

The diffusion autoencoder (one step = ``diffae_loss`` with a fifth of the batch
unlabelled + Adam), DenseNet121 and the DeepBrainNet-style CNN (MSE + Adam), on random
slices. On CUDA: the paper's 128x128 slices and widths, batch 32, fp32 and bf16
autocast. On CPU: the quick profile's 64x64 slices and reduced widths, batch 8, fp32.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from brainage_lib.models.baselines2d import DeepBrainNet2D, SliceCNNConfig, densenet121_2d
from brainage_lib.models.diffae import DiffAE, DiffAEConfig, diffae_loss, make_scheduler
from brainage_lib.run.timing import samples_per_second

__all__ = ["bench_diff"]

CUDA_SETTING = {"size": 128, "batch": 32, "diffae": DiffAEConfig(), "dbn": SliceCNNConfig()}
CPU_SETTING = {"size": 64, "batch": 8,
               "diffae": DiffAEConfig(image_size=64, channels=(16, 32, 48, 64), num_res_blocks=1, norm_groups=16),
               "dbn": SliceCNNConfig(channels=(16, 32, 64, 128, 128))}


def bench_diff(device: torch.device | str = "cpu", n_iter: int = 10) -> dict:
    """Training samples/s per model and precision, e.g. ``train_diffae_bf16_samples_per_s``.

    Also returns ``diff_bench_setting``, a sentence naming the slice size, batch and widths.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    s = CUDA_SETTING if cuda else CPU_SETTING
    size, batch = s["size"], s["batch"]
    gen = torch.Generator(device=dev).manual_seed(0)
    x = torch.rand(batch, 1, size, size, device=dev, generator=gen)  # (B, 1, S, S) in [0, 1]
    age = 18 + 77 * torch.rand(batch, device=dev, generator=gen)
    age_semi = age.clone()
    age_semi[::5] = float("nan")  # every fifth slice unlabelled, as in lifespan_train
    target = (age - 56.0) / 21.0
    out = {"diff_bench_setting": (
        f"{size}x{size} slices, batch {batch}; DiffAE channels {s['diffae'].channels} x{s['diffae'].num_res_blocks} "
        f"res blocks; DeepBrainNet-style widths {s['dbn'].channels}; {'fp32 and bf16 autocast' if cuda else 'fp32'}")}
    builders = {"diffae": lambda: DiffAE(s["diffae"]), "densenet121": densenet121_2d,
                "deepbrainnet": lambda: DeepBrainNet2D(s["dbn"])}
    for name, build in builders.items():
        for prec in ("fp32", "bf16") if cuda else ("fp32",):
            torch.manual_seed(0)
            model = build().to(dev).train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            sched = make_scheduler(s["diffae"]) if name == "diffae" else None

            def step() -> None:
                with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=prec == "bf16"):
                    if sched is not None:
                        loss = diffae_loss(model, x, age_semi, sched, gen).total
                    else:
                        loss = F.mse_loss(model(x).float().reshape(-1), target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            out[f"train_{name}_{prec}_samples_per_s"] = samples_per_second(step, dev, batch, n_iter)
            del model, opt
            if cuda:
                torch.cuda.empty_cache()
    return out
