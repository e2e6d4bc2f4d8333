"""``make gpu-check``: every paper-profile training stage measured on this device, and the paper runs extrapolated.

For each stage (``papers/*/bench.py``: ``gpu_stages``): samples/s in fp32 and bf16 autocast
after a warm-up, peak GPU memory, the FLOPs of one step counted by ``FlopCounterMode``, the
achieved TFLOP/s and its share of the device's dense bf16 peak, and the stage's training time
in the paper profile (optimiser steps x measured time per step, bf16 as the notebooks train on
CUDA). Per notebook, the sum; for ``make reproduce``, the notebooks plus simulating every
preset (its rate measured here). Validation passes and evaluation are not included.

On CUDA everything runs at the paper's sizes; without CUDA the same code runs at tiny sizes
on the CPU (fp32 only, as the notebooks train there), which tests it but forecasts nothing.
``paper_flops`` counts the FLOPs per step at the paper's sizes on a CPU (minutes).
"""
from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from brainage_lib import paths
from brainage_lib.papers.diff.bench import gpu_stages as diff_stages
from brainage_lib.papers.lstm.bench import gpu_stages as lstm_stages
from brainage_lib.papers.tgb.bench import gpu_stages as tgb_stages
from brainage_lib.run.provenance import provenance
from brainage_lib.run.seeding import resolve_device
from brainage_lib.run.timing import StageBench, count_flops, samples_per_second, sync
from brainage_lib.simulation.presets import PRESETS
from brainage_lib.simulation.simulate import simulate_cohort

__all__ = ["BF16_PEAK_TFLOPS", "bf16_peak", "paper_flops", "run_gpu_check", "stages"]

# dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets; the first matching row wins
BF16_PEAK_TFLOPS = (("H200", 989.4), ("GH200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
                    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("L4", 121.0), ("A10", 125.0))


def bf16_peak(name: str) -> float | None:
    """The dense bf16 peak of a device named ``name`` (``torch.cuda.get_device_name``), None if unknown."""
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def stages(paper: bool) -> list[StageBench]:
    return [*tgb_stages(paper), *diff_stages(paper), *lstm_stages(paper)]


def _measure(stage: StageBench, dev: torch.device, bf16: bool, n_iter: int) -> dict:
    """Samples/s and peak memory of ``stage`` over ``n_iter`` steps after one counted warm-up step."""
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(0)
    try:
        step = stage.make_step(dev, bf16, stage.batch)
        flops = count_flops(step)  # one step, counted (also the first warm-up step)
        rate = samples_per_second(step, dev, stage.batch, n_iter, warmup=1)
    except torch.cuda.OutOfMemoryError as exc:
        return {"error": f"out of memory at batch {stage.batch}: {str(exc)[:160]}"}
    sync(dev)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else None
    return {"samples_per_s": rate, "flops_per_step": flops, "tflops": flops * rate / stage.batch / 1e12,
            "peak_memory_gib": peak}


def _simulation_rate(paper: bool) -> float:
    """Subjects per second of the simulator at the paper's grid (or a tiny one), rendering on the GPU where there is
    one: the rate of a 12-subject cohort over that of a 2-subject one (set-up and reference images cancel)."""
    seconds = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (2, 12):
            t0 = time.perf_counter()
            simulate_cohort("abide_like", Path(tmp) / f"c{n}", n=n, seed=0, shape=None if paper else (16, 16, 16),
                            progress=False)
            seconds[n] = time.perf_counter() - t0
    return 10 / max(seconds[12] - seconds[2], 1e-6)


def run_gpu_check(device: str = "auto", n_iter: int | None = None, out: str | Path | None = None,
                  verbose: bool = True) -> dict:
    """Measure every stage, extrapolate the paper profile, write ``bench/gpu.json`` (or ``out``), print a table."""
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    n_iter = n_iter or (5 if cuda else 1)
    name = torch.cuda.get_device_name(dev) if cuda else provenance(dev)["device"]
    peak = bf16_peak(name) if cuda else None
    res: dict = {"provenance": provenance(dev), "device": name, "sizes": "paper" if cuda else "tiny (CPU test run)",
                 "bf16_peak_tflops": peak, "peak_note": (f"dense bf16 peak of {name}" if peak else
                                                         f"no known bf16 peak for {name}"), "stages": []}
    for st in stages(paper=cuda):
        row = {"notebook": st.notebook, "stage": st.name, "setting": st.setting, "batch": st.batch,
               "total_steps": st.total_steps, "runs": [list(r) for r in st.runs]}
        for prec in ("fp32", "bf16") if cuda else ("fp32",):
            m = _measure(st, dev, prec == "bf16", n_iter)
            if "tflops" in m and peak:
                m["fraction_of_bf16_peak"] = m["tflops"] / peak
            row[prec] = m
        used = row.get("bf16", row["fp32"])
        row["hours"] = st.total_steps * st.batch / used["samples_per_s"] / 3600 if "samples_per_s" in used else None
        res["stages"].append(row)
    res["notebook_hours"] = {}
    for row in res["stages"]:
        hours = res["notebook_hours"].get(row["notebook"], 0.0)
        res["notebook_hours"][row["notebook"]] = None if hours is None or row["hours"] is None else hours + row["hours"]
    subjects = sum(p.n for p in PRESETS.values())
    rate = _simulation_rate(paper=cuda)
    res["simulation"] = {"subjects": subjects, "subjects_per_s": rate, "hours": subjects / rate / 3600}
    known = [h for h in res["notebook_hours"].values() if h is not None]
    res["reproduce_hours"] = (sum(known) + res["simulation"]["hours"]
                              if len(known) == len(res["notebook_hours"]) else None)
    target = Path(out) if out else paths.project_root() / "bench" / "gpu.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(res, indent=1) + "\n")
    if verbose:
        print(format_report(res))
        print(f"wrote {target}")
    return res


def format_report(res: dict) -> str:
    """The measurements as a text table, then the extrapolated hours."""
    lines = [f"device: {res['device']} ({res['sizes']} sizes); {res['peak_note']}",
             f"{'notebook':9} {'stage':17} {'batch':>5} {'GFLOP/step':>11} {'prec':5} {'samples/s':>10} "
             f"{'TFLOP/s':>8} {'% peak':>7} {'peak GiB':>9} {'steps':>9} {'hours':>8}"]
    for r in res["stages"]:
        for prec in ("fp32", "bf16"):
            m = r.get(prec)
            if m is None:
                continue
            if "error" in m:
                lines.append(f"{r['notebook']:9} {r['stage']:17} {r['batch']:>5} {'':>11} {prec:5} {m['error']}")
                continue
            frac = f"{100 * m['fraction_of_bf16_peak']:.1f}" if "fraction_of_bf16_peak" in m else "n/a"
            mem = f"{m['peak_memory_gib']:.1f}" if m["peak_memory_gib"] is not None else "n/a"
            hours = f"{r['hours']:.2f}" if prec == ("bf16" if "bf16" in r else "fp32") and r["hours"] else ""
            lines.append(f"{r['notebook']:9} {r['stage']:17} {r['batch']:>5} {m['flops_per_step'] / 1e9:>11.1f} "
                         f"{prec:5} {m['samples_per_s']:>10.2f} {m['tflops']:>8.3f} {frac:>7} {mem:>9} "
                         f"{r['total_steps']:>9} {hours:>8}")
    sim = res["simulation"]
    lines.append(f"simulating {sim['subjects']} subjects at {sim['subjects_per_s']:.2f}/s: {sim['hours']:.2f} h")
    for nb, h in res["notebook_hours"].items():
        lines.append(f"{nb}: {'n/a' if h is None else f'{h:.2f} h'} of training (paper profile)")
    total = res["reproduce_hours"]
    lines.append(f"make reproduce: {'n/a' if total is None else f'{total:.2f} h'} (training + simulation; "
                 "validation passes and evaluation not included)")
    if res["sizes"] != "paper":
        lines.append("Tiny sizes on a CPU: these hours test the arithmetic; they forecast nothing.")
    return "\n".join(lines)


def paper_flops(out_file: str | Path | None = None, verbose: bool = True) -> dict[str, float]:
    """FLOPs per optimiser step of every stage at the paper's sizes and batch, counted on this CPU; written to
    ``bench/paper_flops.json`` (or ``out_file``).

    One real step at the stage's ``count_batch`` (1 or a few samples) is counted and scaled to the
    paper's batch (convolution and matrix-product FLOPs are per sample). Minutes: the GAN steps
    at 96^3 are teraFLOPs each.
    """
    out = {}
    for st in stages(paper=True):
        torch.manual_seed(0)
        flops = count_flops(st.make_step(torch.device("cpu"), False, st.count_batch)) * st.batch / st.count_batch
        out[f"{st.notebook}/{st.name}"] = flops
        if verbose:
            print(f"{st.notebook:8} {st.name:17} batch {st.batch:>3}: {flops / 1e12:9.3f} TFLOP per step "
                  f"(counted at batch {st.count_batch})", flush=True)
    target = Path(out_file) if out_file else paths.project_root() / "bench" / "paper_flops.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"provenance": provenance(), "flops_per_step": out}, indent=1) + "\n")
    return out
