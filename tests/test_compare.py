"""compare-training at its smallest settings: every method on a noise cell and on clean labels, the table, the PNG,
resume from runs.csv, and bad input."""

from __future__ import annotations

import csv

import pytest

from monai_noisylabel.__main__ import main
from monai_noisylabel.compare import DEFAULT_METHODS, compare_training

TINY = {"seeds": [0], "size": 32, "num_train": 8, "num_val": 4, "num_test": 4, "epochs": 2, "batch_size": 4}


@pytest.mark.slow
def test_every_method_on_clean_and_noisy_labels(tmp_path):
    r = compare_training(tmp_path, kinds=["bias"], rates=[0.5], warmup=0, every=1, detection_warmup=0, **TINY)
    cells = {(x["kind"], x["rate"], x["method"]) for x in r["runs"]}
    assert cells == {(k, rate, m) for k, rate in (("none", 0.0), ("bias", 0.5)) for m in DEFAULT_METHODS}
    by = {(s["kind"], s["rate"], s["method"]): s for s in r["summary"]}
    assert by[("none", 0.0, "plain")]["vs_clean"] == 0.0
    assert by[("bias", 0.5, "plain")]["recovered"] in (0.0, None)  # the floor recovers nothing (None: no gap)
    assert all(0.0 <= s["mean"] <= 1.0 for s in r["summary"])
    assert "| bias | 0.5 | self_cleansing |" in r["table"] and "device cpu" in r["table"]
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (tmp_path / "runs" / "bias_0.5" / "self_cleansing_seed0" / "refurbished" / "manifest.csv").is_file()
    # resume: finished runs are read back, not retrained
    with (tmp_path / "runs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(DEFAULT_METHODS)
    again = compare_training(tmp_path, kinds=["bias"], rates=[0.5], warmup=0, every=1, detection_warmup=0, **TINY)
    assert [x["mean"] for x in again["runs"]] == pytest.approx([float(x["mean"]) for x in rows])


def test_cli_smallest_settings_and_bad_input(tmp_path, capsys):
    args = ["compare-training", "--out", str(tmp_path), "--kinds", "omission", "--rates", "0.5", "--seeds", "0"]
    args += ["--methods", "plain", "--size", "32", "--num-train", "8", "--num-test", "4", "--epochs", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| omission | 0.5 | plain |" in out and "summary.png" in out
    with pytest.raises(ValueError, match="'rates' parameter of compare_training must be a finite number > 0.0"):
        compare_training(tmp_path, rates=[0.0])
    with pytest.raises(ValueError, match="'methods' parameter of compare_training"):
        compare_training(tmp_path, methods=["coteaching"])


def test_phantom_b_runs_with_its_own_corruption(tmp_path):
    r = compare_training(tmp_path, kinds=["bias"], rates=[0.5], methods=["plain"], phantom="b", **{**TINY, "epochs": 1})
    assert {(x["kind"], x["rate"]) for x in r["runs"]} == {("none", 0.0), ("bias", 0.5)}
    assert "phantom b" in r["table"]
    with pytest.raises(ValueError, match="'phantom' parameter of compare_training must be one of"):
        compare_training(tmp_path, phantom="c")
