"""MONAI Label serves, trains and scores the echo bundle: a real server on 127.0.0.1, driven over REST as
3D Slicer / OHIF drive it. The tests of this module run in order on one server and one datastore, in the order of
the review loop: score with the copied model, correct the most suspect label, then train. (A model trained on the
wrong label, even for one Adam step, pulls towards it on that image, so its corrected label would look suspect
until the next training; the test checks what the queue promises, with a model that never saw the wrong label.)"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import requests
import torch

from monai_noisylabel.data import save_nifti
from monai_noisylabel.data.synthetic import make_echo_case

pytestmark = [pytest.mark.monailabel, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
BUNDLE = "echo_noisylabel_segmentation"
SIZE = (64, 64)
NUM = 7
CORRUPTED = "echo_3"  # its label gets a large false LV cavity
WRONG_SHAPE = "echo_6"  # its label has another shape than its image
AFFINE = np.array([[0.3, 0, 0, -12.5], [0, 0.4, 0, 7.0], [0, 0, 1, 0], [0, 0, 0, 1]])  # spacing and origin
TIMEOUT = 60


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A datastore of echo frames without labels, and the labels an annotator will save (one grossly wrong)."""
    root = tmp_path_factory.mktemp("study")
    studies, labels = root / "studies", root / "labels"
    for i in range(NUM):
        case = make_echo_case(11, i, size=SIZE)
        save_nifti(case["image"], studies / f"echo_{i}.nii.gz", AFFINE)
        label = case["label"].copy()
        if f"echo_{i}" == CORRUPTED:
            label[8:56, 8:56] = 1
        if f"echo_{i}" == WRONG_SHAPE:
            label = label[:40, :48]
        save_nifti(label, labels / f"echo_{i}.nii.gz", AFFINE)
    return studies, labels


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> Path:
    """The bundle's network briefly trained (30 one-image steps, then BatchNorm statistics over the five images) on
    other clean echo frames, as a model trained elsewhere that a user copies into a bundle folder without one."""
    from monai.bundle import ConfigParser

    from monai_noisylabel.bundle import SampleDiceCELoss, seeded_init

    root = tmp_path_factory.mktemp("pretrained")
    parser = ConfigParser()
    parser.read_config(str(REPO / "bundles" / BUNDLE / "configs" / "train.json"))
    network = seeded_init(parser.get_parsed_content("network_def"), 0)
    preprocessing = parser.get_parsed_content("validate#preprocessing")
    batches = []
    for i in range(5):
        case = make_echo_case(5, i, size=SIZE)
        save_nifti(case["image"], root / f"i{i}.nii.gz", AFFINE)
        save_nifti(case["label"], root / f"l{i}.nii.gz", AFFINE)
        d = preprocessing({"image": str(root / f"i{i}.nii.gz"), "label": str(root / f"l{i}.nii.gz")})
        batches.append((d["image"].as_tensor()[None], d["label"].as_tensor()[None].long()))
    loss, optimizer = SampleDiceCELoss(), torch.optim.Adam(network.parameters(), lr=3e-3)
    network.train()
    for step in range(30):
        x, y = batches[step % len(batches)]
        optimizer.zero_grad()
        loss(network(x), y).backward()
        optimizer.step()
    # One-image steps leave BatchNorm's running statistics (what scoring and inference use) off the data: the
    # eval-mode model then gives clean labels losses near the corrupted one's (about 1.55 against 2.7, with
    # volume offsets up to 35). Re-estimated on the five images at once, clean labels score about 1.0 with
    # offsets below 0.4 while the corrupted label keeps 2.6 and an offset of 13: the ranking has a wide margin.
    norms = [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the forward passes below
    with torch.no_grad():
        network(torch.cat([x for x, _ in batches]))
    for m in norms:
        m.momentum = 0.1
    torch.save(network.state_dict(), root / "model.pt")
    return root / "model.pt"


@pytest.fixture(scope="module")
def server(study, server_factory):
    return server_factory(study[0])


def _save_label(server, image_id: str, path: Path) -> requests.Response:
    with path.open("rb") as f:
        return requests.put(
            f"{server.url}/datastore/label",
            params={"image": image_id, "tag": "final"},
            files={"label": (f"{image_id}.nii.gz", f)},
            data={"params": "{}"},
            timeout=TIMEOUT,
        )


def _score(server) -> requests.Response:
    return requests.post(f"{server.url}/scoring/label_quality", params={"run_sync": "true"}, timeout=300)


def _next(server) -> requests.Response:
    return requests.post(f"{server.url}/activelearning/suspect_label_first", json={}, timeout=TIMEOUT)


def _info(server, image_id: str) -> dict:
    return requests.get(f"{server.url}/datastore/image/info", params={"image": image_id}, timeout=TIMEOUT).json()


def _labels_dir(study) -> Path:
    return study[0] / "labels" / "final"


def test_info_lists_the_bundle_and_the_review_queue(server):
    info = requests.get(f"{server.url}/info/", timeout=TIMEOUT).json()
    assert BUNDLE in info["trainers"]
    assert BUNDLE not in info["models"]  # no model yet: listed for training only
    assert "suspect_label_first" in info["strategies"]
    assert "label_quality" in info["scoring"]


def test_requests_before_labels_and_model_get_clear_errors(server):
    res = requests.post(f"{server.url}/infer/{BUNDLE}", params={"image": "echo_0", "output": "image"}, timeout=60)
    assert res.status_code == 409 and "no trained model" in res.json()["detail"], res.text
    res = _score(server)
    assert res.status_code == 409 and "labelled images" in res.json()["detail"], res.text
    res = _next(server)
    assert res.status_code == 409 and "no scored image" in res.json()["detail"], res.text


def test_annotator_saves_labels(server, study):
    for i in range(NUM):
        res = _save_label(server, f"echo_{i}", study[1] / f"echo_{i}.nii.gz")
        assert res.ok, res.text
    assert len(list(_labels_dir(study).glob("*.nii.gz"))) == NUM
    res = _score(server)  # labels now, but the bundle has no model yet
    assert res.status_code == 409 and "without models/model.pt" in res.json()["detail"], res.text


def test_a_copied_model_is_served_without_restart(server, pretrained):
    shutil.copy(pretrained, server.app_dir / "model" / BUNDLE / "models" / "model.pt")
    res = requests.post(f"{server.url}/infer/{BUNDLE}", params={"image": "echo_0", "output": "image"}, timeout=120)
    assert res.ok, res.text[-2000:] + server.tail()
    assert BUNDLE in requests.get(f"{server.url}/info/", timeout=TIMEOUT).json()["models"]


def test_scoring_puts_the_corrupted_label_first(server, study):
    before = {p.name: _digest(p) for p in _labels_dir(study).iterdir()}
    res = _score(server)
    assert res.ok, res.text[-2000:] + server.tail()
    result = res.json()
    assert WRONG_SHAPE in result["problems"] and "(40, 48)" in result["problems"][WRONG_SHAPE]
    scores = {i: _info(server, i)["label_quality"] for i in result["ranking"]}
    assert result["ranking"][0] == CORRUPTED and len(result["ranking"]) == NUM - 1, json.dumps(scores, indent=1)
    nxt = _next(server).json()
    assert nxt["id"] == CORRUPTED and nxt["quality_map_tag"] == "label_quality"
    info = _info(server, CORRUPTED)
    assert info["label_quality"]["combined"] == pytest.approx(nxt["combined"])
    # the overlay: a label of the image's grid, high where the model disputes the label
    qmap = nib.load(study[0] / "labels" / "label_quality" / f"{CORRUPTED}.nii.gz")
    assert qmap.shape == SIZE and np.allclose(qmap.affine, AFFINE)
    disputed = np.asarray(qmap.dataobj)
    assert disputed[8:56, 8:56].mean() > disputed.mean()
    assert {p.name: _digest(p) for p in _labels_dir(study).iterdir()} == before  # nothing overwritten


def test_a_saved_label_leaves_the_queue_until_rescored(server, study):
    suspect = _info(server, CORRUPTED)["label_quality"]  # as the previous scoring left it
    corrected = make_echo_case(11, int(CORRUPTED.split("_")[1]), size=SIZE)["label"]
    path = study[1] / "corrected.nii.gz"
    save_nifti(corrected, path, AFFINE)
    assert _save_label(server, CORRUPTED, path).ok
    assert _digest(_labels_dir(study) / f"{CORRUPTED}.nii.gz") == _digest(path)
    nxt = _next(server).json()
    assert nxt and nxt["id"] != CORRUPTED
    result = _score(server).json()
    assert result["scored"] == 1 and result["reused"] == NUM - 2  # only the saved label was predicted again
    # the corrected label is no longer an outlier: its scores fell into the clean labels' spread (with every label
    # now clean one of them ranks first, so the rank itself says nothing)
    scores = {i: _info(server, i)["label_quality"] for i in result["ranking"]}
    others = [v for i, v in scores.items() if i != CORRUPTED]
    mine = scores[CORRUPTED]
    assert mine["loss"] < 0.6 * suspect["loss"], json.dumps({"before": suspect, "after": scores}, indent=1)
    assert mine["loss"] <= 1.25 * max(v["loss"] for v in others), json.dumps(scores, indent=1)
    assert mine["offset"] <= 1.25 * max(v["offset"] for v in others), json.dumps(scores, indent=1)


def test_train_one_epoch_and_scoring_is_refused_meanwhile(server, study):
    before = {p.name: _digest(p) for p in _labels_dir(study).iterdir()}
    model = server.app_dir / "model" / BUNDLE / "models" / "model.pt"
    model_before = _digest(model)
    params = {"max_epochs": 1, "val_split": 0.3, "device": "cpu", "multi_gpu": False}
    res = requests.post(f"{server.url}/train/{BUNDLE}", json=params, timeout=TIMEOUT)
    assert res.ok, res.text
    refused = _score(server)
    assert refused.status_code == 409 and "training" in refused.json()["detail"], refused.text
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        status = requests.get(f"{server.url}/train/", timeout=TIMEOUT).json()
        if status.get("status") in ("DONE", "ERROR"):
            break
        time.sleep(2)
    assert status.get("status") == "DONE", json.dumps(status)[-3000:] + server.tail()
    # training reads the annotators' labels and never writes them; it warm-started from and replaced the model
    assert {p.name: _digest(p) for p in _labels_dir(study).iterdir()} == before
    assert _digest(model) != model_before
    assert "Add Checkpoint Loader for Path" in server.tail(10**7)


def test_inference_uses_the_new_model_and_keeps_the_geometry(server, study):
    res = requests.post(f"{server.url}/infer/{BUNDLE}", params={"image": "echo_0", "output": "image"}, timeout=120)
    assert res.ok, res.text[-2000:] + server.tail()
    pred = nib.Nifti1Image.from_bytes(_gunzip(res.content))
    assert pred.shape == SIZE
    # the 2D mask keeps the image's spacing and origin (MONAI Label 0.8.5's own 2D writer drops them)
    assert np.allclose(pred.affine, AFFINE, atol=1e-5), pred.affine
    assert set(np.unique(np.asarray(pred.dataobj)).tolist()) <= {0, 1, 2, 3}
    assert "Reload model from cache" in server.tail(10**7)  # MONAI Label noticed the new model.pt


def test_unknown_image_is_an_error_and_the_server_keeps_serving(server):
    res = requests.post(f"{server.url}/infer/{BUNDLE}", params={"image": "no_such", "output": "image"}, timeout=60)
    assert res.status_code == 404 and "no_such" in res.json()["detail"]
    assert requests.get(f"{server.url}/info/", timeout=TIMEOUT).ok


def _gunzip(payload: bytes) -> bytes:
    import gzip

    return gzip.decompress(payload) if payload[:2] == b"\x1f\x8b" else payload
