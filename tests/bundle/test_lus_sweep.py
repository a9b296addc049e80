"""``lus-sweep`` at its smallest settings, and the table's pieces."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from monai_noisylabel.bundle.lus_sweep import SWEEP_METRICS, markdown_table, sweep_arms
from monai_noisylabel.cli import main

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "lus_confidence_segmentation"


def test_smallest_sweep(tmp_path, capsys):
    args = ["lus-sweep", "--out", str(tmp_path / "sweep"), "--bundle-dir", str(BUNDLE), "--thresholds", "0.5", "0.6"]
    args += ["--variants", "soft", "--seeds", "0", "--size", "32", "--num-frames", "40", "--epochs", "1"]
    args += ["--n-boot", "30", "--cv-repeats", "1", "--channels", "4", "8", "16"]
    assert main(args) == 0
    out = tmp_path / "sweep"
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    arms = {r["arm"] for r in rows}
    refs = {
        "true masks",
        "expert labels at 0.6",
        "true masks (all 20 patients)",
        "expert labels at 0.6 (all 20 patients)",
    }
    assert {"t0.5", "t0.6", "soft"} | refs == arms
    # the reference rows on every patient are bootstrapped over all 20, the test-split ones over the test patients
    n = {r["arm"]: int(r["n_patients"]) for r in rows if r["metric"] == "change_auc" and r["arm"] in refs}
    assert n["true masks (all 20 patients)"] == 20 > n["true masks"]
    dice = {r["arm"]: r for r in rows if r["metric"] == "mean_dice"}
    assert dice["t0.5"]["diff"] == "" and dice["t0.6"]["diff_excludes_zero"] in ("True", "False")
    assert float(dice["t0.6"]["low"]) <= float(dice["t0.6"]["value"]) <= float(dice["t0.6"]["high"])
    assert (out / "sweep.png").stat().st_size > 5000
    meta = json.loads((out / "sweep.json").read_text())
    assert meta["reference"] == "t0.5" and meta["seeds"] == [0]
    printed = capsys.readouterr().out
    assert "| t0.6 |" in printed and "excludes 0" in printed
    # a second call reuses the finished runs (a killed sweep resumes)
    stamp = (out / "runs" / "soft_seed0" / "result.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "runs" / "soft_seed0" / "result.json").stat().st_mtime_ns == stamp


def test_arms_and_table():
    assert sweep_arms([0.5], ["ignore_band"]) == {
        "t0.5": {"threshold": 0.5, "label_mode": "hard"},
        "ignore_band": {"threshold": 0.6, "label_mode": "ignore_band"},
    }
    with pytest.raises(ValueError, match="'thresholds' parameter"):
        sweep_arms([1.5], [])
    with pytest.raises(ValueError, match="'variants' parameter"):
        sweep_arms([0.5], ["weighted"])
    rows = [
        {"arm": a, "metric": m, "value": 0.5, "low": 0.4, "high": 0.6, "diff": d, "diff_low": -0.1, "diff_high": 0.2}
        | {"diff_excludes_zero": False}
        for a, d in (("t0.5", None), ("t0.6", 0.05))
        for m in SWEEP_METRICS
    ]
    md = markdown_table(rows, "t0.5")
    assert md.count("\n| t0") == 2 and "Δ +0.050 [-0.100, 0.200]" in md and "*" not in md.split("Values")[0]
