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


def write_qc(out: Path, table: pd.DataFrame, figures: dict[str, Path], title: str) -> tuple[Path, Path]:
    """Write ``qc.tsv`` and a self-contained ``qc.html`` (figures embedded as base64), worst first."""
    tsv, page = out / "qc.tsv", out / "qc.html"
    table = table[[c for c in COLUMNS if c in table.columns]]
    atomic_write(tsv, lambda p: table.to_csv(p, sep="\t", index=False, lineterminator="\n"))
    counts = table["status"].value_counts()
    esc = html.escape
    rows = []
    for _, r in table.iterrows():
        cells = "".join(f"<td>{esc('' if pd.isna(r[c]) else str(r[c]))}</td>" for c in table.columns)
        rows.append(f'<tr class="{esc(r["status"])}">{cells}</tr>')
    panels = []
    for _, r in table.iterrows():
        key = r["participant_id"] + (f" {r['session']}" if "session" in table and isinstance(r["session"], str) else "")
        png = figures.get(key)
        if png is None or not png.is_file():
            continue
        data = base64.b64encode(png.read_bytes()).decode()
        caption = f"{key}: {r['status']}, similarity {r['similarity']:.3f}, {r['brain_volume_ml']:g} mL"
        caption += f" | {r['flags']}" if r["flags"] else ""
        panels.append(f'<figure class="{esc(r["status"])}"><img alt="{esc(key)}" src="data:image/png;base64,{data}">'
                      f"<figcaption>{esc(caption)}</figcaption></figure>")
    header = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }} table {{ border-collapse: collapse; font-size: 0.85em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; }} tr.failed td {{ background: #f8d0d0; }}
tr.flagged td {{ background: #fbeecb; }} figure {{ margin: 0.6em 0; }} figure.flagged figcaption {{ color: #a05a00; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>{esc(title)}</h1>
<p>{int(counts.get('ok', 0))} ok, {int(counts.get('flagged', 0))} flagged, {int(counts.get('failed', 0))} failed; worst first.
{int((table['exclude'].str.lower() == 'yes').sum()) if 'exclude' in table else 0} excluded from the notebooks and
<code>brainage predict</code> (column <code>exclude</code> of qc.tsv: yes for flagged scans; edit it to change that).
Red lines: edges of the MNI152 template the scans were registered to.</p>
<table><tr>{header}</tr>
{chr(10).join(rows)}
</table>
<h2>Scans</h2>
{chr(10).join(panels)}
</body></html>
"""
    atomic_write(page, lambda p: p.write_text(doc))
    return tsv, page
