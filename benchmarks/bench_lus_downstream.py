"""LUS downstream step: how much of the true-mask S/F change AUC is lost to a small test split, side by side.

The downstream models run on the features of the **true masks** (no segmenter involved), so the only thing
that changes between the rows is which patients are cross-validated and scored:

- ``test split only``: the grouped cross-validation on the test patients alone (what the sweep's test-split
  reference row reports);
- ``all patients, scored on the test patients``: the cross-validation on every patient of the set, its
  out-of-fold predictions scored on the test patients only (more training patients per fold, same patients
  scored);
- ``all patients``: every patient scored out of fold (the sweep's all-patient reference row);
- the spread of the all-patient out-of-fold AUC over random subsets as large as the test split.

    python benchmarks/bench_lus_downstream.py --data runs/lus_sweep/data   # a LUS dataset folder with truth masks
    python benchmarks/bench_lus_downstream.py                              # generates the sweep's 160 frames first
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from monai_noisylabel.data import generate_lus_dataset
from monai_noisylabel.data.io import read_voxels
from monai_noisylabel.downstream import lus_mask_features, run_downstream

SECTIONS = ("training", "validation", "test")
FIELDS = ("id", "patient", "timepoint", "sf_ratio", "sf_change", "readmission_30d")


def _records(root: Path) -> dict[str, list[dict]]:
    datalist = json.loads((root / "datalist.json").read_text())
    out: dict[str, list[dict]] = {}
    for section in SECTIONS:
        for e in datalist.get(section) or []:
            truth = np.asarray(read_voxels(root / e["truth"])).astype(np.uint8)
            truth = truth[..., 0] if truth.ndim == 3 else truth
            out.setdefault(section, []).append({**{k: e.get(k) for k in FIELDS}, "features": lus_mask_features(truth)})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None, help="LUS dataset folder (datalist.json, truth/)")
    parser.add_argument("--repeats", type=int, default=5, help="cross-validation shuffles (default 5)")
    parser.add_argument("--subsets", type=int, default=2000, help="random patient subsets (default 2000)")
    args = parser.parse_args()
    root = args.data
    if root is None:
        root = Path(tempfile.mkdtemp()) / "lus"
        generate_lus_dataset(root, num=160, seed=0, size=(128, 128), val_frac=0.1, test_frac=0.4)
    records = _records(root)
    everyone = [r for rs in records.values() for r in rs]
    test_patients = {r["patient"] for r in records["test"]}
    test_only = run_downstream(records["test"], n_repeats=args.repeats)["sf_change"]
    full = run_downstream(everyone, n_repeats=args.repeats)
    change = full["sf_change"]
    y, pred, patients = np.array(change["y"]), np.array(change["pred"]), np.array(change["patients"])
    on_test = np.isin(patients, list(test_patients))
    rng = np.random.default_rng(0)
    aucs = []
    for _ in range(args.subsets):
        idx = rng.choice(len(y), len(test_patients), replace=False)
        if len(set(y[idx].tolist())) == 2:
            aucs.append(roc_auc_score(y[idx], pred[idx]))
    lo, mid, hi = np.percentile(aucs, [2.5, 50, 97.5])
    print(f"data: {root} ({len(set(patients))} patients with both time points, {len(test_patients)} in the test split)")
    print("| true-mask features, S/F change | patients scored | AUC |")
    print("|---|---|---|")
    print(f"| test split only | {test_only['n_patients']} | {test_only['metrics']['auc']:.3f} |")
    print(
        f"| all patients, scored on the test patients | {int(on_test.sum())} | {roc_auc_score(y[on_test], pred[on_test]):.3f} |"
    )
    print(f"| all patients | {len(y)} | {change['metrics']['auc']:.3f} |")
    print(f"| all patients, random subsets of {len(test_patients)} | {len(test_patients)} | median {mid:.3f}, 95 % "
          f"of subsets in [{lo:.3f}, {hi:.3f}], {100 * np.mean(np.array(aucs) < 0.7):.0f} % below 0.7 |")  # fmt: skip
    print(
        f"S/F Pearson r, all patients: {full['sf_regression']['metrics']['pearson_r']:.3f}; test split only: "
        f"{run_downstream(records['test'], n_repeats=args.repeats)['sf_regression']['metrics']['pearson_r']:.3f}"
    )
    print(
        f"positives (S/F fell by > 5 %): {int(y.sum())} of {len(y)}; in the test split {int(y[on_test].sum())} "
        f"of {int(on_test.sum())}"
    )


if __name__ == "__main__":
    main()
