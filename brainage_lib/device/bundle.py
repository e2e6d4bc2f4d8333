"""``make device-bundle``: ``build/device/``, everything an offline GPU node needs beyond its own packages.

The folder holds

- ``wheels/``: the project's wheel and one wheel of each package in ``device/wheels.txt``
  (the packages the reference node, ``device/node-packages.txt``, lacks), for the node's Python:
  cp312 manylinux x86-64 by default, fetched with ``pip download --only-binary=:all: --no-deps``;
- ``project/``: the notebooks and their parameter files (the root the library reads them from);
- ``run.sh``: the one command to run there (``device/run.sh``).

``--local`` builds the same folder for this machine's interpreter without any index: each
listed package is repacked from its installed files (what the rehearsal on a CPU uses,
``tests/test_device_bundle.py``). The total size is printed; above ``--max-mib`` (60) the
build fails.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from brainage_lib import paths
from brainage_lib.errors import BrainAgeError

__all__ = ["PLATFORMS", "build_bundle", "folder_mib", "wheel_list"]

PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64")
PROJECT_FILES = ("pyproject.toml", "matplotlibrc", "jupytext.toml")


def wheel_list(path: Path | None = None) -> list[str]:
    """The pinned ``name==version`` lines of ``device/wheels.txt`` (comments and blank lines skipped)."""
    path = path or paths.project_root() / "device" / "wheels.txt"
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    bad = [line for line in lines if line and not re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+!-]+", line)]
    if bad:
        raise BrainAgeError(f"{path}: write one pinned package a line, NAME==VERSION; not {bad[:3]}")
    return [line for line in lines if line]


def folder_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise BrainAgeError(f"{' '.join(cmd[:6])} ... failed:\n{(done.stdout + done.stderr)[-3000:]}")


def _record_line(arcname: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{arcname},sha256={digest},{len(data)}"


def repack_installed(requirement: str, dest: Path) -> Path:
    """A wheel of the installed distribution ``name==version`` from its files (RECORD), for this interpreter."""
    name, version = requirement.split("==")
    dist = md.distribution(name)
    if dist.version != version:
        raise BrainAgeError(f"{name} {dist.version} is installed here, device/wheels.txt pins {version}.")
    info = Path(str(dist._path))  # type: ignore[attr-defined]  # the .dist-info folder
    wheel_file = (info / "WHEEL").read_text().splitlines()
    tags = [line.split(":", 1)[1].strip() for line in wheel_file if line.startswith("Tag:")]
    parts = [t.split("-") for t in tags] or [["py3", "none", "any"]]
    tag = "-".join(".".join(sorted({p[i] for p in parts})) for i in range(3))  # e.g. py2.py3-none-any
    site = info.parent
    out = dest / f"{re.sub(r'[-.]+', '_', dist.metadata['Name'])}-{dist.version}-{tag}.whl"
    record = []
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in dist.files or []:
            src = (site / f).resolve()
            rel = str(f)
            if rel.startswith("..") or not src.is_file() or rel.endswith((".pyc", "RECORD", "INSTALLER", "REQUESTED",
                                                                           "direct_url.json")):
                continue
            data = src.read_bytes()
            zf.writestr(rel, data)
            record.append(_record_line(rel, data))
        rec_name = f"{info.name}/RECORD"
        zf.writestr(rec_name, "\n".join(record + [f"{rec_name},,"]) + "\n")
    return out


def build_bundle(out: Path, python_version: str = "3.12", local: bool = False, max_mib: float = 60.0,
                 verbose: bool = True) -> float:
    """Write the bundle into ``out`` (emptied first); return its size in MiB."""
    root = paths.project_root()
    if out.exists():
        shutil.rmtree(out)
    wheels = out / "wheels"
    wheels.mkdir(parents=True)
    reqs = wheel_list()
    _pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(root))
    if local:
        for req in reqs:
            repack_installed(req, wheels)
    else:
        plat = [a for p in PLATFORMS for a in ("--platform", p)]
        _pip("download", "--quiet", "--only-binary=:all:", "--no-deps", "--implementation", "cp", "--python-version",
             python_version, *plat, "--dest", str(wheels), *reqs)
    project = out / "project"
    (project / "notebooks" / "params").mkdir(parents=True)
    for f in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        shutil.copy2(f, project / "notebooks" / f.name)
    for f in sorted((root / "notebooks" / "params").glob("*.yaml")):
        shutil.copy2(f, project / "notebooks" / "params" / f.name)
    for name in PROJECT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, project / name)
    shutil.copy2(root / "device" / "run.sh", out / "run.sh")
    (out / "run.sh").chmod(0o755)
    size = folder_mib(out)
    cp = f"cp{python_version.replace('.', '')}"
    target = "this machine's Python" if local else f"Python {python_version} ({cp}, manylinux x86-64)"
    if verbose:
        print(f"{out}: {len(list(wheels.glob('*.whl')))} wheels for {target}, the notebooks and run.sh: "
              f"{size:.1f} MiB in all (limit {max_mib:g} MiB)")
        print(f"On the node: copy {out.name}/ there, run `bash {out.name}/run.sh OUT_FOLDER` and read the table it "
              "prints (OUT_FOLDER/device.json)")
    if size > max_mib:
        raise BrainAgeError(f"The bundle {out} takes {size:.1f} MiB, over the {max_mib:g} MiB limit.")
    return size


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m brainage_lib.device.bundle", description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(paths.project_root() / "build" / "device"))
    ap.add_argument("--python-version", default="3.12", help="the node's Python (default 3.12)")
    ap.add_argument("--local", action="store_true", help="for this machine's interpreter, from its installed packages")
    ap.add_argument("--max-mib", type=float, default=60.0)
    args = ap.parse_args(argv)
    try:
        build_bundle(Path(args.out), args.python_version, args.local, args.max_mib)
    except BrainAgeError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
