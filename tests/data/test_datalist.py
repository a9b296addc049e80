from __future__ import annotations

import json

import numpy as np
import pytest

from monai_noisylabel.data import DatalistError, generate_echo_dataset, load_datalist, save_nifti, write_datalist


@pytest.fixture
def echo(tmp_path):
    return generate_echo_dataset(tmp_path / "echo", num=6, seed=0, size=(32, 32))


def test_load_resolves_and_checks(echo):
    entries = load_datalist(echo, "training")
    assert entries and all(e["image"].startswith(str(echo.parent)) for e in entries)


@pytest.mark.dataset_edits  # builds a malformed dataset in the generated tree
def test_missing_file_named(echo):
    data = json.loads(echo.read_text())
    data["training"][0]["label"] = "labelsTr/nope.nii.gz"
    write_datalist(data, echo)
    with pytest.raises(FileNotFoundError, match=r"'label' file .*nope\.nii\.gz.* does not exist"):
        load_datalist(echo, "training")


@pytest.mark.dataset_edits  # builds a malformed dataset in the generated tree
def test_shape_mismatch_named(echo):
    data = json.loads(echo.read_text())
    save_nifti(np.zeros((16, 16), np.uint8), echo.parent / "small.nii.gz")
    data["training"][0]["label"] = "small.nii.gz"
    write_datalist(data, echo)
    with pytest.raises(DatalistError, match=r"spatial shapes differ.*small\.nii\.gz has shape \(16, 16\)"):
        load_datalist(echo, "training")


@pytest.mark.dataset_edits  # builds a malformed dataset in the generated tree
def test_colliding_ids(echo):
    data = json.loads(echo.read_text())
    data["training"][1]["id"] = data["training"][0]["id"]
    write_datalist(data, echo)
    with pytest.raises(DatalistError, match="repeats the id"):
        load_datalist(echo, "training")


def test_missing_datalist_and_section(tmp_path, echo):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        load_datalist(tmp_path / "nothing.json")
    with pytest.raises(DatalistError, match="no 'holdout' section"):
        load_datalist(echo, "holdout")
