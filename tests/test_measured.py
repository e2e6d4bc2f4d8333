"""COMPILE and PARALLEL: what ``make gpu-check`` measured decides ``auto``; ``on``, ``off`` and numbers are as given."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from brainage_lib.data.datasets import CachedArrayDataset
from brainage_lib.engine.fabric import Engine
from brainage_lib.engine.training import TrainConfig, train_regressor
from brainage_lib.errors import BrainAgeError
from brainage_lib.run import measured
from brainage_lib.run.measured import compile_choice, parallel_choice

GPU = "NVIDIA H200"


@pytest.fixture
def fake_gpu(monkeypatch):
    """A CUDA device named GPU with 140 GiB, as torch would report it (no GPU is touched)."""
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: GPU)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda *a: SimpleNamespace(total_memory=140 * 2**30))
    return torch.device("cuda")


def _gpu_json(tmp_path, device=GPU, sizes="paper", compile=None, peaks=None):
    f = tmp_path / "gpu.json"
    f.write_text(json.dumps({"device": device, "sizes": sizes, "compile": compile or {},
                             "peak_memory_gib": peaks or {}}))
    return f


def test_compile_on_and_off_are_taken_as_given_and_a_typo_is_refused():
    assert compile_choice("on", torch.device("cpu"), "01_tgb")[0] is True
    assert compile_choice("OFF", torch.device("cpu"), "01_tgb")[0] is False
    with pytest.raises(BrainAgeError, match="COMPILE='yes'.*auto, on, off"):
        compile_choice("yes", torch.device("cpu"), "01_tgb")


def test_compile_auto_follows_gpu_check_on_the_gpu_it_measured(tmp_path, fake_gpu):
    on, why = compile_choice("auto", torch.device("cpu"), "01_tgb")
    assert not on and "CPU" in why
    assert "has not measured" in compile_choice("auto", fake_gpu, "01_tgb", tmp_path / "missing.json")[1]
    table = {"01_tgb": {"faster": True, "eager_hours": 1.5, "compiled_hours": 1.1},
             "03_lstm": {"faster": False, "eager_hours": 0.2, "compiled_hours": 0.3}}
    f = _gpu_json(tmp_path, compile=table)
    on, why = compile_choice("auto", fake_gpu, "01_tgb", f)
    assert on and "1.50 h eager vs 1.10 h compiled" in why
    assert compile_choice("auto", fake_gpu, "03_lstm", f)[0] is False
    assert compile_choice("auto", fake_gpu, "02_diff", f)[0] is False  # not measured: off
    other = _gpu_json(tmp_path, device="NVIDIA A100", compile=table)
    assert compile_choice("auto", fake_gpu, "01_tgb", other)[0] is False  # another GPU's measurement does not count
    tiny = _gpu_json(tmp_path, sizes="tiny (CPU test run)", compile=table)
    assert compile_choice("auto", fake_gpu, "01_tgb", tiny)[0] is False


def test_parallel_numbers_auto_and_refusals(tmp_path, fake_gpu):
    nbs = ["01_tgb", "02_diff", "03_lstm"]
    assert parallel_choice("3", nbs, cuda=False)[0] == 3
    assert parallel_choice(8, nbs, cuda=False)[0] == 3  # never more than there are notebooks
    for bad in ("0", "many", "-1"):
        with pytest.raises(BrainAgeError, match="PARALLEL"):
            parallel_choice(bad, nbs)
    assert parallel_choice("auto", nbs, cuda=False)[0] == 1
    assert parallel_choice("auto", nbs, cuda=True, file=tmp_path / "missing.json")[0] == 1
    # 140 GiB, 90 %: 126 GiB. The two largest (70 + 50) fit, all three (+ 30) do not.
    f = _gpu_json(tmp_path, peaks={"01_tgb": 70.0, "02_diff": 30.0, "03_lstm": 50.0})
    n, why = parallel_choice("auto", nbs, cuda=True, file=f)
    assert n == 2 and "70.0, 50.0, 30.0" in why
    f = _gpu_json(tmp_path, peaks={"01_tgb": 20.0, "02_diff": 30.0, "03_lstm": 50.0})
    assert parallel_choice("auto", nbs, cuda=True, file=f)[0] == 3
    f = _gpu_json(tmp_path, peaks={"01_tgb": 130.0, "02_diff": 30.0, "03_lstm": 50.0})
    assert parallel_choice("auto", nbs, cuda=True, file=f)[0] == 1
    f = _gpu_json(tmp_path, peaks={"01_tgb": 20.0, "03_lstm": 50.0})
    n, why = parallel_choice("auto", nbs, cuda=True, file=f)
    assert n == 1 and "02_diff" in why
    assert measured.MEMORY_HEADROOM == 0.9


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(27, 1)

    def forward(self, x):
        return self.fc(x.flatten(1))


def _train(compile: bool, tmp_path):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ages = rng.uniform(5, 20, 24).astype(np.float32)
    x = (rng.normal(size=(24, 1, 3, 3, 3)) + ages[:, None, None, None, None] / 10).astype(np.float32)
    engine = Engine("cpu", 1, tmp_path / f"stages-{compile}", compile=compile)
    ds = CachedArrayDataset(x, ages, np.arange(24))
    return train_regressor(Tiny(), ds, None, TrainConfig(epochs=3, batch_size=8, lr=1e-2), engine, "tiny",
                           progress=False), engine


def test_compile_trains_through_torch_compile_and_keeps_the_models_keys(tmp_path, monkeypatch):
    calls = []
    real = torch.compile
    monkeypatch.setattr(torch, "compile", lambda m, *a, **k: calls.append(type(m).__name__) or real(m, *a, **k))
    eager, _ = _train(False, tmp_path)
    assert calls == []
    done, engine = _train(True, tmp_path)
    assert calls == ["Tiny"] and "torch.compile" in engine.banner()
    assert list(done.model.state_dict()) == list(eager.model.state_dict())  # no "_orig_mod." prefix
    ckpt = torch.load(next((tmp_path / "stages-True").glob("*/final.ckpt")), weights_only=False)
    assert list(ckpt["model"]) == ["fc.weight", "fc.bias"]
    # the same arithmetic, compiled: the same losses to float32 rounding
    np.testing.assert_allclose(done.history["train_loss"], eager.history["train_loss"], rtol=1e-4)
    assert isinstance(done.history["train_loss"].iloc[0], float)
