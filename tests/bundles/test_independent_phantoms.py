"""Both 3D/2D noisy-label bundles on phantoms written independently of the package's own generators.

The phantoms (``tests/phantoms``) differ from the built-in synthetic data the bundles were developed on: uint16
knee volumes of 0..4000 on an anisotropic grid, a different size per case, 2-4 raters per case who err in their
own ways and bone masks on half the cases; LUS frames of varied non-square sizes with (4, H, W) confidence on
0-100, days 1 and 8 as time points, a patient with one time point and a frame without clinical fields. Each test
trains, evaluates and infers through ``ConfigWorkflow`` as a user would and asserts a non-degenerate result.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.bundle import ConfigWorkflow

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from phantoms import write_knee_phantom, write_lus_phantom

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"


def _run(bundle: str, files: list[str], kind: str = "train", **override) -> ConfigWorkflow:
    configs = BUNDLES / bundle / "configs"
    wf = ConfigWorkflow(
        config_file=[str(configs / f) for f in files] if len(files) > 1 else str(configs / files[0]),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        workflow_type=kind,
        bundle_root=str(BUNDLES / bundle),
        **override,
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    return wf


def _same_grid(images: list[Path], pred_dir: Path) -> list[np.ndarray]:
    """Each input's prediction: same shape and affine as the input; returns the masks."""
    masks = []
    for image in images:
        stem = image.name.split(".")[0]
        src, pred = nib.load(image), nib.load(pred_dir / f"{stem}_seg.nii.gz")
        assert pred.shape == src.shape and np.allclose(pred.affine, src.affine), (image.name, pred.shape, src.shape)
        masks.append(np.asarray(pred.dataobj))
    return masks


@pytest.mark.slow
def test_knee_bundle_on_an_independent_phantom(tmp_path):
    datalist = write_knee_phantom(tmp_path / "user", num=10, shape=(44, 40, 14), vary=3, seed=3, test=2)
    net = {"network_def#channels": [8, 16, 32, 64], "patch_size": [24, 24, 16]}
    run = {
        **net,
        "datalist": str(datalist),
        "output_dir": str(tmp_path / "out"),
        "ckpt_dir": str(tmp_path / "models"),
        "num_patches": 2,
        "batch_size": 2,
        "max_epochs": 24,
        "val_interval": 4,
        "learning_rate": 0.005,
        "num_workers": 0,
        "detection_warmup": 0,
        "loss_every": 8,
        "vog_epochs": 2,
    }
    # cases of different sizes: the detection handlers' whole-volume probes are padded to one shape
    _run("knee_bml_softlabel_segmentation", ["train.json"], **run)
    assert (tmp_path / "out" / "label_scores.csv").is_file()
    _run("knee_bml_softlabel_segmentation", ["train.json", "evaluate.json"], **run)
    summary = json.loads((tmp_path / "out" / "eval" / "summary.json").read_text())
    assert summary["reference"] == "truth" and summary["num_cases"] == 2
    assert summary["dice_mean"] > 0.4 and summary["lesion_recall_mean"] >= 0.5, summary

    test = json.loads(datalist.read_text())["test"]
    images = [datalist.parent / e["image"] for e in test]
    _run(
        "knee_bml_softlabel_segmentation",
        ["inference.json"],
        "infer",
        **net,
        datalist=str(datalist),
        output_dir=str(tmp_path / "pred"),
        ckpt_dir=str(tmp_path / "models"),
    )
    for mask, entry in zip(_same_grid(images, tmp_path / "pred"), test):
        truth = np.asarray(nib.load(datalist.parent / entry["truth"]).dataobj)
        assert set(np.unique(mask)) <= {0, 1} and (mask.astype(bool) & truth.astype(bool)).any()


@pytest.mark.slow
def test_lus_bundle_on_an_independent_phantom(tmp_path):
    datalist = write_lus_phantom(tmp_path / "user", patients=16, frames=1, shape=(60, 80), vary=6, seed=5)
    net = {"image_size": [64, 64], "network_def#channels": [8, 16, 32, 64]}
    run = {
        **net,
        "datalist": str(datalist),
        "confidence_scale": "0-100",
        "confidence_channel_dim": 0,
        "output_dir": str(tmp_path / "out"),
        "ckpt_dir": str(tmp_path / "models"),
        "max_epochs": 10,
        "batch_size": 4,
        "learning_rate": 0.005,
        "val_interval": 5,
        "num_workers": 0,
        "cv_splits": 3,
        "cv_repeats": 1,
    }
    _run("lus_confidence_segmentation", ["train.json"], **run)
    _run("lus_confidence_segmentation", ["train.json", "evaluate.json"], **run)
    metrics = json.loads((tmp_path / "out" / "eval" / "metrics.json").read_text())
    assert metrics["reference"] == "truth", metrics["reference"]
    dice = metrics["dice"]
    assert metrics["mean_dice"] > 0.5 and min(dice[c] for c in ("pleural_line", "b_line")) > 0.5, dice
    with open(tmp_path / "out" / "eval" / "downstream.csv") as f:
        rows = list(csv.DictReader(f))
    # the segmenter's rows on the held-out patients; the reference rows there and on every patient (out of fold)
    assert {r["source"] for r in rows} == {
        "predicted",
        "expert_labels",
        "true_masks",
        "expert_labels_all_patients",
        "true_masks_all_patients",
    }

    test = json.loads(datalist.read_text())["test"]
    images = [datalist.parent / e["image"] for e in test]
    _run(
        "lus_confidence_segmentation",
        ["inference.json"],
        "infer",
        **net,
        datalist=str(datalist),
        output_dir=str(tmp_path / "pred"),
        ckpt_dir=str(tmp_path / "models"),
    )
    masks = _same_grid(images, tmp_path / "pred")
    assert all(set(np.unique(m)) <= set(range(5)) and (m == 1).any() for m in masks)  # a pleural line in every frame
