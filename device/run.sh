#!/usr/bin/env bash
# The device check of a GPU node with no package index: `bash run.sh [OUT_FOLDER]` (default: $OUT, else ./out).
# Installs the wheels beside this script into a fresh folder (no index, no dependencies resolved: the node's own
# torch, pandas, scipy, seaborn and statsmodels are used), puts that folder on PYTHONPATH and runs
# `python -m brainage_lib.device`: device.json in OUT_FOLDER, rewritten after every step, and a table at the end.
# PYTHON=... picks the interpreter (default python3); SITE=... the install folder (default: a new temporary one).
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PY="${PYTHON:-python3}"
OUT_DIR="${1:-${OUT:-$HERE/out}}"
shift $(( $# > 0 ? 1 : 0 ))
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
SITE="${SITE:-$(mktemp -d)/site}"
START=$(date +%s)

# Install what this interpreter lacks: the project's wheel always, another wheel only when its distribution is not
# installed here already (the node's own version is kept). One pip call, --no-index --no-deps --target.
"$PY" - "$HERE/wheels" "$SITE" "$OUT_DIR/install.json" <<'EOF' || { echo "installing the wheels failed" >&2; exit 1; }
import importlib.metadata as md, json, pathlib, re, subprocess, sys, time
wheels, site, log = pathlib.Path(sys.argv[1]), sys.argv[2], pathlib.Path(sys.argv[3])
def dist(w):
    return re.sub(r"[-_.]+", "-", w.name.split("-")[0]).lower()
install, kept = [], {}
for w in sorted(wheels.glob("*.whl")):
    name = dist(w)
    try:
        if name == "brainage-companion":
            raise md.PackageNotFoundError(name)
        kept[name] = md.version(name)
    except md.PackageNotFoundError:
        install.append(w)
t0 = time.time()
cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", "--no-compile",
       "--disable-pip-version-check", "--target", site, *map(str, install)]
code = subprocess.call(cmd)
log.write_text(json.dumps({"python": sys.version.split()[0], "target": site, "installed": [w.name for w in install],
                           "kept_from_this_machine": kept, "pip_exit_code": code,
                           "seconds": round(time.time() - t0, 1)}, indent=1) + "\n")
print(f"installed {len(install)} wheel(s) into {site} in {time.time() - t0:.0f} s; kept this machine's own "
      f"{len(kept)}: {', '.join(sorted(kept)) or 'none'}")
sys.exit(code)
EOF

export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
export BRAINAGE_ROOT="$HERE/project"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export JUPYTER_RUNTIME_DIR="$(mktemp -d)"
cd "$OUT_DIR" || exit 1  # never import a checkout of the project from the current folder: the bundle's wheel runs
"$PY" -m brainage_lib.device "$OUT_DIR" "$@"
CODE=$?
echo "device check: $(( $(date +%s) - START )) s in all; $OUT_DIR/device.json"
exit $CODE
