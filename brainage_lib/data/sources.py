"""Where a notebook's cohorts come from: a user's folder (``DATA_DIR``) or the simulator.

Both paths return a ``Cohort`` through the same loader, so notebooks never know
which they got, apart from the presence of ``ground_truth/``.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from brainage_lib import paths
from brainage_lib.data.cohort import Cohort, load_cohort
from brainage_lib.errors import BrainAgeError
from brainage_lib.simulation.anatomy import make_grid
from brainage_lib.simulation.presets import get_preset
from brainage_lib.simulation.simulate import SIMULATOR_VERSION, simulate_cohort


def simulated_cohort_dir(preset: str, n: int | None = None, seed: int = 0, shape: int | tuple | None = None,
                         effect_region: str | None = None, effect_rate: float | None = None, root: Path | None = None) -> Path:
    """Folder of a simulated cohort, generating it on first use (re-used afterwards).

    The folder name holds the simulator version and every argument, so a changed
    simulator or setting never re-uses a stale cohort.
    """
    p = get_preset(preset)
    grid = make_grid(_shape(shape))
    region = effect_region or p.effect_region
    tag = f"v{SIMULATOR_VERSION}-{preset}-n{n or p.n}-seed{seed}-{'x'.join(map(str, grid.shape))}-{region.replace(':', '_').replace(',', '_')}"
    if effect_rate is not None:
        tag += f"-rate{effect_rate:g}"
    target = (root or paths.data_dir() / "simulated") / tag
    if (target / "ground_truth" / "simulation.json").is_file():
        return target
    if target.exists():  # an incomplete folder from an interrupted run of an older version
        shutil.rmtree(target)
    try:
        simulate_cohort(preset, target, n=n, seed=seed, shape=grid.shape, effect_region=region, effect_rate=effect_rate)
    except OSError:
        if not (target / "ground_truth" / "simulation.json").is_file():  # not a concurrent run that finished first
            raise
    return target


def _shape(shape: int | tuple | list | None) -> tuple[int, int, int] | None:
    if shape is None:
        return None
    if isinstance(shape, int):
        return (shape, shape, shape)
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def open_cohort(preset: str, data_dir: str = "", allow_unlabelled: bool = False, **simulation) -> Cohort:
    """The cohort playing ``preset``'s role.

    With ``data_dir`` empty, the simulated preset (generated if needed, ``simulation``
    holds n, seed, shape, effect_region, effect_rate). Otherwise ``data_dir/<preset>/`` if it is a
    cohort folder, else ``data_dir`` itself.
    """
    if not data_dir:
        return load_cohort(simulated_cohort_dir(preset, **simulation), allow_unlabelled=allow_unlabelled)
    root = Path(data_dir).expanduser()
    if not root.is_dir():
        raise BrainAgeError(f"DATA_DIR {root} is not a folder. Point it at a cohort folder (participants.tsv + sub-*/anat/) "
                            "or leave it empty for the simulated cohorts.")
    if (root / preset / "participants.tsv").is_file():
        root = root / preset
    return load_cohort(root, allow_unlabelled=allow_unlabelled)
