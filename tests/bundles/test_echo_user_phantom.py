"""The echo bundle on a user's own data: phantom C (``tests/phantoms/echo_c.py``), written independently of the
package's echo generators and label-noise transforms, as PNG files of a non-square size with its own label errors.

The bundle runs as the docs tell a user (``train.json`` + ``demo_cpu.json``, ``datalist``, ``noise_kind none``)
through ``ConfigWorkflow``; its ``label_scores.csv`` is scored against the phantom's own record of what it corrupted.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_testlib import bundle_workflow
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from phantoms.echo_c import KINDS, LA, LV, MYO, corrupt, score_run, write_echo_c

from monai_noisylabel.bundle import noise_manifest, prepare_echo_data
from monai_noisylabel.data import save_nifti
from monai_noisylabel.data.datalist import DatalistError

BUNDLE = Path(__file__).resolve().parents[2] / "bundles" / "echo_noisylabel_segmentation"


def _read(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_phantom_records_what_it_corrupted(tmp_path):
    datalist = write_echo_c(tmp_path, kind="systematic", rate=0.5, num_train=6, num_val=2, num_test=1, size=(60, 52))
    data = json.loads(datalist.read_text())
    assert [len(data[s]) for s in ("training", "validation", "test")] == [6, 2, 1]
    with open(tmp_path / "corruption.csv") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    assert sum(int(r["corrupted"]) for r in rows.values()) == 3
    for entry in data["training"]:
        given, clean = _read(tmp_path / entry["label"]), _read(tmp_path / "clean_labels" / f"{entry['id']}.png")
        assert given.shape == clean.shape == (60, 52) and set(np.unique(clean)) == {0, LV, MYO, LA}
        if rows[entry["id"]]["corrupted"] == "1":  # the LV grows over the wall, never into the LA
            assert (given == LV).sum() > (clean == LV).sum() and ((given == LV) <= (clean != LA)).all()
        else:
            np.testing.assert_array_equal(given, clean)
    for entry in data["validation"] + data["test"]:
        assert _read(tmp_path / entry["label"]).max() == LA


@pytest.mark.parametrize("kind", KINDS[1:])
def test_each_corruption_changes_the_label_its_own_way(tmp_path, kind):
    write_echo_c(tmp_path, kind="none", rate=0.0, num_train=1, num_val=0, num_test=0)
    clean = _read(tmp_path / "clean_labels" / "case0000.png")
    wrong, detail = corrupt(clean, kind, np.random.default_rng(3))
    changed = wrong != clean
    assert changed.any() and detail, kind
    if kind == "omission":
        assert (wrong == LA).sum() == 0 or (wrong == MYO).sum() == 0
    if kind.startswith("subtle"):  # 1-2 px: a thin band along the contours
        assert changed.mean() < 0.05, changed.mean()
    with pytest.raises(ValueError, match="'kind' parameter"):
        corrupt(clean, "flip", np.random.default_rng(0))


def _prepare(tmp_path: Path, datalist: Path, **kwargs) -> dict:
    return prepare_echo_data(tmp_path / "none", output_dir=tmp_path / "out", datalist=datalist, num_classes=4, **kwargs)


def test_png_labels_with_the_demo_noise_default_say_how_to_train_on_them(tmp_path):
    datalist = write_echo_c(tmp_path / "user", kind="none", num_train=4, num_val=2, num_test=0, size=(40, 36))
    # the bundle's default noise_kind ('bias', for the synthetic demo) would add simulated errors to user labels
    with pytest.raises(ValueError, match=r"'noise_kind' parameter .* --noise_kind none .* Got 'bias' instead"):
        _prepare(tmp_path, datalist, noise_kind="bias", noise_rate=0.25)
    assert not (tmp_path / "out" / "noisy_labels").exists()
    data = _prepare(tmp_path, datalist, noise_kind="none")
    assert data["corrupted"] == [] and len(data["training"]) == 4 and data["training"][0]["label"].endswith(".png")


def test_a_decathlon_test_section_without_labels_is_left_to_inference(tmp_path):
    datalist = write_echo_c(tmp_path / "user", kind="none", num_train=4, num_val=2, num_test=3, size=(40, 36))
    raw = json.loads(datalist.read_text())
    for entry in raw["training"] + raw["validation"]:
        del entry["id"]  # ids fall back to the label paths
    raw["test"] = [raw["test"][0]["image"], {"image": raw["test"][1]["image"]}, raw["test"][2]]
    datalist.write_text(json.dumps(raw))
    data = _prepare(tmp_path, datalist, noise_kind="none")
    assert [e["id"] for e in data["test"]] == ["case0008"] and len(data["validation"]) == 2
    del raw["validation"][1]["label"]
    datalist.write_text(json.dumps(raw))
    with pytest.raises(DatalistError, match=r"\(validation\): entry 1 .* has no 'label' key"):
        _prepare(tmp_path, datalist, noise_kind="none")


def test_corrupted_flags_in_a_user_datalist_are_what_detection_is_scored_against(tmp_path):
    datalist = write_echo_c(tmp_path / "user", kind="omission", rate=0.5, num_train=4, num_val=2, size=(40, 36))
    data = _prepare(tmp_path, datalist, noise_kind="none")
    truth = [e["id"] for e in json.loads(datalist.read_text())["training"] if e["corrupted"]]
    assert data["corrupted"] == truth and len(truth) == 2
    assert (
        noise_manifest(tmp_path / "out", "none", 0.25) == data["manifest"] == tmp_path / "out" / "known_corruption.json"
    )
    raw = json.loads(datalist.read_text())
    raw["training"][0]["corrupted"] = "yes"
    datalist.write_text(json.dumps(raw))
    with pytest.raises(DatalistError, match=r"every one must, as true or false. Got 'yes' for id 'case0000'"):
        _prepare(tmp_path, datalist, noise_kind="none")
    for entry in raw["training"]:
        del entry["corrupted"]
    datalist.write_text(json.dumps(raw))
    assert _prepare(tmp_path, datalist, noise_kind="none")["corrupted"] is None  # the earlier record is gone
    assert noise_manifest(tmp_path / "out", "none", 0.25) is None


def test_colour_images_are_named_not_their_labels(tmp_path):
    datalist = write_echo_c(tmp_path / "user", kind="none", num_train=2, num_val=1, num_test=0, size=(40, 36))
    image = tmp_path / "user" / "images" / "case0001.png"
    Image.fromarray(np.repeat(_read(image)[..., None], 3, axis=-1)).save(image)  # an RGB screenshot
    with pytest.raises(ValueError, match=r"entry 1 .* 'image' file .*case0001.png' has 3 colour channels"):
        _prepare(tmp_path, datalist, noise_kind="none")


def test_inference_writes_png_masks_in_the_png_inputs_orientation(tmp_path):
    write_echo_c(tmp_path / "user", kind="none", num_train=2, num_val=1, num_test=2, size=(40, 36))
    net = {"image_size": [32, 32], "network_def#channels": [4, 8, 16, 32, 64], "network_def#num_res_units": 1}
    paths = {"bundle_root": str(BUNDLE), "ckpt_dir": str(tmp_path), "output_dir": str(tmp_path / "pred")}
    wf = bundle_workflow(BUNDLE, ["inference.json"], "infer", **net, **paths, dataset_dir=str(tmp_path / "user"))
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), tmp_path / "model.pt")
    wf = bundle_workflow(
        BUNDLE, ["inference.json"], "infer", **net, **paths, dataset_dir=str(tmp_path / "user"), output_ext=".png"
    )
    wf.run()
    wf.finalize()
    # MONAI reads a PNG as (columns, rows); written back as PNG, the mask has the input's own (rows, columns)
    for cid in ("case0003", "case0004"):
        mask = _read(tmp_path / "pred" / f"{cid}_seg.png")
        assert mask.shape == _read(tmp_path / "user" / "images" / f"{cid}.png").shape == (40, 36)
        assert mask.max() < 4


def test_a_nifti_label_saved_from_a_png_array_gets_the_axis_hint(tmp_path):
    datalist = write_echo_c(tmp_path / "user", kind="none", num_train=2, num_val=1, num_test=0, size=(40, 36))
    raw = json.loads(datalist.read_text())
    label = tmp_path / "user" / raw["training"][0]["label"]
    raw["training"][0]["label"] = str(save_nifti(_read(label), label.with_suffix(".nii.gz")))  # (rows, columns)
    datalist.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"shape \(36, 40\). Got shape \(40, 36\) instead. MONAI reads PNG/JPEG"):
        _prepare(tmp_path, datalist, noise_kind="none")


@pytest.mark.slow
def test_bundle_finds_a_systematic_bias_on_the_user_phantom(tmp_path):
    datalist = write_echo_c(
        tmp_path / "user", kind="systematic", rate=0.5, num_train=32, num_val=10, num_test=0, size=(60, 52), seed=1
    )
    out = tmp_path / "out"
    wf = bundle_workflow(
        BUNDLE,
        ["train.json", "demo_cpu.json"],
        bundle_root=str(BUNDLE),
        datalist=str(datalist),
        noise_kind="none",
        output_dir=str(out),
        ckpt_dir=str(tmp_path / "models"),
        image_size=[48, 48],
        batch_size=4,
        learning_rate=0.005,
        num_workers=0,
        max_epochs=12,
        refurbish=False,
        **{"network_def#channels": [8, 16, 32, 64, 64], "network_def#num_res_units": 1},
    )
    wf.run()
    wf.finalize()
    res = score_run(tmp_path / "user", out)
    assert res["n"] == 32 and res["n_corrupted"] == 16
    # the offset score against the clean validation set is the one that sees a bias half the labels share;
    # measured 1.00 (seeds 1 and 2), flags precision 1.00, recall 0.88-0.94
    assert res["auroc_offset"] >= 0.9 and res["auroc_combined"] >= 0.9 and res["ap_combined"] >= 0.9, res
    assert res["flag_precision"] >= 0.8 and res["flag_recall"] >= 0.5, res
    # the datalist's own 'corrupted' flags gave the run's summary the same figures
    summary = json.loads((out / "detection_metrics.json").read_text())
    assert summary["num_corrupted"] == 16 and summary["auroc_offset"] == pytest.approx(res["auroc_offset"], abs=1e-4)
    assert summary["flag_recall"] == pytest.approx(res["flag_recall"], abs=1e-4)
