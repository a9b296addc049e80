"""The echo bundle's self-cleansing config (train.json + self_cleansing.json) through the real ``python -m
monai.bundle run``, on ACDC short-axis slices (the documented override), and its small-loss selection value."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_echo_bundle import CONFIGS, TINY, _paths, _workflow

from monai_noisylabel.__main__ import main
from monai_noisylabel.handlers import read_label_scores
from monai_noisylabel.refurbish import read_refurbish_manifest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from acdc_testlib import make_acdc_tree

FILES = [str(CONFIGS / "train.json"), str(CONFIGS / "self_cleansing.json")]
# ACDC class 3: the LV cavity; the paper's loss-GMM split (the config's default is the flag rule, which flags next
# to nothing in a 3-epoch run on 8 cases: the GMM always splits, so these tests see noisy samples)
SETTINGS = {**TINY, "max_epochs": 3, "noise_kwargs": {"label_class": 3}, "cleansing_split": "gmm"}


def _acdc(tmp_path: Path) -> tuple[Path, Path]:
    root = make_acdc_tree(tmp_path / "ACDC", training=(1, 2, 3, 4, 5, 6, 7, 10), testing=(101,))
    assert (
        main(["acdc-datalist", str(root), "--out", str(tmp_path / "acdc.json"), "--slices", str(tmp_path / "sl")]) == 0
    )
    return root, tmp_path / "sl" / "datalist.json"


def _digest(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_self_cleansing_runs_on_acdc_slices_through_monai_bundle_run(tmp_path):
    root, datalist = _acdc(tmp_path)
    before = _digest(root)
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(FILES)]
    args += ["--logging_file", str(CONFIGS / "logging.conf"), "--datalist", str(datalist)]
    for k, v in {**SETTINGS, **_paths(tmp_path)}.items():
        args += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    res = subprocess.run(
        args, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "LabelRefurbishHandler (lcm): epoch 2" in out and "report: " in res.stdout
    rows = read_label_scores(tmp_path / "out" / "label_scores.csv")
    noisy = {r["id"] for r in rows if r["gmm_noisy_prob"] is not None and r["gmm_noisy_prob"] > 0.5}
    marked = {r["id"] for r in rows if r["refurbished_label"]}
    assert noisy and marked == noisy  # the GMM's noisy samples carry their LCM labels, the others none
    assert {r["id"] for r in read_refurbish_manifest(tmp_path / "out")} == noisy
    ckpt = torch.load(tmp_path / "out" / "checkpoints" / "checkpoint_epoch=3.pt", weights_only=True)
    assert set(ckpt["refurbish"]["noisy"]) == noisy and ckpt["refurbish"]["teacher"]  # resumable split + teacher
    assert _digest(root) == before  # input files never modified


@pytest.mark.slow
def test_small_loss_selection_is_a_config_value(tmp_path):
    _, datalist = _acdc(tmp_path)
    override = {**SETTINGS, **_paths(tmp_path), "max_epochs": 2, "datalist": str(datalist), "cleansing_mode": "select"}
    wf = _workflow(["train.json", "self_cleansing.json"], **override)
    handler = wf.parser.get_parsed_content("refurbish_handler")
    assert handler.mode == "select" and handler.split == "gmm" and handler.select_weight == 0.0
    wf.run()
    assert handler.noisy and len(handler.store) == 0
    assert not (tmp_path / "out" / "refurbished").exists()  # selection relabels nothing
