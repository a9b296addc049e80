"""The echo bundle on tiny data (CPU): metadata, properties, export, train / evaluate / infer through ConfigWorkflow
and the real ``python -m monai.bundle run`` command, user datalists, CAMUS, resume, bad input, torchrun."""

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
    ECHO_TINY,
    bundle_paths,
    bundle_workflow,
    run_inference,
    run_torchrun_two_cpu,
    scores_of_every_training_sample,
)
from ignite.engine import Events
from monai.bundle import ConfigWorkflow, ckpt_export, verify_metadata, verify_net_in_out

from monai_noisylabel.bundle import prepare_echo_data
from monai_noisylabel.data import generate_echo_dataset, save_nifti
from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.handlers import LABEL_SCORES_COLUMNS, read_label_scores
from monai_noisylabel.refurbish import read_refurbish_manifest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "echo_noisylabel_segmentation"
CONFIGS = BUNDLE / "configs"
# MONAI's 2024-07-25 bundle metadata schema, kept with the tests (verify_metadata must not download it)
SCHEMA = Path(__file__).resolve().parent / "data" / "meta_schema_20240725.json"
TINY = {**ECHO_TINY, "report_top_k": 4}
TINY_INFER = {k: TINY[k] for k in ("image_size", "network_def#channels", "network_def#num_res_units")}


def _paths(tmp: Path) -> dict:
    return bundle_paths(BUNDLE, tmp)


def _workflow(config_files, workflow_type="train", **override) -> ConfigWorkflow:
    return bundle_workflow(BUNDLE, config_files, workflow_type, **override)


def _train(tmp: Path, **extra) -> ConfigWorkflow:
    wf = _workflow(["train.json"], **{**TINY, **_paths(tmp), **extra})
    wf.run()
    wf.finalize()
    return wf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run shared by the output, evaluate and inference tests."""
    tmp = tmp_path_factory.mktemp("echo_bundle")
    wf = _train(tmp)
    return tmp, wf


# ------------------------------------------------------------------------------------------------ metadata


def test_verify_metadata(tmp_path):
    schema = tmp_path / "schema.json"
    shutil.copy(SCHEMA, schema)
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(schema))
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert meta["required_packages_version"]["monai_noisylabel"]
    assert len(meta["network_data_format"]["inputs"]["image"]["spatial_shape"]) == 2


@pytest.mark.parametrize(("files", "kind"), [(["train.json"], "train"), (["inference.json"], "infer")])
def test_check_properties(tmp_path, files, kind):
    generate_echo_dataset(tmp_path / "data", num=8, size=(32, 32))
    wf = _workflow(files, kind, **_paths(tmp_path))
    assert not wf.check_properties()


def test_verify_net_in_out_and_ckpt_export(tmp_path):
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        device="cpu",
        bundle_root=str(BUNDLE),
    )
    net_ckpt = tmp_path / "model.pt"
    wf = _workflow(["inference.json"], "infer", **_paths(tmp_path))
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), net_ckpt)
    ts = tmp_path / "model.ts"
    ckpt_export(
        net_id="network_def",
        filepath=str(ts),
        ckpt_file=str(net_ckpt),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        bundle_root=str(BUNDLE),
    )
    scripted = torch.jit.load(str(ts))
    assert scripted(torch.zeros(1, 1, 64, 64)).shape == (1, 4, 64, 64)


# ---------------------------------------------------------------------------------------------- training


def test_training_outputs(trained):
    tmp, wf = trained
    out = tmp / "out"
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == TINY["max_epochs"]
    with open(out / "label_scores.csv") as f:
        header = next(csv.reader(f))
    assert header == list(LABEL_SCORES_COLUMNS)
    rows = read_label_scores(out / "label_scores.csv")
    data = wf.parser.get_parsed_content("data")
    assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in data["training"])
    assert all(r[c] is not None for r in rows for c in ("vog", "loss", "gmm_noisy_prob", "offset", "combined"))
    # the refurbished labels: in the manifest, on disk, in the csv
    manifest = read_refurbish_manifest(out)
    assert manifest and all(Path(m["refurbished_path"]).is_file() for m in manifest)
    refurbished = {r["id"] for r in rows if r["refurbished_label"]}
    assert refurbished == {m["id"] for m in manifest}
    # the noise was injected at the requested rate, originals untouched (corrupted copies live under output_dir)
    assert len(data["corrupted"]) == round(TINY["noise_rate"] * len(data["training"]))
    assert all(str(out) in e["label"] for e in data["training"] if e["id"] in data["corrupted"])
    # model-zoo rule: models/model.pt is a state dict of the network
    state = torch.load(tmp / "models" / "model.pt", map_location="cpu", weights_only=True)
    net = wf.parser.get_parsed_content("network_def", instantiate=True)
    net.load_state_dict(state)
    # report, curves, metrics
    html = (out / "report" / "index.html").read_text()
    for png in ("score_histograms.png", "training_curves.png", "suspects.png"):
        assert (out / "report" / png).stat().st_size > 1000 and png in html
    history = json.loads((out / "history.json").read_text())
    assert len(history["train_loss"]) == TINY["max_epochs"] and "val_dice_LV" in history
    metrics = json.loads((out / "detection_metrics.json").read_text())
    assert 0.0 <= metrics["auroc_combined"] <= 1.0
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert (out / "checkpoints").is_dir() and list((out / "checkpoints").glob("checkpoint_epoch=*.pt"))


def test_evaluate(trained):
    tmp, _ = trained
    wf = _workflow(["train.json", "evaluate.json"], **{**TINY, **_paths(tmp)})
    wf.run()
    wf.finalize()
    eval_dir = tmp / "out" / "eval"
    metrics = dict(row for row in csv.reader(open(eval_dir / "metrics.csv")))
    for name in ("dice_LV", "dice_myocardium", "dice_LA", "hd95_LV", "hd95_myocardium", "hd95_LA"):
        assert name in metrics and (eval_dir / f"{name}_raw.csv").is_file()
    raw = (eval_dir / "dice_LV_raw.csv").read_text().splitlines()
    test_ids = [e["id"] for e in wf.parser.get_parsed_content("data")["test"]]
    assert len(raw) == len(test_ids) + 1  # header + one row per test image
    assert any(i in raw[1] for i in test_ids)


def test_inference_keeps_the_input_geometry(trained, tmp_path):
    tmp, _ = trained
    images = tmp_path / "images"
    for i in range(2):  # another native size than the network's: the mask must come back in the input's grid
        case = make_echo_case(5, i, size=(40, 48))
        save_nifti(case["image"], images / f"new{i}.nii.gz", np.diag([0.4, 0.3, 1.0, 1.0]))
    run_inference(BUNDLE, images, tmp_path / "pred", tmp / "models", **TINY_INFER)
    for i in range(2):
        pred = nib.load(tmp_path / "pred" / f"new{i}_seg.nii.gz")
        src = nib.load(images / f"new{i}.nii.gz")
        assert pred.shape[:2] == src.shape[:2] and np.allclose(pred.affine, src.affine)
        assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1, 2, 3}


def test_bundle_run_command(tmp_path):
    """The real CLI, as a user (and README command 1) runs it."""
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.json")]
    args += ["--logging_file", str(CONFIGS / "logging.conf")]
    for k, v in {**TINY, **_paths(tmp_path), "max_epochs": 2}.items():
        args += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "report: " in res.stdout and "detection AUROC" in res.stdout
    assert (tmp_path / "out" / "report" / "index.html").is_file()
    assert (tmp_path / "models" / "model.pt").is_file()


def test_resume_after_a_killed_run(tmp_path):
    first = _workflow(["train.json"], **{**TINY, **_paths(tmp_path)})
    trainer = first.parser.get_parsed_content("train#trainer")
    trainer.add_event_handler(Events.EPOCH_COMPLETED(once=2), lambda e: e.terminate())  # killed after epoch 2
    first.run()
    assert trainer.state.epoch == 2
    # select_first: the samples flagged after epoch 2 are held out, not yet relabelled; the checkpoint keeps them
    handler = first.parser.get_parsed_content("refurbish_handler")
    store_ids = sorted(set(handler.pending) | set(handler.store.ids()))
    assert store_ids
    ckpt = torch.load(tmp_path / "out" / "checkpoints" / "checkpoint_epoch=2.pt", weights_only=True)
    assert sorted(ckpt["refurbish"]["pending"]) == sorted(handler.pending)
    second = _train(tmp_path)
    trainer = second.parser.get_parsed_content("train#trainer")
    assert trainer.state.epoch == 3
    # the resumed run started from the checkpoint of epoch 2: the store came back before epoch 3 trained
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert [p[0] for p in history["train_loss"]] == [1, 2, 3]
    assert set(store_ids) <= set(second.parser.get_parsed_content("label_store").ids())


# ------------------------------------------------------------------------------------------ data sources


@pytest.mark.dataset_edits  # writes its own datalist into the generated tree
def test_user_datalist(tmp_path):
    src = generate_echo_dataset(tmp_path / "mine", num=16, size=(32, 32))
    full = json.loads(src.read_text())
    mine = {"training": full["training"][:8], "validation": full["validation"], "test": []}
    path = tmp_path / "mine" / "my_datalist.json"
    path.write_text(json.dumps(mine))
    wf = _train(tmp_path, datalist=str(path), max_epochs=1, noise_kind=None)
    data = wf.parser.get_parsed_content("data")
    assert data["source"] == "datalist" and len(data["training"]) == 8 and data["corrupted"] is None
    assert not (tmp_path / "data").exists()  # nothing generated
    rows = read_label_scores(tmp_path / "out" / "label_scores.csv")
    assert len(rows) == 8


def test_monai_label_style_overrides(tmp_path):
    """MONAI Label sets train#dataset#data / validate#dataset#data to {"image", "label"} dicts without ids."""
    src = generate_echo_dataset(tmp_path / "labelstore", num=12, size=(32, 32))
    full = json.loads(src.read_text())

    def plain(section):
        return [{"image": str(src.parent / e["image"]), "label": str(src.parent / e["label"])} for e in full[section]]

    train = plain("training")
    wf = _train(
        tmp_path,
        max_epochs=1,
        noise_kind=None,
        **{"train#dataset#data": train, "validate#dataset#data": plain("validation")},
    )
    assert not (tmp_path / "data").exists()  # the built-in data were not generated
    rows = read_label_scores(tmp_path / "out" / "label_scores.csv")
    assert sorted(r["id"] for r in rows) == sorted(e["label"] for e in train)  # ids fall back to the label path
    assert (tmp_path / "models" / "model.pt").is_file()
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 1


def _camus_2023(root: Path, patients=range(1, 7), split=None) -> Path:
    base = root / "CAMUS_public"
    for i in patients:
        pdir = base / "database_nifti" / f"patient{i:04d}"
        for j, view in enumerate(("2CH", "4CH")):
            (pdir).mkdir(parents=True, exist_ok=True)
            (pdir / f"Info_{view}.cfg").write_text("ED: 1\nES: 2\nNbFrame: 2\nImageQuality: Good\n")
            for k, phase in enumerate(("ED", "ES")):
                case = make_echo_case(i, 4 * j + k, size=(36, 44))
                save_nifti(case["image"], pdir / f"patient{i:04d}_{view}_{phase}.nii.gz")
                save_nifti(case["label"], pdir / f"patient{i:04d}_{view}_{phase}_gt.nii.gz")
    split = split or {"training": [1, 2, 3, 4], "validation": [5], "testing": [6]}
    (base / "database_split").mkdir(parents=True)
    for name, ids in split.items():
        (base / "database_split" / f"subgroup_{name}.txt").write_text("".join(f"patient{i:04d}\n" for i in ids))
    return base


def test_camus_tree(tmp_path):
    camus = _camus_2023(tmp_path / "release")  # outputs go outside the dataset folder
    wf = _train(tmp_path, dataset_dir=str(camus.parent), max_epochs=1)
    data = wf.parser.get_parsed_content("data")
    assert data["source"] == "camus"
    assert len(data["training"]) == 16 and len(data["validation"]) == 4 and len(data["test"]) == 4
    assert len(read_label_scores(tmp_path / "out" / "label_scores.csv")) == 16


# ------------------------------------------------------------------------------------------------ bad input


def test_unknown_noise_kind_fails_before_training(tmp_path):
    wf = _workflow(["train.json"], **{**TINY, **_paths(tmp_path), "noise_kind": "gaussian"})
    with pytest.raises(RuntimeError) as info:
        wf.run()
    causes = []
    e: BaseException | None = info.value
    while e is not None:
        causes.append(str(e))
        e = e.__cause__
    assert any("'noise_kind'" in c and "'gaussian'" in c for c in causes), causes
    assert not (tmp_path / "out" / "checkpoints").exists()


@pytest.mark.dataset_edits  # deletes a label from the generated tree
def test_datalist_with_missing_files(tmp_path):
    src = generate_echo_dataset(tmp_path / "mine", num=8, size=(32, 32))
    (tmp_path / "mine" / "labelsTr" / f"{json.loads(src.read_text())['training'][0]['id']}.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match="labelsTr"):
        prepare_echo_data(tmp_path / "unused", output_dir=tmp_path / "out", datalist=src)


def test_camus_missing_split_file(tmp_path):
    camus = _camus_2023(tmp_path, patients=range(1, 4), split={"training": [1], "validation": [2]})
    with pytest.raises(FileNotFoundError, match="subgroup_testing"):
        prepare_echo_data(camus, output_dir=tmp_path / "out")


def test_non_dataset_folder_is_refused(tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="dataset_dir"):
        prepare_echo_data(tmp_path / "junk", output_dir=tmp_path / "out")


# ------------------------------------------------------------------------------------------------ devices


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    run_torchrun_two_cpu(BUNDLE, tmp_path, 29533, **{**TINY, **_paths(tmp_path), "max_epochs": 2})
    rows = scores_of_every_training_sample(tmp_path / "out", tmp_path / "out" / "noisy_labels" / "datalist.json")
    assert all(r["loss"] is not None and r["vog"] is not None for r in rows)
    assert (tmp_path / "models" / "model.pt").is_file() and (tmp_path / "out" / "report" / "index.html").is_file()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_amp_training(tmp_path):
    wf = _train(tmp_path, device="$torch.device('cuda:0')", amp=True, max_epochs=2)
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 2
    assert (tmp_path / "out" / "report" / "index.html").is_file()


def test_mlflow_tracking(tmp_path):
    """``--tracking mlflow`` with MONAI's default settings: a local SQLite store under ``output_dir``."""
    mlflow = pytest.importorskip("mlflow")
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(CONFIGS / "train.json")]
    args += ["--tracking", "mlflow", "--experiment_name", "echo_test"]
    for k, v in {**TINY, **_paths(tmp_path), "max_epochs": 1}.items():
        args += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    res = subprocess.run(args, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'out' / 'mlruns.db'}")
    experiment = client.get_experiment_by_name("echo_test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and {"val_mean_dice", "train_loss"} <= set(runs[0].data.metrics)
