"""The knee BML bundle on tiny data (CPU): metadata, properties, export, train (NAP and BCE) / evaluate / infer
through ConfigWorkflow and ``python -m monai.bundle run``, user datalists, MONAI Label overrides, resume, knee-compare."""

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
    run_inference,
    run_torchrun_two_cpu,
    scores_of_every_training_sample,
)
from monai.bundle import ConfigWorkflow, ckpt_export, verify_metadata, verify_net_in_out

from monai_noisylabel.bundle.knee_eval import CSV_COLUMNS
from monai_noisylabel.cli import main
from monai_noisylabel.data import generate_knee_dataset, save_nifti
from monai_noisylabel.data.synthetic import make_knee_case
from monai_noisylabel.handlers import LABEL_SCORES_COLUMNS, read_label_scores

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "knee_bml_softlabel_segmentation"
CONFIGS = BUNDLE / "configs"
SCHEMA = Path(__file__).resolve().parent / "data" / "meta_schema_20240725.json"
NET = {"network_def#channels": [4, 8, 16, 32]}
TINY = {
    **NET,
    "num_synthetic": 8,
    "image_size": [32, 32, 32],
    "patch_size": [16, 16, 16],
    "num_patches": 2,
    "max_epochs": 2,
    "val_interval": 1,
    "num_workers": 0,
    "detection_warmup": 0,
    "loss_every": 1,
    "vog_epochs": 1,
    "report_top_k": 4,
}
TINY_INFER = {**NET, "patch_size": [16, 16, 16]}


def _paths(tmp: Path) -> dict:
    return bundle_paths(BUNDLE, tmp)


def _workflow(config_files, workflow_type="train", **override) -> ConfigWorkflow:
    return bundle_workflow(BUNDLE, config_files, workflow_type, **override)


def _train(tmp: Path, files=("train.json",), **extra) -> ConfigWorkflow:
    wf = _workflow(list(files), **{**TINY, **_paths(tmp), **extra})
    wf.run()
    wf.finalize()
    return wf


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny soft-label + NAP run shared by the output, evaluate and inference tests."""
    tmp = tmp_path_factory.mktemp("knee_bundle")
    return tmp, _train(tmp)


def test_verify_metadata(tmp_path):
    schema = tmp_path / "schema.json"
    shutil.copy(SCHEMA, schema)
    verify_metadata(meta_file=str(CONFIGS / "metadata.json"), filepath=str(schema))
    meta = json.loads((CONFIGS / "metadata.json").read_text())
    assert len(meta["network_data_format"]["inputs"]["image"]["spatial_shape"]) == 3
    # the saved mask's values, as MONAI Label reads them: {"bone marrow lesion": 1}
    channel_def = meta["network_data_format"]["outputs"]["pred"]["channel_def"]
    assert {v: int(k) for k, v in channel_def.items() if v != "background"} == {"bone marrow lesion": 1}


@pytest.mark.parametrize(("files", "kind"), [(["train.json"], "train"), (["inference.json"], "infer")])
def test_check_properties(tmp_path, files, kind):
    generate_knee_dataset(tmp_path / "data", num=4, size=(16, 16, 16))  # what the properties' data resolve to
    wf = _workflow(files, kind, **_paths(tmp_path))
    assert not wf.check_properties()


def test_verify_net_in_out_and_ckpt_export(tmp_path):
    verify_net_in_out(
        net_id="network_def",
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        device="cpu",
        n=2,
        bundle_root=str(BUNDLE),
    )
    wf = _workflow(["inference.json"], "infer", **_paths(tmp_path))
    torch.save(wf.parser.get_parsed_content("network_def").state_dict(), tmp_path / "model.pt")
    ckpt_export(
        net_id="network_def",
        filepath=str(tmp_path / "model.ts"),
        ckpt_file=str(tmp_path / "model.pt"),
        meta_file=str(CONFIGS / "metadata.json"),
        config_file=str(CONFIGS / "inference.json"),
        bundle_root=str(BUNDLE),
    )
    assert torch.jit.load(str(tmp_path / "model.ts"))(torch.zeros(1, 1, 16, 16, 16)).shape == (1, 1, 16, 16, 16)


def test_demo_network_is_the_inference_network():
    """A model trained with demo_cpu.json loads into inference.json as it is."""
    demo = _workflow(["train.json", "demo_cpu.json"], bundle_root=str(BUNDLE))
    infer = _workflow(["inference.json"], "infer", bundle_root=str(BUNDLE))
    state = demo.parser.get_parsed_content("network_def").state_dict()
    infer.parser.get_parsed_content("network_def").load_state_dict(state)  # strict: raises on any mismatch


def test_training_outputs(trained):
    tmp, wf = trained
    out = tmp / "out"
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == TINY["max_epochs"]
    with open(out / "label_scores.csv") as f:
        assert next(csv.reader(f)) == list(LABEL_SCORES_COLUMNS)
    rows = read_label_scores(out / "label_scores.csv")
    data = wf.parser.get_parsed_content("data")
    assert sorted(r["id"] for r in rows) == sorted(e["id"] for e in data["training"])
    assert all(r["loss"] is not None and r["vog"] is not None and r["combined"] is not None for r in rows)
    state = torch.load(tmp / "models" / "model.pt", map_location="cpu", weights_only=True)
    wf.parser.get_parsed_content("network_def", instantiate=True).load_state_dict(state)
    history = json.loads((out / "history.json").read_text())
    assert len(history["train_loss"]) == TINY["max_epochs"] and "val_mean_dice" in history
    assert (out / "report" / "index.html").is_file()
    # the synthetic data were generated once, with raters, bone and truth per case
    assert {"raters", "bone", "truth"} <= set(data["training"][0]) and len(data["training"][0]["raters"]) == 3


def test_evaluate(trained):
    tmp, _ = trained
    wf = _workflow(["train.json", "evaluate.json"], **{**TINY, **_paths(tmp)})
    wf.run()
    wf.finalize()
    with open(tmp / "out" / "eval" / "metrics.csv") as f:
        rows = list(csv.reader(f))
    test_ids = [e["id"] for e in wf.parser.get_parsed_content("data")["test"]]
    assert rows[0] == list(CSV_COLUMNS) and [r[0] for r in rows[1:]] == test_ids
    assert all(r[1] == "truth" and 0 <= float(r[4]) <= 1 for r in rows[1:])
    summary = json.loads((tmp / "out" / "eval" / "summary.json").read_text())
    assert summary["reference"] == "truth" and summary["num_cases"] == len(test_ids) and "lesion_recall_mean" in summary
    assert summary["threshold"] == 0.5 and summary["threshold_source"] == "given"
    # the decision threshold chosen on the validation knees (against their majority vote), then applied to the test
    wf = _workflow(["train.json", "evaluate.json"], **{**TINY, **_paths(tmp)}, eval_threshold="validation")
    wf.run()
    wf.finalize()
    summary = json.loads((tmp / "out" / "eval" / "summary.json").read_text())
    by = summary["validation_dice_by_threshold"]
    assert summary["threshold_source"] == "validation" and by[str(summary["threshold"])] == max(by.values())


def test_inference_keeps_the_input_geometry(trained, tmp_path):
    tmp, _ = trained
    images = tmp_path / "images"
    affine = np.diag([0.6, 0.5, 0.9, 1.0])
    affine[:3, 3] = [5.0, -3.0, 2.0]
    save_nifti(make_knee_case(3, 0, size=(28, 36, 20))["image"], images / "knee_new.nii.gz", affine)
    run_inference(BUNDLE, images, tmp_path / "pred", tmp / "models", **TINY_INFER)
    pred = nib.load(tmp_path / "pred" / "knee_new_seg.nii.gz")
    assert pred.shape[:3] == (28, 36, 20) and np.allclose(pred.affine, affine)
    assert set(np.unique(np.asarray(pred.dataobj))) <= {0, 1}


def test_bce_baseline_and_resume_through_the_cli(tmp_path):
    """``python -m monai.bundle run`` with the BCE config layered on train.json; a second call resumes."""
    files = json.dumps([str(CONFIGS / "train.json"), str(CONFIGS / "train_bce.json")])
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", files]
    args += ["--logging_file", str(CONFIGS / "logging.conf")]
    schedule = {"vog_epochs": [1]}  # a VoG schedule that does not depend on max_epochs, so the run can be extended
    for k, v in {**TINY, **_paths(tmp_path), **schedule, "max_epochs": 1}.items():
        args += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "report: " in res.stdout and (tmp_path / "models" / "model.pt").is_file()
    wf = _workflow(["train.json", "train_bce.json"], **{**TINY, **_paths(tmp_path), **schedule})
    assert wf.parser.get_parsed_content("loss").loss == "bce"
    assert wf.parser.get_parsed_content("train_target").target == "vote"
    trainer = wf.parser.get_parsed_content("train#trainer")
    wf.run()
    assert trainer.state.epoch == TINY["max_epochs"]
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert [p[0] for p in history["train_loss"]] == [1, 2]  # epoch 1 from the first (CLI) run


def _user_datalist(root: Path) -> Path:
    """Three raters and no bone mask per case, and one case with a single rater."""
    entries = []
    for i in range(5):
        case = make_knee_case(7, i, size=(24, 24, 24))
        save_nifti(case["image"], root / "img" / f"c{i}.nii.gz")
        raters = case["raters"] if i else case["raters"][:1]
        for r, mask in enumerate(raters):
            save_nifti(mask, root / "seg" / f"c{i}_r{r}.nii.gz")
        entries.append(
            {
                "id": f"c{i}",
                "image": f"img/c{i}.nii.gz",
                "raters": [f"seg/c{i}_r{r}.nii.gz" for r in range(len(raters))],
            }
        )
    path = root / "knees.json"
    path.write_text(json.dumps({"training": entries[:4], "validation": entries[4:]}))
    return path


def test_user_datalist_three_raters_one_rater_no_bone(tmp_path):
    path = _user_datalist(tmp_path / "mine")
    wf = _train(tmp_path, datalist=str(path), max_epochs=1, batch_size=2)
    assert not (tmp_path / "data").exists()
    rows = read_label_scores(tmp_path / "out" / "label_scores.csv")
    assert sorted(r["id"] for r in rows) == ["c0", "c1", "c2", "c3"]
    assert len(wf.parser.get_parsed_content("data")["training"][0]["raters"]) == 1
    # evaluation without truth falls back to the raters' majority vote and says so
    ev = _workflow(["train.json", "evaluate.json"], **{**TINY, **_paths(tmp_path), "datalist": str(path)})
    ev.run()
    assert json.loads((tmp_path / "out" / "eval" / "summary.json").read_text())["reference"] == "majority vote"


def test_bad_datalist_fails_before_training(tmp_path):
    path = _user_datalist(tmp_path / "mine")
    save_nifti(np.zeros((24, 24, 20), np.uint8), tmp_path / "mine" / "seg" / "c2_r1.nii.gz")
    wf = _workflow(["train.json"], **{**TINY, **_paths(tmp_path), "datalist": str(path)})
    with pytest.raises(RuntimeError) as info:
        wf.run()
    causes, e = [], info.value
    while e is not None:
        causes.append(str(e))
        e = e.__cause__
    assert any("'c2'" in c and "c2_r1.nii.gz" in c and "shapes differ" in c for c in causes), causes
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_monai_label_style_overrides(tmp_path):
    """MONAI Label sets train#dataset#data / validate#dataset#data to {"image", "label"} dicts without ids."""
    src = generate_knee_dataset(tmp_path / "labelstore", num=6, size=(24, 24, 24))
    full = json.loads(src.read_text())

    def plain(section):
        return [{"image": str(src.parent / e["image"]), "label": str(src.parent / e["label"])} for e in full[section]]

    train = plain("training")
    _train(tmp_path, max_epochs=1, **{"train#dataset#data": train, "validate#dataset#data": plain("validation")})
    assert not (tmp_path / "data").exists()
    rows = read_label_scores(tmp_path / "out" / "label_scores.csv")
    assert sorted(r["id"] for r in rows) == sorted(e["label"] for e in train)
    assert (tmp_path / "models" / "model.pt").is_file()


def test_knee_compare_command(tmp_path, capsys):
    sets = ["patch_size=[16,16,16]", "network_def#channels=[4,8,16,32]", "num_workers=0", "val_interval=1"]
    sets += ["detection_warmup=0", "vog_epochs=null", "loss_every=1", "num_patches=1"]
    argv = ["knee-compare", "--out", str(tmp_path), "--num", "6", "--size", "24,24,24", "--epochs", "1", "--seeds", "0"]
    assert main(argv + [a for s in sets for a in ("--set", s)]) == 0
    out = capsys.readouterr().out
    assert (
        "| soft + NAP (1 seeds) |" in out
        and "| BCE on majority vote (1 seeds) |" in out
        and "rater 0 (vs truth)" in out
    )
    results = json.loads((tmp_path / "comparison.json").read_text())
    assert set(results["arms"]) == {"soft + NAP", "BCE on majority vote"} and "majority vote" in results["raters"]
    assert (tmp_path / "comparison.png").stat().st_size > 5000 and (tmp_path / "comparison.md").is_file()
    for arm in ("soft", "bce"):
        assert (tmp_path / arm / "seed0" / "models" / "model.pt").is_file()
    assert "paired by seed" in out and set(results["margins_std"]) == set(results["margins"])
    # finished trainings are evaluated again, not retrained, once their eval folder is gone
    stamp = (tmp_path / "soft" / "seed0" / "models" / "model.pt").stat().st_mtime_ns
    shutil.rmtree(tmp_path / "soft" / "seed0" / "outputs" / "eval")
    assert main(argv + [a for s in sets for a in ("--set", s)] + ["--set", 'eval_threshold="validation"']) == 0
    assert (tmp_path / "soft" / "seed0" / "models" / "model.pt").stat().st_mtime_ns == stamp
    summary = json.loads((tmp_path / "soft" / "seed0" / "outputs" / "eval" / "summary.json").read_text())
    assert summary["threshold_source"] == "validation"


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    # 14 knees: 2 validation cases, one per rank (MONAI's DistributedSampler needs one per rank)
    run_torchrun_two_cpu(BUNDLE, tmp_path, 29541, **{**TINY, **_paths(tmp_path), "num_synthetic": 14, "max_epochs": 1})
    scores_of_every_training_sample(tmp_path / "out", tmp_path / "data" / "datalist.json")
    assert (tmp_path / "models" / "model.pt").is_file()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_amp_training(tmp_path):
    wf = _train(tmp_path, device="$torch.device('cuda:0')", amp=True, max_epochs=2)
    assert wf.parser.get_parsed_content("train#trainer").state.epoch == 2
