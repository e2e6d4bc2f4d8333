"""Seconds per scan of each recipe on simulated 2 mm scanner-space heads (a part of ``make bench``)."""
from __future__ import annotations

import importlib.util
import json
import statistics
import tempfile
import time
from pathlib import Path

N_HEADS = 2


def bench_preprocess(n: int = N_HEADS) -> dict[str, float]:
    """Per recipe: the median wall and CPU seconds of one scan (from the scans' records), and the wall time of the
    whole command per scan (worker start-up included); one scan at a time. Empty without the preprocessing packages."""
    if any(importlib.util.find_spec(m) is None for m in ("ants", "deepbet", "nimare")):
        print("preprocessing benchmark skipped: `make preprocess-deps` installs antspyx, deepbet and nimare")
        return {}
    from brainage_lib.preprocess.run import preprocess_cohort
    from brainage_lib.simulation.native import simulate_native_cohort

    res = {}
    with tempfile.TemporaryDirectory() as tmp:
        raw = simulate_native_cohort("abide_like", Path(tmp) / "raw", n=n, seed=0, voxel_size=2.0, progress=False)
        for recipe in ("lstm", "diff", "tgb"):
            t0 = time.perf_counter()
            out = preprocess_cohort(raw, Path(tmp) / recipe, recipe, jobs=1, progress=False).out
            total = time.perf_counter() - t0
            records = [json.loads(p.read_text()) for p in out.rglob("*_qc.json")]
            res[f"preprocess_{recipe}_2mm_scan_s"] = round(statistics.median(r["seconds"] for r in records), 1)
            res[f"preprocess_{recipe}_2mm_scan_cpu_s"] = round(statistics.median(r["cpu_seconds"] for r in records), 1)
            res[f"preprocess_{recipe}_2mm_command_s_per_scan"] = round(total / n, 1)
    return res
