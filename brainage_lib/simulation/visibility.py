"""Is a cohort's regional effect visible in the images the models see?

The models see each volume resized to a cube and min-max normalised per image (TGB's
input transform, re-implemented here because the simulation layer sits below
``data``). ``ground_truth_visibility`` scores the simulator's expected change (stored
in those units) against its effect map; ``difference_visibility`` scores the
|mean(old) - mean(young)| map of real images. Both use the Dice overlap of the top
``top_percent`` % brain voxels of each map, the score the TGB notebook reports.
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from brainage_lib.simulation.anatomy import tissue_maps

EFFECT_INSIDE = 0.5  # effect-map level that delimits "inside the effect region"


def minmax(x: np.ndarray) -> np.ndarray:
    """Min-max normalisation of one image to [0, 1] (all zeros when it is constant)."""
    lo, hi = float(x.min()), float(x.max())
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def resize_cube(volume: np.ndarray, size: int) -> np.ndarray:
    """Trilinear resize to ``size``^3 (``align_corners=False``), as the models' input transforms resize."""
    t = torch.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))[None, None]
    return F.interpolate(t, size=(size,) * 3, mode="trilinear", align_corners=False)[0, 0].numpy()


def model_input(volume: np.ndarray, size: int) -> np.ndarray:
    """A volume as TGB's network sees it: resized to ``size``^3, min-max normalised per image."""
    return minmax(resize_cube(volume, size)).astype(np.float32)


def brain_mask(shape: tuple[int, int, int], size: int) -> np.ndarray:
    """MNI152 brain mask of a simulation grid, resized to ``size``^3 and thresholded at 0.5."""
    return resize_cube(tissue_maps(tuple(int(s) for s in shape))["mask"], size) > 0.5


def top_count(reference: np.ndarray, top_percent: float = 10.0) -> int:
    """Voxels each map contributes to the top-voxel Dice: ``top_percent`` % of ``reference``'s voxels, or fewer
    when the reference's core (at least half its peak) holds fewer.

    A region smaller than the top ``top_percent`` % would otherwise cap the Dice of even a perfect
    map at ``2 s / (s + top_percent / 100)`` (``s`` its share of the brain); for regions as large
    as that or larger (the presets' default, frontal) the count is the plain ``top_percent`` %.
    """
    r = np.asarray(reference, float)
    k = max(1, round(r.size * top_percent / 100))
    peak = float(r.max()) if r.size else 0.0
    core = int((r >= EFFECT_INSIDE * peak).sum()) if peak > 0 else k
    return max(1, min(k, core))


def top_dice(values: np.ndarray, reference: np.ndarray, mask: np.ndarray, top_percent: float = 10.0) -> float:
    """Dice overlap of the top ``top_count`` ``mask`` voxels of two maps (chance level: that count over the mask's)."""
    v, r = np.asarray(values, float)[mask], np.asarray(reference, float)[mask]
    k = top_count(r, top_percent)
    top_v, top_r = np.zeros(v.size, bool), np.zeros(v.size, bool)
    top_v[np.argsort(-v, kind="stable")[:k]] = True
    top_r[np.argsort(-r, kind="stable")[:k]] = True
    return float((top_v & top_r).sum()) / k


def share_inside(change: np.ndarray, effect: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """Where a change map's mass lies: its share inside the effect region (effect >= 0.5) and the region's
    share of the brain voxels (the share a change unrelated to the region would have)."""
    c, inside = np.asarray(change, float)[mask], np.asarray(effect, float)[mask] >= EFFECT_INSIDE
    total = float(c.sum())
    return {"share_inside": float(c[inside].sum()) / total if total > 0 else float("nan"),
            "region_fraction": float(inside.mean())}


def _load(path: Path) -> np.ndarray:
    return np.asarray(nib.load(str(path)).get_fdata(dtype=np.float32))


def ground_truth_maps(ground_truth_dir: str | Path, size: int) -> dict[str, np.ndarray]:
    """A simulated cohort's effect map, expected change, oracle change and brain mask on the ``size``^3 input grid.

    ``change`` is the stored expected change resized; ``oracle`` is |old - young| of the two
    reference images, each put through ``model_input`` as a subject's image would be.
    """
    gt = Path(ground_truth_dir)
    effect_native = _load(gt / "effect_map.nii.gz")
    young, old = (model_input(_load(gt / f"reference_{k}.nii.gz"), size) for k in ("young", "old"))
    return {"effect": resize_cube(effect_native, size), "mask": brain_mask(effect_native.shape, size),
            "change": resize_cube(_load(gt / "expected_change.nii.gz"), size), "oracle": np.abs(old - young)}


def visibility_scores(maps: dict[str, np.ndarray], top_percent: float = 10.0) -> dict[str, float]:
    """``share_inside`` and ``region_fraction`` of the expected change, its top-voxel Dice against the
    effect map (``dice_top``) and the oracle's (``oracle_dice_top``)."""
    effect, mask = maps["effect"], maps["mask"]
    return {**share_inside(maps["change"], effect, mask), "dice_top": top_dice(maps["change"], effect, mask, top_percent),
            "oracle_dice_top": top_dice(maps["oracle"], effect, mask, top_percent)}


def difference_visibility(volumes: np.ndarray, ages: np.ndarray, effect: np.ndarray, mask: np.ndarray,
                          young_max: float, old_min: float, top_percent: float = 10.0) -> dict[str, float]:
    """Score the real-image map |mean(age >= ``old_min``) - mean(age <= ``young_max``)| against the effect map.

    ``volumes`` (N, S, S, S) are model inputs; ``effect`` and ``mask`` are on the same grid.
    Returns ``dice_top``, ``share_inside``, ``region_fraction`` and the group sizes.
    """
    ages = np.asarray(ages, float)
    young, old = ages <= young_max, ages >= old_min
    if young.sum() < 2 or old.sum() < 2:
        return {"dice_top": float("nan"), "share_inside": float("nan"), "region_fraction": float("nan"),
                "n_young": int(young.sum()), "n_old": int(old.sum())}
    diff = np.abs(np.asarray(volumes[old], np.float32).mean(0) - np.asarray(volumes[young], np.float32).mean(0))
    return {**share_inside(diff, effect, mask), "dice_top": top_dice(diff, effect, mask, top_percent),
            "n_young": int(young.sum()), "n_old": int(old.sum())}


def visibility_figure(panels: dict[str, tuple[dict[str, np.ndarray], dict[str, float]]], top_percent: float = 10.0) -> Figure:
    """Per cohort: the expected change (normalised units) on the axial, coronal and sagittal slices that cut
    the most of the effect region (effect >= 0.5, outlined), and its scores in the row title."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(panels), 3, figsize=(9, 2.9 * len(panels)), squeeze=False)
    for row, (name, (maps, s)) in zip(axes, panels.items()):
        effect, change = maps["effect"], np.where(maps["mask"], maps["change"], 0.0)
        inside = effect >= EFFECT_INSIDE
        c = [int(np.argmax(inside.sum(axis=tuple(a for a in range(3) if a != axis)))) for axis in range(3)]
        vmax = max(float(np.percentile(change[maps["mask"]], 99.5)), 1e-6)
        cuts = ((change[:, :, c[2]], effect[:, :, c[2]], "axial"), (change[:, c[1], :], effect[:, c[1], :], "coronal"),
                (change[c[0], :, :], effect[c[0], :, :], "sagittal"))
        for ax, (img, eff, label) in zip(row, cuts):
            im = ax.imshow(img.T, origin="lower", cmap="hot", vmin=0, vmax=vmax)
            ax.contour(eff.T, levels=[EFFECT_INSIDE], colors="cyan", linewidths=0.8)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(label, fontsize=7)
        row[0].set_title(f"{name}: {s['share_inside']:.0%} of the change inside the region ({s['region_fraction']:.0%} of "
                         f"the brain); top-{top_percent:g}% Dice {s['dice_top']:.2f}", fontsize=8, loc="left")
        fig.colorbar(im, ax=row[2], fraction=0.046, label="|change|")
    fig.tight_layout()
    return fig
