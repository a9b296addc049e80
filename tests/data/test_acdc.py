"""ACDC reader on a small synthetic tree with the public layout and file names (nothing downloaded)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from acdc_testlib import SHAPE, make_acdc_tree

from monai_noisylabel.__main__ import main
from monai_noisylabel.data import acdc_datalist, acdc_slices, load_datalist, save_nifti


def _digest(root: Path) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_datalist_reads_the_public_layout(tmp_path):
    root = make_acdc_tree(tmp_path / "ACDC")
    before = _digest(root)
    d = acdc_datalist(root)
    assert [e["id"] for e in d["training"]] == ["patient001_ED", "patient001_ES", "patient002_ED", "patient002_ES"]
    assert [e["id"] for e in d["validation"]] == ["patient005_ED", "patient005_ES"]  # every 5th patient
    assert [e["id"] for e in d["test"]] == ["patient101_ED", "patient101_ES"]
    es = d["training"][1]
    assert es["frame"] == 9 and es["image"].endswith("patient001_frame09.nii.gz")  # ES line of Info.cfg
    assert es["label"].endswith("_gt.nii.gz") and es["group"] == "DCM"
    assert d["labels"] == {"0": "background", "1": "right_ventricle", "2": "myocardium", "3": "left_ventricle"}
    assert _digest(root) == before  # input files never modified


def test_slices_are_2d_pairs_for_the_echo_bundle(tmp_path):
    root = make_acdc_tree(tmp_path / "ACDC")
    before = _digest(root)
    d = acdc_slices(acdc_datalist(root), tmp_path / "slices")
    assert len(d["training"]) == 4 * 2 and len(d["validation"]) == 2 * 2  # 2 labelled slices per volume
    assert d["training"][0]["id"] == "patient001_ED_s01"
    entries = load_datalist(tmp_path / "slices" / "datalist.json", "training")  # files exist, shapes agree
    lab = nib.load(entries[0]["label"])
    assert lab.shape == SHAPE[:2] and set(np.unique(np.asarray(lab.dataobj)).tolist()) == {0, 1, 2, 3}
    assert np.allclose(lab.affine[:3, 3], [0.0, 0.0, 10.0])  # slice 1 of a 10 mm spacing
    assert _digest(root) == before


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing_gt", "patient002_frame01_gt.nii.gz' does not exist"),
        ("missing_info", "patient002/Info.cfg' does not exist"),
        ("no_es_line", "an ES line with a frame number >= 1"),
        ("shape", "patient002_frame01_gt.nii.gz' of its image's shape"),
    ],
)
def test_bad_trees_name_the_file(tmp_path, breakage, message):
    root = make_acdc_tree(tmp_path / "ACDC")
    pdir = root / "database" / "training" / "patient002"
    if breakage == "missing_gt":
        (pdir / "patient002_frame01_gt.nii.gz").unlink()
    elif breakage == "missing_info":
        (pdir / "Info.cfg").unlink()
    elif breakage == "no_es_line":
        (pdir / "Info.cfg").write_text("ED: 1\nGroup: DCM\n")
    else:
        save_nifti(np.zeros((12, 9, 4), np.uint8), pdir / "patient002_frame01_gt.nii.gz")
    with pytest.raises((ValueError, FileNotFoundError), match=message.replace("(", r"\(")):
        acdc_datalist(root)


def test_not_an_acdc_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not look like an ACDC release"):
        acdc_datalist(tmp_path)


def test_cli_writes_both_datalists(tmp_path, capsys):
    root = make_acdc_tree(tmp_path / "ACDC")
    out = tmp_path / "acdc.json"
    assert main(["acdc-datalist", str(root), "--out", str(out), "--slices", str(tmp_path / "sl")]) == 0
    assert len(json.loads(out.read_text())["training"]) == 4
    assert len(json.loads((tmp_path / "sl" / "datalist.json").read_text())["test"]) == 4
    (root / "database" / "training" / "patient001" / "Info.cfg").unlink()
    assert main(["acdc-datalist", str(root), "--out", str(out)]) == 2
    assert "Info.cfg' does not exist" in capsys.readouterr().err
