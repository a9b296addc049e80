"""Shared helpers of the bundle tests: a bundle's ConfigWorkflow on tiny data with temporary output folders,
inference on new images, and a two-process CPU (gloo) training run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monai.bundle import ConfigWorkflow

from monai_noisylabel.label_scores import read_label_scores

#: the echo bundle at test size: 32x32, 3 epochs, every detection and refurbishment step from epoch 1
ECHO_TINY: dict[str, Any] = {
    "image_size": [32, 32],
    "num_synthetic": 24,
    "max_epochs": 3,
    "batch_size": 8,
    "val_interval": 1,
    "num_workers": 0,
    "network_def#channels": [4, 8, 16, 32, 64],
    "network_def#num_res_units": 1,
    "detection_warmup": 0,
    "vog_epochs": 1,
    "loss_every": 1,
    "refurbish_warmup": 1,
    "refurbish_every": 1,
    "refurbish_max_change": 1.0,
    "noise_rate": 0.5,
    "flag_fraction": 0.25,
}


def bundle_paths(bundle: Path, tmp: Path) -> dict:
    """Overrides that keep a run's data, outputs and models under ``tmp``."""
    return {
        "bundle_root": str(bundle),
        "dataset_dir": str(tmp / "data"),
        "output_dir": str(tmp / "out"),
        "ckpt_dir": str(tmp / "models"),
    }


def bundle_workflow(
    bundle: Path, config_files: Sequence[str], workflow_type: str = "train", **override
) -> ConfigWorkflow:
    """An initialized ConfigWorkflow of ``bundle``'s ``configs/<config_files>`` (layered in order)."""
    configs = bundle / "configs"
    files = [str(configs / f) for f in config_files]
    wf = ConfigWorkflow(
        config_file=files if len(files) > 1 else files[0],
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        workflow_type=workflow_type,
        **override,
    )
    wf.initialize()
    return wf


def run_inference(bundle: Path, images: Path, out: Path, ckpt_dir: Path, **override: Any) -> Path:
    """Run ``bundle``'s ``inference.json`` on the images of ``images`` with the model of ``ckpt_dir``; returns ``out``."""
    wf = bundle_workflow(
        bundle,
        ["inference.json"],
        "infer",
        **override,
        bundle_root=str(bundle),
        dataset_dir=str(images),
        output_dir=str(out),
        ckpt_dir=str(ckpt_dir),
    )
    wf.run()
    wf.finalize()
    return out


def run_torchrun_two_cpu(bundle: Path, tmp: Path, port: int, **override: Any) -> None:
    """Train ``bundle`` (``train.json`` + ``multi_gpu_train.json``) in two CPU processes over gloo; assert it exits 0."""
    configs = bundle / "configs"
    files = [str(configs / "train.json"), str(configs / "multi_gpu_train.json")]
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}"]
    args += ["-m", "monai.bundle", "run", "--config_file", json.dumps(files)]
    args += ["--logging_file", str(configs / "logging.conf")]
    for k, v in {**override, "dist_backend": "gloo"}.items():
        args += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    res = subprocess.run(args, cwd=tmp, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]


def scores_of_every_training_sample(out: Path, datalist: Path) -> list[dict[str, Any]]:
    """The rows of ``out/label_scores.csv``, asserting one per training entry of ``datalist`` (e.g. gathered from
    every rank)."""
    rows = read_label_scores(out / "label_scores.csv")
    data = json.loads(datalist.read_text())
    assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in data["training"])
    return rows
