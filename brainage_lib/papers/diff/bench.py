"""Training throughput of the DIFF notebook's models: samples per second.

The diffusion autoencoder (one step = ``diffae_loss`` with a fifth of the batch
unlabelled + Adam), DenseNet121 and the DeepBrainNet-style CNN (MSE + Adam), on random
slices. On CUDA: the paper's 128x128 slices and widths, batch 32, fp32 and bf16
autocast. On CPU: the quick profile's 64x64 slices and reduced widths, batch 8, fp32.

``gpu_stages`` gives the same steps to ``make gpu-check``, with the paper profile's schedule.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from brainage_lib.data.datasets import SliceDataset
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.papers.diff.baselines import DeepBrainNet2D, SliceCNNConfig, densenet121_2d
from brainage_lib.papers.diff.diffae import DiffAE, DiffAEConfig, diffae_loss, make_scheduler
from brainage_lib.papers.diff.training import DiffTrainConfig, parse_widths, train_diffae
from brainage_lib.run.params import load_profile
from brainage_lib.run.timing import StageBench, samples_per_second
from brainage_lib.simulation.presets import get_preset

__all__ = ["bench_diff", "gpu_stages"]

CUDA_SETTING = {"size": 128, "batch": 32, "diffae": DiffAEConfig(), "dbn": SliceCNNConfig()}
CPU_SETTING = {"size": 64, "batch": 8,
               "diffae": DiffAEConfig(image_size=64, channels=(16, 32, 48, 64), num_res_blocks=1, norm_groups=16),
               "dbn": SliceCNNConfig(channels=(16, 32, 64, 128, 128))}
TINY_SETTING = {"size": 32, "batch": 4,
                "diffae": DiffAEConfig(image_size=32, channels=(8, 16), num_res_blocks=1, norm_groups=8,
                                       mid_attention_blocks=1, z_dim=32),
                "dbn": SliceCNNConfig(channels=(8, 16, 16))}
BUILDERS = {"diffae": lambda s: DiffAE(s["diffae"]), "densenet121": lambda s: densenet121_2d(),
            "deepbrainnet": lambda s: DeepBrainNet2D(s["dbn"])}


def _train_step(name: str, s: dict, device: torch.device, bf16: bool, batch: int) -> Callable[[], None]:
    """One Adam step of model ``name`` on ``batch`` random slices (every fifth unlabelled for the DiffAE)."""
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, 1, s["size"], s["size"], device=device, generator=gen)  # (B, 1, S, S) in [0, 1]
    age = 18 + 77 * torch.rand(batch, device=device, generator=gen)
    age_semi = age.clone()
    age_semi[::5] = float("nan")  # every fifth slice unlabelled, as in lifespan_train
    target = (age - 56.0) / 21.0
    model = BUILDERS[name](s).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sched = make_scheduler(s["diffae"]) if name == "diffae" else None

    def step() -> None:
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
            if sched is not None:
                loss = diffae_loss(model, x, age_semi, sched, gen).total
            else:
                loss = F.mse_loss(model(x).float().reshape(-1), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def gpu_stages(paper: bool = True) -> list[StageBench]:
    """The diffusion autoencoder and the two CNN baselines with the paper profile's schedule.

    Training slices: ``lifespan_train``'s labelled subjects less the validation and held-out
    shares, plus every unlabelled one for the DiffAE (its loader drops an incomplete batch).
    """
    p = load_profile("02_diff", "paper")
    preset = get_preset("lifespan_train")
    labelled = round(preset.n * (1 - preset.unlabelled_fraction))
    train_labelled = labelled - round(labelled * p["VAL_FRACTION"]) - round(labelled * p["HELDOUT_FRACTION"])
    s = TINY_SETTING if not paper else {
        "size": p["SLICE_SIZE"], "batch": p["BATCH_SIZE"], "dbn": SliceCNNConfig(channels=parse_widths(p["DBN_CHANNELS"])),
        "diffae": DiffAEConfig(image_size=p["SLICE_SIZE"], channels=parse_widths(p["CHANNELS"]),
                               num_res_blocks=p["NUM_RES_BLOCKS"], norm_groups=p["NORM_GROUPS"],
                               mid_attention_blocks=p["MID_ATTENTION_BLOCKS"], z_dim=p["Z_DIM"])}
    diffae, base_batch = s["diffae"], p["BASELINE_BATCH_SIZE"] if paper else s["batch"]
    text = f"{s['size']}x{s['size']} slices"
    make = {name: (lambda dev, bf16, batch, name=name: _train_step(name, s, dev, bf16, batch)) for name in BUILDERS}

    def engine_diffae(engine, bf16: bool, steps: int):
        n = steps * s["batch"] + 1  # one more than whole batches: the loader drops the incomplete last one
        cfg = DiffTrainConfig(epochs=1, batch_size=s["batch"], amp=bf16, max_steps=steps)
        return train_diffae(diffae, _slices(s, n, unlabelled=True), _slices(s, 4), cfg, engine, progress=False)

    def engine_cnn(name: str):
        def run(engine, bf16: bool, steps: int):
            cfg = TrainConfig(epochs=1, batch_size=base_batch, loss="mse", amp=bf16, max_steps=steps)
            return train_regressor(BUILDERS[name](s), _slices(s, steps * base_batch), None, cfg, engine, name,
                                   progress=False)
        return run

    return [StageBench("02_diff", "DiffAE", f"{text}, channels {diffae.channels}", s["batch"], make["diffae"],
                       (("diffusion autoencoder", train_labelled + preset.n - labelled, p["EPOCHS"]),),
                       drop_last=True, count_batch=5, engine_run=engine_diffae),
            StageBench("02_diff", "DenseNet121", text, base_batch, make["densenet121"],
                       (("DenseNet121", train_labelled, p["BASELINE_EPOCHS"]),), count_batch=2,
                       engine_run=engine_cnn("densenet121")),
            StageBench("02_diff", "DeepBrainNet", f"{text}, widths {s['dbn'].channels}", base_batch,
                       make["deepbrainnet"], (("DeepBrainNet-style CNN", train_labelled, p["BASELINE_EPOCHS"]),),
                       count_batch=2, engine_run=engine_cnn("deepbrainnet"))]


def _slices(s: dict, n: int, unlabelled: bool = False):
    """``n`` random float16 slices of the setting's size with ages (every fifth unlabelled if asked)."""
    rng = np.random.default_rng(0)
    ages = rng.uniform(18, 95, n).astype(np.float32)
    if unlabelled:
        ages[::5] = np.nan
    return SliceDataset(rng.random((n, s["size"], s["size"]), dtype=np.float32).astype(np.float16), ages)


def bench_diff(device: torch.device | str = "cpu", n_iter: int = 10) -> dict:
    """Training samples/s per model and precision, e.g. ``train_diffae_bf16_samples_per_s``.

    Also returns ``diff_bench_setting``, a sentence naming the slice size, batch and widths.
    """
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    s = CUDA_SETTING if cuda else CPU_SETTING
    size, batch = s["size"], s["batch"]
    out = {"diff_bench_setting": (
        f"{size}x{size} slices, batch {batch}; DiffAE channels {s['diffae'].channels} x{s['diffae'].num_res_blocks} "
        f"res blocks; DeepBrainNet-style widths {s['dbn'].channels}; {'fp32 and bf16 autocast' if cuda else 'fp32'}")}
    for name in BUILDERS:
        for prec in ("fp32", "bf16") if cuda else ("fp32",):
            torch.manual_seed(0)
            out[f"train_{name}_{prec}_samples_per_s"] = samples_per_second(
                _train_step(name, s, dev, prec == "bf16", batch), dev, batch, n_iter)
            if cuda:
                torch.cuda.empty_cache()
    return out
