"""What the GPU reads sits on the GPU, the LSTM never runs in fp16, and DDP processes agree on saves without a
collective per step."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import ConcatDataset

from brainage_lib.data.datasets import VolumeDataset
from brainage_lib.engine import fabric as fabric_mod
from brainage_lib.engine.fabric import Stage, batch_loader
from brainage_lib.papers.lstm.resnet_lstm import ResNetLSTM, ResNetLSTMConfig

CPU = torch.device("cpu")


def _concat() -> ConcatDataset:
    rng = np.random.default_rng(0)
    real = VolumeDataset(rng.normal(size=(7, 6, 6, 6)).astype(np.float16), rng.uniform(5, 20, 7),
                         indices=[6, 0, 3, 3, 1])
    synthetic = VolumeDataset(rng.normal(size=(4, 6, 6, 6)).astype(np.float32), rng.uniform(5, 20, 4))
    return ConcatDataset([real, synthetic])


def test_a_concatenated_set_goes_on_the_device_as_one_tensor(monkeypatch):
    """Real (float16 rows, some repeated) plus synthetic (float32) images: one tensor, the same batches as a loader."""
    ds = _concat()
    batches = [[0, 8, 2], [5, 1, 4, 7], [3, 6]]
    by_loader = list(batch_loader(ds, CPU)(batches))
    assert batch_loader(ds, CPU).on_device is None  # no GPU: the DataLoader
    monkeypatch.setattr(fabric_mod, "_fits_on_device", lambda parts, device: True)
    load = batch_loader(ds, CPU)
    x, y = load.on_device
    assert x.shape == (9, 1, 6, 6, 6) and x.dtype == torch.float32 and y.shape == (9,)
    for (xa, ya), (xb, yb) in zip(by_loader, load(batches), strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb) and xb.dtype == torch.float32


def test_sets_of_different_item_shapes_stay_in_a_loader(monkeypatch):
    monkeypatch.setattr(fabric_mod, "_fits_on_device", lambda parts, device: True)
    rng = np.random.default_rng(0)
    mixed = ConcatDataset([VolumeDataset(rng.normal(size=(2, 4, 4, 4)), np.ones(2)),
                           VolumeDataset(rng.normal(size=(2, 5, 5, 5)), np.ones(2))])
    assert batch_loader(mixed, CPU).on_device is None


class _FakeDDP:
    """Two ranks in lockstep, seen from rank 0: ``all_reduce`` sums two equal copies and is counted."""

    world_size, is_global_zero, device = 2, True, CPU

    def __init__(self) -> None:
        self.collectives, self.saved_at = 0, []

    def all_reduce(self, t, reduce_op="sum"):
        self.collectives += 1
        return t * 2

    def barrier(self) -> None:
        pass

    def save(self, path, state) -> None:
        path.write_bytes(b"")
        self.saved_at.append(state["steps"])


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


def test_ddp_processes_agree_on_saves_without_a_collective_per_step(tmp_path, monkeypatch):
    """One second per step, a checkpoint due every 10 s: saved every 10 steps, as one process would, with a
    collective on a few planned steps only (not on each of the 100)."""
    clock = _Clock()
    monkeypatch.setattr(fabric_mod, "time", clock)
    ddp = _FakeDDP()
    stage = Stage("s", {"a": 1}, tmp_path, save_every_s=10.0)
    state = {"steps": 0, "epoch": 0, "batch": 0}
    stage.restore(ddp, state)
    for _ in range(100):
        clock.now += 1.0
        state["steps"] += 1
        stage.tick(ddp, state)
    assert ddp.saved_at == list(range(10, 101, 10))
    assert ddp.collectives <= 25, ddp.collectives


def test_the_lstm_runs_in_fp32_under_bf16_autocast():
    """Under autocast the slice encoder runs in bf16, the LSTM in fp32 (never fp16 without a gradient scaler)."""
    model = ResNetLSTM(ResNetLSTMConfig(n_slices=8, slice_size=34, pool_k=2, lstm_hidden=4, widen_factor=0.125))
    seen = []
    model.lstm.register_forward_hook(lambda m, inp, out: seen.append((inp[0].dtype, out[0].dtype)))
    x = torch.rand(2, 8, 34, 34)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert seen == [(torch.float32, torch.float32)]
    assert y.shape == (2, 1) and torch.isfinite(y.float()).all()


def test_the_step_clock_profiles_from_the_first_step_to_the_last():
    from brainage_lib.engine.profile import _StepClock

    calls = []

    class Profiler:
        def start(self):
            calls.append(("start", len(clock)))

        def stop(self):
            calls.append(("stop", len(clock)))

    clock = _StepClock(4, Profiler())
    for t in range(4):
        clock.append(float(t))
    assert calls == [("start", 1), ("stop", 4)] and clock == [0.0, 1.0, 2.0, 3.0] and clock.error is None

    class Broken:
        def start(self):
            raise RuntimeError("CUPTI unavailable")

    broken = _StepClock(3, Broken())
    for t in range(3):
        broken.append(float(t))  # the training goes on; the busy share is lost, and says why
    assert broken == [0.0, 1.0, 2.0] and "CUPTI unavailable" in broken.error
