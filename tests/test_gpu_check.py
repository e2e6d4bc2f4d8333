"""`make gpu-check` on the CPU (tiny sizes): the same code a GPU runs, checked against hand computations."""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from brainage_lib import gpu_check
from brainage_lib.engine.profile import gpu_busy_share
from brainage_lib.gpu_check import bf16_peak, format_report, run_gpu_check, stages
from brainage_lib.run.timing import count_flops


def test_flop_counter_against_hand_counts():
    torch.manual_seed(0)
    conv, lin = torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.Linear(4 * 8**3, 5)
    x = torch.rand(3, 1, 8, 8, 8)
    conv_f, lin_f = 2 * 1 * 4 * 27 * 8**3 * 3, 2 * 4 * 8**3 * 5 * 3  # multiply-adds x 2, batch 3
    assert count_flops(lambda: lin(conv(x).flatten(1))) == conv_f + lin_f
    # backward: the conv's weight gradient (its input needs none), the linear's input and weight gradients
    assert count_flops(lambda: lin(conv(x).flatten(1)).sum().backward()) == 2 * conv_f + 3 * lin_f

    def gradient_penalty() -> None:  # a double backward, which FlopCounterMode's module tracking cannot follow
        xh = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(lin(conv(xh).flatten(1)).sum(), xh, create_graph=True)
        g.pow(2).sum().backward()

    assert count_flops(gradient_penalty) > 2 * conv_f + 3 * lin_f


@pytest.mark.parametrize("name", ["REG", "GAN+TGB", "DiffAE", "3D-ResNet18"])
def test_flops_per_step_scale_with_the_batch(name):
    """paper_flops counts a small batch and scales it: exact for these networks (DiffAE: its age head aside)."""
    st = next(s for s in stages(paper=False) if s.name == name)
    cpu = torch.device("cpu")
    one, two = (count_flops(st.make_step(cpu, False, b)) for b in (st.count_batch, 2 * st.count_batch))
    assert two == pytest.approx(2 * one, rel=1e-3 if name == "DiffAE" else 0)


def test_paper_schedule_against_hand_counts():
    by = {s.name: s for s in stages(paper=True)}
    assert by["REG"].batch == 20 and by["REG"].total_steps == (32 + 47 + 47) * 200  # 640 real, then 940 twice
    assert by["GAN"].total_steps == by["GAN+TGB"].total_steps == 32 * 100
    # lifespan_train: 4600, 20 % unlabelled; 10 % + 10 % of the 3680 labelled for validation and held-out
    assert by["DiffAE"].total_steps == (2944 + 920) // 32 * 200
    assert by["DenseNet121"].total_steps == by["DeepBrainNet"].total_steps == math.ceil(2944 / 32) * 100
    lstm = by["3D-ResNet18"]
    assert lstm.batch == 1 and lstm.runs[0][1:] == (960, 60) and 0 < lstm.runs[1][1] < 960


def test_bf16_peaks():
    assert bf16_peak("NVIDIA H200") == bf16_peak("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert bf16_peak("NVIDIA H100 PCIe") == 756.0 and bf16_peak("NVIDIA A100-SXM4-80GB") == 312.0
    assert bf16_peak("Tesla V100-SXM2-16GB") is None


def test_gpu_check_runs_on_the_cpu_and_extrapolates(tmp_path, capsys):
    res = run_gpu_check("cpu", n_iter=1, out=tmp_path / "gpu.json")
    assert json.loads((tmp_path / "gpu.json").read_text()) == json.loads(json.dumps(res))
    assert [r["stage"] for r in res["stages"]] == [s.name for s in stages(paper=False)]
    for r in res["stages"]:
        m, eng = r["fp32"], r["engine"]
        assert m["samples_per_s"] > 0 and m["flops_per_step"] > 0 and "bf16" not in r
        assert m["tflops"] == pytest.approx(m["flops_per_step"] * m["samples_per_s"] / r["batch"] / 1e12)
        # the real stage: its steps were timed, its final checkpoint written; no GPU, so no busy share
        assert eng["steps"] == 2 and 0 < eng["step_s"] < eng["wall_s"] and eng["checkpoint_s"] > 0
        assert eng["gpu_busy"] is None and eng["peak_memory_gib"] is None
        epochs = sum(e for _, _, e in r["runs"])
        assert r["hours"] == pytest.approx((r["total_steps"] * eng["step_s"] + epochs * eng["checkpoint_s"]) / 3600)
    for nb in ("01_tgb", "02_diff", "03_lstm"):
        assert res["notebook_hours"][nb] == pytest.approx(sum(r["hours"] for r in res["stages"] if r["notebook"] == nb))
    assert res["reproduce_hours"] == pytest.approx(sum(res["notebook_hours"].values()) + res["simulation"]["hours"])
    assert res["bf16_peak_tflops"] is None and "no known bf16 peak" in res["peak_note"]
    printed = capsys.readouterr().out
    assert format_report(res) in printed and "forecast nothing" in printed


def _some_stages(broken: str, error: type[BaseException]):
    """Three tiny stages; ``broken`` raises ``error`` in its step and in its real stage."""
    def boom(*_args):
        raise error("CUDNN_STATUS_EXECUTION_FAILED (forced)")

    keep = [s for s in stages(paper=False) if s.name in ("REG", "DeepBrainNet", "3D-ResNet18")]
    return [dataclasses.replace(s, make_step=boom, engine_run=boom) if s.name == broken else s for s in keep]


def test_a_stage_that_fails_leaves_every_other_stage_in_the_json(tmp_path, monkeypatch):
    """A non-memory error (a cuDNN failure, say) in one stage: that stage reports it, the others are measured."""
    monkeypatch.setattr(gpu_check, "stages", lambda paper: _some_stages("DeepBrainNet", RuntimeError))
    res = run_gpu_check("cpu", n_iter=1, out=tmp_path / "gpu.json", verbose=False)
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert saved == json.loads(json.dumps(res))
    by = {r["stage"]: r for r in saved["stages"]}
    assert list(by) == ["REG", "DeepBrainNet", "3D-ResNet18"]
    for name in ("REG", "3D-ResNet18"):
        assert by[name]["fp32"]["samples_per_s"] > 0 and by[name]["engine"]["step_s"] > 0 and by[name]["hours"] > 0
    bad = by["DeepBrainNet"]
    assert bad["fp32"]["error"].startswith("RuntimeError") and "CUDNN_STATUS_EXECUTION_FAILED" in bad["fp32"]["error"]
    assert "CUDNN_STATUS_EXECUTION_FAILED" in bad["engine"]["error"] and bad["hours"] is None
    assert saved["notebook_hours"]["01_tgb"] > 0 and saved["notebook_hours"]["02_diff"] is None
    assert saved["reproduce_hours"] is None
    assert "RuntimeError (DeepBrainNet fp32 step)" in format_report(res)


def test_the_json_is_written_after_every_stage(tmp_path, monkeypatch):
    """An interruption (not caught: it ends the run) after the first stage leaves that stage on disk."""
    monkeypatch.setattr(gpu_check, "stages", lambda paper: _some_stages("DeepBrainNet", KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        run_gpu_check("cpu", n_iter=1, out=tmp_path / "gpu.json", verbose=False)
    saved = json.loads((tmp_path / "gpu.json").read_text())
    assert [r["stage"] for r in saved["stages"]] == ["REG"] and saved["stages"][0]["engine"]["step_s"] > 0


def test_busy_share():
    assert gpu_busy_share(0.5, 2.0) == 0.25 and gpu_busy_share(3.0, 2.0) == 1.0 and gpu_busy_share(1.0, 0.0) is None


def test_compiled_stages_decide_compile_per_notebook(tmp_path, monkeypatch):
    """``--compile``: each real stage is timed again compiled; a notebook compiles where that saves hours."""
    import numpy as np
    from torch import nn

    from brainage_lib.data.datasets import CachedArrayDataset
    from brainage_lib.engine.training import TrainConfig, train_regressor
    from brainage_lib.run.timing import StageBench

    def engine_run(engine, bf16, steps):
        x, ages = np.random.default_rng(0).normal(size=(16, 1, 2, 2, 2)).astype(np.float32), np.arange(16.0)
        net = nn.Sequential(nn.Flatten(), nn.Linear(8, 1))
        train_regressor(net, CachedArrayDataset(x, ages, np.arange(16)), None,
                        TrainConfig(epochs=4, batch_size=4, max_steps=steps), engine, "tiny", progress=False)

    def make_step(device, bf16, batch):
        net = nn.Linear(8, 1)
        return lambda: net(torch.rand(batch, 8)).sum().backward()

    tiny = StageBench("05_x", "tiny", "2^3 linear", 4, make_step, (("x", 400, 10), ("y", 400, 10)),
                      engine_run=engine_run)
    monkeypatch.setattr(gpu_check, "stages", lambda paper: [tiny])
    res = run_gpu_check("cpu", n_iter=1, out=tmp_path / "gpu.json", verbose=False, compile=True, engine_steps=3)
    row = res["stages"][0]
    eager, comp = row["engine"], row["engine_compiled"]
    assert comp["first_step_s"] > comp["step_s"] > 0  # the first compiled step compiles
    # the compiled hours, by hand: 2 runs x 100 steps x 10 epochs, a checkpoint per epoch, compilation once per run
    by_hand = (2000 * comp["step_s"] + 20 * eager["checkpoint_s"] + 2 * (comp["first_step_s"] - comp["step_s"])) / 3600
    assert row["compiled_hours"] == pytest.approx(by_hand)
    d = res["compile"]["05_x"]
    assert d["eager_hours"] == pytest.approx(row["hours"]) and d["compiled_hours"] == pytest.approx(by_hand)
    assert d["faster"] == (by_hand < (1 - gpu_check.COMPILE_MARGIN) * row["hours"])
    assert "COMPILE=auto is" in format_report(res)
    # a failed compiled timing leaves the decision open, never "faster"
    broken = {**row, "engine_compiled": {"error": "RuntimeError (forced)"}, "compiled_hours": None}
    assert gpu_check.compile_decisions([broken])["05_x"]["faster"] is None
