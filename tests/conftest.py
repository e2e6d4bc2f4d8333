"""Shared fixtures: isolated data/cache folders, tiny simulated cohorts, a cohort writer, figure clean-up."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from brainage_lib.simulation.simulate import simulate_cohort  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Simulated data, caches and outputs of a test never touch the project's folders."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("BRAINAGE_DATA", str(base / "data"))
    monkeypatch.setenv("BRAINAGE_CACHE", str(base / "cache"))
    monkeypatch.setenv("BRAINAGE_OUTPUT_DIR", str(base / "outputs"))
    yield
    plt.close("all")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def tiny_abide(tmp_path_factory) -> Path:
    """12 abide_like subjects on a 24^3 grid."""
    return simulate_cohort("abide_like", tmp_path_factory.mktemp("sim") / "abide", n=12, seed=3, shape=(24, 24, 24), progress=False)


def write_nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine), str(path))
    return path


def make_cohort(root: Path, rows: list[dict], images: dict[str, np.ndarray] | None = None, tsv: str | None = None) -> Path:
    """Write a cohort folder: ``rows`` as participants.tsv (or raw ``tsv`` text) and an image per participant.

    ``images`` maps participant_id to an array; rows without an entry get a random 20^3 volume.
    """
    root.mkdir(parents=True, exist_ok=True)
    images = images or {}
    if tsv is None:
        cols = list(rows[0]) if rows else ["participant_id", "age", "sex", "site"]
        lines = ["\t".join(cols)] + ["\t".join(str(r.get(c, "")) for c in cols) for r in rows]
        tsv = "\n".join(lines) + "\n"
    (root / "participants.tsv").write_text(tsv)
    gen = np.random.default_rng(1)
    for r in rows:
        pid = r["participant_id"]
        arr = images.get(pid, gen.random((20, 20, 20)).astype(np.float32))
        if arr is not None:
            write_nifti(root / pid / "anat" / f"{pid}_T1w.nii.gz", arr)
    return root


@pytest.fixture
def cohort_writer():
    return make_cohort


def tree_digest(root: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every file under ``root`` with size, mtime and content (to prove a function only reads)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns, p.read_bytes())
    return out


os.environ.setdefault("PYTHONHASHSEED", "0")


_SMOKE_RUNS: dict[str, Path] = {}


def smoke_root(tmp_path_factory) -> Path:
    """One output folder (with its own data and cache) shared by every smoke-run notebook, as `make smoke` does; with
    several pytest-xdist workers, shared by all of them (their temporary folders' common parent, one per run)."""
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "smoke_outputs"


WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def assert_text_progress(rendered: Path) -> None:
    """A headless rendering shows its progress bars as text at their final state: no widget (its state is
    lost offline: HTML would show nothing, or "HBox(children=...)"), no tqdm warning about ipywidgets,
    no line overwritten by carriage returns."""
    import json

    html = rendered.with_suffix(".html")
    for page in (rendered, html) if html.is_file() else (rendered,):
        text = page.read_text(encoding="utf-8")
        for bad in ("IProgress", "TqdmWarning", "HBox(children", WIDGET_MIME):
            assert bad not in text, f"{page.name} contains {bad!r}: progress bars must be text in renderings"
    for cell in json.loads(rendered.read_text(encoding="utf-8"))["cells"]:
        for out in cell.get("outputs", []):
            if out["output_type"] == "stream":
                lines = "".join(out["text"]).split("\n")
                overwritten = [line for line in lines if "\r" in line.rstrip("\r")]
                assert not overwritten, f"{rendered.name}: lines overwritten by carriage returns: {overwritten[:3]!r}"


def run_smoke_notebook(name: str, tmp_path_factory) -> tuple[Path, Path]:
    """Execute notebook ``name`` with PROFILE=smoke into the shared smoke output folder (once per test run: the first
    worker that needs it runs it, under a file lock, and the others wait for it and read it).

    Returns the output folder and the rendered notebook, whose progress bars were checked to be final text.
    """
    from filelock import FileLock

    from brainage_lib.run.runner import run_notebook

    out = smoke_root(tmp_path_factory)
    if name not in _SMOKE_RUNS:
        out.mkdir(parents=True, exist_ok=True)
        done = out / f".{name}.smoke-done"
        with FileLock(str(out / f".{name}.smoke-lock")):
            if done.is_file():
                _SMOKE_RUNS[name] = Path(done.read_text())
            else:
                mp = pytest.MonkeyPatch()
                mp.setenv("BRAINAGE_DATA", str(out / "data"))
                mp.setenv("BRAINAGE_CACHE", str(out / "cache"))
                try:
                    _SMOKE_RUNS[name] = run_notebook(name, profile="smoke", output_dir=out, progress=False)
                finally:
                    mp.undo()
                done.write_text(str(_SMOKE_RUNS[name]))
    assert_text_progress(_SMOKE_RUNS[name])  # every test of the notebook checks its rendering
    return out, _SMOKE_RUNS[name]


def run_on_one_cohort(name: str, base: Path, preset: str, n: int, seed: int, shape: tuple[int, int, int],
                      folder: str = "cohort") -> tuple[Path, Path, Path]:
    """Simulate ``n`` subjects of ``preset`` under ``base/folder`` and run notebook ``name`` (smoke) with that one
    cohort as ``DATA_DIR``, data and cache kept under ``base``.

    Returns the cohort folder, the output folder and the rendered notebook (its progress bars checked).
    """
    from brainage_lib.run.runner import run_notebook
    from brainage_lib.simulation.simulate import simulate_cohort

    cohort = simulate_cohort(preset, base / folder, n=n, seed=seed, shape=shape, progress=False)
    mp = pytest.MonkeyPatch()
    mp.setenv("BRAINAGE_DATA", str(base / "data"))
    mp.setenv("BRAINAGE_CACHE", str(base / "cache"))
    try:
        rendered = run_notebook(name, profile="smoke", params={"DATA_DIR": str(cohort)}, output_dir=base / "out",
                                progress=False)
    finally:
        mp.undo()
    assert_text_progress(rendered)
    return cohort, base / "out", rendered


# --------------------------------------------------------------------------- running on every core (pytest-xdist)
# `make test` runs `pytest -n auto --dist loadgroup`. Each worker is its own pytest session. The tests of a module with a
# module fixture go to one worker together, so that the fixture runs once; every other test goes wherever a worker is
# free; the smoke runs above are shared by every worker through a folder and file locks. A worker's torch (and the notebook kernels it starts) use one thread each, so that the
# workers share the cores instead of fighting over them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


# modules whose module fixture takes seconds (two simulated heads; a folder) while each test takes minutes
SPREAD = {"test_preprocess_rerun", "test_notebook_ddp"}


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook, which writes the groups into the test ids
def pytest_collection_modifyitems(config, items):
    shared: dict[Path, bool] = {}  # modules with a module fixture: their tests stay together
    for item in items:
        path = Path(str(item.fspath))
        if path not in shared:
            shared[path] = 'scope="module"' in path.read_text(encoding="utf-8") and path.stem not in SPREAD
        if shared[path]:
            item.add_marker(pytest.mark.xdist_group(path.stem))
