"""``qc.html`` for a large cohort: one row per scan, worst first, small embedded thumbnails that link to the full-size
figures, and a page that stays a few MB at 500 scans (and renders in headless chromium). No preprocessing runs here:
the records are made up, and every scan shares the same two figures, drawn as the pipeline draws them."""
from __future__ import annotations

import io
import re
import time
from pathlib import Path
from urllib.parse import unquote, urlparse

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from brainage_lib.preprocess.qc import (THUMB_WIDTH, brainmask_figure, flag_outliers, set_exclusions, subject_figure,
                                        thumbnail, write_qc)
from brainage_lib.preprocess.recipes import template
from brainage_lib.simulation.anatomy import Grid

N_SCANS = 500
MAX_MB = 5.0  # the page at 500 scans (2.8 MB: two 2-3 kB thumbnails per scan, base64)
FAILED_EVERY = 50  # every 50th scan failed (no figures)
GRID = (99, 117, 95)


def _head(shape=(96, 128, 112)) -> tuple[nib.Nifti1Image, np.ndarray]:
    """A smooth ellipsoid head with a brighter brain, in PSR voxels of 1.2 x 1 x 1.5 mm, as a scanner writes it."""
    idx = np.indices(shape, dtype=np.float32)
    c = [(n - 1) / 2 for n in shape]
    r = sum(((idx[k] - c[k]) / (0.46 * shape[k])) ** 2 for k in range(3))
    brain = r < 0.6
    data = (np.where(r < 1, 400.0, 0.0) + brain * 300.0 * (1 + 0.2 * np.cos(idx[0] / 5))).astype(np.float32)
    affine = np.array([[0, 0, 1.5, -80], [-1.2, 0, 0, 60], [0, -1.0, 0, 70], [0, 0, 0, 1.0]])
    return nib.Nifti1Image(data, affine), brain


def test_the_brain_mask_figure_is_cheap_and_the_same_every_time():
    image, brain = _head()
    t0 = time.perf_counter()
    png = brainmask_figure(image, brain, "sub-01  deepbet brain mask")
    seconds = time.perf_counter() - t0
    assert png == brainmask_figure(image, brain, "sub-01  deepbet brain mask")  # byte-identical reruns
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (600, 208) and "Software" not in im.info
        rgb = np.asarray(im.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
    assert red.sum() > 300  # the mask's outline is drawn
    assert seconds < 3.0, seconds  # a few hundred ms on a free core


def _table(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    failed = np.arange(n) % FAILED_EVERY == 7
    table = pd.DataFrame({"participant_id": [f"sub-{i:04d}" for i in range(n)],
                          "status": np.where(failed, "failed", "ok"),
                          "similarity": rng.normal(0.95, 0.01, n).round(4), "correlation": 0.9,
                          "brain_volume_ml": rng.normal(1200, 60, n).round(1), "edge_voxels": 0,
                          "native_brain_volume_ml": rng.normal(1200, 60, n).round(1), "snr": rng.normal(8, 1, n).round(2),
                          "bias_field_range": 1.2, "efc": 0.5, "seconds": 30.0, "reason": ""})
    numbers = ["similarity", "correlation", "brain_volume_ml", "edge_voxels", "native_brain_volume_ml", "snr",
               "bias_field_range", "efc", "seconds"]
    table.loc[failed, numbers] = np.nan
    table.loc[failed, "reason"] = "refused: not a head"
    table.loc[[3, 10, 11], "similarity"] = [0.5, 0.6, 0.7]  # three flagged
    return table


@pytest.fixture(scope="module")
def big_report(tmp_path_factory):
    """qc.html of 500 scans, each with the two figures (as the pipeline draws them) in its figures folder."""
    out = tmp_path_factory.mktemp("qc500") / "out"
    registered = subject_figure(nib.Nifti1Image(template(GRID)[0], Grid(GRID).affine), GRID, "sub-0000  similarity 0.950")
    mask = brainmask_figure(*_head(), "sub-0000  deepbet brain mask (scanner space, 1400 mL)")
    table = set_exclusions(flag_outliers(_table(N_SCANS)), out / "qc.tsv", set())
    figures = {}
    for sid, status in zip(table["participant_id"], table["status"]):
        if status == "failed":
            continue
        folder = out / sid / "figures"
        folder.mkdir(parents=True)
        (folder / f"{sid}_desc-qc.png").write_bytes(registered)
        (folder / f"{sid}_desc-brainmask.png").write_bytes(mask)
        figures[sid] = {"figure": folder / f"{sid}_desc-qc.png", "mask_figure": folder / f"{sid}_desc-brainmask.png"}
    t0 = time.perf_counter()
    _, page = write_qc(out, table, figures, "Preprocessing QC: 500 scans")
    return out, page, table, time.perf_counter() - t0


def test_qc_html_at_500_scans_is_small_with_one_row_per_scan_worst_first(big_report):
    out, page, table, seconds = big_report
    text = page.read_text()
    size_mb = page.stat().st_size / 1e6
    print(f"qc.html at {N_SCANS} scans: {size_mb:.2f} MB, written in {seconds:.1f} s")
    assert size_mb < MAX_MB, size_mb
    rows = re.findall(r'<tr class="(\w+)"><th>(sub-\d+)</th>', text)
    assert [sid for _, sid in rows] == list(table["participant_id"])  # each scan once, in the table's order
    assert len({sid for _, sid in rows}) == N_SCANS
    order = [{"failed": 0, "flagged": 1, "ok": 2}[status] for status, _ in rows]
    assert order == sorted(order) and order[0] == 0 and 1 in order  # worst first: failed, flagged, ok
    assert [sid for status, sid in rows if status == "flagged"][:3] == ["sub-0003", "sub-0010", "sub-0011"]
    done = int((table["status"] != "failed").sum())
    assert text.count('src="data:image/png;base64,') == 2 * done
    links = re.findall(r'<a href="([^"]+)" target="_blank"', text)
    assert len(links) == 2 * done and all(not Path(h).is_absolute() and (out / unquote(h)).is_file() for h in links)
    assert "<script" not in text


def test_thumbnails_are_small_and_deterministic(big_report):
    out, _, _, _ = big_report
    png = next(out.glob("sub-*/figures/*_desc-qc.png"))
    data, w, h = thumbnail(png)
    assert (w, h) == (THUMB_WIDTH, 55) and len(data) < 6000 and data == thumbnail(png)[0]


def test_qc_html_renders_in_headless_chromium(big_report, tmp_path):
    from test_report import _browser

    exe, sync_playwright = _browser()
    out, page_file, table, _ = big_report
    done = int((table["status"] != "failed").sum())
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 800})
            failed: list[str] = []
            page.on("requestfailed", lambda r: failed.append(r.url))
            t0 = time.perf_counter()
            page.goto(page_file.as_uri(), wait_until="load")
            load_s = time.perf_counter() - t0
            assert page.evaluate("document.querySelectorAll('tbody tr').length") == N_SCANS
            images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.width])")
            assert len(images) == 2 * done and all(img == [True, THUMB_WIDTH, THUMB_WIDTH] for img in images)
            hrefs = page.evaluate("Array.from(document.querySelectorAll('td.fig a')).map(a => a.href)")
            assert len(hrefs) == 2 * done
            assert all(Path(unquote(urlparse(h).path)).is_file() for h in hrefs)
            first = page.inner_text("tbody tr:first-child")
            assert "failed" in first and "refused" in first
            with page.context.expect_page() as opened:  # a click opens the full-size figure
                page.click("tbody tr.flagged td.fig a >> nth=0")
            full = opened.value
            full.wait_for_load_state()
            assert full.url.endswith("sub-0003_desc-qc.png")
            assert failed == [] and load_s < 20, (failed, load_s)
            shot = tmp_path / "qc_html.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
