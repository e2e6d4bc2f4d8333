"""Quality control of a preprocessed cohort: per-scan numbers, outlier flags, ``qc.tsv`` and one ``qc.html``.

Per scan: its similarity to the template after registration (``similarity``: the correlation of
brain and template, both smoothed by a Gaussian of ``SMOOTH_MM``, inside the template's brain
mask; ``correlation``: the same unsmoothed, used to refuse scans that are not heads), brain volume
in the scanner (mask volume times the affine's volume change), and the number of mask voxels on
the edge of the scan's field of view. A scan is flagged when its brain meets that edge, its
similarity is low, or a number is an outlier of the cohort (robust z-score, median and MAD). ``qc.tsv``'s
``exclude`` column is ``yes`` for flagged scans and ``no`` for the others; edited by hand, it is
kept by later runs for every scan they do not redo, and the cohort loader skips the ``yes`` rows.
"""
from __future__ import annotations

import base64
import html
import io
import os
import urllib.parse
from pathlib import Path

import matplotlib.pyplot as plt
import nibabel as nib
import numpy as np
import pandas as pd
from scipy import ndimage

from brainage_lib.preprocess.outputs import atomic_write
from brainage_lib.preprocess.recipes import template
from brainage_lib.simulation.anatomy import Grid

SMOOTH_MM = 3.0  # sigma: similarity of the brain's layout (ventricles, lobes, outline), not of its folds, which differ
LOW_SIMILARITY = 0.8  # flagged below. Simulated brains, registered: 0.94-0.97; moved 10 mm or turned 10 deg: 0.64-0.75
OUTLIER_Z = 3.5  # robust z-score beyond which a number is an outlier of the cohort
MIN_FOR_OUTLIERS = 5  # scans needed before cohort outliers mean anything
MEASURES = ["native_brain_volume_ml", "bias_field_range", "snr", "efc", "log_jacobian_range"]  # see ``measures``
COLUMNS = ["participant_id", "session", "status", "exclude", "similarity", "correlation", "brain_volume_ml", "edge_voxels",
           *MEASURES, "seconds", "flags", "reason", "source"]


def similarity(brain: np.ndarray, shape: tuple[int, int, int]) -> float:
    """Correlation of a registered brain with the template, both smoothed by ``SMOOTH_MM``, in the template's mask."""
    tmpl, tmask, _ = template(shape)
    sigma = SMOOTH_MM / Grid(shape).voxel_size
    a, b = ndimage.gaussian_filter(brain.astype(np.float32), sigma)[tmask], ndimage.gaussian_filter(tmpl, sigma)[tmask]
    return float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 else 0.0


def subject_figure(brain: nib.Nifti1Image, shape: tuple[int, int, int], title: str) -> bytes:
    """PNG of the preprocessed brain in three planes with the template's edges drawn over it."""
    from nilearn import plotting

    tmpl = nib.Nifti1Image(template(shape)[0], Grid(shape).affine)
    fig = plt.figure(figsize=(7.5, 2.6))
    display = plotting.plot_anat(brain, display_mode="ortho", cut_coords=(0, -18, 12), figure=fig, title=title,
                                 annotate=False, draw_cross=False, black_bg=True)
    display.add_edges(tmpl, color="r")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, facecolor="black")
    display.close()
    plt.close(fig)
    return buf.getvalue()


def brainmask_figure(image: nib.Nifti1Image, mask: np.ndarray, title: str) -> bytes:
    """PNG of the image brain extraction saw with the outline of its brain mask, in three planes through the mask's
    centre. The voxels are only flipped and swapped to RAS (never resampled), so it is cheap on a full-size scan;
    left is on the left, as in the other figure."""
    from matplotlib.figure import Figure

    affine = image.affine
    data = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(image.dataobj, dtype=np.float32), affine))
    inside = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(mask, dtype=np.uint8), affine))
    vol, brain, zooms = np.asarray(data.dataobj), np.asarray(inside.dataobj) > 0, data.header.get_zooms()[:3]
    centre = (np.round(np.argwhere(brain).mean(axis=0)).astype(int) if brain.any()
              else np.array(vol.shape) // 2)
    vmax = float(np.percentile(vol[brain][::7], 99.5)) if brain.any() else float(vol.max())
    # (image plane, mask plane, physical width, height, aspect) per view: sagittal, coronal, axial
    cx, cy, cz = centre
    views = [(vol[cx], brain[cx], (1, 2)), (vol[:, cy], brain[:, cy], (0, 2)), (vol[:, :, cz], brain[:, :, cz], (0, 1))]
    widths = [plane.shape[0] * zooms[axes[0]] for plane, _, axes in views]
    fig = Figure(figsize=(7.5, 2.6), facecolor="black")
    grid = fig.add_gridspec(1, 3, width_ratios=widths, left=0.01, right=0.99, bottom=0.02, top=0.88, wspace=0.04)
    for k, (plane, outline, (a, b)) in enumerate(views):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(plane.T, cmap="gray", vmin=0.0, vmax=vmax, origin="lower", interpolation="nearest",
                  aspect=zooms[b] / zooms[a])
        if outline.any():
            ax.contour(outline.T.astype(np.float32), levels=[0.5], colors="r", linewidths=0.8)
        ax.set_axis_off()
    fig.suptitle(title, color="white", fontsize=9, y=0.97)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, facecolor="black", metadata={"Software": None})
    return buf.getvalue()


def _robust_z(x: pd.Series) -> pd.Series:
    mad = float((x - x.median()).abs().median())
    return 0.6745 * (x - x.median()) / mad if mad > 0 else x * 0.0


def flag_outliers(table: pd.DataFrame) -> pd.DataFrame:
    """Add ``flags`` and set ``status`` (ok / flagged / failed); rows sorted worst first."""
    table = table.copy()
    for col in ("similarity", "correlation", "brain_volume_ml", "edge_voxels", "seconds", *MEASURES):
        table[col] = pd.to_numeric(table[col]) if col in table else np.nan
    table["edge_voxels"] = table["edge_voxels"].astype("Int64")
    done = table["status"] != "failed"
    flags: list[list[str]] = [[] for _ in range(len(table))]
    z_corr = _robust_z(table.loc[done, "similarity"].astype(float))
    # the volume deepbet measured in the scanner where there is one: after SyN the mask is the template's, so the
    # registered volume (template volume times the affine's change) would hide an outlier
    volume = table["native_brain_volume_ml"].fillna(table["brain_volume_ml"])
    z_vol = _robust_z(volume[done].astype(float))
    enough = int(done.sum()) >= MIN_FOR_OUTLIERS
    for pos, (i, row) in enumerate(table.iterrows()):
        if not done[i]:
            continue
        if row["edge_voxels"] > 0:
            flags[pos].append(f"brain mask meets the edge of the field of view ({int(row['edge_voxels'])} voxels): brain cut off?")
        if row["similarity"] < LOW_SIMILARITY:
            flags[pos].append(f"low similarity to the template ({row['similarity']:.2f} < {LOW_SIMILARITY}): check the "
                              "registration and the brain extraction (young children's T1 contrast also lowers it)")
        if enough and z_corr[i] < -OUTLIER_Z:
            flags[pos].append(f"similarity an outlier of this cohort (robust z={z_corr[i]:.1f})")
        if enough and abs(z_vol[i]) > OUTLIER_Z:
            flags[pos].append(f"brain volume an outlier of this cohort (robust z={z_vol[i]:.1f})")
    table["flags"] = ["; ".join(f) for f in flags]
    table.loc[done, "status"] = np.where(table.loc[done, "flags"] != "", "flagged", "ok")
    order = table["status"].map({"failed": 0, "flagged": 1, "ok": 2})
    table = table.assign(_o=order).sort_values(["_o", "similarity"], na_position="first").drop(columns="_o")
    return table.reset_index(drop=True)


def _key(table: pd.DataFrame) -> pd.Series:
    session = table["session"].fillna("").astype(str) if "session" in table else ""
    return table["participant_id"].astype(str) + " " + session


def set_exclusions(table: pd.DataFrame, previous: Path, redone: set[str]) -> pd.DataFrame:
    """``exclude``: yes for flagged scans, no for the others, except that a scan not in ``redone`` (keys
    ``participant_id session``) keeps the value it has in the ``previous`` qc.tsv (perhaps set by hand)."""
    table = table.copy()
    table["exclude"] = np.where(table["status"] == "flagged", "yes", np.where(table["status"] == "ok", "no", ""))
    if previous.is_file():
        old = pd.read_csv(previous, sep="\t", dtype=str, keep_default_na=False)
        if "exclude" in old:
            kept = dict(zip(_key(old), old["exclude"].str.strip()))
            keys = _key(table)
            carry = (table["status"] != "failed") & ~keys.isin(redone) & keys.isin(kept.keys())
            table.loc[carry, "exclude"] = keys[carry].map(kept)
    return table


THUMB_WIDTH = 160  # px: the figures' thumbnails in qc.html (2-3 kB each; the page is about 6 kB per scan)
THUMB_COLOURS = 16  # a palette this small keeps the template's and the mask's red lines
FIGURES = {"figure": "registered", "mask_figure": "brain mask"}  # the figures of a scan shown in qc.html, by kind
SHOWN = [("similarity", "similarity", ".3f"), ("volume", "brain mL", ".0f"), ("edge_voxels", "edge voxels", ""),
         ("snr", "SNR", ".1f"), ("bias_field_range", "bias field", ".2f"), ("efc", "EFC", ".3f"),
         ("log_jacobian_range", "log-Jacobian range", ".2f")]  # the key measures qc.html shows (qc.tsv has them all)


def thumbnail(png: Path, width: int = THUMB_WIDTH) -> tuple[bytes, int, int]:
    """A figure downscaled to ``width`` px, as a PNG with a small palette (deterministic), and its size."""
    from PIL import Image

    with Image.open(png) as im:
        rgb = im.convert("RGB")
    height = max(1, round(rgb.height * width / rgb.width))
    small = rgb.resize((width, height), Image.Resampling.LANCZOS).quantize(THUMB_COLOURS)
    buf = io.BytesIO()
    small.save(buf, format="PNG", optimize=True)
    return buf.getvalue(), width, height


def _number(value, spec: str) -> str:
    if value is None or pd.isna(value):
        return ""
    return format(value, spec) if spec else str(value)


def _figure_cell(out: Path, png: Path | None, label: str, key: str) -> str:
    """A thumbnail linking (relative to ``out``) to the full-size figure; empty where there is no figure."""
    if png is None or not png.is_file():
        return "<td></td>"
    data, w, h = thumbnail(png)
    href = urllib.parse.quote(Path(os.path.relpath(png, out)).as_posix())
    return (f'<td class="fig"><a href="{href}" target="_blank" title="{html.escape(f"{key}: {label}, full size")}">'
            f'<img alt="{html.escape(f"{key} {label}")}" width="{w}" height="{h}" '
            f'src="data:image/png;base64,{base64.b64encode(data).decode()}"></a></td>')


def write_qc(out: Path, table: pd.DataFrame, figures: dict[str, dict[str, Path]], title: str) -> tuple[Path, Path]:
    """Write ``qc.tsv`` and ``qc.html``, worst first.

    ``figures``: by scan (``participant_id[ session]``), its figures by kind (keys of ``FIGURES``). qc.html has one
    row per scan: its status, exclusion, key measures, flags or reason, and a small thumbnail of each of its figures
    (embedded) that links to the full-size file (relative to ``out``), so the page stays small for a large cohort.
    """
    tsv, page = out / "qc.tsv", out / "qc.html"
    table = table[[c for c in COLUMNS if c in table.columns]]
    atomic_write(tsv, lambda p: table.to_csv(p, sep="\t", index=False, lineterminator="\n"))
    counts = table["status"].value_counts()
    esc = html.escape
    volume = table.get("native_brain_volume_ml", pd.Series(np.nan, index=table.index))
    volume = pd.to_numeric(volume).fillna(pd.to_numeric(table.get("brain_volume_ml", volume)))
    shown = [(col, name, spec) for col, name, spec in SHOWN
             if col == "volume" or (col in table and table[col].notna().any())]
    has_session = "session" in table
    rows = []
    for i, r in table.iterrows():
        key = r["participant_id"] + (f" {r['session']}" if has_session and isinstance(r["session"], str) else "")
        values = [volume[i] if col == "volume" else r[col] for col, _, _ in shown]
        cells = [f"<th>{esc(key)}</th>", f"<td>{esc(str(r['status']))}</td>",
                 f"<td>{esc('' if pd.isna(r.get('exclude')) else str(r.get('exclude')))}</td>"]
        cells += [f'<td class="n">{_number(v, spec)}</td>' for v, (_, _, spec) in zip(values, shown)]
        note = r.get("reason") if r["status"] == "failed" else r.get("flags")
        cells.append(f'<td class="note">{esc("" if note is None or pd.isna(note) else str(note))}</td>')
        mine = figures.get(key, {})
        cells += [_figure_cell(out, mine.get(kind), label, key) for kind, label in FIGURES.items()]
        rows.append(f'<tr class="{esc(str(r["status"]))}">{"".join(cells)}</tr>')
    header = "".join(f"<th>{esc(h)}</th>" for h in ["scan", "status", "exclude", *(n for _, n, _ in shown),
                                                       "flags / reason", *FIGURES.values()])
    excluded = int((table["exclude"].astype(str).str.lower() == "yes").sum()) if "exclude" in table else 0
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }} table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; }} thead th {{ position: sticky; top: 0; background: #eee; }}
tbody th {{ text-align: left; font-weight: normal; white-space: nowrap; }} td.n {{ text-align: right; }}
td.note {{ max-width: 28em; }} td.fig {{ padding: 1px; background: #000; }} td.fig img {{ display: block; }}
tr.failed td, tr.failed th {{ background: #f8d0d0; }} tr.flagged td, tr.flagged th {{ background: #fbeecb; }}
tr.failed td.fig, tr.flagged td.fig {{ background: #000; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{int(counts.get('ok', 0))} ok, {int(counts.get('flagged', 0))} flagged, {int(counts.get('failed', 0))} failed; worst
first. {excluded} excluded from the notebooks and <code>brainage predict</code> (column <code>exclude</code> of
<code>qc.tsv</code>: yes for flagged scans; edit it to change that). <code>qc.tsv</code> has every number.</p>
<p>Registered: the preprocessed brain under the edges (red) of the MNI152 template it was registered to. Brain mask:
the outline (red) of deepbet's brain mask on the image it was extracted from. Click a picture for its full size.</p>
<table><thead><tr>{header}</tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
</body></html>
"""
    atomic_write(page, lambda p: p.write_text(doc))
    return tsv, page
