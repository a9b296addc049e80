"""Kill-and-resume with a real SIGKILL: the echo bundle's training (``python -m monai.bundle run``) killed in the
middle of an epoch, during the detection pass and during the refurbishment write, resumed each time from its last
checkpoint (resume is on by default), ends with the outputs of a run that was never interrupted.

One chain keeps the test within its time budget: run 1 is killed in the middle of epoch 2, run 2 (resumed from the
epoch-1 checkpoint) in epoch 2's detection pass, run 3 between two refurbished-label writes of epoch 2, run 4
finishes. The kill points are placed by ``_killer.KillAt`` through a config layered on ``train.json``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from _killer import killer_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bundles"))
from bundle_testlib import ECHO_TINY

from monai_noisylabel.data import generate_echo_dataset

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "echo_noisylabel_segmentation"
TRAIN = BUNDLE / "configs" / "train.json"
TINY = {**ECHO_TINY, "num_synthetic": 16}
# 12 training cases in batches of 8: iterations 1-2 are epoch 1, iteration 3 is the middle of epoch 2. The labels
# flagged at epoch 2 are held out (select, then relabel) and written at the next refurbishment epoch, 3.
KILLS = {
    "mid_epoch": {"iteration": 3},
    "detection_pass": {"epoch": 2, "target": "monai_noisylabel.handlers.sample_loss:per_sample_loss"},
    "refurbish_write": {"epoch": 3, "target": "monai_noisylabel.handlers.label_refurbish:write_refurbished_label"},
}


def _run(root: Path, data: Path, tag: str, kill: dict | None = None) -> subprocess.CompletedProcess:
    configs = [str(TRAIN)]
    if kill is not None:
        extra = root / f"kill_{tag}.json"
        extra.write_text(json.dumps(killer_config(str(TRAIN), **kill)))
        configs.append(str(extra))
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(configs)]
    paths = {"bundle_root": str(BUNDLE), "dataset_dir": str(data), "output_dir": str(root / "out")}
    for k, v in {**TINY, **paths, "ckpt_dir": str(root / "models")}.items():
        args += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    python_path = os.pathsep.join([str(Path(__file__).parent), str(REPO), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": python_path}
    return subprocess.run(args, cwd=root, env=env, capture_output=True, text=True, timeout=600)


def _scores(root: Path) -> list[dict[str, str]]:
    with open(root / "out" / "label_scores.csv", newline="") as f:
        return [{k: v.replace(str(root), "<root>") for k, v in row.items()} for row in csv.DictReader(f)]


def _same_value(a: str, b: str) -> bool:
    try:
        x, y = float(a), float(b)
    except ValueError:
        return a == b
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) <= 1e-6


def _weights(path: Path) -> dict[str, torch.Tensor]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state.get("model", state)


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_uninterrupted_result(tmp_path):
    data = tmp_path / "data"
    generate_echo_dataset(data, num=TINY["num_synthetic"], size=tuple(TINY["image_size"]))
    ref, killed = tmp_path / "reference", tmp_path / "killed"
    ref.mkdir(), killed.mkdir()
    res = _run(ref, data, "reference")
    assert res.returncode == 0, res.stderr[-3000:]

    for tag, kill in KILLS.items():
        res = _run(killed, data, tag, kill)
        assert res.returncode == -signal.SIGKILL, (tag, res.returncode, res.stderr[-3000:])
        assert not (killed / "out" / "detection_metrics.json").exists()  # the run did not finish
        if tag != "mid_epoch":  # every later run resumed from the checkpoint the first one left
            log = res.stdout + res.stderr
            assert "resuming from" in log and "checkpoint_epoch=1.pt" in log, log[-3000:]
    written = sorted(p.name for p in (killed / "out" / "refurbished").glob("*.nii.gz"))
    assert len(written) == 1  # killed between the first and the second refurbished label of epoch 3
    res = _run(killed, data, "final")
    assert res.returncode == 0, res.stderr[-3000:]
    assert "checkpoint_epoch=2.pt" in res.stdout + res.stderr  # the refurbish_write run finished epoch 2

    # label_scores.csv: the same rows in the same order, every value to 1e-6
    expected, got = _scores(ref), _scores(killed)
    assert [r["id"] for r in got] == [r["id"] for r in expected]
    for e, g in zip(expected, got):
        bad = {k: (e[k], g[k]) for k in e if not _same_value(e[k], g[k])}
        assert not bad, (e["id"], bad)
    # the same refurbished labels, voxel for voxel, and the same manifest
    ref_dir, got_dir = ref / "out" / "refurbished", killed / "out" / "refurbished"
    names = sorted(p.name for p in ref_dir.glob("*.nii.gz"))
    assert names and names == sorted(p.name for p in got_dir.glob("*.nii.gz"))
    for name in names:
        np.testing.assert_array_equal(nib.load(got_dir / name).get_fdata(), nib.load(ref_dir / name).get_fdata())
    manifest = [(ref_dir / "manifest.csv").read_text(), (got_dir / "manifest.csv").read_text()]
    assert manifest[1].replace(str(killed), "<root>") == manifest[0].replace(str(ref), "<root>")
    # the same metrics per epoch and the same final weights (last training checkpoint and best model)
    history = [json.loads((r / "out" / "history.json").read_text()) for r in (ref, killed)]
    assert history[0].keys() == history[1].keys()
    for key in history[0]:
        np.testing.assert_allclose(np.asarray(history[1][key]), np.asarray(history[0][key]), atol=1e-6, err_msg=key)
    for rel in ("out/checkpoints/checkpoint_epoch=3.pt", "models/model.pt"):
        a, b = _weights(ref / rel), _weights(killed / rel)
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=0, msg=f"{rel}: {k}")
