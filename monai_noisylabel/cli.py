"""Command line: ``python -m monai_noisylabel {make-data,camus-datalist,check-datalist,corrupt,report,lus-sweep} ...``."""

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

    datalist = camus_datalist(args.root, fold=args.fold, include_sequences=args.half_sequences)
    out = write_datalist(datalist, args.out)
    counts = {k: len(v) for k, v in datalist.items() if isinstance(v, list)}
    print(f"wrote {out} {json.dumps(counts)}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from monai_noisylabel.data.datalist import load_datalist

    total = 0
    for section in args.sections:
        entries = load_datalist(args.datalist, section, base_dir=args.base_dir, keys=args.keys, check_shapes=True)
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
    from monai_noisylabel.detection import detection_metrics
    from monai_noisylabel.handlers.label_scores import LABEL_SCORES_FILENAME, read_label_scores
    from monai_noisylabel.visualize import suspects_from_scores, write_report

    csv_path = Path(args.output_dir) / LABEL_SCORES_FILENAME
    if not csv_path.is_file():
        raise FileNotFoundError(f"report: {str(csv_path)!r} does not exist; a training run writes it.")
    rows = read_label_scores(csv_path)
    summary: dict[str, Any] = {"samples": len(rows), "flagged": sum(bool(r["flagged"]) for r in rows)}
    is_corrupted = None
    if args.corruption_manifest is not None:
        is_corrupted = _corruption_flags(args.corruption_manifest, rows)
        summary["corrupted (manifest)"] = sum(is_corrupted.values())
        scored = [
            (r["combined"], is_corrupted[r["id"]])
            for r in rows
            if r["combined"] is not None and r["id"] in is_corrupted
        ]
        if scored:
            m = detection_metrics([s for s, _ in scored], [c for _, c in scored])
            summary["detection AUROC (combined)"] = m["auroc"]
            summary["detection AP (combined)"] = m["average_precision"]
            summary[f"detection precision@{m['k']} (combined)"] = m["precision_at_k"]
    suspects = None
    if rows and all(r.get("image") and r.get("label") for r in rows):
        suspects = suspects_from_scores(rows, top_k=args.top_k)
    elif rows:
        print("note: label_scores.csv has rows without image/label paths; no suspect figure.", file=sys.stderr)
    path = write_report(
        args.output_dir, rows=rows, suspects=suspects, is_corrupted=is_corrupted, summary=summary, top_k=args.top_k
    )
    print(path)
    return 0


def _add_corrupt_parser(sub: argparse._SubParsersAction) -> None:
    """``corrupt``: dataset-level label corruption; implemented in transforms/label_noise/corrupt.py."""
    try:
        from monai_noisylabel.transforms.label_noise.corrupt import add_corrupt_arguments, run_corrupt_cli
    except ImportError:  # the label-noise family is not installed in this checkout
        return
    p = sub.add_parser(
        "corrupt",
        help="corrupt round(rate x N) training labels into a new folder, with a manifest and a new datalist",
    )
    add_corrupt_arguments(p)
    p.set_defaults(func=run_corrupt_cli)


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
    p.add_argument("--out", required=True, type=Path, help="output folder (data, runs, sweep.{csv,json,md,png})")
    p.add_argument("--bundle-dir", type=Path, default=None, help="the lus_confidence_segmentation bundle folder")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8], help="first = reference")
    p.add_argument("--variants", nargs="*", default=["soft", "ignore_band"], choices=["soft", "ignore_band"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--size", type=int, default=128, help="image side (default 128)")
    p.add_argument("--num-frames", type=int, default=160, help="synthetic frames (2 per patient, default 160)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=0.003)
    p.add_argument("--val-interval", type=int, default=2)
    p.add_argument("--channels", type=int, nargs="*", default=[8, 16, 32, 64, 128], help="U-Net channels")
    p.add_argument("--n-boot", type=int, default=1000, help="patient-bootstrap draws")
    p.add_argument("--cv-repeats", type=int, default=5, help="shuffles of the downstream cross-validation")
    p.add_argument("--device", default=None, help="e.g. cpu or cuda:0 (default: the bundle's)")
    p.set_defaults(func=_cmd_lus_sweep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monai_noisylabel", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("make-data", help="generate a synthetic dataset (NIfTI + datalist.json)")
    p.add_argument("kind", choices=["echo", "knee", "lus"])
    p.add_argument("--out", required=True, type=Path, help="output folder (created)")
    p.add_argument("--num", type=int, default=60, help="number of cases (default 60)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    p.add_argument("--size", type=_size, default=None, help="e.g. 256,256 (echo, lus) or 64,64,64 (knee)")
    p.add_argument("--num-raters", type=int, default=None, help="knee only: raters per case (default 3)")
    p.add_argument("--val-frac", type=float, default=0.15)
    p.add_argument("--test-frac", type=float, default=0.15)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_make_data)

    p = sub.add_parser("camus-datalist", help="build a datalist from a CAMUS release (2019 MetaImage or 2023 NIfTI)")
    p.add_argument("root", type=Path, help="the release folder (CAMUS_public/ or the 2019 root)")
    p.add_argument("--out", required=True, type=Path, help="datalist JSON to write")
    p.add_argument("--fold", type=int, default=1, help="2019 release only: fold 1..10 (default 1)")
    p.add_argument("--half-sequences", action="store_true", help="also list the (half) sequences")
    p.set_defaults(func=_cmd_camus)

    p = sub.add_parser("check-datalist", help="check that every file of a datalist exists and shapes agree")
    p.add_argument("datalist", type=Path)
    p.add_argument("--base-dir", type=Path, default=None)
    p.add_argument("--sections", nargs="+", default=["training", "validation"])
    p.add_argument("--keys", nargs="+", default=["image", "label"])
    p.set_defaults(func=_cmd_check)

    _add_corrupt_parser(sub)

    p = sub.add_parser("report", help="write <output-dir>/report/index.html from a run's label_scores.csv")
    p.add_argument("--output-dir", required=True, type=Path, help="the run's output folder (has label_scores.csv)")
    p.add_argument("--top-k", type=int, default=8, help="suspects shown and rows listed (default 8)")
    p.add_argument(
        "--corruption-manifest",
        type=Path,
        default=None,
        help="manifest.json of `corrupt`: mark corrupted samples and add detection AUROC/AP to the summary",
    )
    p.set_defaults(func=_cmd_report)

    _add_lus_sweep_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
