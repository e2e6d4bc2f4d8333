# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Summary: every paper, paper vs this run
#
# For reviewers. This notebook trains nothing and types no number: it reads the results
# each paper notebook recorded (`results/<notebook>.json`) and the per-subject
# predictions saved beside them (`results/<notebook>.predictions.csv`), and shows
#
# 1. what was run: profile, data, device, code version and wall time of each notebook;
# 2. a verdict per claim of each paper (reproduced / direction only / not reproduced /
#    unstable over seeds / not testable on this data) with the rule that decided it;
# 3. every table of every paper, the paper's value beside this run's, with the
#    profile and data each came from;
# 4. bootstrap 95 % confidence intervals for the differences in MAE, Pearson r and R²
#    between methods, resampling subjects (paired: both methods on the same draw).
#
# A notebook that has not been run yet is listed as missing; re-run it with
# `make <notebook>` and this summary (and `rendered/index.html`) follow.
#
# **Parameters.** Core parameters first; every other entry left at None takes the profile's value from
# `notebooks/params/04_summary.<PROFILE>.yaml`. Give a value here (or `-p NAME=value`) to override it.

# %% tags=["parameters"]
from typing import Optional

PROFILE: str = "quick"  # smoke | quick | paper | auto: sets the bootstrap size only
DATA_DIR: str = ""  # unused here (each result records its own data); kept so every notebook takes the same core parameters
DATA_SEED: int = 0  # not used here (no simulation); a core parameter of every notebook
SEED: int = 0  # seeds the bootstrap draws
DEVICE: str = "auto"  # unused: nothing is trained
DEVICES: int = 1  # unused: nothing is trained
FORCE: bool = False  # unused: nothing is trained
OUTPUT_DIR: str = ""  # where results/ are read and this notebook's outputs go; empty: the project root
N_BOOT: Optional[int] = None  # bootstrap resamples per comparison
LEVEL: Optional[float] = None  # confidence level of the intervals

# %%
import time

import pandas as pd
from IPython.display import HTML, Markdown, display

from brainage_lib.errors import BrainAgeError
from brainage_lib.report import summary as S
from brainage_lib.run.params import resolve_params
from brainage_lib.run.provenance import provenance_text
from brainage_lib.run.runner import notebook_names

NB = "04_summary"
cfg = resolve_params(NB, globals())
out = OUTPUT_DIR or None
docs = S.collect(out)
papers = S.papers(docs)  # the notebooks whose results describe a paper
missing = [nb for nb in notebook_names() if nb != NB and nb not in docs]
rec = cfg.recorder("results/*.json")
t_start = time.time()
print(provenance_text())
if missing:
    display(Markdown("**Not run yet** (no complete results): " + ", ".join(f"`{nb}` (run `make {nb}`)" for nb in missing)))
cfg.table()

# %% [markdown]
# ## 1 What was run
# One row per notebook, from its own results file. A profile other than `paper` is a
# reduced run; `simulated` data are the embedded cohorts (SPEC §1), not the papers'.

# %%
runs = S.runs_table(docs, out)
for nb, row in runs.iterrows():
    rec.record(f"runs.{nb}.profile", row["profile"])
    rec.record(f"runs.{nb}.wall_time_s", row["wall time (s)"], unit="s")
reduced = sorted({d["profile"] for d in papers.values() if d["profile"] != "paper"})
simulated = sorted(nb for nb, d in papers.items() if d["data"].startswith("simulated"))
if reduced:
    display(Markdown(f"**Reduced profile ({', '.join(reduced)}):** fewer subjects, smaller images and fewer epochs "
                     "than the papers; verdicts speak to the direction of each claim, not to its magnitude."))
if simulated:
    display(Markdown(f"**Simulated data** in {', '.join(simulated)}: cohorts simulated on the MNI152 anatomy with a "
                     "known ageing model, not the papers' cohorts."))
runs

# %% [markdown]
# ## 2 Verdicts
# The rule:

# %%
display(Markdown(S.VERDICT_RULE))
claims = S.claims_table(papers)
counts = S.verdict_counts(claims)
for paper, row in counts.iterrows():
    for verdict, n in row.items():
        rec.record(f"verdicts.{paper}.{verdict}", int(n))
display(counts)
reasons = S.not_testable_reasons(claims)
if len(reasons):
    display(Markdown("**Not testable, and why:**"))
    display(reasons)

# %% [markdown]
# The gates behind the verdicts: each model's numbers on the gate that decides whether a claim
# naming it can be judged.

# %%
S.gates_table(papers).drop(columns=["notebook"])

# %%
for nb, doc in papers.items():
    short, title = doc["paper"]["short"], doc["paper"]["title"]
    c = claims[claims["notebook"] == nb]
    display(Markdown(f"### {short}: {title}\n`{nb}`, profile **{doc['profile']}**, data **{doc['data']}**"))
    display(HTML(S.style_claims(c)))

# %% [markdown]
# ## 3 Paper vs this run
# Every recorded number that has a published counterpart, grouped by the paper's table.

# %%
for nb, doc in papers.items():
    pv = S.paper_values(doc)
    display(Markdown(f"### {S.short_name(doc)} (`{nb}`; profile {doc['profile']}, data {doc['data']})"))
    for table, rows in pv.groupby("table", sort=False):
        display(Markdown(f"**{table}**"))
        display(rows.drop(columns=["table"]).set_index("quantity"))

# %% [markdown]
# ## 4 Bootstrap intervals of the differences between methods
# `difference` = metric(method b) - metric(method a) on the same subjects; the interval
# is the percentile interval of `N_BOOT` paired resamples of the subjects. For MAE a
# negative difference favours b; for r and R² a positive one does. An interval that
# excludes 0 marks a difference this sample resolves.

# %%
frames = []
for nb in papers:
    try:
        frames.append(S.predictions_bootstrap(nb, out, n_boot=cfg.N_BOOT, level=cfg.LEVEL, seed=SEED,
                                              evaluations=papers[nb]["paper"].get("bootstrap_evaluations")))
    except BrainAgeError as exc:
        print(f"{nb}: {exc}")
boot = pd.concat(frames, ignore_index=True) if frames else S.predictions_bootstrap("none", out)
for _, b in boot.iterrows():
    key = f"bootstrap.{b['notebook']}.{b['evaluation']}.{b['method a']}_vs_{b['method b']}.{b['metric']}"
    rec.record(key, b["difference"], ci_low=b["ci_low"], ci_high=b["ci_high"], n=int(b["n"]), level=cfg.LEVEL,
               a=b["a"], b=b["b"], notebook=b["notebook"], evaluation=b["evaluation"], method_a=b["method a"],
               method_b=b["method b"], metric=b["metric"])
no_preds = [nb for nb in papers if nb not in set(boot["notebook"])]
if no_preds:
    print("No per-subject predictions saved by:", ", ".join(no_preds), "(re-run them to get intervals).")
for nb in papers:
    t = boot[boot["notebook"] == nb]
    if len(t):
        display(Markdown(f"### {S.short_name(papers[nb])} (`{nb}`)"))
        display(S.format_bootstrap(t))

# %%
rec.record("wall_time_s", time.time() - t_start, unit="s")
print("results:", rec.finalize())
