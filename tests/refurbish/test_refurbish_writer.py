from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged

from monai_noisylabel.data.synthetic import generate_echo_dataset, make_knee_case
from monai_noisylabel.refurbish import (
    MANIFEST_COLUMNS,
    read_refurbish_manifest,
    remove_refurbished_label,
    safe_sample_id,
    write_refurbished_label,
)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def echo_dir(tmp_path):
    datalist = generate_echo_dataset(tmp_path / "data", num=2, seed=0, size=(32, 32))
    return datalist.parent


def _load(root: Path, entry: dict) -> dict:
    tf = Compose([LoadImaged(("image", "label"), image_only=True), EnsureChannelFirstd(("image", "label"))])
    return tf({"id": entry["id"], "image": str(root / entry["image"]), "label": str(root / entry["label"])})


def test_writes_source_geometry_and_manifest(echo_dir, tmp_path):
    entry = json.loads((echo_dir / "datalist.json").read_text())["training"][0]
    orig_path = echo_dir / entry["label"]
    before = _sha(orig_path)
    data = _load(echo_dir, entry)
    label = data["label"]
    new = label.clone()
    new[new == 1] = 2
    out = tmp_path / "run"
    path = write_refurbished_label(new, out, entry["id"], epoch=3, score=0.8, fraction_changed=0.25)
    assert path == out / "refurbished" / f"{entry['id']}.nii.gz"
    written, original = nib.load(str(path)), nib.load(str(orig_path))
    np.testing.assert_allclose(written.affine, original.affine)
    assert written.shape == original.shape == (32, 32)
    np.testing.assert_array_equal(np.asarray(written.dataobj), new[0].numpy().astype(np.uint8))
    assert written.get_data_dtype() == np.uint8
    rows = read_refurbish_manifest(out)
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert rows == [
        {
            "id": entry["id"],
            "original_path": str(orig_path),
            "refurbished_path": str(path),
            "epoch": "3",
            "score": "0.8",
            "fraction_changed": "0.25",
        }
    ]
    assert _sha(orig_path) == before  # the original label was never written
    assert not [p for p in (out / "refurbished").iterdir() if p.name.endswith(".tmp")]  # atomic, no leftovers


def test_manifest_rows_are_replaced_appended_and_removed(tmp_path):
    lab = np.zeros((1, 4, 4), np.int64)
    write_refurbished_label(lab, tmp_path, "a", epoch=1)
    write_refurbished_label(lab + 1, tmp_path, "b", epoch=1, score=None)
    write_refurbished_label(lab + 2, tmp_path, "a", epoch=2, original_path="/x/a.nii.gz")
    rows = read_refurbish_manifest(tmp_path)
    assert [(r["id"], r["epoch"], r["original_path"]) for r in rows] == [("b", "1", ""), ("a", "2", "/x/a.nii.gz")]
    assert rows[0]["score"] == "" and rows[0]["fraction_changed"] == ""
    assert np.asarray(nib.load(str(tmp_path / "refurbished" / "a.nii.gz")).dataobj).max() == 2
    assert remove_refurbished_label(tmp_path, "a") is True
    assert [r["id"] for r in read_refurbish_manifest(tmp_path)] == ["b"]
    assert not (tmp_path / "refurbished" / "a.nii.gz").exists()
    assert remove_refurbished_label(tmp_path, "a") is False
    assert read_refurbish_manifest(tmp_path / "nothing") == []


@pytest.mark.dataset_edits  # plants trap files in the generated tree
def test_refuses_to_overwrite_the_original(echo_dir):
    entry = json.loads((echo_dir / "datalist.json").read_text())["training"][0]
    # an output_dir whose refurbished/<id>.nii.gz IS the original label file
    trap = echo_dir / "trap"
    (trap / "refurbished").mkdir(parents=True)
    original = trap / "refurbished" / f"{entry['id']}.nii.gz"
    original.write_bytes((echo_dir / entry["label"]).read_bytes())
    before = _sha(original)
    with pytest.raises(
        ValueError,
        match=r"The 'output_dir' parameter of write_refurbished_label must be a folder whose refurbished/ file is not the original label\. Got '.*' instead\.",
    ):
        write_refurbished_label(np.zeros((1, 32, 32)), trap, entry["id"], original_path=original)
    link_dir = echo_dir / "viasymlink"
    (link_dir / "refurbished").mkdir(parents=True)
    (link_dir / "refurbished" / f"{entry['id']}.nii.gz").symlink_to(original)
    meta = {"filename_or_obj": str(original), "affine": np.eye(4)}
    with pytest.raises(ValueError, match=r"'output_dir'"):
        write_refurbished_label(np.zeros((1, 32, 32)), link_dir, entry["id"], meta=meta)
    assert _sha(original) == before
    assert not (trap / "refurbished" / "manifest.csv").exists()


def test_3d_affine_from_meta_and_dtype_choice(tmp_path):
    case = make_knee_case(0, 0, size=(12, 12, 8))
    truth = np.asarray(case["truth"]).astype(np.float32)[None]
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    affine[:3, 3] = [10, -4, 3]
    p = write_refurbished_label(truth, tmp_path, "knee/0", meta={"affine": torch.as_tensor(affine)})
    img = nib.load(str(p))
    assert img.shape == (12, 12, 8) and img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(img.affine, affine)
    assert p.name == safe_sample_id("knee/0") + ".nii.gz" and "/" not in p.name
    signed = write_refurbished_label(np.full((1, 3, 3), -1), tmp_path, "ign")
    assert nib.load(str(signed)).get_data_dtype() == np.int16
    soft = write_refurbished_label(np.full((1, 3, 3), 0.25), tmp_path, "soft")
    assert nib.load(str(soft)).get_data_dtype() == np.float32
    mt = MetaTensor(torch.ones(1, 3, 3), meta={"affine": torch.diag(torch.tensor([3.0, 3.0, 1.0, 1.0]))})
    np.testing.assert_allclose(nib.load(str(write_refurbished_label(mt, tmp_path, "mt"))).affine[0, 0], 3.0)
    bare = write_refurbished_label(np.ones((3, 3, 3)), tmp_path, "bare", channel_first=False)
    assert nib.load(str(bare)).shape == (3, 3, 3)


def test_bad_labels_write_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"'label' parameter of write_refurbished_label must be a finite array"):
        write_refurbished_label(np.full((1, 2, 2), np.nan), tmp_path, "a")
    with pytest.raises(
        ValueError, match=r"must be a channel-first \(1, H, W\[, D\]\) label\. Got shape \(2, 3, 3\) instead"
    ):
        write_refurbished_label(np.zeros((2, 3, 3)), tmp_path, "a")
    with pytest.raises(ValueError, match=r"'affine' .* a 3x3 or 4x4 matrix\. Got shape \(2, 2\) instead"):
        write_refurbished_label(np.zeros((1, 3, 3)), tmp_path, "a", affine=np.eye(2))
    assert not (tmp_path / "refurbished").exists()


def test_safe_sample_id():
    assert safe_sample_id("patient0001_ED") == "patient0001_ED"
    a, b = safe_sample_id("a/b"), safe_sample_id("a_b")
    assert a != b and a.startswith("a_b_") and b == "a_b"
    assert "/" not in safe_sample_id("../../etc/passwd") and not safe_sample_id("../../etc/passwd").startswith(".")
    assert len(safe_sample_id("x" * 500)) <= 109
    with pytest.raises(ValueError, match=r"'sample_id' parameter of safe_sample_id"):
        safe_sample_id("")
