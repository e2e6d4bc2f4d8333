"""Latent-interpolation synthesis of the TGB paper (eqs. 6-7), saved to disk and reusable.

A synthesised set is a folder::

    images.npy   (M, D, H, W) float16, memory-mapped on load (like the preprocessing cache)
    pairs.tsv    k, i, j, id_i, id_j, age_i, age_j, eps, age   (one row per image; i, j index the source images)
    meta.json    key, stage_key (of the generator), count, min_per_bin, seed, shape, bins that could not be filled

``synthesise`` writes it under a temporary name and renames it into place when
complete; called again with the same generator, source images, ages and settings it
finds the same ``key`` and returns the saved set without decoding. The generator is
named by its training stage's identity (``GANResult.stage_key``: configuration, data
and code) when it has one, else by a hash of its weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from brainage_lib.errors import BrainAgeError
from brainage_lib.papers.tgb.gan import TGBGenerator, interpolate_latents, plan_synthesis
from brainage_lib.run.progress import tqdm

__all__ = ["SyntheticSet", "bin_fill", "load_synthetic", "synthesis_key", "synthesise", "synthesise_at_age"]


@dataclass
class SyntheticSet:
    """A saved synthesised set: images (memory map), their pairs and labels, and metadata."""

    root: Path
    images: np.ndarray  # (M, D, H, W) float16 memmap
    pairs: pd.DataFrame  # k, i, j, id_i, id_j, age_i, age_j, eps, age
    meta: dict

    @property
    def ages(self) -> np.ndarray:
        """Eq. 7 labels ``eps * y_i + (1 - eps) * y_j``, shape ``(M,)``."""
        return self.pairs["age"].to_numpy(dtype=float)

    def __len__(self) -> int:
        return len(self.pairs)


def synthesis_key(generator: TGBGenerator, images: np.ndarray, ages: np.ndarray, stage_key: str | None = None,
                  **settings) -> str:
    """Hash of the generator, the source images (strided sample), their ages and the settings.

    The generator counts by its training stage's identity ``stage_key`` when given, else by its weights.
    """
    h = hashlib.sha256()
    if stage_key is not None:
        h.update(f"stage:{stage_key}".encode())
    else:
        for name, t in generator.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().float().cpu().numpy().tobytes())
    h.update(np.asarray(ages, dtype=np.float64).tobytes())
    flat = np.asarray(images).reshape(len(images), -1)
    h.update(np.ascontiguousarray(flat[:, :: max(1, flat.shape[1] // 4096)], dtype=np.float32).tobytes())
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def bin_fill(real_ages: np.ndarray, synthetic_ages: np.ndarray, min_per_bin: int, bin_width: float = 1.0) -> pd.DataFrame:
    """Per age bin ``[k, k + bin_width)`` from the youngest to the oldest real age: real, synthetic, total, filled."""
    real, synth = np.asarray(real_ages, float), np.asarray(synthetic_ages, float)
    lo = int(np.floor(real.min() / bin_width))
    hi = int(np.floor(real.max() / bin_width))
    edges = np.arange(lo, hi + 2) * bin_width
    n_real = np.histogram(real, edges)[0]
    n_syn = np.histogram(synth, edges)[0]
    df = pd.DataFrame({"bin": [f"{a:g}-{b:g}" for a, b in zip(edges[:-1], edges[1:])], "lo": edges[:-1],
                       "real": n_real, "synthetic": n_syn})
    df["total"] = df["real"] + df["synthetic"]
    df["filled"] = df["total"] >= min_per_bin
    return df


def load_synthetic(root: str | os.PathLike) -> SyntheticSet:
    """Open a saved synthesised set (images memory-mapped)."""
    root = Path(root)
    files = [root / "images.npy", root / "pairs.tsv", root / "meta.json"]
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise BrainAgeError(f"{root} is not a synthesised set (missing {', '.join(missing)}); run the synthesis again.")
    images = np.load(files[0], mmap_mode="r")
    pairs = pd.read_csv(files[1], sep="\t", dtype={"id_i": str, "id_j": str})
    meta = json.loads(files[2].read_text())
    if len(images) != len(pairs):
        raise BrainAgeError(f"{root}: images.npy has {len(images)} rows but pairs.tsv {len(pairs)}; delete the folder and re-run.")
    return SyntheticSet(root, images, pairs, meta)


@torch.no_grad()
def _decode_pairs(generator: TGBGenerator, images: np.ndarray, i: np.ndarray, j: np.ndarray, eps: np.ndarray,
                  device: torch.device, amp: bool = True) -> np.ndarray:
    """Eq. 6 for a batch of pairs: ``decode(eps*E(x_i) + (1-eps)*E(x_j))`` as float32 ``(B, D, H, W)``."""
    def batch(idx: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(images[idx], np.float32))[:, None].to(device)  # (B, 1, D, H, W)

    with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
        out = interpolate_latents(generator, batch(i), batch(j), torch.tensor(np.array(eps, dtype=np.float32), device=device))
    return out.float()[:, 0].cpu().numpy()


def synthesise(generator: TGBGenerator, images: np.ndarray, ages: np.ndarray, out_dir: str | os.PathLike,
               device: torch.device, min_per_bin: int = 50, seed: int = 0, ids: list[str] | None = None,
               batch_size: int = 8, progress: bool = True, stage_key: str | None = None) -> SyntheticSet:
    """Fill every 1-year age bin of ``ages`` to ``min_per_bin`` images by latent interpolation; save to ``out_dir``.

    Pairs come from ``plan_synthesis`` (one younger and one older training image within
    1 year of a target age in the short bin, ``eps ~ U(0, 1)``, label by eq. 7). A bin
    no pair can reach is left short and listed in ``meta["unreachable_bins"]``.

    Parameters
    ----------
    generator
        The trained generator (its encoder and decoder are used).
    images, ages
        Training images ``(N, D, H, W)`` (e.g. rows of the cache) and their ages ``(N,)``.
    out_dir
        Folder of the set; an existing set with the same key is returned as it is.
    ids
        Participant ids of the rows of ``images`` (written to ``pairs.tsv``).
    stage_key
        The identity of the stage that trained ``generator`` (``GANResult.stage_key``): the
        saved set is reused when it matches, without hashing the weights. None: the weights
        name the generator.
    """
    ages = np.asarray(ages, dtype=float)
    if len(images) != len(ages):
        raise BrainAgeError(f"synthesise: {len(images)} images but {len(ages)} ages.")
    out = Path(out_dir)
    key = synthesis_key(generator, images, ages, stage_key, min_per_bin=min_per_bin, seed=seed)
    if (out / "meta.json").is_file():
        try:
            saved = load_synthetic(out)
            if saved.meta.get("key") == key:
                return saved
        except BrainAgeError:
            pass
    plan = plan_synthesis(ages, min_per_bin=min_per_bin, rng=seed, skip_unreachable=True)
    pairs = pd.DataFrame(plan, columns=["i", "j", "eps", "age"])
    pairs.insert(0, "k", np.arange(len(pairs)))
    ids = list(ids) if ids is not None else [str(k) for k in range(len(ages))]
    pairs["id_i"] = [ids[i] for i in pairs["i"]]
    pairs["id_j"] = [ids[j] for j in pairs["j"]]
    pairs["age_i"], pairs["age_j"] = ages[pairs["i"]], ages[pairs["j"]]
    pairs = pairs[["k", "i", "j", "id_i", "id_j", "age_i", "age_j", "eps", "age"]]
    fill = bin_fill(ages, pairs["age"].to_numpy(), min_per_bin)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        arr = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.float16,
                                        shape=(len(pairs), *np.shape(images)[1:]))
        generator.eval()
        for start in tqdm(range(0, len(pairs), batch_size), desc="synthesise", disable=not progress, unit="batch"):
            p = pairs.iloc[start:start + batch_size]
            arr[start:start + len(p)] = _decode_pairs(generator, images, p["i"].to_numpy(), p["j"].to_numpy(),
                                                      p["eps"].to_numpy(), device)
        arr.flush()
        del arr
        pairs.to_csv(tmp / "pairs.tsv", sep="\t", index=False, lineterminator="\n", float_format="%.6f")
        meta = {"key": key, "stage_key": stage_key, "count": len(pairs), "min_per_bin": min_per_bin, "seed": seed,
                "shape": list(np.shape(images)[1:]), "n_source": len(ages), "equations": "TGB eqs. 6-7",
                "unreachable_bins": fill.loc[~fill["filled"], "bin"].tolist()}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_synthetic(out)


def synthesise_at_age(generator: TGBGenerator, images: np.ndarray, ages: np.ndarray, target: float, n: int,
                      device: torch.device, seed: int = 0, max_pair_gap: float = 1.0) -> tuple[np.ndarray, pd.DataFrame]:
    """``n`` images of age exactly ``target``: pairs within ``max_pair_gap`` on each side, ``eps`` solving eq. 7.

    Returns the images ``(n, D, H, W)`` and a table of the pairs (i, j, eps, age). Raises
    BrainAgeError when no younger/older pair lies within ``max_pair_gap`` of ``target``.
    """
    ages = np.asarray(ages, dtype=float)
    younger = np.flatnonzero((ages < target) & (target - ages < max_pair_gap))
    older = np.flatnonzero((ages > target) & (ages - target < max_pair_gap))
    if younger.size == 0 or older.size == 0:
        raise BrainAgeError(f"No training pair lies within {max_pair_gap:g} year of age {target:g}; "
                            "choose another target age or a larger cohort.")
    rng = np.random.default_rng(seed)
    i, j = rng.choice(younger, n), rng.choice(older, n)
    eps = (ages[j] - target) / (ages[j] - ages[i])  # eps*y_i + (1-eps)*y_j = target
    imgs = _decode_pairs(generator, images, i, j, eps, device)
    return imgs, pd.DataFrame({"i": i, "j": j, "eps": eps, "age": eps * ages[i] + (1 - eps) * ages[j]})
