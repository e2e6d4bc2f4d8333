"""Where training runs and how it resumes: Lightning Fabric, resumable stages and the data order.

Every training loop of the project takes an :class:`Engine` (or a plain device, which
becomes a one-device engine without checkpoints) and runs as a *stage*:

- **Lightning Fabric** places models and batches on the device, runs the forward passes
  under bf16 autocast on CUDA (fp32 on CPU), saves and loads checkpoints, and, with
  ``devices > 1``, trains in one process per device (DDP) whose gradients are summed by
  hand before each optimiser step. Those processes run as a separate command
  (``engine.launch``), never forked from this one, so a notebook's kernel can start them.
- A **stage** (:class:`Stage`) is one training run with an identity: a hash of its
  configuration, its training data and the source of the code that trains it. It saves
  ``last.ckpt`` after every epoch (and every ``save_every_s`` seconds within a long epoch)
  with the models, optimisers, schedulers, RNG states, epoch, step, history and data
  order, and ``final.ckpt`` when it ends. A re-run with the same identity continues from
  ``last.ckpt``; a finished stage is loaded from ``final.ckpt`` and trains nothing, unless
  ``force``. A stage whose model a notebook saves hands its ``final.ckpt`` over to the saved
  model's file (:func:`keep_final`): one file per trained model, which the stage loads from.
  A changed parameter, dataset or training code gives a new identity and never reuses a
  stale checkpoint.
- The **data order** of an epoch is drawn from a seeded generator exactly as a shuffling
  ``DataLoader`` draws it, and split into global batches; with several processes each takes
  its share of every global batch, so a DDP run sees the same global batches as one device.

Writing a loop: build the state dict (models, optimisers, schedulers, an :class:`RNGState`,
counters), call ``stage.restore(fabric, state)``, train from ``state["epoch"]`` (skipping
``state["batch"]`` batches of a half-done epoch), call ``stage.tick`` after each step and
``stage.save`` after each epoch, and ``stage.finish`` at the end.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import itertools
import json
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from brainage_lib.errors import BrainAgeError
from brainage_lib.run.progress import tqdm
from brainage_lib.run.seeding import resolve_device, worker_init_fn

__all__ = ["Engine", "RNGState", "Stage", "as_engine", "batch_loader", "code_version", "data_fingerprint",
           "compiled", "epoch_order", "fit", "global_batches", "plain",
           "final_checkpoint", "keep_final", "sync_batchnorm", "sync_gradients"]

SAVE_EVERY_S = 600.0  # a checkpoint at most this often within a long epoch
DEVICE_CACHE_FRACTION = 0.5  # a cohort goes onto the GPU when it takes at most this share of the free memory
FIRST_CHECK = 8  # with several processes: the step at which they first agree whether a checkpoint is due


class Engine:
    """Device, precision, number of processes and checkpoint root of a notebook's training stages.

    Parameters
    ----------
    device
        ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
    devices
        Processes (GPUs) per training stage; above 1, Fabric's DDP strategy in a separate command
        (``engine.launch``), which also works from a Jupyter kernel.
    checkpoints
        Folder of the stages' checkpoints (``<folder>/<stage>-<identity>/``); None: no checkpoints,
        nothing resumes.
    force
        Retrain finished stages instead of loading them.
    save_every_s
        Seconds between checkpoints within an epoch.
    compile
        Run the generators' and regressors' training forward passes through ``torch.compile``
        (:func:`compiled`; never a critic, whose gradient penalty differentiates twice). The
        notebooks' ``COMPILE`` parameter decides it (:func:`brainage_lib.run.measured.compile_choice`).
    """

    def __init__(self, device: str | torch.device = "auto", devices: int = 1, checkpoints: str | Path | None = None,
                 force: bool = False, save_every_s: float = SAVE_EVERY_S, compile: bool = False) -> None:
        self.device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
        self.devices = int(devices)
        if self.devices < 1:
            raise BrainAgeError(f"DEVICES={devices}: give 1 or more.")
        if self.devices > 1 and self.device.type == "cuda" and torch.cuda.device_count() < self.devices:
            raise BrainAgeError(f"DEVICES={devices} but only {torch.cuda.device_count()} CUDA device(s) are visible "
                                "(CUDA_VISIBLE_DEVICES); lower DEVICES.")
        self.checkpoints = Path(checkpoints) if checkpoints else None
        self.force, self.save_every_s, self.compile = bool(force), float(save_every_s), bool(compile)
        self.log: list[dict[str, Any]] = []  # one entry per stage run: name, status, epoch, path
        self.step_clock: list[float] | None = None  # a list: every stage appends the time after each step (gpu-check)
        self.last_stage: Stage | None = None
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed input shapes: let cuDNN pick its fastest kernels

    def __repr__(self) -> str:
        return (f"Engine(device={self.device}, devices={self.devices}, checkpoints={self.checkpoints}, "
                f"force={self.force}, compile={self.compile})")

    def banner(self) -> str:
        """What the checkpoint folder holds before the run: finished stages (loaded) and partial ones (resumed)."""
        head = (f"Training: {self.device}, {self.devices} process(es) per stage"
                + (", DDP" if self.devices > 1 else "") + ("; bf16 autocast" if self.device.type == "cuda" else "; fp32")
                + ("; torch.compile (generators, regressors)" if self.compile else ""))
        if self.checkpoints is None:
            return head + "; no checkpoints (nothing resumes)."
        done = sorted(p.name for p in self.checkpoints.iterdir() if final_checkpoint(p)) if self.checkpoints.is_dir() else []
        partial = sorted(p.parent.name for p in self.checkpoints.glob("*/last.ckpt") if not final_checkpoint(p.parent))
        lines = [head + f"; stage checkpoints in {self.checkpoints}:"]
        if self.force:
            lines.append(f"  FORCE=True: every stage retrains ({len(done)} finished stage(s) there are ignored).")
        else:
            lines.append(f"  {len(done)} finished stage(s), loaded instead of trained where parameters, data and code "
                         f"match: {', '.join(done) or 'none'}")
            lines.append(f"  {len(partial)} interrupted stage(s), resumed from their last checkpoint where they match: "
                         f"{', '.join(partial) or 'none'}")
        return "\n".join(lines)

    def report(self):
        """One row per stage this run met: trained (from scratch), resumed (from epoch ...) or loaded (nothing trained)."""
        return pd.DataFrame(self.log, columns=["stage", "status", "epoch", "key"])

    def precision(self, amp: bool = True) -> str:
        """Fabric's precision on this device: bf16-mixed on CUDA when ``amp``, else 32-bit."""
        return "bf16-mixed" if (amp and self.device.type == "cuda") else "32-true"

    def fabric(self, amp: bool = True):
        """A one-process Fabric for this device (``precision(amp)``)."""
        from lightning_fabric import Fabric

        cuda = self.device.type == "cuda"
        devices = [self.device.index or 0] if cuda else 1
        fabric = Fabric(accelerator="cuda" if cuda else "cpu", devices=devices, precision=self.precision(amp))
        fabric.compile_models = self.compile  # read by compiled()
        return fabric

    def stage(self, name: str, identity: dict[str, Any]) -> Stage:
        """The stage ``name`` with this identity (its configuration, data and code)."""
        stage = Stage(name, identity, self.checkpoints, self.force, self.save_every_s, self.log)
        stage.step_clock = self.step_clock
        self.last_stage = stage
        return stage

    def run(self, loop: Callable[..., Any], stage: Stage | None, *args: Any, amp: bool = True, batch_size: int = 1,
            last_batch: int = 0) -> Any:
        """Run ``loop(fabric, stage, *args)`` on this engine and return its result (in this process).

        With ``devices > 1`` the loop first runs in one DDP process per device (as many as
        divide ``batch_size`` and leave no process without an item of a shorter ``last_batch``,
        so every process takes an equal share of each global batch), started as a separate
        command (``engine.launch``: no fork of this process, which may be a notebook's kernel);
        rank 0's ``final.ckpt`` then carries the trained state back, and the loop, run here
        once more, loads it (training nothing) and returns what it returns on one device.
        """
        world = max(d for d in range(1, self.devices + 1)
                    if batch_size % d == 0 and (last_batch == 0 or last_batch >= d))
        if world < self.devices:
            print(f"[stage {stage.name if stage else '?'}] a batch of {batch_size} (the last one {last_batch or batch_size}) "
                  f"cannot be shared by {self.devices} processes: {world} process(es) train this stage (the global "
                  "batch stays the paper's)", flush=True)
        if world > 1:
            if stage is None or stage.root is None:
                raise BrainAgeError("DEVICES > 1 needs a checkpoint folder: the processes hand the trained stage back "
                                    "through its final checkpoint.")
            if not stage.done or stage.force:
                from brainage_lib.engine.launch import launch_workers

                launch_workers(loop, stage, args, world=world, precision=self.precision(amp),
                               accelerator="cuda" if self.device.type == "cuda" else "cpu", compile=self.compile)
                stage = stage.loaded_after_workers()
        return loop(self.fabric(amp), stage, *args)


def compiled(fabric, module: nn.Module) -> nn.Module:
    """``torch.compile(module)`` when the engine that made ``fabric`` compiles, else ``module``.

    The compiled module shares the parameters of ``module``: optimisers, checkpoints and the
    saved models keep using ``module`` (whose state-dict keys stay unprefixed); only the
    training step's forward goes through the compiled one.
    """
    return torch.compile(module) if getattr(fabric, "compile_models", False) else module


def as_engine(device: Engine | torch.device | str) -> Engine:
    """An :class:`Engine`; a device (or its name) becomes a one-device engine without checkpoints."""
    return device if isinstance(device, Engine) else Engine(device)


# --------------------------------------------------------------------------- identity

def code_version(*objects: Any) -> str:
    """Hash of the source files defining ``objects`` (functions, classes, modules or instances)."""
    h = hashlib.sha256()
    seen = set()
    for obj in objects:
        mod = obj if inspect.ismodule(obj) else sys.modules.get(getattr(obj, "__module__", None) or
                                                                 type(obj).__module__)
        if mod is None or mod.__name__ in seen:
            continue
        seen.add(mod.__name__)
        try:
            h.update(inspect.getsource(mod).encode())
        except (OSError, TypeError):
            h.update(mod.__name__.encode())
    return h.hexdigest()[:16]


def data_fingerprint(ds: Dataset | None) -> str:
    """Hash of every item of ``ds`` (images and targets, in order); ``"none"`` for no dataset."""
    if ds is None:
        return "none"
    h = hashlib.blake2b(digest_size=16)
    array, ages, idx = getattr(ds, "array", None), getattr(ds, "ages", None), getattr(ds, "indices", None)
    if array is not None and ages is not None and idx is not None:  # a CachedArrayDataset: hash rows in chunks
        idx = np.asarray(idx)
        h.update(idx.astype(np.int64).tobytes())
        h.update(np.asarray(ages, np.float32)[idx].tobytes())
        h.update(str(getattr(ds, "channel", "")).encode())
        for start in range(0, len(idx), 64):
            h.update(np.ascontiguousarray(array[np.sort(idx[start:start + 64])]).tobytes())
        return h.hexdigest()
    h.update(str(len(ds)).encode())
    for i in range(len(ds)):
        for t in ds[i]:
            h.update(np.ascontiguousarray(torch.as_tensor(t).numpy()).tobytes())
    return h.hexdigest()


def plain(obj: Any) -> Any:
    """Plain Python types only (dataclasses as dicts, NumPy scalars as numbers, anything else as its repr):
    what identities hash and checkpoints hold, so ``torch.load(weights_only=True)`` reads them."""
    if is_dataclass(obj) and not isinstance(obj, type):
        obj = asdict(obj)
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def identity_key(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(plain(identity), sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- RNG and data order

class RNGState:
    """The random state a loop depends on: Python, NumPy, torch (CPU, CUDA) and the loop's own generators.

    ``state_dict``/``load_state_dict`` make it a Fabric "stateful" object, saved and
    restored with the models.
    """

    def __init__(self, **generators: torch.Generator) -> None:
        self.generators = generators

    def state_dict(self) -> dict[str, Any]:
        np_state = np.random.get_state()
        out = {"python": list(random.getstate()[1]), "python_pos": random.getstate()[2],
               "numpy_keys": torch.from_numpy(np_state[1].astype(np.int64)), "numpy_pos": int(np_state[2]),
               "numpy_gauss": [int(np_state[3]), float(np_state[4])], "torch": torch.get_rng_state(),
               "generators": {k: g.get_state() for k, g in self.generators.items()}}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["cuda"] = torch.cuda.get_rng_state_all()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        random.setstate((3, tuple(state["python"]), state["python_pos"]))
        np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), state["numpy_pos"],
                             *state["numpy_gauss"]))
        torch.set_rng_state(state["torch"])
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
        for k, g in self.generators.items():
            g.set_state(state["generators"][k])


def epoch_order(n: int, gen: torch.Generator) -> torch.Tensor:
    """The order of one shuffled epoch over ``n`` items, drawn from ``gen`` as a shuffling DataLoader draws it.

    A pass over ``DataLoader(..., shuffle=True, generator=gen)`` takes one int64 from ``gen``
    (its workers' base seed), ``randperm(n, generator=gen)`` (the order) and, as its sampler
    ends, one more ``randperm(n)`` (for a remainder of none); the same draws keep seeded
    results unchanged from loops that used one.
    """
    torch.empty((), dtype=torch.int64).random_(generator=gen)
    order = torch.randperm(n, generator=gen)
    torch.randperm(n, generator=gen)
    return order


def global_batches(order: Sequence[int] | torch.Tensor, batch_size: int, drop_last: bool = False) -> list[list[int]]:
    """``order`` cut into global batches of ``batch_size`` (the last one shorter unless ``drop_last``)."""
    order = [int(i) for i in order]
    stop = len(order) - len(order) % batch_size if drop_last else len(order)
    return [order[i:i + batch_size] for i in range(0, stop, batch_size)]


def local_share(batch: list[int], rank: int, world: int) -> list[int]:
    """The items of a global batch that process ``rank`` of ``world`` takes (every ``world``-th)."""
    return batch[rank::world]


class batch_loader:
    """Batches ``(x, y)`` of ``dataset`` for a list of index lists, on ``device``.

    A cohort held in arrays (a ``CachedArrayDataset``, or a ``ConcatDataset`` of them, such as
    real plus synthetic images) that fits in a fraction of the free GPU memory is copied onto
    the device once, as one tensor, and batches are indexed there; otherwise a ``DataLoader``
    over the index lists with ``num_workers`` workers and, on CUDA, pinned memory. That
    loader draws its workers' base seed from a private generator, never from torch's global
    one, which dropout draws from (as a loop over a seeded shuffling DataLoader).
    """

    def __init__(self, dataset: Dataset, device: torch.device, num_workers: int = 0) -> None:
        self.dataset, self.device, self.num_workers = dataset, device, num_workers
        self.on_device = None
        parts = _array_parts(dataset)
        if parts and _fits_on_device(parts, device):
            xs, ys = zip(*(_to_device(ds, device) for ds in parts))
            dtype = xs[0].dtype
            for x in xs[1:]:
                dtype = torch.promote_types(dtype, x.dtype)  # float16 -> float32 is exact
            x = xs[0] if len(xs) == 1 else torch.cat([x.to(dtype) for x in xs])
            self.on_device = (x, ys[0] if len(ys) == 1 else torch.cat(ys))

    def __call__(self, batches: list[list[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.on_device is not None:
            x, y = self.on_device
            for b in batches:
                idx = torch.as_tensor(b, device=self.device)
                yield x[idx].float(), y[idx]
            return
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.num_workers,
                            worker_init_fn=worker_init_fn, pin_memory=self.device.type == "cuda",
                            persistent_workers=False, generator=torch.Generator())
        for x, y in loader:
            yield x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)


def _array_parts(ds: Dataset) -> list[Dataset] | None:
    """The array-backed datasets ``ds`` is made of, in item order (one, or a ConcatDataset's); None if any is not,
    or their items differ in shape."""
    parts = list(ds.datasets) if isinstance(ds, ConcatDataset) else [ds]
    if not parts or not all(all(hasattr(p, a) for a in ("array", "ages", "indices", "channel")) for p in parts):
        return None
    shapes = {(bool(p.channel), tuple(p.array.shape[1:])) for p in parts}
    return parts if len(shapes) == 1 else None


def _to_device(ds: Dataset, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Items ``(x, y)`` of one array-backed dataset on ``device``: x in the array's dtype, item i = row indices[i]."""
    rows = np.asarray(ds.indices)
    read = np.unique(rows)  # memory maps read fastest in order
    x = torch.from_numpy(np.ascontiguousarray(ds.array[read])).to(device)
    x = x[torch.from_numpy(np.searchsorted(read, rows)).to(device)]
    return (x[:, None] if ds.channel else x), torch.from_numpy(np.asarray(ds.ages, np.float32)[rows]).to(device)


def _fits_on_device(parts: Sequence[Dataset], device: torch.device) -> bool:
    if device.type != "cuda":
        return False
    nbytes = sum(len(ds.indices) * int(np.prod(ds.array.shape[1:])) * np.dtype(ds.array.dtype).itemsize for ds in parts)
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_CACHE_FRACTION * free


def sync_gradients(fabric, modules: Sequence[nn.Module | None]) -> None:
    """Sum the gradients of ``modules`` over the processes (no-op on one).

    Each process scales its loss by its share of the global batch, so the sum is the
    gradient of the global batch's mean loss, as on one device. A parameter that has a
    gradient on some processes only (a branch another process did not take) counts as a
    zero gradient where it has none; one with none anywhere keeps none, as on one device
    (the optimiser skips it).
    """
    if fabric.world_size == 1:
        return
    params = [p for m in modules if m is not None for p in m.parameters() if p.requires_grad]
    have = torch.tensor([float(p.grad is not None) for p in params], device=fabric.device)
    have = fabric.all_reduce(have, reduce_op="sum").tolist() if params else []
    for p, n in zip(params, have):
        if n and p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p, n in zip(params, have) if n]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    flat = fabric.all_reduce(flat, reduce_op="sum")
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def sync_batchnorm(fabric, model: nn.Module) -> nn.Module:
    """With several CUDA processes, BatchNorm layers normalise over the global batch (SyncBatchNorm), as on one device.

    (Gloo on CPU has no SyncBatchNorm: there each process normalises over its own share.)
    """
    if fabric.world_size > 1 and fabric.device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def reduce_sum(fabric, values: Sequence[float]) -> list[float]:
    """``values`` summed over the processes."""
    if fabric.world_size == 1:
        return [float(v) for v in values]
    t = fabric.all_reduce(torch.tensor([float(v) for v in values], dtype=torch.float64, device=fabric.device),
                          reduce_op="sum")
    return t.cpu().tolist()


# --------------------------------------------------------------------------- the loop

def fit(fabric, stage: Stage | None, state: dict[str, Any], train: Dataset, step: Callable[[list], dict[str, float]],
        end_of_epoch: Callable[[int, dict[str, float], int], tuple[dict[str, Any], float | None]],
        snapshot: Callable[[], Any], *, epochs: int, batch_size: int, order: torch.Generator,
        max_steps: int | None = None, num_workers: int = 0, drop_last: bool = False, group: int = 1,
        start_epoch: Callable[[], None] | None = None, postfix: Callable[[dict], dict] | None = None,
        desc: str = "train", progress: bool = True):
    """The one training loop: resumable epochs of seeded global batches, each process taking its share.

    ``state`` holds what a checkpoint saves (models, optimisers, an :class:`RNGState` with ``order``,
    counters); it is restored from the stage first. Each epoch draws its order from ``order``, cuts it
    into global batches and hands ``step`` each run of ``group`` consecutive ones as ``[(global batch,
    (x, y)), ...]`` (x, y: this process's share, on the device); ``step`` trains and returns the sums
    to accumulate (summed over processes at the epoch's end). A step returns its losses as detached
    float64 tensors, not numbers, so that nothing waits for the device between steps: the sums are
    read once per epoch (and at a checkpoint). ``end_of_epoch(epoch, sums, steps)``
    returns the history row and the score that selects the kept weights (lower is better; None: not
    scored this epoch); ``snapshot()`` copies them. Returns the history, the seconds trained and the
    epoch whose snapshot, if any, is in ``state["best_state"]``.
    """
    state.update({k: v for k, v in {"epoch": 0, "batch": 0, "steps": 0, "order": torch.zeros(0, dtype=torch.int64),
                                    "sums": {}, "history": [], "best": float("inf"), "best_epoch": 0,
                                    "best_state": None}.items() if k not in state})
    if stage is not None:
        stage.restore(fabric, state)
    rank, world = fabric.global_rank, fabric.world_size
    load = batch_loader(train, fabric.device, num_workers)
    bar = tqdm(total=epochs, desc=desc, disable=not progress or rank > 0, unit="epoch", initial=state["epoch"])
    for epoch in range(state["epoch"], epochs):
        if state["steps"] == max_steps:
            break
        if start_epoch is not None:
            start_epoch()
        te = time.time()
        if state["batch"] == 0:
            state["order"], state["sums"] = epoch_order(len(train), order), {}
        batches = global_batches(state["order"], batch_size, drop_last=drop_last)[state["batch"] * group:]
        items = zip(batches, load([local_share(b, rank, world) for b in batches]))
        while run := list(itertools.islice(items, group)):
            for k, v in step(run).items():
                state["sums"][k] = state["sums"].get(k, 0.0) + v
            state["steps"], state["batch"] = state["steps"] + 1, state["batch"] + 1
            if stage is not None and stage.step_clock is not None:
                stage.step_clock.append(time.perf_counter())
            if state["steps"] == max_steps:
                break
            if stage is not None:
                stage.tick(fabric, state)  # a checkpoint within the epoch when one is due
        sums = dict(zip(state["sums"], reduce_sum(fabric, list(state["sums"].values()))))
        row, score = end_of_epoch(epoch, sums, state["batch"])
        if score is not None and score < state["best"]:
            state["best"], state["best_epoch"], state["best_state"] = float(score), epoch, snapshot()
        state["history"].append({**row, "seconds": time.time() - te})
        bar.update(1)
        if postfix is not None:
            bar.set_postfix(postfix(row))
        state["epoch"], state["batch"] = epoch + 1, 0
        if stage is not None and state["steps"] != max_steps:  # (a stop at max_steps: the stage finishes next)
            stage.save(fabric, state)
    bar.close()
    if stage is not None:
        stage.finish(fabric, state)
    history = pd.DataFrame(state["history"])
    return history, float(history["seconds"].sum()) if len(history) else 0.0, state["best_epoch"]


# --------------------------------------------------------------------------- stages

class Stage:
    """One resumable training run: ``<root>/<name>-<identity>/last.ckpt`` and ``final.ckpt``.

    Created by :meth:`Engine.stage`. ``status`` after :meth:`restore` is ``"trained"``
    (from scratch), ``"resumed"`` (from ``last.ckpt``) or ``"loaded"`` (a finished stage
    from ``final.ckpt``: nothing is trained).
    """

    def __init__(self, name: str, identity: dict[str, Any], root: Path | None, force: bool = False,
                 save_every_s: float = SAVE_EVERY_S, log: list | None = None) -> None:
        self.name, self.identity, self.root, self.force = name, identity, root, force
        self.key = identity_key(identity)
        self.save_every_s = save_every_s
        self.log = log if log is not None else []
        self.status = "trained"
        self._last_save = time.monotonic()
        self._steps_at_save, self._next_check = 0, FIRST_CHECK
        self.save_seconds = 0.0  # time spent writing checkpoints (gpu-check counts it)
        self.step_clock: list[float] | None = None  # a list: fit appends the time after every step

    @property
    def dir(self) -> Path | None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.name)
        return self.root / f"{safe}-{self.key}" if self.root is not None else None

    @property
    def final(self) -> Path | None:
        """The finished stage's checkpoint: ``final.ckpt``, or the saved model it became (:func:`keep_final`)."""
        return final_checkpoint(self.dir) if self.dir is not None else None

    @property
    def done(self) -> bool:
        return self.final is not None

    def loaded_after_workers(self) -> Stage:
        """This stage, to be loaded from the final checkpoint the DDP processes wrote."""
        return Stage(self.name, self.identity, self.root, False, self.save_every_s, self.log)

    def restore(self, fabric, state: dict[str, Any]) -> str:
        """Fill ``state`` from ``final.ckpt`` (a finished stage, unless ``force``) or ``last.ckpt``; return the status."""
        self._last_save = time.monotonic()
        if self.dir is None:
            self.status = "trained"
        elif (final := self.final) is not None and not self.force:
            fabric.load(final, state)
            self.status = "loaded"
        elif (self.dir / "last.ckpt").is_file() and not self.force:
            fabric.load(self.dir / "last.ckpt", state)
            self.status = "resumed"
        else:
            self.status = "trained"
        if fabric.is_global_zero:
            self._announce(state)
        self._steps_at_save = int(state.get("steps", 0))
        self._next_check = self._steps_at_save + FIRST_CHECK
        return self.status

    def _announce(self, state: dict[str, Any]) -> None:
        where = f" ({self.dir})" if self.dir is not None else ""
        text = {"loaded": "finished stage loaded, nothing trained",
                "resumed": f"resumed at epoch {state.get('epoch', 0)}, batch {state.get('batch', 0)}",
                "trained": "training from scratch"}[self.status]
        print(f"[stage {self.name}] {text}{where}", flush=True)
        self.log.append({"stage": self.name, "status": self.status, "epoch": int(state.get("epoch", 0)),
                         "key": self.key})

    def save(self, fabric, state: dict[str, Any], final: bool = False) -> None:
        """Write ``last.ckpt`` (or ``final.ckpt``) atomically; rank 0 writes, every rank waits."""
        t0 = self._last_save = time.monotonic()
        self._steps_at_save = int(state.get("steps", 0))
        if self.dir is None:
            return
        name = "final.ckpt" if final else "last.ckpt"
        tmp = self.dir / f".{name}.{os.getpid()}.tmp"
        if fabric.is_global_zero:
            self.dir.mkdir(parents=True, exist_ok=True)
            if not (self.dir / "identity.json").is_file():  # the key names it: written once
                (self.dir / "identity.json").write_text(json.dumps(plain(self.identity), indent=1))
        fabric.barrier()
        # the steps' sums stay on the device between checkpoints (no synchronisation per step); saved as numbers
        if "sums" in state:
            state["sums"] = {k: v.item() if torch.is_tensor(v) else v for k, v in state["sums"].items()}
        fabric.save(tmp, {**state, "stage": {"name": self.name, "key": self.key}})
        if fabric.is_global_zero:
            os.replace(tmp, self.dir / name)
        fabric.barrier()
        self.save_seconds += time.monotonic() - t0

    def tick(self, fabric, state: dict[str, Any]) -> None:
        """Within an epoch: save ``last.ckpt`` when ``save_every_s`` seconds have passed since the last save.

        With several processes the save is collective, so they must agree on when. They do so
        without a collective per step: only at planned step counts (``_next_check``, equal on
        every rank) they sum their clocks once, save if any rank is due, and plan the next
        check from the steps per second since the last save (a check a few steps early
        rather than late).
        """
        if fabric.world_size == 1:
            if time.monotonic() - self._last_save >= self.save_every_s:
                self.save(fabric, state)
            return
        if state["steps"] < self._next_check:
            return
        elapsed = time.monotonic() - self._last_save
        votes, total = reduce_sum(fabric, [float(elapsed >= self.save_every_s), elapsed])
        elapsed = total / fabric.world_size  # the same number on every rank from here on
        steps = state["steps"] - self._steps_at_save
        if votes:
            self.save(fabric, state)
            elapsed = 0.0
        per_s = steps / max(total / fabric.world_size, 1e-9)
        self._next_check = state["steps"] + max(1, int(0.9 * (self.save_every_s - elapsed) * per_s))

    def finish(self, fabric, state: dict[str, Any]) -> None:
        """Write ``final.ckpt`` (the stage is done) unless it was loaded from it."""
        if self.status != "loaded":
            self.save(fabric, state, final=True)
            if fabric.is_global_zero and self.dir is not None:
                for name in ("last.ckpt", MOVED):  # MOVED: a saved model of an earlier training (FORCE) stays as it is
                    (self.dir / name).unlink(missing_ok=True)


MOVED = "final.json"  # in a stage's folder: its final checkpoint became this saved model (a path from the folder)


def final_checkpoint(stage_dir: Path) -> Path | None:
    """A stage folder's final checkpoint: its ``final.ckpt``, else the saved model it became; None: not finished."""
    if (stage_dir / "final.ckpt").is_file():
        return stage_dir / "final.ckpt"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        target = Path(os.path.normpath(stage_dir / json.loads((stage_dir / MOVED).read_text())["checkpoint"]))
        if target.is_file():
            return target
    return None


def keep_final(stage_dir: Path | None, path: Path, extra: dict[str, Any]) -> Path:
    """Write ``extra`` (a saved model's weights and card) to ``path`` together with the final checkpoint of the
    finished stage in ``stage_dir``: one file for both, from which the stage also loads (its ``final.json`` points
    there). ``stage_dir`` None: ``extra`` alone.

    A file already at ``path`` that is another stage's final checkpoint goes back to that stage's folder as its
    ``final.ckpt``, so no finished training is lost. Each step leaves a readable checkpoint if interrupted.
    """
    blob = {}
    if stage_dir is not None:
        source = final_checkpoint(stage_dir)
        if source is None:
            raise BrainAgeError(f"{stage_dir} holds no finished stage to save as {path}.")
        blob = torch.load(source, map_location="cpu", weights_only=True)
        blob["stage"]["dir"] = os.path.relpath(stage_dir, path.parent)  # whose checkpoint it is, from the file
    blob.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(blob, tmp)
    owner = None
    with contextlib.suppress(Exception):  # no file there, or not a stage's: it is simply replaced
        owner = (path.parent / torch.load(path, map_location="cpu", weights_only=True, mmap=True)["stage"]["dir"]).resolve()
    if owner is not None and (stage_dir is None or owner != stage_dir.resolve()) \
            and (final_checkpoint(owner) or owner).resolve() == path.resolve():
        os.replace(path, owner / "final.ckpt")
        (owner / MOVED).unlink(missing_ok=True)
    os.replace(tmp, path)
    if stage_dir is not None:
        pointer = stage_dir / f".{MOVED}.{os.getpid()}.tmp"
        pointer.write_text(json.dumps({"checkpoint": os.path.relpath(path, stage_dir)}))
        os.replace(pointer, stage_dir / MOVED)
        (stage_dir / "final.ckpt").unlink(missing_ok=True)
    return path
