"""The reviewers' report: summary notebook, rendered/index.html, and the site checked in headless chromium."""
from __future__ import annotations

import argparse
import html
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import run_smoke_notebook, smoke_root
from test_summary import _fake_run

from brainage_lib import cli
from brainage_lib.report.index_page import build_index
from brainage_lib.run.results import Recorder, load_results
from brainage_lib.run.runner import run_notebook


class _Refs(HTMLParser):
    """Every src/href of a page and every id it defines."""

    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        for k in ("src", "href"):
            if a.get(k) and not (tag == "link" and a.get("rel") == "stylesheet" and a[k].startswith("data:")):
                self.refs.append((tag, a[k]))


def static_problems(page: Path) -> list[str]:
    """External resources, links to missing files or anchors, images not embedded."""
    p = _Refs()
    p.feed(page.read_text(encoding="utf-8"))
    problems = []
    for tag, ref in p.refs:
        if ref.startswith("data:"):
            continue
        if tag in ("img", "script") and ref:
            problems.append(f"{page.name}: <{tag}> loads {ref[:80]}")  # not self-contained
        elif ref.startswith("#"):
            if ref[1:] and ref[1:] not in p.ids:
                problems.append(f"{page.name}: anchor {ref} has no target")
        elif tag == "a" and not urlparse(ref).scheme:
            if not (page.parent / unquote(ref.split("#")[0])).is_file():
                problems.append(f"{page.name}: link {ref} points to a missing file")
    return problems


def test_index_updates_each_notebooks_part(tmp_path):
    _fake_run(tmp_path, "03_lstm")
    index = build_index(tmp_path).read_text()
    assert "A beats B" in index and "not testable" in index and "make 01_tgb" in index  # 01_tgb not run yet
    assert "Reduced profile (smoke)" in index and "Simulated data" in index
    lstm_part = index[index.index("LSTM:"):index.index("</table>", index.index("LSTM:"))]
    rec = Recorder("01_tgb", "paper", "/data/abide", output_dir=tmp_path,  # a later
                   paper={"short": "TGB", "title": "GAN", "tables": {}})  #, separate run of another notebook
    rec.record("table1.REG.mae_mean", 1.8, paper=1.706)
    rec.claim("reg_learns", "REG learns age", True, "MAE 1.8 vs 3.5", "MAE < 0.8 x mean prediction", paper="1.71")
    rec.finalize()
    index = build_index(tmp_path).read_text()
    assert "REG learns age" in index and "make 01_tgb" not in index
    assert lstm_part in index  # the other notebook's part is unchanged
    assert static_problems(tmp_path / "rendered" / "index.html") == []


def test_index_states_gates_magnitudes_seeds_and_deviations(tmp_path):
    from brainage_lib.metrics.verdicts import Gate, Magnitude
    from brainage_lib.papers.fidelity import Deviation, record
    from brainage_lib.run.seeds import combine

    def run(seed: int, outcome: bool, mae: float) -> Recorder:
        rec = Recorder("01_tgb", "paper", "/data/abide", params={"SEED": seed}, output_dir=tmp_path / f"s{seed}",
                       paper={"short": "TGB", "title": "GAN", "tables": {"table1": "Table 1"}})
        rec.record("table1.REG.mae_mean", mae, paper=1.706)
        rec.gate(Gate("learned.REG", "REG", "validation MAE < 0.8 x 3.10 y", "MAE 1.20 y", True, "validation split"))
        rec.gate(Gate("reconstructs.REG-GAN", "REG-GAN", "closer to own input for >= 90 %", "62 %", False, "test"))
        rec.claim("reg_gan_worse", "REG-GAN is worse than REG", outcome, "MAE 1.9 vs 1.7", "MAE higher",
                  paper="1.94 vs 1.71", magnitudes=[Magnitude("MAE(REG-GAN) - MAE(REG)", 0.23, 0.2, 0.05, 0.4)])
        record(rec, [Deviation("output head", "1x1x1 convolution", "1x1x1 convolution then ReLU", "authors' code")])
        return rec

    first = run(0, True, 1.6)
    combine(first, {1: run(1, True, 1.8).doc, 2: run(2, False, 2.0).doc})
    first.output_dir = tmp_path
    first.dir, first.path = tmp_path / "results", tmp_path / "results" / "01_tgb.json"
    first.partial = tmp_path / "results" / "01_tgb.partial.json"
    first.finalize()
    page = build_index(tmp_path).read_text()
    assert "unstable" in page and "reproduced in 2 of 3 seeds; not reproduced in 1 of 3 seeds" in page
    assert "paper 0.23 inside this run&#x27;s 95 % interval [0.05, 0.4]" in page
    assert "validation MAE &lt; 0.8 x 3.10 y" in page and "62 %" in page  # each gate with its numbers
    assert "1x1x1 convolution then ReLU" in page and 'href="#deviations"' in page
    assert "1.8 ± 0.2 (3 seeds)" in page  # Table 1 shows mean ± sd over the seeds beside the paper's 1.706
    assert static_problems(tmp_path / "rendered" / "index.html") == []


def test_running_one_paper_notebook_also_refreshes_summary_and_index(tmp_path, monkeypatch):
    calls = []

    def fake_run(name, profile="auto", params=None, output_dir=None, progress=True, **_):
        calls.append((name, dict(params or {})))
        out = Path(output_dir) / "rendered" / f"{name}.ipynb"
        out.parent.mkdir(parents=True, exist_ok=True)
        return out

    monkeypatch.setattr("brainage_lib.run.runner.run_notebook", fake_run)
    args = argparse.Namespace(notebook="02_diff", param=["EPOCHS=1"], profile="smoke", output_dir=str(tmp_path), quiet=True)
    assert cli.cmd_run(args) == 0
    assert calls == [("02_diff", {"EPOCHS": 1}), ("04_summary", {})]  # the summary does not get 02_diff's parameters
    assert (tmp_path / "rendered" / "index.html").is_file()
    calls.clear()
    cli.cmd_run(argparse.Namespace(notebook="00_cohorts", param=[], profile="smoke", output_dir=str(tmp_path), quiet=True))
    assert [c[0] for c in calls] == ["00_cohorts", "04_summary"]  # its "what was run" table lists every notebook
    calls.clear()
    cli.cmd_run(argparse.Namespace(notebook="04_summary", param=[], profile="smoke", output_dir=str(tmp_path), quiet=True))
    assert [c[0] for c in calls] == ["04_summary"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """All notebooks smoke-run into one folder, then the summary and the index, as `make smoke` does."""
    for nb in ("00_cohorts", "01_tgb", "02_diff", "03_lstm"):
        run_smoke_notebook(nb, tmp_path_factory)
    out = smoke_root(tmp_path_factory)
    run_notebook("04_summary", profile="smoke", output_dir=out, progress=False)
    build_index(out)
    return out


@pytest.mark.notebook
def test_summary_reads_every_paper_and_bootstraps(site):
    res = load_results("04_summary", output_dir=site)
    rec = res["records"]
    for paper in ("TGB", "DIFF", "LSTM"):
        total = rec[f"verdicts.{paper}.claims"]["value"]
        parts = sum(rec[f"verdicts.{paper}.{v}"]["value"] for v in ("reproduced", "not reproduced", "not testable"))
        assert total == parts > 0
    boot = {k: e for k, e in rec.items() if k.startswith("bootstrap.")}
    assert {e["notebook"] for e in boot.values()} == {"01_tgb", "02_diff", "03_lstm"}
    for e in boot.values():
        assert e["ci_low"] <= e["ci_high"] and e["metric"] in ("MAE", "r", "R²")
    # the summary re-types nothing: each notebook's claims appear with the verdict it recorded
    lstm = load_results("03_lstm", output_dir=site)["records"]
    page = (site / "rendered" / "04_summary.html").read_text()
    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())
    for key, e in lstm.items():
        if key.startswith("claims."):
            assert e["note"] in text and e["rule"] in text


@pytest.mark.notebook
def test_site_is_self_contained(site):
    rendered = site / "rendered"
    index = (rendered / "index.html").read_text()
    for nb in ("00_cohorts", "01_tgb", "02_diff", "03_lstm", "04_summary"):
        assert f'href="{nb}.html"' in index
    n_figures = sum(len(list((site / "figures" / nb).glob("*.png"))) for nb in ("00_cohorts", "01_tgb", "02_diff", "03_lstm"))
    assert index.count('<img src="data:image/png;base64,') == n_figures > 10
    problems = [p for page in sorted(rendered.glob("*.html")) for p in static_problems(page)]
    assert problems == []


def _browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium on this machine (`make browser` installs Debian's where it can, as root with apt-get)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (`pip install -e '.[test]'`)")
    return exe, sync_playwright


@pytest.mark.notebook
def test_site_in_headless_chromium(site):
    exe, sync_playwright = _browser()
    rendered = site / "rendered"
    shots = site / "screenshots"
    shots.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox", "--disable-gpu"])
        try:
            for name in ("index", "02_diff"):
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                failed: list[str] = []
                page.on("requestfailed", lambda r: failed.append(r.url))
                page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
                page.goto((rendered / f"{name}.html").as_uri(), wait_until="load")
                broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                                       ".map(i => i.alt || i.src.slice(0, 60))")
                n_images = page.evaluate("document.images.length")
                links = page.evaluate("Array.from(document.links).map(a => a.href)")
                assert broken == [] and failed == [], (name, broken, failed)
                assert n_images > (10 if name == "index" else 3)
                for href in links:
                    u = urlparse(href)
                    if u.scheme == "file":
                        assert Path(unquote(u.path)).is_file(), f"{name}: broken link {href}"
                        if u.fragment:
                            assert page.evaluate(f"!!document.getElementById({json.dumps(u.fragment)})") or \
                                Path(unquote(u.path)).name != f"{name}.html", f"{name}: no anchor #{u.fragment}"
                if name == "index":
                    text = page.inner_text("body")
                    assert "Reduced profile (smoke)" in text and "Simulated data" in text
                    assert re.search(r"reproduced|not testable", text) and "Provenance" in text
                shot = shots / f"{name}.png"
                page.screenshot(path=str(shot), full_page=False)
                assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
                page.close()
        finally:
            browser.close()
