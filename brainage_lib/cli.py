"""The ``brainage`` command: simulate, validate, preprocess, presets, run, predict, cache, bench, gpu-check."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from brainage_lib import registry
from brainage_lib.errors import BrainAgeError
from brainage_lib.run import runner


def _shape_arg(values: list[int] | None) -> tuple[int, int, int] | None:
    if not values:
        return None
    if len(values) == 1:
        return (values[0],) * 3
    if len(values) == 3:
        return tuple(values)  # type: ignore[return-value]
    raise BrainAgeError(f"--shape takes one size (cube) or three sizes, got {values}.")


def cmd_simulate(args: argparse.Namespace) -> int:
    from brainage_lib.simulation.simulate import simulate_cohort

    t0 = time.time()
    if args.heads != "standard" and args.space != "native":
        raise BrainAgeError("--heads describes scanner-space heads: give it with --space native.")
    make = _optional("brainage_lib.simulation.native").simulate_native_cohort if args.space == "native" else simulate_cohort
    extra = {"heads": args.heads} if args.space == "native" else {}
    out = make(args.preset, args.out, n=args.n, seed=args.seed, shape=_shape_arg(args.shape),
               voxel_size=args.voxel_size, effect_region=args.effect_region, effect_rate=args.effect_rate,
               overwrite=args.overwrite, progress=not args.quiet, **extra)
    then = f"brainage preprocess {out} OUT --recipe {'|'.join(registry.recipe_names())}" if args.space == "native" else f"brainage validate {out}"
    print(f"Wrote {out} in {time.time() - t0:.1f} s. Next: {then}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from brainage_lib.data.validation import validate_cohort

    report = validate_cohort(args.dir, allow_unlabelled=args.allow_unlabelled, check_data=not args.headers_only,
                             progress=not args.quiet)
    print(report.summary())
    return 0 if report.ok else 1


def _optional(module: str):
    """Import a module that needs the optional preprocessing dependencies, or say how to install them."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise BrainAgeError(f"{exc.name} is not installed: `make preprocess-deps` installs the preprocessing "
                            "dependencies (antspyx, deepbet, nimare).") from None


def cmd_preprocess(args: argparse.Namespace) -> int:
    prep = _optional("brainage_lib.preprocess.run")

    t0 = time.time()
    if args.report_only:
        if args.raw or args.out or args.participant_label or args.shard:
            raise BrainAgeError("--report-only OUT takes only the output folder (RAW and the recipe are read from its "
                                "dataset_description.json): brainage preprocess --report-only OUT")
        s = prep.gather_report(args.report_only)
        print(f"{s.out}: report of {s.selected - len(s.missing)} of {s.selected} scan(s). QC: {s.qc_html} and {s.qc_tsv}")
        if s.missing:
            print(f"{len(s.missing)} scan(s) of RAW have no record yet (a part not run, still running or stopped): "
                  f"{', '.join(s.missing[:10])}{', ...' if len(s.missing) > 10 else ''}", file=sys.stderr)
        for reason in s.failed:
            print(f"FAILED: {reason}", file=sys.stderr)
        if s.failed:
            print(f"{len(s.failed)} scan(s) failed (listed above; their reasons are in {s.out / 'logs'}).", file=sys.stderr)
        print(f"Check it with: brainage validate {s.out}; then set a notebook's DATA_DIR to it.")
        return 1 if s.missing or s.failed else 0
    if not (args.raw and args.out and args.recipe):
        raise BrainAgeError("give RAW, OUT and --recipe: brainage preprocess RAW OUT --recipe R (or --report-only OUT)")
    try:
        s = prep.preprocess_cohort(args.raw, args.out, args.recipe, jobs=args.jobs, deterministic=args.deterministic,
                                   progress=not args.quiet, participant_label=args.participant_label, shard=args.shard)
    except KeyboardInterrupt as stop:
        what = f": {stop}" if str(stop) else ""
        print(f"\nInterrupted{what}. Finished scans are kept; rerun the same command to do the rest.", file=sys.stderr)
        return 130
    done = f"{s.processed} scan(s) processed, {s.skipped} already done, {len(s.failed)} failed ({time.time() - t0:.0f} s)"
    if s.qc_tsv is None:
        print(f"{s.out}: part of the cohort ({s.selected} scan(s)): {done}. Once every part has finished: "
              f"brainage preprocess --report-only {s.out}")
    else:
        print(f"{s.out}: {done}. QC: {s.qc_html} and {s.qc_tsv}")
    for reason in s.failed:
        print(f"FAILED: {reason}", file=sys.stderr)
    if s.qc_tsv is not None:
        print(f"Check it with: brainage validate {s.out}; then set a notebook's DATA_DIR to it.")
    return 1 if s.failed else 0


def cmd_presets(args: argparse.Namespace) -> int:
    from brainage_lib.simulation.presets import PRESETS

    for p in PRESETS.values():
        print(f"{p.name:15s} n={p.n:<5d} {p.mirrors}; sites={p.n_sites}, {p.field_strength}, {p.grade}, "
              f"effect region={p.effect_region} (+{100 * p.effect_rate:g} %/y GM loss from {p.effect_onset:g} y)"
              + (f", disease region={p.disease_region}" if p.disease_region else ""))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from brainage_lib.report.index_page import build_index
    from brainage_lib.run.measured import parallel_choice

    SUMMARY = registry.REPORT_NOTEBOOK  # noqa: N806
    chosen = list(dict.fromkeys([args.notebook] if isinstance(args.notebook, str) else args.notebook))
    if "all" in chosen and len(chosen) > 1:
        raise BrainAgeError("Give 'all' alone, or the notebooks to run.")
    names = runner.notebook_names() if chosen == ["all"] else list(chosen)
    if chosen != [SUMMARY] and SUMMARY not in names:
        names.append(SUMMARY)  # notebooks re-run: the summary follows (seconds)
    names = sorted(names, key=lambda n: n == SUMMARY)
    params = runner.parse_assignments(args.param)
    if len(chosen) > 1 or chosen == ["all"]:  # each notebook takes the parameters its cell has (SEEDS: the paper ones)
        cells = {name: set(runner.parameter_types(name)) | {"DRY_RUN"} for name in names}
        unknown = sorted(set(params) - set().union(*cells.values()))
        if unknown:
            raise BrainAgeError(f"Unknown parameter(s) {unknown} for every notebook; known: "
                                f"{sorted(set().union(*cells.values()))}.")
        runs = [(name, {k: v for k, v in params.items() if k in cells[name]} if name != SUMMARY else {})
                for name in names]
    else:
        runs = [(name, params if name != SUMMARY or chosen == [SUMMARY] else {}) for name in names]
    for name, own in runs:  # every refusal before anything runs: a refused run changes no file
        runner.check_run(name, args.profile, own)
    papers = {p.notebook for p in registry.papers().values()}
    together = [r for r in runs if r[0] in papers]  # the paper notebooks may run at once; the others never
    parallel, why = parallel_choice(getattr(args, "parallel", "auto"), [n for n, _ in together])
    concurrent = parallel > 1 and len(together) > 1
    if len(together) > 1:
        print(why, flush=True)
    started = False
    try:
        for name, own in runs:
            if concurrent and name in papers:
                if name == together[0][0]:  # the first paper notebook starts them all
                    started = True
                    failed = runner.run_concurrently(together, parallel, args.profile, args.output_dir,
                                                     announce=lambda line: print(line, flush=True))
                    if failed:
                        raise BrainAgeError(f"{', '.join(failed)} failed (their logs are named above); the other "
                                            "notebooks finished. Earlier results and renderings of the failed ones "
                                            "are unchanged.")
                continue
            t0 = time.time()
            started = True
            out = runner.run_notebook(name, profile=args.profile, params=own, output_dir=args.output_dir,
                                      progress=not args.quiet)
            print(f"{name}: rendered {out} and {out.with_suffix('.html')} in {time.time() - t0:.0f} s")
    finally:
        if started:  # a notebook ran (or failed): the index shows its new state
            print(f"index: {build_index(args.output_dir)}")
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from brainage_lib.data.cache import cached_array
    from brainage_lib.data.cohort import load_cohort
    from brainage_lib.data.transforms import get_transform

    cohort = load_cohort(args.dir, allow_unlabelled=True)
    arr = cached_array(cohort, get_transform(args.transform), progress=not args.quiet)
    print(f"{args.transform}: {arr.shape} {arr.dtype} at {Path(arr.filename)}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from brainage_lib.inference.cards import load_model
    from brainage_lib.inference.predict import predict_cohort
    from brainage_lib.run.seeding import resolve_device

    device = resolve_device(args.device)
    _, card = load_model(args.model)
    print(card.text())
    out = args.out or f"{Path(args.model).name.removesuffix('.model.pt')}.predictions.csv"
    frame = predict_cohort(args.model, args.dir, device, out_csv=out)
    print(f"{len(frame)} subjects: mean predicted age {frame['predicted_age'].mean():.2f} y; wrote {Path(out).resolve()}")
    return 0


def cmd_model(args: argparse.Namespace) -> int:
    from brainage_lib.inference.cards import describe_model, share_model

    shown = args.model
    if args.share:
        shown = share_model(args.model, args.share)
        print(f"wrote {shown.resolve()}: weights and card only, for brainage predict")
    print(describe_model(shown))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from brainage_lib.bench import listing, run_benchmarks

    if args.list:
        print("\n".join(listing()))
        return 0
    run_benchmarks(n=args.n, out=args.out)
    return 0


def cmd_gpu_check(args: argparse.Namespace) -> int:
    from brainage_lib.gpu_check import paper_flops, run_gpu_check, stages

    if args.list:
        for st in stages(paper=True):
            print(f"{st.notebook}  {st.name}  ({st.setting}; batch {st.batch})")
        return 0
    if args.paper_flops:
        paper_flops(args.out)
        return 0
    run_gpu_check(device=args.device, n_iter=args.steps, out=args.out,
                  compile={"auto": None, "on": True, "off": False}[args.compile])
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="brainage", description="Brain-age companion: simulated cohorts, validation, notebooks.")
    sub = ap.add_subparsers(dest="command", required=True)

    s = sub.add_parser("simulate", help="write a simulated cohort (participants.tsv, sub-*/anat/*_T1w.nii.gz, ground_truth/)")
    s.add_argument("--preset", required=True, help="a simulator preset; `brainage presets` lists them with the paper "
                                                   "cohort each mirrors")
    s.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    s.add_argument("--n", type=int, default=None, help="number of subjects (default: the preset's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--shape", type=int, nargs="+", default=None, help="grid size: one number (cube) or X Y Z; default 99 117 95 (2 mm MNI)")
    s.add_argument("--voxel-size", type=float, default=None, help="isotropic voxel size in mm instead of --shape")
    s.add_argument("--effect-region", default=None,
                   help="region that loses extra GM with age: frontal, parietal, occipital, temporal, motor, cerebellum, "
                        "medial_temporal, sphere:x,y,z,r (MNI mm), or several joined by '+'")
    s.add_argument("--effect-rate", type=float, default=None,
                   help="extra share of its GM the effect region loses per year of age (default: the preset's, "
                        "e.g. 0.015 for abide_like)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing simulated cohort at --out")
    s.add_argument("--space", choices=["mni", "native"], default="mni",
                   help="mni: skull-stripped brains in MNI space (what the notebooks read); native: whole heads as a "
                        "scanner gives them (pose, orientation, voxels, bias field), input for `brainage preprocess`")
    s.add_argument("--heads", choices=["standard", "hard"], default="standard",
                   help="with --space native: standard (the template's head) or hard, more like real scans (a field "
                        "of view down to the shoulders, the head off-centre in it, pitch up to 30 degrees, bright "
                        "fat and dark muscle, a stronger bias field)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_simulate)

    v = sub.add_parser("validate", help="check a cohort folder; exit 1 on any problem (read-only)")
    v.add_argument("dir")
    v.add_argument("--allow-unlabelled", action="store_true", help="accept age 'n/a' (semi-supervised cohorts)")
    v.add_argument("--headers-only", action="store_true", help="skip reading voxel data (faster; misses truncation and NaNs)")
    v.add_argument("--quiet", action="store_true")
    v.set_defaults(func=cmd_validate)

    p = sub.add_parser("preprocess", help="raw T1w scans to a folder the notebooks read (N4, deepbet, ANTs registration)")
    p.add_argument("raw", nargs="?", help="raw cohort folder: participants.tsv + sub-<id>/anat/sub-<id>_T1w.nii.gz "
                                          "(only read)")
    p.add_argument("out", nargs="?", help="output folder, outside RAW; rerun on the same folder to resume")
    p.add_argument("--recipe", choices=registry.recipe_names(), help="the paper whose preprocessing to follow")
    p.add_argument("--participant-label", nargs="+", metavar="LABEL",
                   help="only these participants (01 or sub-01); a part: see --report-only")
    p.add_argument("--shard", metavar="K/N", help="only part K of N (1 <= K <= N) of the sorted participants, for "
                   "job arrays writing one OUT (--array=1-20: --shard $SLURM_ARRAY_TASK_ID/20); a part "
                   "writes its scans, and --report-only OUT writes qc.tsv, qc.html and participants.tsv after")
    p.add_argument("--report-only", metavar="OUT", help="only gather qc.tsv, qc.html and participants.tsv of OUT from "
                   "its scans' records, once every part has finished")
    p.add_argument("--jobs", type=int, default=1, help="scans processed at once (default 1)")
    p.add_argument("--deterministic", action=argparse.BooleanOptionalAction, default=None,
                   help="one thread per scan, so a rerun writes byte-identical images and transforms (default: on "
                        "when --jobs is at least the number of cores)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_preprocess)

    sub.add_parser("presets", help="list the simulator's presets").set_defaults(func=cmd_presets)

    r = sub.add_parser("run", help="execute a notebook headlessly into rendered/")
    r.add_argument("notebook", nargs="+",
                   help=f"one or more of {', '.join(runner.notebook_names())}, or 'all' (in that order; "
                        f"{registry.REPORT_NOTEBOOK} reads the others' results, so it runs last)")
    r.add_argument("--parallel", default="auto",
                   help="paper notebooks run at once (each in its own process): a number, or auto (one at a time "
                        "without a GPU; on a GPU as many as fit in its memory by make gpu-check's bench/gpu.json)")
    r.add_argument("--profile", default="auto", help="smoke | quick | paper | auto (paper with CUDA, else quick)")
    r.add_argument("-p", "--param", action="append", metavar="KEY=VALUE", help="override a notebook parameter")
    r.add_argument("--output-dir", default=None, help="where results/, figures/ and rendered/ go (default: the project root)")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("cache", help="build the preprocessed-array cache of a cohort for one transform")
    c.add_argument("dir")
    c.add_argument("--transform", required=True, choices=registry.transform_names())
    c.add_argument("--quiet", action="store_true")
    c.set_defaults(func=cmd_cache)

    pr = sub.add_parser("predict", help="apply a model a notebook trained to a preprocessed cohort; one CSV row per subject")
    pr.add_argument("dir", help="cohort folder in the model's training space (same pipeline and grid)")
    pr.add_argument("--model", required=True, help="a saved model: checkpoints/<notebook>/models/<model>.model.pt; "
                                                   f"architectures: {', '.join(registry.architectures())}")
    pr.add_argument("--out", default=None, help="CSV to write (default: <model>.predictions.csv in the current folder)")
    pr.add_argument("--device", default="auto", help="auto | cpu | cuda")
    pr.set_defaults(func=cmd_predict)

    m = sub.add_parser("model", help="show a saved model's card; --share writes a copy with its weights and card only")
    m.add_argument("model", help="a saved model: checkpoints/<notebook>/models/<model>.model.pt")
    m.add_argument("--share", default=None, metavar="OUT",
                   help="write a copy without the training state (smaller; brainage predict applies it the same)")
    m.set_defaults(func=cmd_model)

    b = sub.add_parser("bench", help="measure simulator, cache and loader throughput (and models, where present)")
    b.add_argument("--n", type=int, default=40, help="subjects per measurement")
    b.add_argument("--out", default=None, help="JSON file for the numbers (default bench/results.json)")
    b.add_argument("--list", action="store_true", help="list what would be measured, and measure nothing")
    b.set_defaults(func=cmd_bench)

    g = sub.add_parser("gpu-check", help="every paper-profile training stage on this device: samples/s, memory, "
                                         "TFLOP/s, and the paper runs' extrapolated wall time (bench/gpu.json)")
    g.add_argument("--device", default="auto", help="auto | cuda | cuda:1 | cpu (CPU: tiny sizes, a test of the code)")
    g.add_argument("--steps", type=int, default=None, help="timed steps per stage and precision (default 5 on CUDA)")
    g.add_argument("--out", default=None, help="JSON file for the numbers (default bench/gpu.json, "
                                               "with --paper-flops bench/paper_flops.json)")
    g.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="also time each real stage with torch.compile, which decides the notebooks' COMPILE=auto "
                        "(auto: on CUDA only)")
    g.add_argument("--list", action="store_true", help="list every paper's stages, and measure nothing")
    g.add_argument("--paper-flops", action="store_true",
                   help="only count the FLOPs per step at the paper's sizes, on the CPU (minutes)")
    g.set_defaults(func=cmd_gpu_check)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrainAgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
