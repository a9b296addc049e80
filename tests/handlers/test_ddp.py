"""DDP: 2 CPU processes (gloo). Results are gathered across ranks, identical on every rank, written on rank 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from monai_noisylabel.detection import vog_scores
from monai_noisylabel.handlers import read_label_scores

WORKER = Path(__file__).with_name("ddp_worker.py")


@pytest.mark.slow
def test_two_ranks_gloo(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, str(WORKER), str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0 = json.loads((tmp_path / "result0.json").read_text())
    r1 = json.loads((tmp_path / "result1.json").read_text())
    ids = [f"s{i:02d}" for i in range(9)]
    # every rank holds the full, identical state (the padded duplicate is counted once)
    for key in ("table", "vog", "online", "loss"):
        assert sorted(r0[key]) == ids, key
        assert r0[key] == r1[key], key
    # checkpoint VoG and loss equal the single-process computation with the same weights
    maps = np.array(r0["reference"]["maps"])  # (epochs, N, H, W)
    assert maps.shape[:2] == (3, 9) and r0["pool"] == 1
    np.testing.assert_allclose([r0["vog"][i] for i in ids], vog_scores(maps), rtol=1e-4)
    np.testing.assert_allclose([r0["loss"][i]["loss"] for i in ids], r0["reference"]["losses"][-1], rtol=1e-5)
    assert np.isfinite([r0["online"][i] for i in ids]).all()
    # files on rank 0 only
    rows = read_label_scores(tmp_path / "rank0" / "label_scores.csv")
    assert sorted(r["id"] for r in rows) == ids
    assert not (tmp_path / "rank1").exists()
