"""``make gpu-check``: every paper-profile training stage measured on this device, and the paper runs extrapolated.

For each stage (``papers/*/bench.py``: ``gpu_stages``), two measurements:

- the training step alone (``make_step``): samples/s in fp32 and bf16 autocast after a warm-up,
  peak GPU memory, the FLOPs of one step counted by ``FlopCounterMode``, the achieved TFLOP/s
  and its share of the device's dense bf16 peak;
- the real stage (``engine_run``, ``engine.profile.time_stage``): the notebook's training
  function, with its batch loader, engine and checkpoints, for a fixed number of steps (bf16
  on CUDA, as the notebooks train there): seconds per step, the share of time the GPU was
  busy (CUDA profiler; None on a CPU), peak memory;
- on CUDA (or when asked), the real stage again with ``torch.compile`` on its generators and
  regressors. Per notebook, compiling is *faster* when its stages' paper-profile hours,
  compilation included, drop by at least ``COMPILE_MARGIN``: that is what ``COMPILE=auto``
  follows (``run.measured``), as ``PARALLEL=auto`` follows the notebooks' peak memory.

The stage's training time in the paper profile is its optimiser steps x the real stage's time
per step, plus a checkpoint per epoch (the step alone where the real stage failed). Per
notebook, the sum, and its peak memory; for ``make reproduce``, the notebooks plus simulating
every preset (its rate measured here). Set-up, validation passes and evaluation are not
included. Every measurement is guarded: an error (out of memory, CUDA, cuDNN, anything) is
recorded in its place and the others go on, and the JSON is rewritten after every stage.

On CUDA everything runs at the paper's sizes; without CUDA the same code runs at tiny sizes
on the CPU (fp32 only, as the notebooks train there), which tests it but forecasts nothing.
``paper_flops`` counts the FLOPs per step at the paper's sizes on a CPU (minutes).
"""
from __future__ import annotations

import contextlib
import json
import tempfile
import time
import traceback
from pathlib import Path

import torch

from brainage_lib import paths, registry
from brainage_lib.engine.profile import time_stage
from brainage_lib.run.measured import gpu_check_file
from brainage_lib.run.provenance import provenance
from brainage_lib.run.seeding import resolve_device
from brainage_lib.run.timing import StageBench, count_flops, samples_per_second, sync
from brainage_lib.simulation.presets import PRESETS
from brainage_lib.simulation.simulate import simulate_cohort

__all__ = ["BF16_PEAK_TFLOPS", "bf16_peak", "paper_flops", "run_gpu_check", "stages"]

# dense (no sparsity) bf16 tensor-core peaks in TFLOP/s from the vendors' data sheets; the first matching row wins
BF16_PEAK_TFLOPS = (("H200", 989.4), ("GH200", 989.4), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.4),
                    ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("L4", 121.0), ("A10", 125.0))


COMPILE_MARGIN = 0.03  # compiling must save at least this share of a notebook's training hours


def bf16_peak(name: str) -> float | None:
    """The dense bf16 peak of a device named ``name`` (``torch.cuda.get_device_name``), None if unknown."""
    return next((peak for key, peak in BF16_PEAK_TFLOPS if key in name), None)


def stages(paper: bool) -> list[StageBench]:
    """Every paper's training stages (each wing's ``gpu_stages``), in the papers' order."""
    return [s for p in registry.papers().values() if p.gpu_stages for s in p.load("gpu_stages")(paper)]


def _measure(stage: StageBench, dev: torch.device, bf16: bool, n_iter: int) -> dict:
    """Samples/s and peak memory of ``stage`` over ``n_iter`` steps after one counted warm-up step."""
    cuda = dev.type == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(0)
    step = stage.make_step(dev, bf16, stage.batch)
    flops = count_flops(step)  # one step, counted (also the first warm-up step)
    rate = samples_per_second(step, dev, stage.batch, n_iter, warmup=1)
    sync(dev)
    peak = torch.cuda.max_memory_allocated(dev) / 2**30 if cuda else None
    return {"samples_per_s": rate, "flops_per_step": flops, "tflops": flops * rate / stage.batch / 1e12,
            "peak_memory_gib": peak}


def _guarded(what: str, fn, *args) -> dict:
    """``fn(*args)``, or ``{"error": ...}`` for any exception (out of memory, CUDA, cuDNN, a bug): one stage's failure
    leaves the others measured."""
    try:
        return fn(*args)
    except torch.cuda.OutOfMemoryError as exc:
        out = {"error": f"out of memory ({what}): {str(exc)[:160]}"}
    except Exception as exc:  # noqa: BLE001 - reported in the JSON, the next stage still runs
        out = {"error": f"{type(exc).__name__} ({what}): {str(exc)[:300]}",
               "where": "".join(traceback.format_exception(exc)[-3:])[-800:]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        with contextlib.suppress(Exception):
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
    return out


def _engine_timing(stage: StageBench, dev: torch.device, bf16: bool, steps: int, compile: bool = False) -> dict:
    if stage.engine_run is None:
        return {"error": "no engine run for this stage"}
    return time_stage(stage.engine_run, dev, bf16, steps, compile=compile)


def stage_hours(stage: StageBench, row: dict) -> float | None:
    """Training hours of ``stage`` in the paper profile: from the real stage's timing (per step, first step and
    checkpoint per epoch) where it ran, else from the step's samples/s. Set-up, validation passes and evaluation
    are not included."""
    eng = row.get("engine") or {}
    if "step_s" in eng:
        epochs = sum(e for _, _, e in stage.runs)
        return (stage.total_steps * eng["step_s"] + epochs * eng["checkpoint_s"]) / 3600
    used = row.get("bf16") or row.get("fp32") or {}
    return stage.total_steps * stage.batch / used["samples_per_s"] / 3600 if "samples_per_s" in used else None


def compiled_hours(stage: StageBench, row: dict) -> float | None:
    """``stage_hours`` with the compiled real stage's time per step, plus its compilation (its first step's extra
    time) once per training of the stage; None where either real stage failed or was not run."""
    eng, comp = row.get("engine") or {}, row.get("engine_compiled") or {}
    if "step_s" not in eng or "step_s" not in comp:
        return None
    compiling = max(comp["first_step_s"] - comp["step_s"], 0.0) * len(stage.runs)
    epochs = sum(e for _, _, e in stage.runs)
    return (stage.total_steps * comp["step_s"] + epochs * eng["checkpoint_s"] + compiling) / 3600


def compile_decisions(rows: list[dict]) -> dict[str, dict]:
    """Per notebook: its stages' hours eager and compiled, and whether compiling is faster (by ``COMPILE_MARGIN``);
    ``faster`` is None when a stage of it lacks either timing."""
    out: dict[str, dict] = {}
    for row in rows:
        if "engine_compiled" not in row:
            continue
        d = out.setdefault(row["notebook"], {"eager_hours": 0.0, "compiled_hours": 0.0, "faster": False})
        if d["faster"] is None or row.get("hours") is None or row.get("compiled_hours") is None:
            d["faster"] = None
            continue
        d["eager_hours"] += row["hours"]
        d["compiled_hours"] += row["compiled_hours"]
    for d in out.values():
        if d["faster"] is not None:
            d["faster"] = d["compiled_hours"] < (1 - COMPILE_MARGIN) * d["eager_hours"]
    return out


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
                  verbose: bool = True, engine_steps: int | None = None, on_update=None,
                  only: set[str] | None = None, compile: bool | None = None) -> dict:
    """Measure every stage, extrapolate the paper profile, write ``bench/gpu.json`` (or ``out``), print a table.

    Per stage: the training step alone (``make_step``; fp32, and bf16 on CUDA) and the real stage
    (``engine_run``, ``engine_steps`` steps, bf16 on CUDA as the notebooks train) with the share of
    time the GPU was busy. Any error of one measurement is recorded in its place and the others go
    on; the JSON is rewritten after every stage (``on_update(result)`` is called then too). ``only``: the names
    of the stages to measure (default every one). ``compile``: time the real stage compiled too (default: on CUDA).
    """
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    n_iter = n_iter or (5 if cuda else 1)
    engine_steps = engine_steps or (4 if cuda else 2)
    compile = cuda if compile is None else compile
    name = torch.cuda.get_device_name(dev) if cuda else provenance(dev)["device"]
    peak = bf16_peak(name) if cuda else None
    res: dict = {"provenance": provenance(dev), "device": name, "sizes": "paper" if cuda else "tiny (CPU test run)",
                 "bf16_peak_tflops": peak, "peak_note": (f"dense bf16 peak of {name}" if peak else
                                                         f"no known bf16 peak for {name}"),
                 "engine_steps": engine_steps, "stages": []}
    target = Path(out) if out else gpu_check_file()  # where COMPILE=auto and PARALLEL=auto read it
    target.parent.mkdir(parents=True, exist_ok=True)

    def write() -> None:
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(json.dumps(res, indent=1) + "\n")
        tmp.replace(target)
        if on_update is not None:
            on_update(res)

    for st in _guarded_stages(cuda, res, only):
        row = {"notebook": st.notebook, "stage": st.name, "setting": st.setting, "batch": st.batch,
               "total_steps": st.total_steps, "runs": [list(r) for r in st.runs]}
        for prec in ("fp32", "bf16") if cuda else ("fp32",):
            m = _guarded(f"{st.name} {prec} step", _measure, st, dev, prec == "bf16", n_iter)
            if "tflops" in m and peak:
                m["fraction_of_bf16_peak"] = m["tflops"] / peak
            row[prec] = m
        row["engine"] = _guarded(f"{st.name} engine stage", _engine_timing, st, dev, cuda, engine_steps)
        row["hours"] = stage_hours(st, row)
        if compile:
            row["engine_compiled"] = _guarded(f"{st.name} compiled engine stage", _engine_timing, st, dev, cuda,
                                              engine_steps, True)
            row["compiled_hours"] = compiled_hours(st, row)
        res["stages"].append(row)
        write()
    res["notebook_hours"] = {}
    for row in res["stages"]:
        hours = res["notebook_hours"].get(row["notebook"], 0.0)
        res["notebook_hours"][row["notebook"]] = None if hours is None or row["hours"] is None else hours + row["hours"]
    subjects = sum(p.n for p in PRESETS.values())
    sim = _guarded("simulation", lambda: {"subjects_per_s": _simulation_rate(paper=cuda)})
    res["simulation"] = {"subjects": subjects, **sim}
    if "subjects_per_s" in sim:
        res["simulation"]["hours"] = subjects / sim["subjects_per_s"] / 3600
    known = [h for h in res["notebook_hours"].values() if h is not None]
    res["reproduce_hours"] = (sum(known) + res["simulation"]["hours"]
                              if len(known) == len(res["notebook_hours"]) and "hours" in res["simulation"] else None)
    res["peak_memory_gib"] = {nb: max((r[k]["peak_memory_gib"] or 0.0 for r in res["stages"] if r["notebook"] == nb
                                       for k in ("fp32", "bf16", "engine", "engine_compiled")
                                       if (r.get(k) or {}).get("peak_memory_gib")),
                                      default=None) for nb in res["notebook_hours"]}
    if compile:
        res["compile"] = compile_decisions(res["stages"])
    write()
    if verbose:
        print(format_report(res))
        print(f"wrote {target}")
    return res


def _guarded_stages(paper: bool, res: dict, only: set[str] | None) -> list[StageBench]:
    """The stages to measure; an error building the list is recorded (nothing is measured then)."""
    try:
        return [s for s in stages(paper=paper) if only is None or s.name in only]
    except Exception as exc:  # noqa: BLE001
        res["error"] = f"{type(exc).__name__} listing the stages: {exc}"
        return []


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}"


def format_report(res: dict) -> str:
    """The measurements as a text table (the step alone per precision, then the real stage), then the hours."""
    lines = [f"device: {res['device']} ({res['sizes']} sizes); {res['peak_note']}",
             f"{'notebook':9} {'stage':17} {'batch':>5} {'GFLOP/step':>11} {'prec':6} {'samples/s':>10} "
             f"{'TFLOP/s':>8} {'% peak':>7} {'peak GiB':>9} {'steps':>9} {'hours':>8}"]
    for r in res["stages"]:
        for prec in ("fp32", "bf16", "engine", "engine_compiled"):
            m = r.get(prec)
            if m is None:
                continue
            head = f"{r['notebook']:9} {r['stage']:17} {r['batch']:>5}"
            if "error" in m:
                lines.append(f"{head} {'':>11} {prec:6} {m['error'][:100]}")
                continue
            mem = f"{m['peak_memory_gib']:.1f}" if m.get("peak_memory_gib") is not None else "n/a"
            if prec.startswith("engine"):
                h = r["hours"] if prec == "engine" else r.get("compiled_hours")
                hours = f"{h:.2f}" if h is not None else ""
                kind = "stage" if prec == "engine" else "comp."
                lines.append(f"{head} {'':>11} {kind:6} {r['batch'] / m['step_s']:>10.2f} {'GPU busy':>8} "
                             f"{_pct(m['gpu_busy']):>6}% {mem:>9} {r['total_steps']:>9} {hours:>8}")
                continue
            frac = f"{100 * m['fraction_of_bf16_peak']:.1f}" if "fraction_of_bf16_peak" in m else "n/a"
            lines.append(f"{head} {m['flops_per_step'] / 1e9:>11.1f} {prec:6} {m['samples_per_s']:>10.2f} "
                         f"{m['tflops']:>8.3f} {frac:>7} {mem:>9}")
    sim = res["simulation"]
    if "hours" in sim:
        lines.append(f"simulating {sim['subjects']} subjects at {sim['subjects_per_s']:.2f}/s: {sim['hours']:.2f} h")
    else:
        lines.append(f"simulation: {sim.get('error', 'not measured')}")
    for nb, h in res["notebook_hours"].items():
        mem = (res.get("peak_memory_gib") or {}).get(nb)
        lines.append(f"{nb}: {'n/a' if h is None else f'{h:.2f} h'} of training (paper profile)"
                     + (f"; peak {mem:.1f} GiB" if mem else ""))
    for nb, d in (res.get("compile") or {}).items():
        verdict = "not decided (a timing failed)" if d["faster"] is None else ("on" if d["faster"] else "off")
        lines.append(f"{nb}: compiled {d['compiled_hours']:.2f} h vs eager {d['eager_hours']:.2f} h: "
                     f"COMPILE=auto is {verdict} on this GPU")
    total = res["reproduce_hours"]
    lines.append(f"make reproduce: {'n/a' if total is None else f'{total:.2f} h'} (training + simulation; "
                 "set-up, validation passes and evaluation not included). 'stage' rows: the real training stage "
                 f"({res.get('engine_steps')} steps: loader, engine, checkpoints), samples/s after its first step"
                 + ("; 'comp.' rows: the same with torch.compile." if res.get("compile") is not None else "."))
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
