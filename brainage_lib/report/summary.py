"""Paper vs this run, across notebooks: read only ``results/*.json`` and the saved predictions.

Nothing here trains or re-types a number: tables come from the records each notebook
wrote (``Recorder.record(..., paper=...)``), verdicts from its ``claims.*`` records, and
bootstrap intervals from its per-subject predictions (``<notebook>.predictions.csv``).
"""
from __future__ import annotations

import itertools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from brainage_lib import paths
from brainage_lib.errors import BrainAgeError
from brainage_lib.metrics.verdicts import (CI_LEVEL, DIRECTION_ONLY, GATE_TEXT, NOT_REPRODUCED, NOT_TESTABLE,
                                           REPRODUCED, SEED_AGREEMENT, UNSTABLE)
from brainage_lib.run.results import claims_frame, gates_frame, load_predictions

__all__ = ["papers", "VERDICT_RULE", "bootstrap_differences", "claims_table", "collect", "deviations_table",
           "gates_table", "not_testable_reasons", "paper_values", "predictions_bootstrap", "verdict_counts"]

NOT_METHODS = {"evaluation", "participant_id", "age", "survival_months"}
VERDICT_RULE = (
    "Each claim is judged by its notebook from that notebook's recorded numbers, by the rule printed beside it. "
    f"**{REPRODUCED}**: the rule holds and, for a claim with a paper number, the paper's value lies inside this "
    f"run's {100 * CI_LEVEL:g} % bootstrap interval (paired over subjects) in the paper profile; a claim the paper "
    f"shows without a number is reproduced on its rule. **{DIRECTION_ONLY}**: the rule holds but the paper's value "
    "lies outside the interval, or the profile is reduced (smoke, quick: smaller networks and cohorts are not held "
    f"to the paper's magnitudes). **{NOT_REPRODUCED}**: the rule fails. **{NOT_TESTABLE}**: this data cannot decide "
    "it, with the reason (a number it needs was not measured or is NaN; a model it names failed a gate; on "
    "simulated data, the claim's truth is a choice of the simulator). "
    f"With several model seeds the reported verdict is the one shared by at least {100 * SEED_AGREEMENT:g} % of "
    f"them, else **{UNSTABLE}**, with the count. Checks against the simulator's ground truth are marked "
    "passed/failed and are not claims of the paper. " + GATE_TEXT
)
VERDICT_ORDER = [REPRODUCED, DIRECTION_ONLY, NOT_REPRODUCED, UNSTABLE, NOT_TESTABLE]


def collect(output_dir: str | os.PathLike | None = None, notebooks=None) -> dict[str, dict]:
    """The last complete results of every notebook (or of ``notebooks``) that has them, by name."""
    out = {}
    rdir = paths.results_dir(output_dir)
    names = notebooks or sorted(p.stem for p in rdir.glob("[0-9][0-9]_*.json") if p.stem.count(".") == 0)
    for nb in names:
        f = rdir / f"{nb}.json"
        if f.is_file():
            try:
                out[nb] = json.loads(f.read_text())
            except json.JSONDecodeError as exc:
                raise BrainAgeError(f"{f} is not valid JSON ({exc}); re-run `make {nb}`.") from None
    return out


def papers(docs: dict[str, dict]) -> dict[str, dict]:
    """The results of the notebooks that reproduce a paper (their ``paper`` entry: short name, title, tables)."""
    return {nb: doc for nb, doc in docs.items() if "paper" in doc}


def short_name(doc: dict) -> str:
    """The paper's short name (TGB, DIFF, LSTM) of a results document; "—" for a notebook of no paper."""
    return doc.get("paper", {}).get("short", "—")


def _table_of(doc: dict, key: str) -> tuple[str, str]:
    titles = doc.get("paper", {}).get("tables", {})
    prefix, _, rest = key.partition(".")
    return titles.get(prefix, prefix), rest or key


def _fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(v)
    if isinstance(v, (float, np.floating)):
        a = abs(v)
        return f"{v:.3g}" if (a and (a < 0.01 or a >= 1e4)) else f"{v:.3f}".rstrip("0").rstrip(".")
    return str(v)


def paper_values(doc: dict) -> pd.DataFrame:
    """Every record of one notebook that has a paper value: table, quantity, paper, this run, unit, profile, data."""
    rows = []
    for key, e in doc["records"].items():
        if "paper" not in e or key.startswith("claims."):
            continue
        table, quantity = _table_of(doc, key)
        this = (f"{_fmt(e['seeds_mean'])} ± {_fmt(e['seeds_sd'])} ({e['seeds_n']} seeds)" if "seeds_mean" in e
                else _fmt(e["value"]))
        rows.append({"table": table, "quantity": quantity, "paper": _fmt(e["paper"]), "this run": this,
                     "unit": e.get("unit", ""), "profile": doc["profile"], "data": doc["data"]})
    return pd.DataFrame(rows, columns=["table", "quantity", "paper", "this run", "unit", "profile", "data"])


def _per_paper(docs: dict[str, dict], frame, cols: list[str], extra: bool = False) -> pd.DataFrame:
    """``frame(doc)`` of every paper notebook, with its paper's short name and notebook (and profile and data)."""
    frames = []
    for nb, doc in papers(docs).items():
        t = frame(doc)
        t.insert(0, "paper name", short_name(doc))
        t.insert(1, "notebook", nb)
        if extra:
            t["profile"], t["data"] = doc["profile"], doc["data"]
        frames.append(t)
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def claims_table(docs: dict[str, dict]) -> pd.DataFrame:
    """Every recorded claim of the paper notebooks with its verdict, rule, profile and data."""
    return _per_paper(docs, claims_frame, ["paper name", "notebook", "key", "kind", "claim", "verdict", "paper",
                                           "this run", "judged on", "rule", "reason", "magnitude", "seeds", "profile",
                                           "data"], extra=True)


def verdict_counts(claims: pd.DataFrame) -> pd.DataFrame:
    """Per paper: how many of its claims were reproduced, direction only, not reproduced, unstable, not testable."""
    c = claims[claims["kind"] == "claim"]
    t = pd.crosstab(c["paper name"], c["verdict"]).reindex(columns=VERDICT_ORDER, fill_value=0)
    t["claims"] = t.sum(axis=1)
    return t


def gates_table(docs: dict[str, dict]) -> pd.DataFrame:
    """Every gate of the paper notebooks: which model passed which, with the numbers (``gates.*`` records)."""
    return _per_paper(docs, gates_frame, ["paper name", "notebook", "gate", "model", "passed", "rule", "this run",
                                          "judged on"])


def not_testable_reasons(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims that are not testable, with their reasons."""
    c = claims[(claims["kind"] == "claim") & (claims["verdict"] == NOT_TESTABLE)]
    return c[["paper name", "key", "reason"]].reset_index(drop=True)


def deviations_table(doc: dict) -> pd.DataFrame:
    """A paper notebook's recorded list of deviations from its paper (``deviations`` record)."""
    rows = doc.get("records", {}).get("deviations", {}).get("value") or []
    return pd.DataFrame(rows, columns=["what", "paper", "ours", "why"])


def _metrics(y: np.ndarray, p: np.ndarray) -> dict[str, np.ndarray]:
    """MAE, Pearson r and R² along the last axis (rows are bootstrap replicates)."""
    err = p - y
    mae = np.abs(err).mean(-1)
    yc, pc = y - y.mean(-1, keepdims=True), p - p.mean(-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (yc * pc).sum(-1) / np.sqrt((yc ** 2).sum(-1) * (pc ** 2).sum(-1))
        r2 = 1.0 - (err ** 2).sum(-1) / (yc ** 2).sum(-1)
    return {"MAE": mae, "r": r, "R²": r2}


def bootstrap_differences(age, pred_a, pred_b, n_boot: int = 2000, level: float = 0.95,
                          seed: int = 0) -> pd.DataFrame:
    """Paired bootstrap of metric(b) - metric(a) for MAE, Pearson r and R², resampling subjects.

    Each replicate draws ``len(age)`` subjects with replacement and evaluates both methods
    on the same draw. Returns, per metric, the two methods' values, the observed
    difference, the percentile interval at ``level`` and whether it excludes 0.
    """
    y, a, b = (np.asarray(v, dtype=float) for v in (age, pred_a, pred_b))
    if not (y.shape == a.shape == b.shape) or y.ndim != 1:
        raise BrainAgeError("bootstrap_differences: age and both predictions must be 1-D arrays of one length.")
    ok = np.isfinite(y) & np.isfinite(a) & np.isfinite(b)
    y, a, b = y[ok], a[ok], b[ok]
    if len(y) < 3:
        raise BrainAgeError(f"bootstrap_differences: {len(y)} subject(s) with finite values; at least 3 are needed.")
    idx = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    obs_a, obs_b = _metrics(y, a), _metrics(y, b)
    boot_a, boot_b = _metrics(y[idx], a[idx]), _metrics(y[idx], b[idx])
    lo_q, hi_q = (1 - level) / 2, 1 - (1 - level) / 2
    rows = []
    for m in obs_a:
        d = boot_b[m] - boot_a[m]
        d = d[np.isfinite(d)]
        lo, hi = (np.quantile(d, [lo_q, hi_q]) if len(d) else (np.nan, np.nan))
        rows.append({"metric": m, "a": float(obs_a[m]), "b": float(obs_b[m]), "difference": float(obs_b[m] - obs_a[m]),
                     "ci_low": float(lo), "ci_high": float(hi), "excludes_0": bool(lo > 0 or hi < 0), "n": len(y)})
    return pd.DataFrame(rows)


def predictions_bootstrap(notebook: str, output_dir: str | os.PathLike | None = None, n_boot: int = 2000,
                          level: float = 0.95, seed: int = 0, evaluations: Sequence[str] | None = None) -> pd.DataFrame:
    """Bootstrap intervals of MAE/r/R² differences between every pair of a notebook's methods.

    Read from ``results/<notebook>.predictions.csv``; one block per evaluation (test set
    and training regime), or only those in ``evaluations`` (a paper's
    ``bootstrap_evaluations``). Empty when the notebook saved no predictions.
    """
    preds = load_predictions(notebook, output_dir)
    cols = ["notebook", "evaluation", "method a", "method b", "metric", "a", "b", "difference", "ci_low", "ci_high",
            "excludes_0", "n"]
    if preds is None:
        return pd.DataFrame(columns=cols)
    if not {"evaluation", "age"} <= set(preds.columns):
        raise BrainAgeError(f"The predictions file of {notebook} has no 'evaluation'/'age' column: it was written by "
                            f"an older version; re-run `make {notebook}`.")
    methods = [c for c in preds.columns if c not in NOT_METHODS and pd.api.types.is_numeric_dtype(preds[c])]
    wanted = evaluations
    frames = []
    for ev, rows in preds.groupby("evaluation", sort=False):
        if wanted is not None and ev not in wanted:
            continue
        for a, b in itertools.combinations(methods, 2):
            t = bootstrap_differences(rows["age"], rows[a], rows[b], n_boot=n_boot, level=level, seed=seed)
            t.insert(0, "method b", b)
            t.insert(0, "method a", a)
            t.insert(0, "evaluation", ev)
            t.insert(0, "notebook", notebook)
            frames.append(t)
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def run_info(notebook: str, output_dir: str | os.PathLike | None = None) -> dict:
    """The runner's record of a notebook's last rendering (profile, parameters, wall time), or {}."""
    f = paths.rendered_dir(output_dir) / f"{notebook}.run.json"
    return json.loads(f.read_text()) if f.is_file() else {}


def figure_list(notebook: str, output_dir: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The notebook's saved PNG figures with their captions, in name order."""
    d = paths.figures_dir(notebook, output_dir)
    out = []
    for png in sorted(d.glob("*.png")):
        side = png.with_suffix(".json")
        caption = json.loads(side.read_text()).get("caption", "") if side.is_file() else ""
        out.append((png, caption))
    return out


def runs_table(docs: dict[str, dict], output_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One row per notebook: paper, profile, data, device, code version, wall time, finish time."""
    rows = []
    for nb, doc in docs.items():
        prov = doc.get("provenance", {})
        info = run_info(nb, output_dir)
        wall = info.get("wall_time_s", doc.get("wall_time_s"))
        rows.append({"notebook": nb, "paper": short_name(doc), "profile": doc["profile"], "data": doc["data"],
                     "device": prov.get("device", ""), "git": prov.get("git", ""), "torch": prov.get("packages", {}).get("torch", ""),
                     "wall time (s)": wall, "finished": doc.get("finished", "")})
    cols = ["notebook", "paper", "profile", "data", "device", "git", "torch", "wall time (s)", "finished"]
    return pd.DataFrame(rows, columns=cols).set_index("notebook")


VERDICT_COLOURS = {REPRODUCED: "#d9f2d9", DIRECTION_ONLY: "#eef6d0", NOT_REPRODUCED: "#f8d7d7", UNSTABLE: "#fbe8c8",
                   NOT_TESTABLE: "#eeeeee", "passed": "#d9f2d9", "failed": "#f8d7d7"}


def style_claims(claims: pd.DataFrame) -> str:
    """A claims table as HTML, each verdict cell coloured (green, red, grey)."""
    import html

    head = ["claim", "verdict", "paper", "this run", "magnitude", "seeds", "judged on", "rule"]
    out = ['<table class="claims"><thead><tr>' + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"]
    for _, c in claims.iterrows():
        verdict = c["verdict"] + (f" ({c['reason']})" if c.get("reason") else "")
        kind = " <em>(simulator check)</em>" if c["kind"] == "check" else ""
        cells = [html.escape(str(c["claim"])) + kind,
                 f'<b>{html.escape(verdict)}</b>', html.escape(str(c["paper"] or "")), html.escape(str(c["this run"])),
                 html.escape(str(c.get("magnitude") or "—")), html.escape(str(c.get("seeds") or "one seed")),
                 html.escape(str(c.get("judged on") or "")), html.escape(str(c["rule"]))]
        colour = VERDICT_COLOURS.get(c["verdict"], "#ffffff")
        out.append("<tr>" + "".join(f'<td style="background:{colour}">{x}</td>' if i == 1 else f"<td>{x}</td>"
                                    for i, x in enumerate(cells)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def format_bootstrap(boot: pd.DataFrame, level: float | None = None) -> pd.DataFrame:
    """Bootstrap rows as a readable table: values of a and b, difference and its interval."""
    t = boot.copy()
    t["interval"] = [f"[{lo:+.3f}, {hi:+.3f}]" for lo, hi in zip(t["ci_low"], t["ci_high"])]
    t["resolved"] = t["excludes_0"].map({True: "yes", False: "no"})
    t = t.rename(columns={"a": "value a", "b": "value b"})
    cols = ["evaluation", "method a", "method b", "metric", "value a", "value b", "difference", "interval", "resolved", "n"]
    return t[cols].round({"value a": 3, "value b": 3, "difference": 3}).set_index(["evaluation", "method a", "method b", "metric"])
