"""``benchmarks/gpu_suite.py`` (and its ``suite_wheels.py``): the CPU smoke run of every part (what CI runs so the GPU suite cannot rot), the
budget skip, the wheel download command and bad input."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_suite.py"


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_suite", None)


@pytest.mark.slow
def test_smoke_run_measures_every_part(tmp_path, suite):
    out = tmp_path / "smoke.json"
    args = [sys.executable, str(SCRIPT), "--smoke", "--json", str(out), "--work-dir", str(tmp_path / "work")]
    args += ["--budget", "1200"]  # a loaded CI machine must not skip parts: this run checks that they work
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "smoke" and result["device"].startswith("cpu")
    assert {n: p["status"] for n, p in result["parts"].items()} == {n: "ok" for n in suite.PARTS}
    rows = result["rows"]
    assert {r["part"] for r in rows} == set(suite.PARTS)
    assert not [r for r in rows if r["status"] in ("FAIL", "error", "skipped")]
    # device-independent checks are judged even on the CPU: they pass
    judged = {r["name"]: r["status"] for r in rows if r["status"] == "pass"}
    assert "VoG state per 256x256 sample" in judged
    assert "training images scored and gathered on rank 0" in judged
    assert any(name.startswith("python -m monai.bundle run") for name in judged)
    # every loss has its ratio to DiceCELoss and every kernel its ratio to scipy, with a measured value
    assert sum(r["part"] == "losses" and r["target"] == "<= 1.5" for r in rows) == 16
    assert all(r["value"] is not None and r["value"] > 0 for r in rows if r["part"] in ("losses", "label_noise"))
    assert "| part | measurement | measured | target | result |" in res.stdout


def test_a_part_that_does_not_fit_the_budget_is_skipped_and_said(tmp_path, suite):
    import torch

    ran = []
    suite.part("tiny", "a part that fits", budget_s=1, smoke_budget_s=1)(lambda ctx: ran.append(ctx.part) or [])
    try:
        ctx = suite.Context(torch.device("cpu"), True, tmp_path)
        rows, report = suite.run_suite(["losses", "tiny"], ctx, budget_s=2)
    finally:
        del suite.PARTS["tiny"]
    assert ran == ["tiny"]
    assert report["losses"]["status"] == "skipped" and report["tiny"]["status"] == "ok"
    assert rows[0].status == "skipped" and "budget" in rows[0].note


def test_a_failing_part_becomes_an_error_row_and_the_others_run(tmp_path, suite):
    import torch

    def broken(ctx):
        raise RuntimeError("boom")

    suite.part("broken", "a broken part", budget_s=1, smoke_budget_s=1)(broken)
    try:
        rows, report = suite.run_suite(["broken"], suite.Context(torch.device("cpu"), True, tmp_path), budget_s=10)
    finally:
        del suite.PARTS["broken"]
    assert report["broken"]["status"] == "error" and "RuntimeError: boom" in rows[0].note
    assert "| broken | a broken part | - |  | error (RuntimeError: boom) |" in suite.format_table(rows)


def test_download_command_pins_the_pure_python_dependencies(suite):
    from importlib import metadata

    cmd = suite.download_command("3.12")
    assert cmd.startswith("python -m pip download --no-deps --only-binary=:all: --python-version 3.12")
    pins = dict(p.split("==") for p in cmd.split() if "==" in p)
    for dist in ("monai", "pytorch-ignite", "nibabel", "fire"):
        assert pins[dist] == metadata.version(dist)
    assert "termcolor" in pins  # fire's own dependency comes along
    assert not {"torch", "numpy", "scikit-learn", "scipy", "pyyaml", "joblib"} & set(pins)  # already on the GPU machine


def test_bad_input_is_refused_clearly(tmp_path, suite):
    with pytest.raises(ValueError, match=r"The '--wheels' parameter of gpu_suite must be a folder of \.whl files"):
        suite.install_wheels(tmp_path / "nowhere")
    res = subprocess.run(
        [sys.executable, str(SCRIPT), "--parts", "knee"], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 2 and "The '--parts' parameter of gpu_suite must name parts of" in res.stderr
