"""What the device bundle's ``run.sh`` runs on a GPU node, after installing its wheels: one JSON, one table.

``python -m brainage_lib.device OUT`` runs, in this order, each step in its own ``try`` and
rewriting ``OUT/device.json`` after every step (and after every stage of ``gpu-check``):

1. ``sanity``: the device, its compute capability, torch, CUDA and cuDNN versions;
2. ``gpu_check``: every paper training stage, the step alone in bf16 and fp32 and the real stage
   (``brainage_lib.gpu_check``; its own JSON is ``OUT/gpu.json``);
3. ``precision``: each paper's own device check (its ``Paper.device_check``), by paper: TGB compares
   bf16 with fp32 for WGAN-GP's gradient penalty and one GAN step (``papers/tgb/precision.py``);
4. ``notebooks``: each notebook with ``PROFILE=paper DRY_RUN=True`` through papermill, on CUDA
   where there is one (renderings and results under ``OUT/notebooks``).

A step that fails records its error and the next one runs. At the end a table of what was
measured is printed. Without CUDA the same steps run on the CPU at tiny sizes: a rehearsal.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

__all__ = ["SECTIONS", "main"]

SECTIONS = ("sanity", "gpu_check", "precision", "notebooks")


def _sanity() -> dict:
    import torch

    import brainage_lib

    cuda = torch.cuda.is_available()
    out = {"python": platform.python_version(), "brainage_lib": str(Path(brainage_lib.__file__).parent),
           "torch": torch.__version__, "cuda_available": cuda,
           "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version() if cuda else None,
           "device": None, "capability": None, "memory_gib": None, "bf16_supported": None}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        out.update(device=props.name, capability=f"{props.major}.{props.minor}", memory_gib=props.total_memory / 2**30,
                   bf16_supported=torch.cuda.is_bf16_supported(), device_count=torch.cuda.device_count())
        x = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
        out["matmul_ok"] = bool(torch.isfinite((x @ x).float()).all())
    out["line"] = (f"{out['device'] or 'no CUDA device'}"
                   + (f", capability {out['capability']}" if cuda else "")
                   + f"; torch {out['torch']}, CUDA {out['cuda']}, cuDNN {out['cudnn']}; Python {out['python']}")
    return out


def _kernel(folder: Path) -> str:
    """A kernel spec of this interpreter in ``folder`` (on ``JUPYTER_PATH``), whatever the machine's own specs say."""
    spec = folder / "kernels" / "brainage-device"
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (brainage device)", "language": "python"}))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(folder), os.environ.get("JUPYTER_PATH")]))
    return "brainage-device"


def _notebooks(names: list[str], profile: str, out: Path, report: dict, write) -> dict:
    from brainage_lib.run import runner
    from brainage_lib.run.params import DRY_RUN, dry_run_file

    kernel = _kernel(out / "jupyter")
    results = report["notebooks"] = {}
    for name in names:
        params = {DRY_RUN: True} if (dry_run_file(name).is_file() or DRY_RUN in runner.parameter_types(name)) else {}
        t0 = time.time()
        try:
            runner.run_notebook(name, profile=profile, params=params, output_dir=out / "notebooks", kernel=kernel,
                                html=False, progress=False)
            results[name] = {"ok": True, "seconds": time.time() - t0}
        except Exception as exc:  # noqa: BLE001 - recorded; the next notebook runs
            results[name] = {"ok": False, "seconds": time.time() - t0, "error": f"{type(exc).__name__}: {exc}"[:2000]}
        write()
    return results


def _table(report: dict) -> str:
    lines = ["", "=" * 100, "device check"]
    san = report.get("sanity") or {}
    lines.append(f"sanity: {san.get('line', san.get('error', 'not run'))}")
    gc = report.get("gpu_check")
    if gc and "stages" in gc and "simulation" in gc:
        from brainage_lib.gpu_check import format_report

        lines.append(format_report(gc))
    elif gc:
        lines.append(f"gpu-check: {gc.get('error', 'incomplete')}; stages measured: {len(gc.get('stages', []))}")
    prec = report.get("precision") or {}
    if "error" in prec or not prec:
        lines.append(f"papers' own checks: {prec.get('error', 'not run')}")
    for name, res in prec.items():
        if name == "error":
            continue
        if "error" in res:
            lines.append(f"{name}'s own check: {res['error']}")
            continue
        from brainage_lib import registry

        lines += registry.papers()[name].load("device_check")[1](res)
    for name, r in (report.get("notebooks") or {}).items():
        if name == "error":
            lines.append(f"notebooks: {r}")
            continue
        state = "ok" if r["ok"] else f"FAILED: {r['error'].splitlines()[0][:120]}"
        lines.append(f"notebook {name:12} {report.get('profile', '')}: {state} ({r['seconds']:.0f} s)")
    lines.append("seconds per step: " + ", ".join(f"{k} {v:.0f}" for k, v in report["seconds"].items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brainage_lib.device", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="folder for device.json, gpu.json and the notebooks' outputs")
    ap.add_argument("--profile", default="paper", help="the notebooks' profile for their dry runs (default paper)")
    ap.add_argument("--notebooks", default="all", help="comma-separated notebooks to dry-run (default all)")
    ap.add_argument("--stages", default="", help="comma-separated gpu-check stages (default: every one)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps of each training step alone")
    ap.add_argument("--engine-steps", type=int, default=None, help="steps of each real training stage")
    args = ap.parse_args(argv)
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for env, sub in (("BRAINAGE_DATA", "data"), ("BRAINAGE_CACHE", "cache")):
        os.environ.setdefault(env, str(out / sub))
    target = out / "device.json"
    install = out / "install.json"
    report: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "profile": f"{args.profile} (dry run)",
                    "install": json.loads(install.read_text()) if install.is_file() else None,
                    "seconds": {}, "finished": False}

    def write() -> None:
        tmp = target.with_name(".device.json.tmp")
        tmp.write_text(json.dumps(report, indent=1, default=str) + "\n")
        tmp.replace(target)

    def step(name: str, fn) -> None:
        t0 = time.time()
        print(f"--- {name}", flush=True)
        try:
            result = fn()
            if result is not None:
                report[name] = result
        except Exception as exc:  # noqa: BLE001 - recorded; the next step runs
            report[name] = {"error": f"{type(exc).__name__}: {exc}"[:2000],
                            "where": "".join(traceback.format_exception(exc)[-4:])[-1500:]}
        report["seconds"][name] = time.time() - t0
        write()

    write()
    step("sanity", _sanity)

    def gpu_check() -> dict:
        from brainage_lib import gpu_check as gc

        report["gpu_check"] = {"stages": []}

        def update(res: dict) -> None:
            report["gpu_check"] = res
            write()

        return gc.run_gpu_check("auto", n_iter=args.steps, out=out / "gpu.json", verbose=False,
                                engine_steps=args.engine_steps, on_update=update,
                                only=set(args.stages.split(",")) if args.stages else None,
                                compile=False)  # compiling every stage would not fit the node's minutes

    step("gpu_check", gpu_check)

    def precision() -> dict:
        import torch

        from brainage_lib import registry

        cuda = torch.cuda.is_available()
        out = {}
        for name, paper in registry.papers().items():  # each paper's own check (TGB: bf16 vs fp32), guarded alone
            if paper.device_check:
                try:
                    out[name] = paper.load("device_check")[0](torch.device("cuda" if cuda else "cpu"), cuda)
                except Exception as exc:  # noqa: BLE001 - recorded; the next paper's check still runs
                    out[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                report["precision"] = out
                write()
        return out

    step("precision", precision)

    def notebooks() -> dict:
        from brainage_lib.run.runner import notebook_names

        names = notebook_names() if args.notebooks == "all" else args.notebooks.split(",")
        return _notebooks(names, args.profile, out, report, write)

    step("notebooks", notebooks)
    report["finished"] = True
    write()
    print(_table(report), flush=True)
    print(f"wrote {target}", flush=True)
    return 0
