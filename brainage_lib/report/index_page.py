"""``rendered/index.html``: the page a reviewer opens first.

Built from what the notebooks wrote (``results/*.json``, ``results/04_summary.json`` for
the bootstrap intervals, ``figures/<notebook>/*.png`` with their captions and
``rendered/<notebook>.run.json``), never from numbers typed here. Self-contained: figures
are embedded as data URIs, so the page reads the same when copied or mailed alone;
links point to the rendered notebooks beside it. Rebuilt after every notebook run, so
running one notebook updates its part and keeps the others'.
"""
from __future__ import annotations

import base64
import html
import os
import time
from pathlib import Path

import pandas as pd

from brainage_lib import paths, registry
from brainage_lib.metrics.verdicts import GATE_TEXT
from brainage_lib.report import summary as S
from brainage_lib.run.runner import notebook_names

SUMMARY = registry.REPORT_NOTEBOOK
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1200px;margin:0 auto;padding:0 1.5em 3em;
color:#222;line-height:1.45}
h1{margin-top:1em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.88em}
th,td{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.banner{background:#fff3cd;border:1px solid #e0c36a;padding:.7em 1em;margin:1em 0;border-radius:4px}
.banner.missing{background:#f8d7d7;border-color:#d99}
figure{margin:1em 0 2em}figure img{max-width:100%;border:1px solid #ddd}figcaption{font-size:.9em;color:#444}
nav a{margin-right:1em}.small{font-size:.85em;color:#555}code{background:#f3f3f3;padding:0 .2em}
"""


def _df_html(df: pd.DataFrame, index: bool = True) -> str:
    return df.to_html(index=index, border=0, na_rep="—", escape=True)


def _img(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(png.stem)}">'


def _wide_paper_table(rows: pd.DataFrame) -> pd.DataFrame:
    """``method.metric`` quantities as a method x (metric, paper/this run) table; other tables stay long."""
    long = rows.set_index("quantity")[["paper", "this run", "unit"]]
    if not rows["quantity"].str.contains(".", regex=False).all():
        return long
    split = rows["quantity"].str.rsplit(".", n=1, expand=True)
    t = rows.assign(row=split[0], col=split[1])
    if t.duplicated(["row", "col"]).any() or t["row"].nunique() == len(t):
        return long
    wide = t.pivot(index="row", columns="col", values=["paper", "this run"])
    wide = wide.swaplevel(0, 1, axis=1)
    cols = list(dict.fromkeys(t["col"]))
    wide = wide.reindex(columns=pd.MultiIndex.from_product([cols, ["paper", "this run"]]))
    wide = wide.reindex(index=list(dict.fromkeys(t["row"])))
    wide.index.name = None
    return wide


def bootstrap_from_summary(output_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The bootstrap intervals recorded by the summary notebook, as a table (empty when not run)."""
    docs = S.collect(output_dir, notebooks=[SUMMARY])
    rows = []
    for key, e in docs.get(SUMMARY, {}).get("records", {}).items():
        if key.startswith("bootstrap.") and "method_a" in e:
            rows.append({"notebook": e["notebook"], "evaluation": e["evaluation"], "method a": e["method_a"],
                         "method b": e["method_b"], "metric": e["metric"], "a": e["a"], "b": e["b"],
                         "difference": e["value"], "ci_low": e["ci_low"], "ci_high": e["ci_high"],
                         "excludes_0": e["ci_low"] > 0 or e["ci_high"] < 0, "n": e["n"]})
    return pd.DataFrame(rows)


def build_index(output_dir: str | os.PathLike | None = None) -> Path:
    """Write ``rendered/index.html`` from the results, figures and renderings present now."""
    rendered = paths.rendered_dir(output_dir)
    rendered.mkdir(parents=True, exist_ok=True)
    docs = S.collect(output_dir)
    names = [n for n in notebook_names() if n != SUMMARY]
    papers = S.papers(docs)
    parts: list[str] = []
    add = parts.append

    def link(nb: str) -> str:  # a link only where the rendering exists
        return f'<a href="{nb}.html">{nb}</a>' if (rendered / f"{nb}.html").is_file() else f"{nb} (not rendered)"

    add("<h1>brainage companion: reproduction report</h1>")
    add(f'<p class="small">Built {time.strftime("%Y-%m-%d %H:%M:%S %Z")} from <code>results/</code>, '
        "<code>figures/</code> and the rendered notebooks beside this page.</p>")
    reduced = sorted({d["profile"] for nb, d in docs.items() if nb != SUMMARY and d["profile"] != "paper"})
    simulated = sorted(nb for nb, d in docs.items() if nb != SUMMARY and str(d.get("data", "")).startswith("simulated"))
    if reduced:
        add(f'<div class="banner"><b>Reduced profile ({", ".join(reduced)}).</b> Fewer subjects, smaller images and '
            "fewer epochs than the papers: verdicts speak to the direction of each claim, not to its magnitude. "
            "<code>make reproduce PROFILE=paper</code> (on a GPU) runs the papers' protocols.</div>")
    if simulated:
        add(f'<div class="banner"><b>Simulated data</b> ({", ".join(simulated)}): cohorts simulated on the MNI152 '
            "anatomy with a known ageing model, not the papers' cohorts. Point <code>DATA_DIR</code> at real cohorts "
            "to test the claims on them.</div>")
    missing = [nb for nb in names if nb not in docs]
    if missing:
        add('<div class="banner missing"><b>Not run yet:</b> ' + ", ".join(f"<code>make {nb}</code>" for nb in missing)
            + "</div>")
    add('<nav><a href="#notebooks">Notebooks</a><a href="#verdicts">Verdicts</a><a href="#gates">Gates</a>'
        '<a href="#deviations">Deviations</a><a href="#tables">Paper vs this run</a><a href="#bootstrap">Intervals</a>'
        '<a href="#figures">Figures</a><a href="#provenance">Provenance</a></nav>')

    # notebooks
    add('<h2 id="notebooks">Notebooks</h2><table><thead><tr><th>notebook</th><th>paper</th><th>profile</th><th>data</th>'
        "<th>wall time</th><th>finished</th></tr></thead><tbody>")
    for nb in names + [SUMMARY]:
        doc = docs.get(nb)
        cell = link(nb)
        if (rendered / f"{nb}.failed.ipynb").is_file():
            cell += f' <span class="small">(last run failed: <code>{nb}.failed.ipynb</code>)</span>'
        info = S.run_info(nb, output_dir)
        wall = info.get("wall_time_s", (doc or {}).get("wall_time_s"))
        paper = (doc or {}).get("paper", {})
        about = f"{paper['short']}: {paper['title']}" if paper else "—"
        add(f"<tr><td>{cell}</td><td>{html.escape(about)}</td>"
            f"<td>{html.escape(doc['profile']) if doc else '—'}</td><td>{html.escape(str(doc['data'])) if doc else '—'}</td>"
            f"<td>{'%.0f s' % wall if wall is not None else '—'}</td><td>{html.escape((doc or {}).get('finished', '—'))}</td></tr>")
    add("</tbody></table>")

    # verdicts
    add('<h2 id="verdicts">Verdicts per claim</h2>')
    add("<p>" + html.escape(S.VERDICT_RULE.replace("**", "")) + "</p>")
    claims = S.claims_table(papers)
    if len(claims):
        add(_df_html(S.verdict_counts(claims)))
        reasons = S.not_testable_reasons(claims)
        if len(reasons):
            add("<p>Not testable, and why:</p>" + _df_html(reasons, index=False))
        for nb in papers:
            short, title = papers[nb]["paper"]["short"], papers[nb]["paper"]["title"]
            add(f"<h3>{short}: {html.escape(title)} ({link(nb)}; profile {papers[nb]['profile']}, "
                f"data {html.escape(str(papers[nb]['data']))})</h3>")
            add(S.style_claims(claims[claims["notebook"] == nb]))
    else:
        add("<p>No paper notebook has recorded claims yet.</p>")

    # gates
    add('<h2 id="gates">Gates: did each model learn?</h2>')
    add("<p>" + html.escape(GATE_TEXT) + "</p>")
    gates = S.gates_table(papers)
    if len(gates):
        add(_df_html(gates.drop(columns=["notebook"]), index=False))
    else:
        add("<p>No gate recorded yet.</p>")

    # deviations
    add('<h2 id="deviations">Deviations from the papers</h2>')
    for nb, doc in papers.items():
        dev = S.deviations_table(doc)
        if len(dev):
            add(f"<h3>{S.short_name(doc)} ({link(nb)})</h3>" + _df_html(dev, index=False))

    # paper vs this run
    add('<h2 id="tables">Paper vs this run</h2>')
    for nb, doc in papers.items():
        add(f"<h3>{S.short_name(doc)} ({link(nb)}; profile {doc['profile']}, "
            f"data {html.escape(str(doc['data']))})</h3>")
        pv = S.paper_values(doc)
        for table, rows in pv.groupby("table", sort=False):
            add(f"<h4>{html.escape(table)}</h4>" + _df_html(_wide_paper_table(rows)))

    # bootstrap
    add('<h2 id="bootstrap">Bootstrap 95 % intervals of differences between methods</h2>')
    boot = bootstrap_from_summary(output_dir)
    if len(boot):
        add("<p>difference = metric(method b) − metric(method a) on the same subjects; percentile interval over "
            f"paired resamples of the subjects (details in {link(SUMMARY)}). For MAE a "
            "negative difference favours b; for r and R² a positive one does.</p>")
        for nb, t in boot.groupby("notebook", sort=False):
            add(f"<h3>{S.short_name(docs.get(nb, {}))} ({nb})</h3>" + _df_html(S.format_bootstrap(t)))
    else:
        add(f"<p>Not computed yet: <code>make {SUMMARY}</code>.</p>")

    # figures
    add('<h2 id="figures">Figures</h2>')
    for nb in names:
        figs = S.figure_list(nb, output_dir)
        if not figs:
            continue
        add(f"<h3>{nb}</h3>")
        for png, caption in figs:
            add(f"<figure>{_img(png)}<figcaption><b>{html.escape(png.stem)}</b>: {html.escape(caption)}</figcaption></figure>")

    # provenance
    add('<h2 id="provenance">Provenance</h2>')
    if docs:
        add(_df_html(S.runs_table(docs, output_dir)))
        latest = max(docs.values(), key=lambda d: d.get("finished", ""))
        pk = latest.get("provenance", {}).get("packages", {})
        add("<p>Packages (latest run): " + html.escape(", ".join(f"{k} {v}" for k, v in pk.items())) + "</p>")
        add("<p>Python " + html.escape(str(latest.get("provenance", {}).get("python", ""))) + " on "
            + html.escape(str(latest.get("provenance", {}).get("platform", ""))) + "</p>")

    page = ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>brainage companion: reproduction "
            f"report</title><style>{CSS}</style></head><body>" + "\n".join(parts) + "</body></html>\n")
    out = rendered / "index.html"
    tmp = out.with_name(f".index.html.{os.getpid()}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out
