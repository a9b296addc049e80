"""Command line: ``python -m monai_noisylabel {make-data,camus-datalist,check-datalist,corrupt,report} ...``."""

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
    p.add_argument("--out", required=True, type=Path, help="output folder (runs, comparison.md/.json/.png)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="training seeds (default 0 1 2)")
    p.add_argument("--num", type=int, default=24, help="synthetic knees to generate (default 24)")
    p.add_argument("--size", type=_size, default=(64, 64, 64), help="synthetic volume size (default 64,64,64)")
    p.add_argument("--epochs", type=int, default=40, help="training epochs per run (default 40)")
    p.add_argument("--datalist", type=Path, default=None, help="a knee datalist instead of the synthetic knees")
    p.add_argument("--bundle-root", type=Path, default=None, help="the bundle folder (default: the repository's)")
    p.add_argument(
        "--set", type=_override, action="append", metavar="KEY=JSON", help="bundle override for both arms (repeat)"
    )
    p.set_defaults(func=_cmd_knee_compare)


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

    _add_knee_compare_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
