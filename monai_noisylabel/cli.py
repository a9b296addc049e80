"""Command line: ``python -m monai_noisylabel`` (or ``monai-noisylabel``) ``COMMAND ...`` (see ``--help``).

Imports stay lazy: ``--help`` and ``--version`` answer without loading MONAI or torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main", "build_parser"]


def _size(text: str) -> tuple[int, ...]:
    try:
        parts = tuple(int(p) for p in text.replace("x", ",").split(",") if p)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--size must look like 256,256 or 64x64x64. Got {text!r} instead.") from e
    if not parts or any(p < 8 for p in parts):
        raise argparse.ArgumentTypeError(f"--size must be integers >= 8. Got {text!r} instead.")
    return parts


def _cmd_make_data(args: argparse.Namespace) -> int:
    from monai_noisylabel.data.synthetic import generate_dataset

    kwargs = {"num": args.num, "seed": args.seed, "val_frac": args.val_frac, "test_frac": args.test_frac}
    if args.size is not None:
        ndim = 3 if args.kind == "knee" else 2
        if len(args.size) != ndim:
            print(f"error: --size for {args.kind} needs {ndim} values. Got {args.size} instead.", file=sys.stderr)
            return 2
        kwargs["size"] = args.size
    if args.kind == "knee" and args.num_raters is not None:
        kwargs["num_raters"] = args.num_raters
    path = generate_dataset(args.kind, args.out, progress=not args.quiet, **kwargs)
    print(f"wrote {path}")
    return 0


def _cmd_camus(args: argparse.Namespace) -> int:
    from monai_noisylabel.data.camus import camus_datalist
    from monai_noisylabel.data.datalist import write_datalist

    datalist = camus_datalist(args.root, fold=args.fold, include_sequences=args.half_sequences, progress=not args.quiet)
    out = write_datalist(datalist, args.out)
    counts = {k: len(v) for k, v in datalist.items() if isinstance(v, list)}
    print(f"wrote {out} {json.dumps(counts)}")
    return 0


def _cmd_acdc(args: argparse.Namespace) -> int:
    from monai_noisylabel.data.acdc import acdc_datalist, acdc_slices
    from monai_noisylabel.data.datalist import write_datalist

    datalist = acdc_datalist(args.root, val_every=args.val_every)
    out = write_datalist(datalist, args.out)
    counts = {k: len(v) for k, v in datalist.items() if isinstance(v, list)}
    print(f"wrote {out} {json.dumps(counts)}")
    if args.slices is not None:
        slices = acdc_slices(datalist, args.slices, min_foreground=args.min_foreground)
        counts = {k: len(v) for k, v in slices.items() if isinstance(v, list)}
        print(f"wrote {args.slices / 'datalist.json'} (2D short-axis slices) {json.dumps(counts)}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from monai_noisylabel.data.datalist import (
        DatalistError,
        check_datalist,
        file_keys,
        load_datalist,
        read_datalist_json,
    )

    raw = read_datalist_json(args.datalist, owner="check-datalist")
    sections = args.sections or [k for k, v in raw.items() if isinstance(v, list) and v]
    if not sections:
        raise DatalistError(f"check-datalist: {str(args.datalist)!r} has no non-empty section (a list of entries).")
    total = 0
    for section in sections:
        if section not in raw:
            raise DatalistError(
                f"check-datalist: {str(args.datalist)!r} has no {section!r} section (found {sorted(raw)})."
            )
        entries = [{"image": e} if isinstance(e, str) else e for e in raw[section]]
        keys = args.keys or file_keys(entries)
        entries = load_datalist(args.datalist, section, base_dir=args.base_dir, keys=keys, check_files=False)
        check_datalist(entries, keys, check_shapes=True, source=f"{args.datalist} [{section}]", progress=not args.quiet)
        print(f"{section}: {len(entries)} entries, files {keys}")
        total += len(entries)
    print(f"{args.datalist}: {total} entries checked, all files present and shapes consistent")
    return 0


def _corruption_flags(manifest_path: Path, rows: Sequence[Mapping[str, Any]]) -> dict[str, bool]:
    """Row id -> corrupted, from a ``corrupt_datalist`` manifest; a row is matched by id, else by its label path."""
    from monai_noisylabel.transforms.label_noise import read_corruption_manifest

    samples = read_corruption_manifest(manifest_path)
    by_id = {str(s["id"]): bool(s.get("corrupted")) for s in samples}
    by_path = {str(Path(str(s["new"])).resolve()): bool(s.get("corrupted")) for s in samples if s.get("new")}
    flags = {}
    for row in rows:
        sid = str(row["id"])
        if sid in by_id:
            flags[sid] = by_id[sid]
        elif row.get("label") and str(Path(str(row["label"])).resolve()) in by_path:
            flags[sid] = by_path[str(Path(str(row["label"])).resolve())]
    if rows and not flags:
        raise ValueError(
            f"report: no sample of {str(manifest_path)!r} matches a row of label_scores.csv (by id or label)."
        )
    return flags


def _cmd_report(args: argparse.Namespace) -> int:
    from monai_noisylabel.label_scores import (
        LABEL_SCORES_FILENAME,
        read_label_scores,
        readable_summary,
        summarize_label_scores,
    )
    from monai_noisylabel.visualize import suspects_from_scores, write_report

    csv_path = Path(args.output_dir) / LABEL_SCORES_FILENAME
    if not csv_path.is_file():
        raise FileNotFoundError(f"report: {str(csv_path)!r} does not exist; a training run writes it.")
    rows = read_label_scores(csv_path)
    is_corrupted = None if args.corruption_manifest is None else _corruption_flags(args.corruption_manifest, rows)
    summary = summarize_label_scores(rows, is_corrupted)
    suspects = None
    if rows and all(r.get("image") and r.get("label") for r in rows):
        suspects = suspects_from_scores(rows, top_k=args.top_k)
    elif rows:
        print("note: label_scores.csv has rows without image/label paths; no suspect figure.", file=sys.stderr)
    path = write_report(
        args.output_dir,
        rows=rows,
        suspects=suspects,
        is_corrupted=is_corrupted,
        summary=readable_summary(summary),
        top_k=args.top_k,
    )
    print(path)
    return 0


def _parse_params(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--param must look like NAME=VALUE. Got {item!r} instead.")
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text  # a bare word such as mode=erode
        out[name.strip()] = value
    return out


def _cmd_corrupt(args: argparse.Namespace) -> int:
    from monai_noisylabel.transforms.label_noise.corrupt import corrupt_datalist

    manifest = corrupt_datalist(
        args.datalist,
        args.kind,
        args.rate,
        seed=args.seed,
        out_dir=args.out,
        base_dir=args.base_dir,
        section=args.section,
        label_key=args.label_key,
        path_keys=args.path_keys,
        progress=not args.quiet,
        **_parse_params(args.param),
    )
    print(
        f"corrupted {manifest['num_selected']} of {manifest['num_samples']} {manifest['section']} labels "
        f"({manifest['kind']}, {manifest['num_corrupted']} changed); wrote {manifest['datalist']}"
    )
    return 0


def _cmd_compare_training(args: argparse.Namespace) -> int:
    import torch

    from monai_noisylabel.compare import DEFAULT_METHODS, NOISE_KINDS, compare_training

    result = compare_training(
        args.out,
        kinds=args.kinds or NOISE_KINDS,
        rates=args.rates,
        seeds=args.seeds,
        methods=args.methods or DEFAULT_METHODS,
        size=args.size,
        num_train=args.num_train,
        num_test=args.num_test,
        epochs=args.epochs,
        warmup=args.warmup,
        every=args.every,
        phantom=args.phantom,
        device=args.device or ("cuda" if torch.cuda.is_available() else "cpu"),
        progress=True,
    )
    print(result["table"])
    print("\n".join(f"wrote {p}" for p in result["paths"].values()))
    return 0


def _add_training_runs(p: argparse.ArgumentParser, *, writes: str, seeds: list[int], epochs: int) -> None:
    """``--out``, ``--seeds`` and ``--epochs`` of the commands that train over seeds and compare the runs."""
    p.add_argument("--out", required=True, type=Path, help=f"output folder ({writes})")
    seeds_text = " ".join(str(s) for s in seeds)
    p.add_argument("--seeds", nargs="+", type=int, default=seeds, help=f"training seeds (default {seeds_text})")
    p.add_argument("--epochs", type=int, default=epochs, help=f"training epochs per run (default {epochs})")


def _add_compare_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare-training",
        help="train plain / refurbishment / self-cleansing / small-loss selection under the same label noise "
        "and write one table and one PNG of clean-test Dice and recovered gap",
    )
    _add_training_runs(p, writes="runs.csv, summary.csv/.md/.png", seeds=[0, 1], epochs=20)
    p.add_argument("--kinds", nargs="+", default=None, help="noise kinds: bias, random, omission (default all)")
    p.add_argument("--rates", nargs="+", type=float, default=[0.25, 0.5], help="noise rates (rate 0 always runs)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="plain, refurbish, self_cleansing, small_loss (the default), self_cleansing_gmm, small_loss_gmm, "
        "offset_select",
    )
    p.add_argument("--size", type=int, default=96, help="image side in pixels (default 96)")
    p.add_argument("--num-train", type=int, default=160, help="training images (default 160)")
    p.add_argument("--num-test", type=int, default=32, help="clean test images (default 32)")
    p.add_argument("--warmup", type=int, default=6, help="relabelling/selection from the epoch after this (default 6)")
    p.add_argument("--every", type=int, default=2, help="re-split every N epochs (default 2)")
    p.add_argument("--phantom", default="a", help="a: the package's synthetic echo (default); b: the independent one")
    p.add_argument("--device", default=None, help="torch device (default cuda when available, else cpu)")
    p.set_defaults(func=_cmd_compare_training)


def _override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set must look like KEY=JSON (e.g. patch_size=[32,32,32]). Got {text!r}.")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value  # a bare string such as fg_weight=auto


def _cmd_knee_compare(args: argparse.Namespace) -> int:
    from monai_noisylabel.bundle.knee_compare import knee_compare

    knee_compare(
        args.out,
        seeds=args.seeds,
        bundle_root=args.bundle_root,
        num_synthetic=args.num,
        image_size=args.size,
        max_epochs=args.epochs,
        datalist=args.datalist,
        overrides=dict(args.set or []),
    )
    return 0


def _add_knee_compare_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "knee-compare",
        help="knee BML bundle: soft labels + NAP against BCE on the majority vote, over seeds (table + PNG)",
    )
    _add_training_runs(p, writes="runs, comparison.md/.json/.png", seeds=[0, 1, 2], epochs=40)
    p.add_argument("--num", type=int, default=24, help="synthetic knees to generate (default 24)")
    p.add_argument("--size", type=_size, default=(64, 64, 64), help="synthetic volume size (default 64,64,64)")
    p.add_argument("--datalist", type=Path, default=None, help="a knee datalist instead of the synthetic knees")
    p.add_argument("--bundle-root", type=Path, default=None, help="the bundle folder (default: the repository's)")
    p.add_argument(
        "--set", type=_override, action="append", metavar="KEY=JSON", help="bundle override for both arms (repeat)"
    )
    p.set_defaults(func=_cmd_knee_compare)


def _add_corrupt_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "corrupt",
        help="corrupt round(rate x N) training labels into a new folder, with a manifest and a new datalist",
    )
    p.add_argument("datalist", type=Path, help="decathlon-style datalist JSON (never modified)")
    p.add_argument(
        "--kind",
        required=True,
        help="random, bias (or systematic: the same signed change on every corrupted label), omission",
    )
    p.add_argument("--rate", required=True, type=float, help="fraction of the section to corrupt, in [0, 1]")
    p.add_argument("--seed", type=int, default=0, help="selects and seeds the corruption (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output folder (labels/, manifest.json, datalist.json)")
    p.add_argument(
        "--base-dir", type=Path, default=None, help="resolve relative paths here (default: the JSON's folder)"
    )
    p.add_argument("--section", default="training", help="section to corrupt (default training)")
    p.add_argument("--label-key", default="label", help="entry key of the label path (default label)")
    p.add_argument("--path-keys", nargs="+", default=None, help="keys holding paths (default image and the label key)")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="transform parameter, VALUE in JSON (e.g. --param label_class=3 --param radius=[1,2]); repeatable",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_corrupt)


def _default_lus_bundle() -> Path:
    """The LUS bundle next to the package in a source checkout."""
    return Path(__file__).resolve().parents[1] / "bundles" / "lus_confidence_segmentation"


def _cmd_lus_sweep(args: argparse.Namespace) -> int:
    import logging

    from monai_noisylabel.bundle.lus_sweep import run_lus_sweep

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    overrides: dict[str, Any] = {
        "batch_size": args.batch_size,
        "learning_rate": args.lr,
        "val_interval": args.val_interval,
    }
    if args.channels:
        overrides["network_def#channels"] = list(args.channels)
        overrides["network_def#strides"] = [2] * (len(args.channels) - 1)
    if args.device:
        overrides["device"] = f"$torch.device({args.device!r})"
    result = run_lus_sweep(
        args.out,
        bundle_dir=args.bundle_dir if args.bundle_dir is not None else _default_lus_bundle(),
        thresholds=args.thresholds,
        variants=args.variants,
        seeds=args.seeds,
        image_size=args.size,
        num_frames=args.num_frames,
        max_epochs=args.epochs,
        n_boot=args.n_boot,
        cv_repeats=args.cv_repeats,
        overrides=overrides,
    )
    print(result["markdown"])
    for path in result["files"].values():
        print(f"wrote {path}")
    return 0


def _add_lus_sweep_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "lus-sweep",
        help="train the LUS bundle at several thresholds / label variants and seeds; table + PNG with bootstrap intervals",
    )
    _add_training_runs(p, writes="data, runs, sweep.{csv,json,md,png}", seeds=[0, 1, 2], epochs=12)
    p.add_argument("--bundle-dir", type=Path, default=None, help="the lus_confidence_segmentation bundle folder")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8], help="first = reference")
    p.add_argument(
        "--variants",
        nargs="*",
        default=["soft", "ignore_band", "confidence_weighted"],
        choices=["soft", "ignore_band", "confidence_weighted"],
        help="label variants trained besides the thresholds (default soft ignore_band confidence_weighted)",
    )
    p.add_argument("--size", type=int, default=128, help="image side (default 128)")
    p.add_argument("--num-frames", type=int, default=160, help="synthetic frames (2 per patient, default 160)")
    p.add_argument("--batch-size", type=int, default=8, help="batch size (default 8)")
    p.add_argument("--lr", type=float, default=0.003, help="learning rate (default 0.003)")
    p.add_argument("--val-interval", type=int, default=2, help="validate every N epochs (default 2)")
    p.add_argument("--channels", type=int, nargs="*", default=[8, 16, 32, 64, 128], help="U-Net channels")
    p.add_argument("--n-boot", type=int, default=1000, help="patient-bootstrap draws")
    p.add_argument("--cv-repeats", type=int, default=5, help="shuffles of the downstream cross-validation")
    p.add_argument("--device", default=None, help="e.g. cpu or cuda:0 (default: the bundle's)")
    p.set_defaults(func=_cmd_lus_sweep)


def _version() -> str:
    from monai_noisylabel import __version__

    return __version__


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command-line parser; ``prog`` is the program name shown in help (default: as invoked)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Segmentation with wrong or uncertain labels, inside MONAI: data, corruption, reports."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("make-data", help="generate a synthetic dataset (NIfTI + datalist.json)")
    p.add_argument(
        "kind", choices=["echo", "knee", "lus"], help="echo (2D, 4 classes), knee (3D, raters + bone), lus (2D)"
    )
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--num", type=int, default=60, help="number of cases (default 60)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0); the same seed gives the same bytes")
    p.add_argument("--size", type=_size, default=None, help="e.g. 256,256 (echo, lus) or 64,64,64 (knee)")
    p.add_argument("--num-raters", type=int, default=None, help="knee only: raters per case (default 3)")
    p.add_argument("--val-frac", type=float, default=0.15, help="fraction of cases in 'validation' (default 0.15)")
    p.add_argument("--test-frac", type=float, default=0.15, help="fraction of cases in 'test' (default 0.15)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_make_data)

    p = sub.add_parser("camus-datalist", help="build a datalist from a CAMUS release (2019 MetaImage or 2023 NIfTI)")
    p.add_argument("root", type=Path, help="the release folder (CAMUS_public/ or the 2019 root)")
    p.add_argument("--out", required=True, type=Path, help="datalist JSON to write")
    p.add_argument("--fold", type=int, default=1, help="2019 release only: fold 1..10 (default 1)")
    p.add_argument("--half-sequences", action="store_true", help="also list the (half) sequences")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_camus)

    p = sub.add_parser("acdc-datalist", help="build a datalist from the ACDC layout (training/ and testing/ patients)")
    p.add_argument("root", type=Path, help="the ACDC folder (holds training/ and testing/, or database/)")
    p.add_argument("--out", required=True, type=Path, help="datalist JSON of the 3D ED/ES frames to write")
    p.add_argument("--val-every", type=int, default=5, help="every N-th training patient is validation (default 5)")
    p.add_argument("--slices", type=Path, default=None, help="also write 2D short-axis slices and their datalist here")
    p.add_argument("--min-foreground", type=int, default=1, help="skip slices with fewer labelled pixels (default 1)")
    p.set_defaults(func=_cmd_acdc)

    p = sub.add_parser(
        "check-datalist", help="check that every file of a datalist exists and that each entry's shapes agree"
    )
    p.add_argument("datalist", type=Path, help="decathlon-style datalist JSON (echo, knee, lus, CAMUS or your own)")
    p.add_argument(
        "--base-dir", type=Path, default=None, help="resolve relative paths here (default: the JSON's folder)"
    )
    p.add_argument("--sections", nargs="+", default=None, help="sections to check (default: every non-empty one)")
    p.add_argument(
        "--keys", nargs="+", default=None, help="entry keys holding files (default: every key whose values are images)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_check)

    _add_corrupt_parser(sub)
    _add_compare_parser(sub)

    p = sub.add_parser("report", help="write RUN/report/index.html from a training run's label_scores.csv")
    p.add_argument("run_dir", nargs="?", type=Path, default=None, help="the run's output folder (has label_scores.csv)")
    p.add_argument("--output-dir", dest="legacy_run_dir", type=Path, default=None, help=argparse.SUPPRESS)
    p.add_argument("--top-k", type=int, default=8, help="suspects shown and rows listed (default 8)")
    p.add_argument(
        "--corruption-manifest",
        type=Path,
        default=None,
        help="manifest.json of `corrupt`: mark corrupted samples and add detection AUROC/AP to the summary",
    )
    p.set_defaults(func=_cmd_report)

    _add_knee_compare_parser(sub)
    _add_lus_sweep_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Run the command line; returns the exit status (2 with a one-line ``error:`` for bad input)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.command == "report":
        run_dir = args.run_dir or args.legacy_run_dir  # --output-dir: the name before 0.2, still accepted
        if run_dir is None:
            parser.error("report needs RUN_DIR (the run's output folder)")
        args.output_dir = run_dir
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
