"""Shared helpers of the bundle tests: a bundle's ConfigWorkflow on tiny data with temporary output folders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from monai.bundle import ConfigWorkflow


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
