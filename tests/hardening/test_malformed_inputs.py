"""One test per row of docs/malformed_inputs.md: each malformed input stops the bundle or the CLI with a message that
names the file or parameter and the value, before training where it can, and leaves the dataset tree unchanged."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigWorkflow

from monai_noisylabel.cli import main
from monai_noisylabel.data import generate_echo_dataset, generate_knee_dataset, generate_lus_dataset, save_nifti

REPO = Path(__file__).resolve().parents[2]
BUNDLES = {
    "echo": REPO / "bundles" / "echo_noisylabel_segmentation",
    "knee": REPO / "bundles" / "knee_bml_softlabel_segmentation",
    "lus": REPO / "bundles" / "lus_confidence_segmentation",
}
TINY = {
    "echo": {
        "image_size": [32, 32],
        "max_epochs": 1,
        "batch_size": 4,
        "num_workers": 0,
        "network_def#channels": [4, 8, 16, 32, 64],
        "network_def#num_res_units": 1,
        "noise_rate": 0.5,
        "detection_warmup": 0,
        "vog_epochs": 1,
        "loss_every": 1,
        "refurbish_warmup": 1,
    },
    "knee": {
        "network_def#channels": [4, 8, 16, 32],
        "image_size": [16, 16, 16],
        "patch_size": [16, 16, 16],
        "num_patches": 1,
        "max_epochs": 1,
        "num_workers": 0,
    },
    "lus": {
        "image_size": [32, 32],
        "max_epochs": 1,
        "batch_size": 4,
        "num_workers": 0,
        "cv_repeats": 1,
        "network_def#channels": [4, 8, 16, 32],
        "network_def#strides": [2, 2, 2],
        "network_def#num_res_units": 1,
    },
}
GENERATORS = {
    "echo": lambda d: generate_echo_dataset(d, num=8, size=(32, 32)),
    "knee": lambda d: generate_knee_dataset(d, num=6, size=(16, 16, 16)),
    "lus": lambda d: generate_lus_dataset(d, num=8, size=(32, 32)),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Each bundle's tiny user dataset, generated once; every test works on its own copy."""
    root = tmp_path_factory.mktemp("pristine")
    for name, generate in GENERATORS.items():
        generate(root / name)
    return root


def tree_hash(root: Path) -> str:
    """SHA-256 over every file path and its bytes under ``root``."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _causes(e: BaseException | None) -> list[str]:
    out = []
    while e is not None:
        out.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    return out


# --------------------------------------------------------------------------------------------- damages


def _entry(data: Path, section: str = "training", i: int = 0) -> dict:
    return json.loads((data / "datalist.json").read_text())[section][i]


def _edit_datalist(edit: Callable[[dict], None]) -> Callable[[Path, Path], None]:
    def damage(data: Path, tmp: Path) -> None:
        path = data / "datalist.json"
        raw = json.loads(path.read_text())
        edit(raw)
        path.write_text(json.dumps(raw))

    return damage


def _rewrite(key: str, change: Callable[[np.ndarray], np.ndarray], i: int = 0) -> Callable[[Path, Path], None]:
    def damage(data: Path, tmp: Path) -> None:
        value = _entry(data, "training", i)[key]
        path = data / (value[0] if isinstance(value, list) else value)
        save_nifti(change(np.asarray(nib.load(path).dataobj)), path)

    return damage


def _replace_bytes(key: str, payload: Callable[[bytes], bytes]) -> Callable[[Path, Path], None]:
    def damage(data: Path, tmp: Path) -> None:
        path = data / _entry(data)[key]
        path.write_bytes(payload(path.read_bytes()))

    return damage


def _nan(a: np.ndarray) -> np.ndarray:
    return np.full(a.shape, np.nan, np.float32)


def _plant_checkpoint(payload: Callable[[Path], None], name: str) -> Callable[[Path, Path], None]:
    def damage(data: Path, tmp: Path) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        payload(path)

    return damage


def _other_network(path: Path) -> None:
    torch.save({"model": torch.nn.Linear(3, 2).state_dict()}, path)


def _not_a_checkpoint(path: Path) -> None:
    path.write_text("this is not a checkpoint\n")


def _read_only(data: Path, tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out").chmod(0o555)


def _nothing(data: Path, tmp: Path) -> None:
    pass


# (row id, bundle, workflow, damage, overrides, exception type, substrings one message must hold)
ROWS = [
    ("empty-training", "echo", "train", _edit_datalist(lambda r: r.update(training=[])), {}, ValueError,
     ["datalist.json", "non-empty 'training'"]),
    ("no-validation", "knee", "train", _edit_datalist(lambda r: r.pop("validation")), {}, ValueError,
     ["datalist.json", "'validation'"]),
    ("datalist-not-json", "echo", "train", lambda d, t: (d / "datalist.json").write_text("{training: ["), {},
     ValueError, ["datalist.json", "not valid JSON"]),
    ("missing-datalist", "lus", "train", lambda d, t: (d / "datalist.json").unlink(), {}, FileNotFoundError,
     ["'datalist' file", "datalist.json", "does not exist"]),
    ("missing-label-file", "echo", "train", lambda d, t: (d / _entry(d)["label"]).unlink(), {}, FileNotFoundError,
     ["'label' file", "patient0001_ED.nii.gz", "does not exist"]),
    ("truncated-nifti", "echo", "train", _replace_bytes("label", lambda b: b[: len(b) // 2]), {}, ValueError,
     ["entry 0 (id 'patient0001_ED')", "'label' file", "labelsTr/patient0001_ED.nii.gz", "not a readable"]),
    ("png-behind-nii-gz", "echo", "train", _replace_bytes("image", lambda b: b"\x89PNG\r\n\x1a\n" + b"\0" * 64), {},
     ValueError,
     ["entry 0 (id 'patient0001_ED')", "'image' file", "imagesTr/patient0001_ED.nii.gz", "not a readable NIfTI"]),
    ("shape-mismatch", "echo", "train", _rewrite("label", lambda a: a[:20]), {}, ValueError,
     ["patient0001_ED", "spatial shapes differ", "(20, 32)"]),
    ("image-all-nan", "echo", "train", _rewrite("image", _nan), {}, ValueError,
     ["imagesTr/patient0001_ED.nii.gz", "1024 NaN or infinite"]),
    ("undeclared-class", "echo", "train", _rewrite("label", lambda a: np.where(a == 1, 7, a).astype(np.uint8)), {},
     ValueError, ["labelsTr/patient0001_ED.nii.gz", "class values [7]", "num_classes=4"]),
    ("float-label", "echo", "train", _rewrite("label", lambda a: a.astype(np.float32) * 0.5), {}, ValueError,
     ["labelsTr/patient0001_ED.nii.gz", "class values [0.5", "integer class indices"]),
    ("4-channel-label", "echo", "train", _rewrite("label", lambda a: np.stack([a == c for c in range(4)], -1)), {},
     ValueError, ["labelsTr/patient0001_ED.nii.gz", "(32, 32, 4)", "one class-index map"]),
    ("duplicate-ids", "echo", "train",
     _edit_datalist(lambda r: r["training"][1].update(id=r["training"][0]["id"])), {}, ValueError,
     ["entry 1 (id 'patient0001_ED')", "repeats the id of entry 0"]),
    ("unknown-noise-kind", "echo", "train", _nothing, {"noise_kind": "gaussian"}, ValueError,
     ["'noise_kind' parameter of prepare_echo_data", "'gaussian'"]),
    ("noise-rate-out-of-range", "echo", "train", _nothing, {"noise_rate": 1.5}, ValueError,
     ["'noise_rate' parameter", "Got 1.5"]),
    ("misspelled-network-key", "echo", "train", _nothing, {"network_def#chanels": [4, 8]}, TypeError,
     ["chanels"]),
    ("output-inside-dataset", "echo", "train", _nothing, {"output_dir": "{data}/out"}, ValueError,
     ["'output_dir' parameter of the bundle config", "outside the dataset folder", "/out'"]),
    ("read-only-output", "echo", "train", _read_only, {}, ValueError,
     ["'output_dir' parameter of the bundle config", "can create and write to", "/out'"]),
    ("output-under-a-file", "lus", "train", lambda d, t: (t / "file").write_text("x"), {"output_dir": "{tmp}/file/o"},
     ValueError, ["'output_dir' parameter of the bundle config", "file/o'"]),
    ("full-disk", "echo", "train", _nothing, {}, OSError,
     ["No space left on device", "not written", "noisy_labels/labels/labelsTr/patient0001_ED.nii.gz"]),
    ("checkpoint-of-another-network", "echo", "train",
     _plant_checkpoint(_other_network, "out/checkpoints/checkpoint_epoch=1.pt"), {}, ValueError,
     ["checkpoint_epoch=1.pt", "could not be loaded", "Missing key"]),
    ("checkpoint-not-a-checkpoint", "echo", "train",
     _plant_checkpoint(_not_a_checkpoint, "out/checkpoints/checkpoint_epoch=1.pt"), {}, ValueError,
     ["checkpoint_epoch=1.pt", "could not be loaded"]),
    ("evaluate-model-not-a-checkpoint", "echo", "evaluate", _plant_checkpoint(_not_a_checkpoint, "models/model.pt"),
     {}, ValueError, ["models/model.pt", "could not be loaded"]),
    ("lus-evaluate-model-of-another-network", "lus", "evaluate",
     _plant_checkpoint(lambda p: torch.save(torch.nn.Linear(3, 2).state_dict(), p), "models/model.pt"), {},
     ValueError, ["evaluate_lus", "models/model.pt", "could not be loaded into UNet", "Missing key"]),
    ("knee-evaluate-model-not-a-checkpoint", "knee", "evaluate",
     _plant_checkpoint(_not_a_checkpoint, "models/model.pt"),
     {}, ValueError, ["evaluate_knee", "models/model.pt", "could not be loaded"]),
    ("inference-without-model", "knee", "infer", _nothing, {}, FileNotFoundError,
     ["models/model.pt", "does not exist"]),
    ("knee-rater-other-shape", "knee", "train", _rewrite("raters", lambda a: a[:12]), {}, ValueError,
     ["'knee0000'", "knee0000_rater0.nii.gz", "shapes differ"]),
    ("knee-float-rater", "knee", "train", _rewrite("raters", lambda a: a.astype(np.float32) * 0.5 + 0.25), {},
     ValueError, ["knee0000_rater0.nii.gz", "0/1 masks", "0.25"]),
    ("knee-empty-raters", "knee", "train", _edit_datalist(lambda r: r["training"][0].update(raters=[])), {},
     ValueError, ["'knee0000'", "non-empty 'raters' list", "[]"]),
    ("knee-image-nan", "knee", "train", _rewrite("image", _nan), {}, ValueError,
     ["imagesTr/knee0000.nii.gz", "NaN or infinite"]),
    ("lus-confidence-out-of-range", "lus", "train", _rewrite("confidence", lambda a: a * 10), {}, ValueError,
     ["'lus001_t0_f0'", "'confidence'", "outside the declared confidence_scale '0-1'"]),
    ("lus-confidence-nan", "lus", "train", _rewrite("confidence", lambda a: np.where(a > 0.5, np.nan, a)), {},
     ValueError, ["'lus001_t0_f0'", "'confidence'", "NaN"]),
    ("lus-missing-class-channel", "lus", "train", _rewrite("confidence", lambda a: a[..., :3]), {}, ValueError,
     ["'lus001_t0_f0'", "expected 4 class channels", "(32, 32, 3)"]),
    ("lus-clinical-not-a-number", "lus", "train",
     _edit_datalist(lambda r: r["training"][0].update(sf_ratio="low")), {}, ValueError,
     ["'sf_ratio' field of case 'lus001_t0_f0'", "'low'"]),
    ("lus-bad-confidence-scale", "lus", "train", _nothing, {"confidence_scale": "0-255"}, ValueError,
     ["'confidence_scale' parameter of LoadLusConfidenced", "'0-255'"]),
    ("vog-epochs-negative", "echo", "train", _nothing, {"vog_epochs": -2}, ValueError,
     ["'epochs' parameter of VarianceOfGradientsHandler", "-2"]),
]  # fmt: skip
WORKFLOW_FILES = {"train": ["train.json"], "evaluate": ["train.json", "evaluate.json"], "infer": ["inference.json"]}


@pytest.mark.parametrize(("row", "bundle", "kind", "damage", "extra", "error", "parts"), ROWS, ids=[r[0] for r in ROWS])
def test_bundle_malformed_input(pristine, tmp_path, monkeypatch, row, bundle, kind, damage, extra, error, parts):
    data = tmp_path / "data"
    shutil.copytree(pristine / bundle, data)
    damage(data, tmp_path)
    before = tree_hash(data)
    ckpt_before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.pt")} if (tmp_path / "out").exists() else {}
    if row == "read-only-output" and os.geteuid() == 0:  # root writes through 0o555: simulate what a user gets

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr("monai_noisylabel.bundle.checks.tempfile.TemporaryFile", denied)
    if row == "full-disk":

        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr("monai_noisylabel.utils.os.fsync", full)
    configs = BUNDLES[bundle] / "configs"
    overrides = {
        **TINY[bundle],
        "bundle_root": str(BUNDLES[bundle]),
        "dataset_dir": str(data),
        "datalist": str(data / "datalist.json"),
        "output_dir": str(tmp_path / "out"),
        "ckpt_dir": str(tmp_path / "models"),
        **{k: v.format(data=data, tmp=tmp_path) if isinstance(v, str) else v for k, v in extra.items()},
    }
    if kind == "infer":
        overrides = {k: v for k, v in overrides.items() if k in ("bundle_root", "dataset_dir", "datalist", "ckpt_dir",
                                                                  "output_dir", "network_def#channels")}  # fmt: skip
    files = [str(configs / f) for f in WORKFLOW_FILES[kind]]
    with pytest.raises(Exception) as info:
        wf = ConfigWorkflow(
            config_file=files if len(files) > 1 else files[0],
            meta_file=str(configs / "metadata.json"),
            logging_file=str(configs / "logging.conf"),
            workflow_type="infer" if kind == "infer" else "train",
            **overrides,
        )
        wf.initialize()
        wf.run()
    chain = _causes(info.value)
    assert any(all(p in c for p in parts) for c in chain), chain
    assert any(isinstance(e, error) for e in _chain_objects(info.value)), (error, chain)
    # stopped before training: no new checkpoint, planted files untouched, the dataset tree byte-identical
    after = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.pt")} if (tmp_path / "out").exists() else {}
    assert after == ckpt_before
    assert not (tmp_path / "out" / "label_scores.csv").exists()
    assert tree_hash(data) == before


def _chain_objects(e: BaseException | None) -> list[BaseException]:
    out = []
    while e is not None:
        out.append(e)
        e = e.__cause__ or e.__context__
    return out


# ------------------------------------------------------------------------------------------------- CLI

CLI_ROWS = [
    ("cli-check-missing-datalist", lambda d: ["check-datalist", str(d / "nope.json")], ["nope.json", "does not exist"]),
    ("cli-check-truncated-image", lambda d: ["check-datalist", str(d / "datalist.json")],
     ["patient0001_ED.nii.gz", "not a readable NIfTI"]),
    ("cli-corrupt-rate-out-of-range", lambda d: ["corrupt", str(d / "datalist.json"), "--kind", "random", "--rate",
                                                 "1.5", "--out", str(d.parent / "noisy")], ["'rate'", "1.5"]),
    ("cli-report-without-scores", lambda d: ["report", str(d.parent / "empty_run")], ["label_scores.csv"]),
]  # fmt: skip


@pytest.mark.parametrize(("row", "argv", "parts"), CLI_ROWS, ids=[r[0] for r in CLI_ROWS])
def test_cli_malformed_input(pristine, tmp_path, capsys, row, argv, parts):
    data = tmp_path / "data"
    shutil.copytree(pristine / "echo", data)
    (tmp_path / "empty_run").mkdir()
    if row == "cli-check-truncated-image":
        path = data / _entry(data)["image"]
        path.write_bytes(b"not gzip at all")
    before = tree_hash(data)
    assert main(argv(data)) == 2
    err = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()[-1]  # the line after any progress bar
    assert err.startswith("error: "), err
    assert all(p in err for p in parts), err
    assert tree_hash(data) == before


def test_entry_without_id_is_named_after_its_label(pristine, tmp_path):
    """Accepted, not refused: an entry without ``id`` takes its label path as id (unique, stable across runs)."""
    from monai_noisylabel.bundle import prepare_echo_data

    data = tmp_path / "data"
    shutil.copytree(pristine / "echo", data)
    raw = json.loads((data / "datalist.json").read_text())
    del raw["training"][0]["id"]
    (data / "datalist.json").write_text(json.dumps(raw))
    before = tree_hash(data)
    out = prepare_echo_data(data, output_dir=tmp_path / "out", datalist=data / "datalist.json", num_classes=4)
    assert out["training"][0]["id"] == str(data / "labelsTr" / "patient0001_ED.nii.gz")
    assert tree_hash(data) == before
