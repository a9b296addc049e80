from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monai_noisylabel.cli import main
from monai_noisylabel.data import camus_datalist, detect_camus_release, parse_info_cfg, save_nifti

INFO = "ED: 1\nES: 12\nNbFrame: 18\nSex: F\nAge: 61\nImageQuality: Medium\nEF: 52.3\nFrameRate: 40\n"


def _write_mhd(path: Path, array: np.ndarray) -> None:
    raw = path.with_suffix(".raw")
    raw.write_bytes(np.ascontiguousarray(array, dtype=np.uint8).tobytes())
    dims = " ".join(str(s) for s in array.shape[::-1])
    path.write_text(
        f"ObjectType = Image\nNDims = {array.ndim}\nDimSize = {dims}\nElementType = MET_UCHAR\n"
        f"ElementSpacing = {' '.join(['0.3'] * array.ndim)}\nElementDataFile = {raw.name}\n"
    )


def make_2023_tree(root: Path, patients=(1, 2, 3, 4), split=None) -> Path:
    base = root / "CAMUS_public"
    for i in patients:
        pdir = base / "database_nifti" / f"patient{i:04d}"
        pdir.mkdir(parents=True)
        for view in ("2CH", "4CH"):
            (pdir / f"Info_{view}.cfg").write_text(INFO)
            for phase in ("ED", "ES"):
                save_nifti(np.full((20, 24), i, np.uint8), pdir / f"patient{i:04d}_{view}_{phase}.nii.gz")
                save_nifti(np.ones((20, 24), np.uint8), pdir / f"patient{i:04d}_{view}_{phase}_gt.nii.gz")
            save_nifti(np.zeros((20, 24, 5), np.uint8), pdir / f"patient{i:04d}_{view}_half_sequence.nii.gz")
            save_nifti(np.zeros((20, 24, 5), np.uint8), pdir / f"patient{i:04d}_{view}_half_sequence_gt.nii.gz")
    split = split or {"training": [1, 2], "validation": [3], "testing": [4]}
    (base / "database_split").mkdir()
    for name, ids in split.items():
        (base / "database_split" / f"subgroup_{name}.txt").write_text("".join(f"patient{i:04d}\n" for i in ids))
    return base


def make_2019_tree(root: Path, patients=(1, 2, 3, 4)) -> Path:
    for i in patients:
        pdir = root / ("training" if i < 4 else "testing") / f"patient{i:04d}"
        pdir.mkdir(parents=True)
        for view in ("2CH", "4CH"):
            (pdir / f"Info_{view}.cfg").write_text(INFO)
            for phase in ("ED", "ES"):
                _write_mhd(pdir / f"patient{i:04d}_{view}_{phase}.mhd", np.full((20, 24), i, np.uint8))
                _write_mhd(pdir / f"patient{i:04d}_{view}_{phase}_gt.mhd", np.ones((20, 24), np.uint8))
            _write_mhd(pdir / f"patient{i:04d}_{view}_sequence.mhd", np.zeros((5, 20, 24), np.uint8))
    (root / "listSubGroups").mkdir()
    for k in range(1, 11):
        for name, ids in {"training": [1, 2], "validation": [3], "testing": [4]}.items():
            ids = [((j + k - 2) % 4) + 1 for j in ids]
            (root / "listSubGroups" / f"subGroup{k}_{name}.txt").write_text("\n".join(f"patient{j:04d}" for j in ids))
    return root


def test_info_cfg(tmp_path):
    (tmp_path / "Info_4CH.cfg").write_text(INFO)
    info = parse_info_cfg(tmp_path / "Info_4CH.cfg")
    assert info["ED"] == 1 and info["ES"] == 12 and info["ImageQuality"] == "Medium" and info["EF"] == 52.3


def test_2023_release(tmp_path):
    base = make_2023_tree(tmp_path)
    for root in (tmp_path, base, base / "database_nifti"):
        assert detect_camus_release(root)[0] == "2023"
    dl = camus_datalist(base)
    assert [len(dl[k]) for k in ("training", "validation", "test")] == [8, 4, 4]
    e = dl["validation"][0]
    assert e["id"] == "patient0003_2CH_ED" and e["image"].endswith("patient0003_2CH_ED.nii.gz")
    assert e["label"].endswith("_ED_gt.nii.gz") and e["image_quality"] == "Medium" and e["es_frame"] == 12
    seq = camus_datalist(base, include_sequences=True, views=("4CH",))
    assert sum(x["phase"] == "sequence" for x in seq["training"]) == 2


def test_2019_release_folds(tmp_path):
    make_2019_tree(tmp_path)
    assert detect_camus_release(tmp_path)[0] == "2019"
    f1, f2 = camus_datalist(tmp_path, fold=1), camus_datalist(tmp_path, fold=2)
    assert {e["patient"] for e in f1["test"]} == {"patient0004"}
    assert {e["patient"] for e in f2["test"]} == {"patient0001"}
    assert f1["training"][0]["image"].endswith(".mhd")


def test_2019_image_readable_by_monai(tmp_path):
    from monai.transforms import LoadImage

    make_2019_tree(tmp_path)
    entry = camus_datalist(tmp_path)["training"][0]
    img = LoadImage(reader="ITKReader", image_only=True)(entry["image"])
    assert tuple(img.shape) == (24, 20) and float(img.max()) == float(entry["patient"][-1])


def test_missing_split_file(tmp_path):
    base = make_2023_tree(tmp_path)
    (base / "database_split" / "subgroup_validation.txt").unlink()
    with pytest.raises(FileNotFoundError, match="subgroup_validation.txt"):
        camus_datalist(base)


def test_missing_patient_and_bad_fold(tmp_path):
    base = make_2023_tree(tmp_path, split={"training": [1, 9], "validation": [3], "testing": [4]})
    with pytest.raises(FileNotFoundError, match="patient0009"):
        camus_datalist(base)
    with pytest.raises(ValueError, match="'fold' parameter of camus_datalist must be an int in \\[1, 10\\]. Got 11"):
        camus_datalist(base, fold=11)
    with pytest.raises(FileNotFoundError, match="does not look like a CAMUS release"):
        camus_datalist(tmp_path / "CAMUS_public" / "database_split")


def test_cli_camus(tmp_path, capsys):
    base = make_2023_tree(tmp_path)
    assert main(["camus-datalist", str(base), "--out", str(tmp_path / "dl.json")]) == 0
    assert '"training": 8' in capsys.readouterr().out
    assert main(["check-datalist", str(tmp_path / "dl.json")]) == 0
