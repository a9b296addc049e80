"""The review queue's core without MONAI Label: bundle scorer, training-run scores, combination, overlay."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from monai_noisylabel.bundle import seeded_init
from monai_noisylabel.data import save_nifti
from monai_noisylabel.data.synthetic import make_echo_case, make_knee_case, make_lus_case
from monai_noisylabel.handlers import write_label_scores
from monai_noisylabel.monailabel import (
    BundleScorer,
    bundle_spatial_dims,
    combine_label_scores,
    discover_bundles,
    disputed_percent,
    file_signature,
    images_for_bundle,
    training_datalist,
    training_scores,
)

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "echo_noisylabel_segmentation"
AFFINE = np.diag([0.5, 0.4, 1.0, 1.0])


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A copy of the echo bundle with an (untrained, seeded) model of its own network."""
    root = tmp_path_factory.mktemp("bundle") / "echo"
    shutil.copytree(BUNDLE / "configs", root / "configs")
    parser = ConfigParser()
    parser.read_config(str(root / "configs" / "train.json"))
    (root / "models").mkdir()
    torch.save(seeded_init(parser.get_parsed_content("network_def"), 0).state_dict(), root / "models" / "model.pt")
    return root


@pytest.fixture(scope="module")
def case(tmp_path_factory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("case")
    c = make_echo_case(3, 0, size=(40, 48))
    save_nifti(c["image"], root / "img.nii.gz", AFFINE)
    save_nifti(c["label"], root / "lab.nii.gz", AFFINE)
    return str(root / "img.nii.gz"), str(root / "lab.nii.gz")


def test_bundle_scorer_scores_on_the_labels_grid(bundle, case, global_rng_guard):
    before = Path(case[1]).read_bytes()
    out = BundleScorer(bundle).score(*case)
    assert out["quality_map"].shape == (40, 48) and np.allclose(out["affine"], AFFINE)
    assert 0.0 <= out["quality_map"].min() <= out["quality_map"].max() <= 1.0
    assert len(out["offsets"]) == 3 and np.isfinite(out["loss"]) and 0.0 <= out["quality"] <= 1.0
    assert Path(case[1]).read_bytes() == before  # the label is only read


def test_bundle_scorer_bad_input(bundle, case, tmp_path):
    with pytest.raises(ValueError, match="configs/train.json"):
        BundleScorer(tmp_path)
    shutil.copytree(bundle / "configs", tmp_path / "nomodel" / "configs")
    with pytest.raises(ValueError, match="without models/model.pt"):
        BundleScorer(tmp_path / "nomodel")
    save_nifti(np.zeros((20, 48), np.uint8), tmp_path / "small.nii.gz", AFFINE)
    with pytest.raises(ValueError, match=r"image's shape \(40, 48\).*Got '\(20, 48\) \(small.nii.gz\)'"):
        BundleScorer(bundle).score(case[0], str(tmp_path / "small.nii.gz"))


def test_combined_score_ranks_the_outlier_first():
    losses = [0.30, 0.32, 0.90, 0.31, 0.29]
    offsets = [[0.0, 0.1], [0.05, 0.0], [1.5, -0.8], [-0.02, 0.03], [0.01, -0.05]]
    out = combine_label_scores(losses, offsets)
    assert int(np.argmax(out["combined"])) == 2 and int(np.argmax(out["offset"])) == 2
    # a training-run score joins the average where present and is left out where absent (NaN)
    training = [np.nan, np.nan, 0.1, 0.9, np.nan]
    mixed = combine_label_scores(losses, offsets, training)["combined"]
    assert mixed[3] > out["combined"][3] and mixed[2] < out["combined"][2]
    assert np.allclose(mixed[[0, 1, 4]], out["combined"][[0, 1, 4]])


def test_training_scores_only_for_labels_the_run_saw(tmp_path):
    labels = [tmp_path / f"l{i}.nii.gz" for i in range(3)]
    for p in labels:
        p.write_bytes(b"x")
    csv = tmp_path / "bundle" / "outputs" / "label_scores.csv"
    rows = [{"id": str(p), "label": str(p), "combined": 0.1 * (i + 1)} for i, p in enumerate(labels[:2])]
    time.sleep(0.01)
    write_label_scores(csv, rows)
    got = training_scores(tmp_path / "bundle", [str(p) for p in labels])
    assert got[:2] == pytest.approx([0.1, 0.2]) and np.isnan(got[2])  # the third was not in that run
    time.sleep(0.01)
    labels[0].write_bytes(b"corrected")  # saved again after the run: its old score no longer applies
    got = training_scores(tmp_path / "bundle", [str(p) for p in labels])
    assert np.isnan(got[0]) and got[1] == pytest.approx(0.2)


def test_file_signature_and_overlay(tmp_path):
    p = tmp_path / "a"
    p.write_bytes(b"1")
    first = file_signature(p)
    os.utime(p, ns=(1, 2))
    assert file_signature(p) != first
    assert disputed_percent(np.array([1.0, 0.5, 0.0, 0.996])).tolist() == [0, 50, 100, 0]


def test_discover_bundles(tmp_path):
    (tmp_path / "a" / "configs").mkdir(parents=True)
    (tmp_path / "a" / "configs" / "inference.json").write_text("{}")
    (tmp_path / "notes").mkdir()
    assert discover_bundles(tmp_path) == {"a": str((tmp_path / "a").resolve())}
    assert discover_bundles(REPO / "bundles")[BUNDLE.name] == str(BUNDLE)  # and every other bundle folder


def _seeded_copy(name: str, root: Path) -> Path:
    dst = root / name
    shutil.copytree(REPO / "bundles" / name / "configs", dst / "configs")
    parser = ConfigParser()
    parser.read_config(str(dst / "configs" / "train.json"))
    (dst / "models").mkdir()
    torch.save(seeded_init(parser.get_parsed_content("network_def"), 0).state_dict(), dst / "models" / "model.pt")
    return dst


def test_knee_and_lus_scored_on_the_labels_grid(tmp_path):
    """The one-channel sigmoid knee network (a binary rater mask, a volume the preprocessing pads) and the LUS
    network (a saved class map taken as the confidence map, a frame the preprocessing resizes)."""
    affine = np.diag([0.5, 0.6, 0.7, 1.0])
    affine[:3, 3] = [3.0, -4.0, 5.0]
    knee = make_knee_case(0, 0, size=(20, 24, 28))
    lus = make_lus_case(0, 0, size=(40, 52))
    cases = {
        "knee_bml_softlabel_segmentation": (knee["image"], knee["raters"][0], 1),
        "lus_confidence_segmentation": (lus["image"], lus["truth"], 4),
    }
    for name, (image, label, num_offsets) in cases.items():
        save_nifti(image, tmp_path / f"{name}_i.nii.gz", affine)
        save_nifti(label, tmp_path / f"{name}_l.nii.gz", affine)
        out = BundleScorer(_seeded_copy(name, tmp_path)).score(
            str(tmp_path / f"{name}_i.nii.gz"), str(tmp_path / f"{name}_l.nii.gz")
        )
        assert out["quality_map"].shape == label.shape and np.allclose(out["affine"], affine)
        assert 0.0 <= out["quality_map"].min() < out["quality_map"].max() <= 1.0
        assert len(out["offsets"]) == num_offsets and np.isfinite(out["loss"]) and 0.0 <= out["quality"] <= 1.0


def test_each_bundle_takes_the_images_of_its_dimensionality(tmp_path):
    frame = str(save_nifti(np.zeros((8, 8), np.uint8), tmp_path / "frame.nii.gz"))
    volume = str(save_nifti(np.zeros((8, 8, 8), np.uint8), tmp_path / "volume.nii.gz"))
    knee = REPO / "bundles" / "knee_bml_softlabel_segmentation"
    assert bundle_spatial_dims(knee) == 3 and bundle_spatial_dims(BUNDLE) == 2
    assert images_for_bundle([frame, volume], knee) == [False, True]
    datalist = [{"image": frame, "label": frame}, {"image": volume, "label": volume}]
    assert training_datalist(datalist, BUNDLE) == datalist[:1]
    with pytest.raises(ValueError, match=r"3D inputs of the bundle knee_bml_softlabel_segmentation.*Got '1 labelled"):
        training_datalist(datalist[:1], knee)


def test_a_label_the_bundles_loss_cannot_take_is_a_named_error(tmp_path):
    """A LUS bundle trained on soft targets cannot score a saved class map: a ValueError (HTTP 409 in MONAI
    Label) that names the loss and the shapes, not the loss's own assertion."""
    bundle = _seeded_copy("lus_confidence_segmentation", tmp_path)
    config = json.loads((bundle / "configs" / "train.json").read_text())
    config["label_mode"] = "soft"
    (bundle / "configs" / "train.json").write_text(json.dumps(config))
    lus = make_lus_case(0, 0, size=(40, 52))
    save_nifti(lus["image"], tmp_path / "i.nii.gz", np.eye(4))
    save_nifti(lus["truth"], tmp_path / "l.nii.gz", np.eye(4))
    with pytest.raises(ValueError, match="'label' parameter of BundleScorer .*training loss .*l.nii.gz"):
        BundleScorer(bundle).score(str(tmp_path / "i.nii.gz"), str(tmp_path / "l.nii.gz"))
