"""Throughput benchmarks (``make bench``): simulator, cache building, data loading and model training.

Each measurement runs on a fresh temporary cohort and reports items per second on
whatever device is present; results go to ``bench/results.json``.
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from brainage_lib import paths, registry
from brainage_lib.data.cache import cached_array
from brainage_lib.data.cohort import load_cohort
from brainage_lib.data.datasets import CachedArrayDataset
from brainage_lib.data.transforms import get_transform, load_volume
from brainage_lib.engine.fabric import Engine
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.preprocess.bench import bench_preprocess
from brainage_lib.run.provenance import provenance
from brainage_lib.run.seeding import resolve_device
from brainage_lib.simulation.simulate import simulate_cohort


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 2) if seconds > 0 else float("inf")


def _bench_loops(arr, ages, stages: Path, epochs: int = 2) -> dict[str, float]:
    """Training samples/s of a small 3D CNN on the cached cohort: a plain DataLoader loop and the engine.

    The engine's loop (``train_regressor`` on an ``Engine`` with a checkpoint folder: a stage
    identity over the data, a checkpoint per epoch) against the loop it replaced, same model,
    data and batches; the difference is the engine's overhead (or, on CUDA, its gain from an
    on-device cohort).
    """
    device = resolve_device("auto")
    ds = CachedArrayDataset(arr, ages)
    cfg = TrainConfig(epochs=epochs, batch_size=4, lr=1e-4, seed=0)
    def model() -> nn.Module:  # two strided convolutions, pooled: a regressor of any paper's volume size
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv3d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv3d(8, 16, 3, stride=2, padding=1),
                             nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(16, 1))

    mean, sd = float(ds.ages.mean()), float(ds.ages.std())
    net = model().to(device)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    loader = DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    for _ in range(epochs):
        for x, y in loader:
            loss = (net(x.to(device)).reshape(-1) - ((y.to(device) - mean) / sd)).abs().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    plain = _rate(epochs * len(ds), time.perf_counter() - t0)
    t0 = time.perf_counter()
    train_regressor(model(), ds, None, cfg, Engine(device, checkpoints=stages), "bench", progress=False)
    engine = _rate(epochs * len(ds), time.perf_counter() - t0)
    return {"train_loop_plain_small_cnn_samples_per_s": plain, "train_loop_engine_small_cnn_samples_per_s": engine}


def main_transforms() -> list[str]:
    """Each paper's main input transform (the first it declares)."""
    return [next(iter(p.transforms)) for p in registry.papers().values() if p.transforms]


def listing() -> list[str]:
    """What ``brainage bench`` measures, one line per part, without running anything."""
    lines = ["simulator: abide_like at 2 mm", "engine overhead: a small 3D CNN, plain loop vs the engine"]
    lines += [f"cache build, cached and NIfTI loading: transform '{t}'" for t in main_transforms()]
    lines += [f"{p.short} ({p.notebook}): {p.bench}" for p in registry.papers().values() if p.bench]
    return lines + ["preprocessing: seconds per scan of each recipe (with make preprocess-deps)"]


def run_benchmarks(n: int = 40, out: str | None = None) -> dict:
    """Measure and print throughput; return the numbers."""
    res: dict = {"provenance": provenance(), "n": n, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        simulate_cohort("abide_like", tmp / "cohort", n=n, seed=0, progress=False)
        res["results"]["simulate_abide_like_2mm_subjects_per_s"] = _rate(n, time.perf_counter() - t0)
        cohort = load_cohort(tmp / "cohort")
        for name in main_transforms():
            tr = get_transform(name)
            t0 = time.perf_counter()
            arr = cached_array(cohort, tr, root=tmp / "cache", progress=False)
            res["results"][f"cache_build_{name}_images_per_s"] = _rate(n, time.perf_counter() - t0)
            loader = DataLoader(CachedArrayDataset(arr, cohort.ages, channel=tr.inputs != "slice_sequence"), batch_size=4,
                                shuffle=True)
            t0 = time.perf_counter()
            for _ in range(3):
                for _x, _y in loader:
                    pass
            res["results"][f"load_cached_{name}_samples_per_s"] = _rate(3 * n, time.perf_counter() - t0)
            t0 = time.perf_counter()
            for p in cohort.paths[: min(n, 10)]:
                tr(load_volume(p))
            res["results"][f"load_nifti_{name}_samples_per_s"] = _rate(min(n, 10), time.perf_counter() - t0)
            if tr.inputs == "volume" and "train_loop_engine_small_cnn_samples_per_s" not in res["results"]:
                res["results"].update(_bench_loops(arr, cohort.ages, tmp / "stages"))  # the first volume input
    device = resolve_device("auto")
    for paper in registry.papers().values():
        if paper.bench:
            res["results"].update(paper.load("bench")(device))
    res["results"].update(bench_preprocess())  # seconds per scan of each recipe (needs make preprocess-deps)
    width = max(map(len, res["results"]))
    print(f"device: {res['provenance']['device']}")
    for k, v in res["results"].items():
        print(f"  {k:<{width}}  {v:>10}")
    target = Path(out) if out else paths.project_root() / "bench" / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(res, indent=1) + "\n")
    print(f"wrote {target}")
    return res
