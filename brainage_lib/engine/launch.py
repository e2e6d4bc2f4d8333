"""DDP workers in a fresh process, so that ``DEVICES > 1`` also works from a Jupyter kernel.

Fabric refuses to spawn DDP processes from an interactive process (a notebook's kernel sets
``sys.ps1``), and forking a kernel that has started CUDA is unsafe. So a stage with several
processes runs as a command of its own: ``python -m brainage_lib.engine.launch <payload>``,
a plain (non-interactive) Python that builds ``Fabric(strategy="ddp")``; Fabric's launcher
there starts the other ranks as copies of the same command, each with its ``LOCAL_RANK``.
The payload (the loop, its stage and its arguments) is one file written by ``torch.save``
next to the stage's checkpoints and removed afterwards. The workers' output is relayed
line by line to this process's stdout, so a notebook shows it in the cell that trains.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
from collections import deque
from pathlib import Path
from typing import Any

import torch

from brainage_lib.errors import BrainAgeError

__all__ = ["launch_workers"]


def _child_env() -> dict[str, str]:
    """This process's environment, with its module search path (a kernel's may differ from the command line's)."""
    env = dict(os.environ)
    path = [p if p else os.getcwd() for p in sys.path]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(p for p in path if Path(p).exists()))
    for key in ("LOCAL_RANK", "RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)  # a fresh group of processes, never a leftover one
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def launch_workers(loop: Any, stage: Any, args: tuple, *, world: int, accelerator: str, precision: str,
                   compile: bool = False) -> None:
    """Train ``loop(fabric, stage, *args)`` on ``world`` DDP processes in a separate command; raise if one fails."""
    folder = Path(stage.root)
    folder.mkdir(parents=True, exist_ok=True)
    payload = folder / f".{stage.dir.name}.{os.getpid()}.launch.pt"
    spec = {"world": world, "accelerator": accelerator, "precision": precision, "compile": compile}
    buf = io.BytesIO()
    torch.save((loop, stage, args, spec), buf, pickle_protocol=4)
    payload.write_bytes(buf.getvalue())
    tail: deque[str] = deque(maxlen=40)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "brainage_lib.engine.launch", str(payload)], env=_child_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=os.getcwd())
        assert proc.stdout is not None
        for raw in iter(proc.stdout.readline, b""):
            line = raw.decode("utf-8", "replace")
            tail.append(line)
            sys.stdout.write(line)
            sys.stdout.flush()
        code = proc.wait()
    finally:
        payload.unlink(missing_ok=True)
    if code != 0:
        raise BrainAgeError(f"[stage {stage.name}] the {world} DDP processes failed (exit code {code}); their last "
                            "output:\n" + "".join(tail))


def _worker(path: str) -> None:
    """One rank: build the DDP Fabric (rank 0 starts the others), load the payload, train."""
    from lightning_fabric import Fabric

    loop, stage, args, spec = torch.load(path, weights_only=False)
    fabric = Fabric(accelerator=spec["accelerator"], strategy="ddp", devices=spec["world"],
                    precision=spec["precision"])
    fabric.launch()
    fabric.compile_models = spec.get("compile", False)  # read by engine.fabric.compiled
    loop(fabric, stage, *args)
    fabric.barrier()


if __name__ == "__main__":
    _worker(sys.argv[1])
