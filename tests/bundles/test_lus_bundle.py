"""The LUS confidence-label bundle on tiny data (CPU): metadata, properties, export, train / evaluate / infer through
ConfigWorkflow and the real ``python -m monai.bundle run`` command, label variants, user datalists, bad input."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from bundle_testlib import (
    bundle_paths,
    bundle_workflow,
    run_torchrun_two_cpu,
)
from ignite.engine import Events
from monai.bundle import ConfigWorkflow, ckpt_export, verify_metadata, verify_net_in_out

from monai_noisylabel.data import generate_lus_dataset, save_nifti
from monai_noisylabel.data.synthetic import LUS_CLASSES, make_lus_case

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "lus_confidence_segmentation"
CONFIGS = BUNDLE / "configs"
SCHEMA = Path(__file__).resolve().parent / "data" / "meta_schema_20240725.json"
NET = {"network_def#channels": [4, 8, 16, 32], "network_def#strides": [2, 2, 2], "network_def#num_res_units": 1}
TINY = {
    "image_size": [32, 32],
    "num_synthetic": 40,
    "max_epochs": 2,
    "batch_size": 8,
    "val_interval": 1,
    "num_workers": 0,
    "cv_repeats": 1,
    **NET,
}


def _paths(tmp: Path) -> dict:
    return bundle_paths(BUNDLE, tmp)


def _workflow(config_files, workflow_type="train", **override) -> ConfigWorkflow:
    return bundle_workflow(BUNDLE, config_files, workflow_type, **override)


def _run(config_files, tmp: Path, **extra) -> ConfigWorkflow:
    wf = _workflow(config_files, **{**TINY, **_paths(tmp), **extra})
    wf.run()
    wf.finalize()
    return wf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lus_bundle")
    return tmp, _run(["train.json"], tmp)


def test_verify_metadata(tmp_path):
    schema = tmp_path / "schema.json"
    shutil.copy(SCHEMA, schema)
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(schema))
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert len(meta["network_data_format"]["inputs"]["image"]["spatial_shape"]) == 2
    names = list(meta["network_data_format"]["outputs"]["pred"]["channel_def"].values())
    assert names == ["background", *LUS_CLASSES]


@pytest.mark.parametrize(("files", "kind"), [(["train.json"], "train"), (["inference.json"], "infer")])
def test_check_properties(tmp_path, files, kind):
    generate_lus_dataset(tmp_path / "data", num=8, size=(32, 32))
    wf = _workflow(files, kind, **_paths(tmp_path))
    assert not wf.check_properties()
    if kind == "train":
        assert "validate" in wf.parser.config  # MONAI Label's bundle trainer needs the validate section


def test_no_positional_references():
    for f in CONFIGS.glob("*.json"):
        text = f.read_text()
        assert not any(f"#{i}" in text for i in range(10)), f


def test_verify_net_in_out_and_ckpt_export(tmp_path):
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        device="cpu",
        bundle_root=str(BUNDLE),
    )
    wf = _workflow(["inference.json"], "infer", **_paths(tmp_path))
    ckpt = tmp_path / "model.pt"
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), ckpt)
    ts = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts),
        ckpt_file=str(ckpt),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        bundle_root=str(BUNDLE),
    )
    assert torch.jit.load(str(ts))(torch.zeros(1, 1, 64, 64)).shape == (1, 5, 64, 64)


def test_demo_model_loads_into_inference(tmp_path):
    """The CPU demo trains the network inference.json builds, at the same input size."""
    demo = _workflow(["train.json", "demo_cpu.json"], **_paths(tmp_path))
    infer = _workflow(["inference.json"], "infer", **_paths(tmp_path))
    state = demo.parser.get_parsed_content("network_def").state_dict()
    infer.parser.get_parsed_content("network_def").load_state_dict(state)
    assert demo.parser.get_parsed_content("image_size") == infer.parser.get_parsed_content("image_size")


def test_training_outputs(trained):
    tmp, wf = trained
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == TINY["max_epochs"]
    state = torch.load(tmp / "models" / "model.pt", map_location="cpu", weights_only=True)
    wf.parser.get_parsed_content("network_def", instantiate=True).load_state_dict(state)
    history = json.loads((tmp / "out" / "history.json").read_text())
    assert len(history["train_loss"]) == 2 and "val_dice_b_line" in history
    data = wf.parser.get_parsed_content("data")
    assert data["source"] == "synthetic"
    patients = {s: {e["patient"] for e in data["entries"][s]} for s in ("training", "validation", "test")}
    assert not patients["training"] & patients["test"] and not patients["training"] & patients["validation"]


def test_evaluate_writes_metrics_and_downstream(trained):
    tmp, _ = trained
    wf = _run(["train.json", "evaluate.json"], tmp)
    eval_dir = tmp / "out" / "eval"
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    assert metrics["reference"] == "truth" and metrics["section"] == "test"
    assert set(metrics["dice"]) == set(LUS_CLASSES) and set(metrics["iou"]) == set(LUS_CLASSES)
    assert all(0 <= metrics["iou"][c] <= metrics["dice"][c] + 1e-9 <= 1 + 1e-9 for c in LUS_CLASSES)
    rows = list(csv.DictReader(open(eval_dir / "segmentation_per_frame.csv")))
    data = wf.parser.get_parsed_content("data")
    test_ids = {e["id"] for e in data["test"]}
    assert {r["id"] for r in rows} == test_ids
    down = list(csv.DictReader(open(eval_dir / "downstream.csv")))
    everyone = {"expert_labels_all_patients", "true_masks_all_patients"}
    assert {r["source"] for r in down} == {"predicted", "expert_labels", "true_masks"} | everyone
    # the reference rows on every patient of the set, scored out of fold, cover more patients than the test split
    n = {r["source"]: int(r["n_patients"]) for r in down if r["task"] == "sf_regression"}
    n_all = len({e["patient"] for s in ("training", "validation", "test") for e in data["entries"][s]})
    assert n["true_masks_all_patients"] == n_all > n["true_masks"]
    assert {(r["task"], r["metric"]) for r in down} == {
        ("sf_regression", "mae"),
        ("sf_regression", "pearson_r"),
        ("sf_change", "auc"),
        ("readmission", "auc"),
    }


def test_resume_after_a_killed_run(tmp_path):
    first = _workflow(["train.json"], **{**TINY, **_paths(tmp_path), "num_synthetic": 16})
    trainer = first.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(Events.EPOCH_COMPLETED(once=1), lambda e: e.terminate())  # killed after epoch 1
    first.run()
    assert trainer.state.epoch == 1
    second = _run(["train.json"], tmp_path, num_synthetic=16)
    assert second.parser.get_parsed_content("train#trainer").state.epoch == 2
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert [p[0] for p in history["train_loss"]] == [1, 2]  # epoch 1 was not trained again


@pytest.mark.parametrize("mode", ["soft", "ignore_band", "confidence_weighted"])
def test_label_variants_train(tmp_path, mode):
    wf = _run(["train.json"], tmp_path, label_mode=mode, max_epochs=1, num_synthetic=16)
    batch = next(iter(wf.parser.get_parsed_content("train#dataloader")))
    label = batch["label"]
    if mode == "soft":
        assert label.shape[1] == 5 and torch.allclose(label.sum(1), torch.ones(()), atol=1e-5)
    elif mode == "confidence_weighted":  # class map + weight in [0, 1], lower where the experts were unsure
        assert label.shape[1] == 2 and 0 <= label[:, 1].min() < 0.5 and label[:, 1].max() <= 1
    else:
        assert label.shape[1] == 1 and (label == 255).any()  # the band below the threshold is ignored
    assert (tmp_path / "models" / "model.pt").is_file()


def test_inference_gives_2d_masks_in_the_input_grid(trained, tmp_path):
    tmp, _ = trained
    images = tmp_path / "images"
    for i in range(2):
        save_nifti(make_lus_case(3, i, (40, 48))["image"], images / f"f{i}.nii.gz", np.diag([0.3, 0.2, 1.0, 1.0]))
    over = {"image_size": TINY["image_size"], **NET, "bundle_root": str(BUNDLE), "dataset_dir": str(images)}
    wf = _workflow(["inference.json"], "infer", output_dir=str(tmp_path / "pred"), ckpt_dir=str(tmp / "models"), **over)
    wf.run()
    wf.finalize()
    for i in range(2):
        pred = nib.load(tmp_path / "pred" / f"f{i}_seg.nii.gz")
        assert pred.shape == (40, 48) and np.allclose(pred.affine, nib.load(images / f"f{i}.nii.gz").affine)
        assert set(np.unique(np.asarray(pred.dataobj))) <= set(range(5))


def test_bundle_run_command(trained, tmp_path):
    """The real CLI as a user runs it (one subprocess: evaluate the trained model; training runs the same way)."""
    tmp, _ = trained
    files = [str(CONFIGS / "train.json"), str(CONFIGS / "evaluate.json")]
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", json.dumps(files)]
    args += ["--logging_file", str(CONFIGS / "logging.conf")]
    over = {**TINY, **_paths(tmp), "output_dir": str(tmp_path / "out")}
    for k, v in over.items():
        args += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "mean           Dice" in res.stdout and "downstream" in res.stdout
    assert (tmp_path / "out" / "eval" / "metrics.json").is_file()


def _user_datalist(tmp: Path, *, scale: float = 10.0, channel_first: bool = True, truth: bool = False) -> Path:
    """A user's datalist: confidences on 0-10, (C, H, W) files, no truth, clinical fields for most frames."""
    root = tmp / "user"
    sections: dict[str, list] = {"training": [], "validation": [], "test": []}
    for i in range(20):
        case = make_lus_case(9, i, (32, 32))
        cid = f"u{i:02d}"
        conf = case["confidence"] * scale
        save_nifti(case["image"], root / f"{cid}_img.nii.gz")
        save_nifti(np.moveaxis(conf, -1, 0) if channel_first else conf, root / f"{cid}_conf.nii.gz")
        entry = {"id": cid, "image": f"{cid}_img.nii.gz", "confidence": f"{cid}_conf.nii.gz"}
        if truth:
            save_nifti(case["truth"], root / f"{cid}_truth.nii.gz")
            entry["truth"] = f"{cid}_truth.nii.gz"
        if i != 3:  # one frame without clinical data
            entry.update({k: case[k] for k in ("patient", "timepoint", "sf_ratio", "sf_change", "readmission_30d")})
        sections["training" if i < 12 else "validation" if i < 14 else "test"].append(entry)
    path = root / "datalist.json"
    path.write_text(json.dumps(sections))
    return path


def test_user_datalist_0_10_channel_first(tmp_path):
    path = _user_datalist(tmp_path)
    before = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    extra = {"datalist": str(path), "confidence_scale": "0-10", "confidence_channel_dim": 0, "max_epochs": 1}
    _run(["train.json"], tmp_path, **extra)
    wf = _run(["train.json", "evaluate.json"], tmp_path, **extra)
    data = wf.parser.get_parsed_content("data")
    assert data["source"] == "datalist" and len(data["training"]) == 12
    assert not (tmp_path / "data").exists()  # nothing generated
    metrics = json.loads((tmp_path / "out" / "eval" / "metrics.json").read_text())
    assert metrics["reference"] == "expert labels at threshold 0.6"
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == before  # inputs untouched


# ------------------------------------------------------------------------------------------------ bad input


def _causes(e: BaseException | None) -> list[str]:
    out = []
    while e is not None:
        out.append(str(e))
        e = e.__cause__
    return out


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("scale", "outside the declared confidence_scale '0-1'"),
        ("nan", "NaN"),
        ("channels", "expected 4 class channels"),
        ("shape", "differs from the image's"),
        ("clinical", "'sf_ratio' field of case 'u05'"),
    ],
)
def test_bad_user_data_fails_before_training(tmp_path, damage, message):
    path = _user_datalist(tmp_path, scale=1.0, channel_first=False)
    root = path.parent
    conf = root / "u05_conf.nii.gz"
    arr = np.asarray(nib.load(conf).dataobj, dtype=np.float32)
    if damage == "scale":
        arr = arr * 10
    elif damage == "nan":
        arr[0, 0, 0] = np.nan
    elif damage == "channels":
        arr = arr[..., :3]
    elif damage == "shape":
        arr = arr[:30]
    if damage == "clinical":
        data = json.loads(path.read_text())
        data["training"][5]["sf_ratio"] = "low"
        path.write_text(json.dumps(data))
    else:
        save_nifti(arr, conf)
    wf = _workflow(["train.json"], **{**TINY, **_paths(tmp_path), "datalist": str(path)})
    with pytest.raises(RuntimeError) as info:
        wf.run()
    causes = _causes(info.value)
    assert any(message in c for c in causes), causes
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    run_torchrun_two_cpu(BUNDLE, tmp_path, 29541, **{**TINY, **_paths(tmp_path), "max_epochs": 1})
    assert (tmp_path / "models" / "model.pt").is_file()
