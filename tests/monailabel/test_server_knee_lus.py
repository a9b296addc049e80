"""MONAI Label serves, trains and scores the knee (3D) and LUS (2D) bundles: one real server on 127.0.0.1 whose
datastore holds knee volumes and LUS frames (each bundle trains on and scores the images of its own
dimensionality), driven over REST. The tests of this module run in order on that server."""

from __future__ import annotations

import gzip
import hashlib
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests

from monai_noisylabel.data import save_nifti
from monai_noisylabel.data.synthetic import make_knee_case, make_lus_case

pytestmark = [pytest.mark.monailabel, pytest.mark.slow]

KNEE, LUS = "knee_bml_softlabel_segmentation", "lus_confidence_segmentation"
KNEE_SIZE = (20, 24, 28)  # not a multiple of the network's 8: padded for the network, cropped back
LUS_SIZE = (40, 52)
KNEE_AFFINE = np.array([[0.6, 0, 0, -10.0], [0, 0.5, 0, 4.0], [0, 0, 0.8, 7.5], [0, 0, 0, 1]])
LUS_AFFINE = np.array([[0.25, 0, 0, 12.0], [0, 0.35, 0, -3.0], [0, 0, 1, 0], [0, 0, 0, 1]])
NUM = 3
TIMEOUT = 60


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A datastore of knee volumes and LUS frames, and the labels an annotator saves: one rater's knee mask, the
    LUS class map (0 background, 1-4 the findings, as inference writes it)."""
    root = tmp_path_factory.mktemp("study_knee_lus")
    studies, labels = root / "studies", root / "labels"
    for i in range(NUM):
        knee = make_knee_case(3, i, size=KNEE_SIZE)
        save_nifti(knee["image"], studies / f"knee_{i}.nii.gz", KNEE_AFFINE)
        save_nifti(knee["raters"][1], labels / f"knee_{i}.nii.gz", KNEE_AFFINE)
        lus = make_lus_case(3, i, size=LUS_SIZE)
        save_nifti(lus["image"], studies / f"lus_{i}.nii.gz", LUS_AFFINE)
        save_nifti(lus["truth"], labels / f"lus_{i}.nii.gz", LUS_AFFINE)
    return studies, labels


@pytest.fixture(scope="module")
def server(study, server_factory):
    server = server_factory(study[0], "knee_lus")
    for path in sorted(study[1].glob("*.nii.gz")):
        image_id = path.name[: -len(".nii.gz")]
        with path.open("rb") as f:
            res = requests.put(
                f"{server.url}/datastore/label",
                params={"image": image_id, "tag": "final"},
                files={"label": (path.name, f)},
                data={"params": "{}"},
                timeout=TIMEOUT,
            )
        assert res.ok, res.text
    return server


def _labels(study) -> dict[str, str]:
    return {p.name: _digest(p) for p in (study[0] / "labels" / "final").iterdir()}


def _train(server, bundle: str) -> dict:
    params = {"max_epochs": 1, "val_split": 0.34, "device": "cpu", "multi_gpu": False}
    res = requests.post(f"{server.url}/train/{bundle}", json=params, timeout=TIMEOUT)
    assert res.ok, res.text
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = requests.get(f"{server.url}/train/", timeout=TIMEOUT).json()
        if status.get("status") in ("DONE", "ERROR"):
            return status
        time.sleep(2)
    raise AssertionError(f"the {bundle} training did not finish:\n{server.tail()}")


def _infer(server, bundle: str, image_id: str) -> nib.Nifti1Image:
    res = requests.post(f"{server.url}/infer/{bundle}", params={"image": image_id, "output": "image"}, timeout=300)
    assert res.ok, res.text[-2000:] + server.tail()
    payload = gzip.decompress(res.content) if res.content[:2] == b"\x1f\x8b" else res.content
    return nib.Nifti1Image.from_bytes(payload)


def _score(server, bundle: str) -> requests.Response:
    return requests.post(
        f"{server.url}/scoring/label_quality", params={"run_sync": "true"}, json={"model": bundle}, timeout=600
    )


def _geometry(affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spacing and origin of a NIfTI affine (3D: 2D files carry a unit third axis)."""
    return np.linalg.norm(affine[:3, :3], axis=0), affine[:3, 3]


@pytest.mark.parametrize("bundle", [LUS, KNEE])
def test_train_writes_the_model_and_inference_keeps_the_geometry(server, study, bundle):
    before = _labels(study)
    model = server.app_dir / "model" / bundle / "models" / "model.pt"
    assert not model.exists()
    status = _train(server, bundle)
    assert status.get("status") == "DONE", str(status)[-3000:] + server.tail()
    assert model.is_file()  # a 1-epoch run validated once and saved its model
    assert _labels(study) == before  # the annotator's labels are only read
    image_id, size, affine = ("lus_0", LUS_SIZE, LUS_AFFINE) if bundle == LUS else ("knee_0", KNEE_SIZE, KNEE_AFFINE)
    pred = _infer(server, bundle, image_id)  # served without a restart
    assert pred.shape == size
    spacing, origin = _geometry(pred.affine)
    want_spacing, want_origin = _geometry(affine)
    assert np.allclose(spacing, want_spacing, atol=1e-4) and np.allclose(origin, want_origin, atol=1e-4)
    classes = {0, 1, 2, 3, 4} if bundle == LUS else {0, 1}
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= classes


@pytest.mark.parametrize(
    ("bundle", "prefix", "size", "affine"), [(LUS, "lus", LUS_SIZE, LUS_AFFINE), (KNEE, "knee", KNEE_SIZE, KNEE_AFFINE)]
)
def test_scoring_scores_only_the_bundles_images(server, study, bundle, prefix, size, affine):
    before = _labels(study)
    res = _score(server, bundle)
    assert res.ok, res.text[-2000:] + server.tail()
    result = res.json()
    assert result["bundle"] == bundle and not result["problems"]
    assert sorted(result["ranking"]) == [f"{prefix}_{i}" for i in range(NUM)]  # the other bundle's images left out
    for image_id in result["ranking"]:
        info = requests.get(f"{server.url}/datastore/image/info", params={"image": image_id}, timeout=TIMEOUT).json()
        assert 0.0 <= info["label_quality"]["combined"] <= 1.0 and np.isfinite(info["label_quality"]["loss"])
        overlay = nib.load(study[0] / "labels" / "label_quality" / f"{image_id}.nii.gz")
        assert overlay.shape == size and np.allclose(overlay.affine, affine, atol=1e-4)
    assert _labels(study) == before


def test_scoring_with_a_bundle_without_a_model_is_refused(server):
    res = _score(server, "echo_noisylabel_segmentation")  # 2D like the LUS frames, but never trained here
    assert res.status_code == 409 and "without models/model.pt" in res.json()["detail"], res.text
    assert requests.get(f"{server.url}/info/", timeout=TIMEOUT).ok
