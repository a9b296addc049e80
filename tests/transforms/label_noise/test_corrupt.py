"""corrupt_datalist and ``python -m monai_noisylabel corrupt`` on the synthetic echo set."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from monai_noisylabel.cli import main
from monai_noisylabel.data.datalist import load_datalist
from monai_noisylabel.data.synthetic import generate_echo_dataset
from monai_noisylabel.transforms.label_noise import apply_label_noise, corrupt_datalist


@pytest.fixture(scope="module")
def echo_set(tmp_path_factory):
    root = tmp_path_factory.mktemp("echo")
    path = generate_echo_dataset(root, num=8, size=(64, 64))
    return path


def hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def load(path: Path) -> np.ndarray:
    return np.asanyarray(nib.load(str(path)).dataobj)


@pytest.mark.parametrize("kind", ["random", "bias", "omission"])
@pytest.mark.parametrize("rate", [0.0, 0.25, 0.5, 1.0])
def test_exact_count_originals_untouched_and_replayable(echo_set, tmp_path, kind, rate, global_rng_guard):
    src = echo_set.parent
    before = hashes(src)
    n_train = len(json.loads(echo_set.read_text())["training"])
    m = corrupt_datalist(echo_set, kind, rate, seed=3, out_dir=tmp_path / "out")
    assert hashes(src) == before
    n_sel = round(rate * n_train)
    assert m["num_samples"] == n_train and m["num_selected"] == n_sel
    assert sum(s["selected"] for s in m["samples"]) == n_sel
    written = sorted((tmp_path / "out" / "labels").rglob("*.nii.gz")) if n_sel else []
    assert len(written) == n_sel
    for s in m["samples"]:
        original = Path(s["original"])
        assert original.is_absolute() and original.is_file()
        if not s["selected"]:
            assert s["new"] == s["original"] and s["params"] is None and s["record"] is None and not s["corrupted"]
            continue
        new = Path(s["new"])
        assert new.parent.parent == tmp_path / "out" / "labels" and new.name == original.name
        src_img, new_img = nib.load(str(original)), nib.load(str(new))
        np.testing.assert_array_equal(src_img.affine, new_img.affine)
        assert load(new).dtype == load(original).dtype
        assert s["corrupted"] and s["kind"] == kind and s["record"]["kind"] == kind
        assert s["params"] == s["record"]["params"] and s["record"]["sample_id"] == s["id"]
        for replay_from in (s["params"], s["record"]):
            replay = apply_label_noise(load(original)[None], replay_from)[0]
            np.testing.assert_array_equal(replay, load(new))


def test_new_datalist(echo_set, tmp_path):
    m = corrupt_datalist(echo_set, "bias", 0.5, seed=0, out_dir=tmp_path / "out", label_class=3, mode="erode")
    src = json.loads(echo_set.read_text())
    new = json.loads((tmp_path / "out" / "datalist.json").read_text())
    assert m["datalist"] == str(tmp_path / "out" / "datalist.json")
    for section in ("validation", "test"):
        expected = [
            {**e, "image": str(echo_set.parent / e["image"]), "label": str(echo_set.parent / e["label"])}
            for e in src[section]
        ]
        assert new[section] == expected
    assert {k: v for k, v in new.items() if not isinstance(v, list)} == {
        k: v for k, v in src.items() if not isinstance(v, list)
    }
    for entry, sample in zip(new["training"], m["samples"]):
        assert entry["label"] == sample["new"] and entry["id"] == sample["id"]
        assert Path(entry["image"]).is_absolute()
    # the new datalist loads from anywhere, with shape checks
    assert len(load_datalist(tmp_path / "out" / "datalist.json", "training")) == len(src["training"])
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest == json.loads(json.dumps(m))
    assert manifest["transform"] == "RandLabelBias" and manifest["transform_kwargs"] == {
        "label_class": 3,
        "mode": "erode",
    }


def test_same_seed_same_bytes(echo_set, tmp_path):
    a = corrupt_datalist(echo_set, "random", 0.75, seed=5, out_dir=tmp_path / "a")
    ha = hashes(tmp_path / "a")
    corrupt_datalist(echo_set, "random", 0.75, seed=5, out_dir=tmp_path / "a")
    assert hashes(tmp_path / "a") == ha  # the whole folder, manifest and datalist included
    corrupt_datalist(echo_set, "random", 0.75, seed=5, out_dir=tmp_path / "b")
    hb = hashes(tmp_path / "b")
    labels = {k: v for k, v in ha.items() if k.startswith("labels")}
    assert labels == {k: v for k, v in hb.items() if k.startswith("labels")}
    c = corrupt_datalist(echo_set, "random", 0.75, seed=6, out_dir=tmp_path / "c")
    differs = [s["params"] for s in a["samples"]] != [s["params"] for s in c["samples"]]
    assert differs


def test_refuses_to_overwrite_sources(echo_set, tmp_path):
    src = echo_set.parent
    before = hashes(src)
    with pytest.raises(ValueError, match="would overwrite the source file .*datalist.json"):
        corrupt_datalist(echo_set, "omission", 1.0, seed=0, out_dir=src)
    # a dataset whose labels live in <root>/labels, listed relative to that folder, corrupted into <root>
    root = tmp_path / "ds"
    (root / "labels").mkdir(parents=True)
    data = json.loads(echo_set.read_text())
    for e in data["training"]:
        shutil.copy(src / e["label"], root / "labels" / Path(e["label"]).name)
    listed = {"training": [{"id": e["id"], "label": Path(e["label"]).name} for e in data["training"]]}
    copies = hashes(root)
    with pytest.raises(ValueError, match=r"would overwrite the source file .*ds/labels/"):
        corrupt_datalist(listed, "omission", 1.0, seed=0, out_dir=root, base_dir=root / "labels")
    assert hashes(root) == copies
    assert hashes(src) == before


def test_dict_datalist_with_base_dir(echo_set, tmp_path):
    data = json.loads(echo_set.read_text())
    m = corrupt_datalist(data, "omission", 1.0, seed=0, out_dir=tmp_path / "o", base_dir=echo_set.parent)
    assert m["source_datalist"] is None and all(s["corrupted"] for s in m["samples"])
    assert all(not (load(Path(s["new"])) == 3).any() for s in m["samples"])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "flip"}, "The 'kind' parameter of corrupt_datalist must be one of 'random', 'bias', 'omission'."),
        ({"rate": 1.5}, "The 'rate' parameter of corrupt_datalist must be a finite number >= 0.0 and <= 1.0."),
        ({"seed": -1}, "The 'seed' parameter of corrupt_datalist must be an int >= 0. Got -1 instead."),
        ({"prob": 0.5}, "The 'prob' parameter of corrupt_datalist must be left to corrupt_datalist"),
        ({"radius": -1}, "The 'radius' parameter of RandLabelNoise must be an int >= 0. Got -1 instead."),
        ({"label_class": 2}, "RandLabelNoise does not take ['label_class']"),
        ({"section": "train"}, "the datalist has no 'train' list"),
    ],
)
def test_bad_arguments(echo_set, tmp_path, kwargs, message):
    args = {"kind": "random", "rate": 0.5, "seed": 0, "out_dir": tmp_path / "x", **kwargs}
    with pytest.raises(ValueError) as err:
        corrupt_datalist(echo_set, **args)
    assert message in str(err.value)
    assert not (tmp_path / "x").exists()


def test_missing_and_non_nifti_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        corrupt_datalist(tmp_path / "none.json", "random", 0.5, seed=0, out_dir=tmp_path / "o")
    data = {"training": [{"label": "a.mhd"}]}
    with pytest.raises(ValueError, match=r"labels must be NIfTI \(.nii or .nii.gz\) files"):
        corrupt_datalist(data, "random", 1.0, seed=0, out_dir=tmp_path / "o", base_dir=tmp_path)


def test_cli(echo_set, tmp_path, capsys):
    before = hashes(echo_set.parent)
    out = tmp_path / "cli"
    argv = ["corrupt", str(echo_set), "--kind", "bias", "--rate", "0.5", "--seed", "2", "--out", str(out)]
    assert main([*argv, "--param", "radius=2", "--param", "mode=erode"]) == 0
    printed = capsys.readouterr().out
    assert "corrupted 2 of 4 training labels (bias" in printed and str(out / "datalist.json") in printed
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["num_selected"] == 2 and manifest["transform_kwargs"] == {"radius": 2, "mode": "erode"}
    assert len(list((out / "labels").rglob("*.nii.gz"))) == 2
    first = hashes(out)
    assert main([*argv, "--param", "radius=2", "--param", "mode=erode"]) == 0
    assert hashes(out) == first
    assert hashes(echo_set.parent) == before
    assert main([*argv, "--param", "radius"]) == 2
    assert "--param must look like NAME=VALUE. Got 'radius' instead." in capsys.readouterr().err
    assert main(["corrupt", str(echo_set), "--kind", "bias", "--rate", "2", "--out", str(out)]) == 2
    assert "'rate' parameter of corrupt_datalist" in capsys.readouterr().err


def test_cli_is_registered(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["corrupt", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--kind" in text and "--rate" in text and "--param" in text


def test_systematic_is_an_alias_of_bias(tmp_path):
    from monai_noisylabel.data import generate_echo_dataset
    from monai_noisylabel.transforms import corrupt_datalist

    src = generate_echo_dataset(tmp_path / "src", num=6, size=(32, 32))
    a = corrupt_datalist(src, "systematic", 0.5, seed=1, out_dir=tmp_path / "a")
    b = corrupt_datalist(src, "bias", 0.5, seed=1, out_dir=tmp_path / "b")
    assert a["kind"] == b["kind"] == "bias"
    assert [(m["id"], m["corrupted"]) for m in a["samples"]] == [(m["id"], m["corrupted"]) for m in b["samples"]]


def test_read_corruption_manifest_errors(tmp_path):
    from monai_noisylabel.transforms import corrupted_ids, read_corruption_manifest

    with pytest.raises(FileNotFoundError, match="'manifest'"):
        read_corruption_manifest(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON"):
        read_corruption_manifest(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="'samples'"):
        corrupted_ids({"samples": [{"corrupted": True}]})
