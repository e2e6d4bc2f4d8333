"""Execute a notebook headlessly: jupytext source -> papermill -> rendered .ipynb and .html.

The executed notebook is written under a temporary name and moved to
``rendered/<notebook>.ipynb`` only on success; a failed run leaves the previous
rendering untouched and keeps the failed one as ``rendered/<notebook>.failed.ipynb``.
Every refusal (unknown notebook, profile or parameter, a value of the wrong type) is
raised by ``check_run`` before a kernel starts.

The kernel runs with ``BRAINAGE_TEXT_PROGRESS=1`` (see ``brainage_lib.run.progress``): its progress
bars are text, whose final state ``tidy_streams`` keeps; a widget's state would not survive the
offline rendering.
"""
from __future__ import annotations

import ast
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from brainage_lib import paths, registry
from brainage_lib.errors import BrainAgeError
from brainage_lib.run.params import DRY_RUN, check_profile_keys, dry_run_file, resolve_profile
from brainage_lib.run.progress import TEXT_PROGRESS_ENV


def notebook_names() -> list[str]:
    """Every notebook, in the order ``run all`` takes them: by name, with the report notebook (which reads
    the others' results) last."""
    names = sorted(p.stem for p in paths.notebooks_dir().glob("[0-9][0-9]_*.py"))
    return sorted(names, key=lambda n: n == registry.REPORT_NOTEBOOK)


def parse_assignments(items: list[str] | None) -> dict[str, Any]:
    """``["N=5", "NAME=abc"]`` -> ``{"N": 5, "NAME": "abc"}`` (values parsed as YAML scalars)."""
    import yaml

    out = {}
    for item in items or []:
        if "=" not in item:
            raise BrainAgeError(f"Parameter '{item}' must be written KEY=VALUE, e.g. N_SUBJECTS=40.")
        k, v = item.split("=", 1)
        out[k.strip()] = yaml.safe_load(v)
    return out


PARAMETER_TYPES = {"int": (int,), "float": (float, int), "str": (str,), "bool": (bool,)}


def _annotation_types(node: ast.expr) -> tuple[tuple[type, ...], bool] | None:
    """``int`` -> ((int,), False); ``Optional[int]`` or ``int | None`` -> ((int,), True); None if not understood."""
    if isinstance(node, ast.Name) and node.id in PARAMETER_TYPES:
        return PARAMETER_TYPES[node.id], False
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "Optional":
        inner = _annotation_types(node.slice)
        return (inner[0], True) if inner else None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        sides = [node.left, node.right]
        none = [n for n in sides if isinstance(n, ast.Constant) and n.value is None]
        other = [n for n in sides if n not in none]
        if len(none) == 1 and len(other) == 1:
            inner = _annotation_types(other[0])
            return (inner[0], True) if inner else None
    return None


def parameter_types(name: str) -> dict[str, tuple[tuple[type, ...], bool]]:
    """Accepted types (and whether None is allowed) of each annotated name in a notebook's ``parameters`` cell."""
    import jupytext

    nb = jupytext.read(paths.notebooks_dir() / f"{name}.py")
    out = {}
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            for stmt in ast.parse(cell.source).body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    types = _annotation_types(stmt.annotation)
                    if types is None:
                        raise BrainAgeError(f"notebooks/{name}.py: parameter {stmt.target.id} is annotated "
                                            f"'{ast.unparse(stmt.annotation)}'; use int, float, str or bool, "
                                            "or Optional[...] of one.")
                    out[stmt.target.id] = types
    return out


def parameters_namespace(name: str, **values: Any) -> dict[str, Any]:
    """The namespace a notebook's ``parameters`` cell leaves (its names, defaults and ``__annotations__``),
    with ``values`` set on top as papermill would inject them: what ``resolve_params(NB, globals())`` reads."""
    import jupytext

    nb = jupytext.read(paths.notebooks_dir() / f"{name}.py")
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise BrainAgeError(f"notebooks/{name}.py has {len(cells)} cells tagged 'parameters'; it needs exactly one.")
    ns: dict[str, Any] = {}
    exec(compile(cells[0].source, f"{name}.py:parameters", "exec"), ns)
    ns.update(values)
    return ns


def _check_value(notebook: str, key: str, value: Any, types: tuple[tuple[type, ...], bool] | None) -> Any:
    """``value`` if it has the expected type (an int given for a float becomes a float); else a BrainAgeError."""
    if types is None:
        return value
    accepted, optional = types
    if value is None and optional:
        return value
    if isinstance(value, accepted) and (bool in accepted or not isinstance(value, bool)):
        return float(value) if accepted[0] is float else value
    if isinstance(value, str) and accepted[0] in (int, float):  # YAML 1.1 reads 3e-4 (no dot) as text
        try:
            number = float(value)
        except ValueError:
            number = None
        if number is not None and (accepted[0] is float or number.is_integer()):
            return number if accepted[0] is float else int(number)
    expected = accepted[0].__name__ + (" or null" if optional else "")
    hint = f"; to pass it as text, quote it: -p '{key}=\"{value}\"'" if accepted[0] is str and value is not None else ""
    raise BrainAgeError(f"Parameter {key} of {notebook} expects {expected}, got {value!r} ({type(value).__name__}){hint}. "
                        "Nothing was run.")


def check_run(name: str, profile: str = "auto", params: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Refuse a run before it starts: unknown notebook, profile or parameter, a value of the wrong type, or a
    profile file whose keys differ from the notebook's ``parameters`` cell.

    Returns the resolved profile and the checked parameters. A parameter's type comes from
    its annotation in the notebook's ``parameters`` cell; ``DRY_RUN`` (bool) is also accepted by a
    notebook whose cell lacks it but that has a ``<notebook>.dryrun.yaml``.
    """
    src = paths.notebooks_dir() / f"{name}.py"
    if not src.is_file():
        raise BrainAgeError(f"No notebook '{name}'. Available: {', '.join(notebook_names())}.")
    prof = resolve_profile(profile)
    params = dict(params or {})
    annotated = parameter_types(name)
    check_profile_keys(name, prof, list(annotated))
    if DRY_RUN not in annotated and dry_run_file(name).is_file():
        annotated[DRY_RUN] = ((bool,), False)
    unknown = set(params) - set(annotated)
    if unknown:
        raise BrainAgeError(f"Unknown parameter(s) {sorted(unknown)} for {name}; known: {sorted(annotated)}.")
    for key, value in params.items():
        params[key] = _check_value(name, key, value, annotated[key])
    return prof, params


def run_notebook(name: str, profile: str = "auto", params: dict[str, Any] | None = None,
                 output_dir: str | os.PathLike | None = None, kernel: str = "python3", html: bool = True,
                 progress: bool = True) -> Path:
    """Run ``notebooks/<name>.py`` with papermill and render it; returns the rendered ``.ipynb``."""
    import jupytext
    import papermill as pm

    prof, params = check_run(name, profile, params)
    src = paths.notebooks_dir() / f"{name}.py"
    params["PROFILE"] = prof
    out_root = paths.output_root(output_dir)
    params.setdefault("OUTPUT_DIR", str(out_root))
    rendered = paths.rendered_dir(output_dir)
    rendered.mkdir(parents=True, exist_ok=True)
    nb = jupytext.read(src)
    with tempfile.TemporaryDirectory() as tmp:
        source_nb = Path(tmp) / f"{name}.ipynb"
        jupytext.write(nb, source_nb)
        running = rendered / f".{name}.running.ipynb"
        t0 = time.time()
        try:
            with _kernel_env({TEXT_PROGRESS_ENV: "1"}):  # the kernel inherits this process's environment
                pm.execute_notebook(str(source_nb), str(running), parameters=params, kernel_name=kernel,
                                    cwd=str(paths.notebooks_dir()), progress_bar=progress)
        except pm.PapermillExecutionError as exc:
            failed = rendered / f"{name}.failed.ipynb"
            os.replace(running, failed)
            raise BrainAgeError(f"Notebook {name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                                f"The executed copy is at {failed}; earlier results and renderings are unchanged.") from None
        wall = time.time() - t0
    final = rendered / f"{name}.ipynb"
    tidy_streams(running)
    os.replace(running, final)
    (rendered / f"{name}.failed.ipynb").unlink(missing_ok=True)
    if html:
        export_html(final, rendered / f"{name}.html")
    run_info = {"notebook": name, "profile": prof, "params": {k: v for k, v in params.items()}, "wall_time_s": round(wall, 1),
                "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    (rendered / f"{name}.run.json").write_text(json.dumps(run_info, indent=1, default=str) + "\n")
    return final


def run_concurrently(runs: list[tuple[str, dict[str, Any]]], parallel: int, profile: str = "auto",
                     output_dir: str | os.PathLike | None = None, announce=print) -> list[str]:
    """Run ``runs`` (notebook, its parameters), ``parallel`` at a time, each in a command of its own
    (``python -m brainage_lib.run.runner``) whose output goes to ``rendered/<notebook>.log``.

    Each notebook renders and records exactly as :func:`run_notebook` alone; ``announce`` gets a line when
    one starts and when one ends. Returns the names of those that failed (the others still finish).
    """
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    rendered = paths.rendered_dir(output_dir)
    rendered.mkdir(parents=True, exist_ok=True)
    failed: list[str] = []

    def one(name: str, params: dict[str, Any]) -> None:
        log = rendered / f"{name}.log"
        cmd = [sys.executable, "-m", "brainage_lib.run.runner", name, profile, json.dumps(params),
               str(output_dir) if output_dir else ""]
        t0 = time.time()
        announce(f"{name}: started (output in {log})")
        with open(log, "w") as out:
            code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=os.getcwd()).returncode
        if code == 0:
            announce(f"{name}: rendered {rendered / (name + '.ipynb')} in {time.time() - t0:.0f} s")
        else:
            failed.append(name)
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            announce(f"{name}: FAILED after {time.time() - t0:.0f} s (exit {code}); see {log}\n  " + "\n  ".join(tail))

    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        for f in [pool.submit(one, name, params) for name, params in runs]:
            f.result()
    return sorted(failed)


@contextmanager
def _kernel_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables while a kernel is started, then restore the previous values."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tidy_streams(ipynb: Path) -> None:
    """Merge each cell's consecutive stdout/stderr outputs and keep only the last state of
    carriage-return updates, so a progress bar renders as its final line, not one line per update."""
    import nbformat
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    nb = nbformat.read(str(ipynb), as_version=4)
    CoalesceStreamsPreprocessor().preprocess(nb, {})
    nbformat.write(nb, str(ipynb))


EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\ssrc=[\"']https?://[^>]*>\s*</script>", re.IGNORECASE)


def export_html(ipynb: Path, html_path: Path) -> Path:
    """Self-contained HTML (figures embedded) from an executed notebook."""
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(ipynb), as_version=4)
    body, _ = HTMLExporter(embed_images=True).from_notebook_node(nb)
    # no resources from the network: the page must read the same offline (MathJax and require.js are not
    # needed for these notebooks' outputs; TeX in markdown then shows as written)
    body = EXTERNAL_SCRIPT.sub("", body)
    tmp = html_path.with_name(f".{html_path.name}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, html_path)
    return html_path


if __name__ == "__main__":  # one notebook of run_concurrently: NAME PROFILE PARAMS_JSON OUTPUT_DIR
    _name, _profile, _params, _out = sys.argv[1:5]
    try:
        run_notebook(_name, _profile, json.loads(_params), _out or None, progress=False)
    except BrainAgeError as _exc:
        print(f"error: {_exc}", file=sys.stderr)
        sys.exit(1)
