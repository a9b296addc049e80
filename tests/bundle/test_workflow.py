"""monai_noisylabel.bundle: the pieces the bundle configs instantiate."""

from __future__ import annotations

import json

import pytest
import torch

from monai_noisylabel.bundle import (
    ResumeFromLatestCheckpoint,
    as_flag,
    channel_output_transform,
    list_images,
    prepare_echo_data,
    seeded_init,
)
from monai_noisylabel.transforms import corrupted_ids


@pytest.mark.parametrize(("value", "expected"), [(True, True), ("false", False), ("On", True), (0, False), ("1", True)])
def test_as_flag(value, expected):
    assert as_flag(value) is expected


def test_as_flag_rejects_other_values():
    with pytest.raises(ValueError, match="'refurbish'.*'maybe'"):
        as_flag("maybe", "refurbish")


def test_seeded_init_is_reproducible_and_leaves_the_global_rng():
    nets = [torch.nn.Conv2d(1, 4, 3) for _ in range(3)]  # construction itself draws from the global RNG
    state = torch.random.get_rng_state()
    a, b, c = seeded_init(nets[0], 7), seeded_init(nets[1], 7), seeded_init(nets[2], 8)
    assert torch.equal(state, torch.random.get_rng_state())
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)


def test_channel_output_transform():
    out = [{"pred": torch.arange(12.0).view(3, 2, 2), "label": torch.zeros(3, 2, 2)}]
    p, y = channel_output_transform(2)(out)
    assert torch.equal(p[0], torch.arange(8.0, 12.0).view(1, 2, 2)) and y[0].shape == (1, 2, 2)


def test_resume_picks_the_newest_checkpoint(tmp_path):
    for e in (2, 10, 3):
        (tmp_path / f"checkpoint_epoch={e}.pt").write_bytes(b"")
    (tmp_path / "other.pt").write_bytes(b"")
    assert ResumeFromLatestCheckpoint(tmp_path, {}).latest().name == "checkpoint_epoch=10.pt"
    assert ResumeFromLatestCheckpoint(tmp_path / "none", {}).latest() is None


def test_prepare_echo_data_without_noise_and_reuse(tmp_path):
    first = prepare_echo_data(tmp_path / "data", output_dir=tmp_path / "out", num_synthetic=8, image_size=(16, 16))
    again = prepare_echo_data(
        tmp_path / "data", output_dir=tmp_path / "out", num_synthetic=8, image_size=(16, 16), noise_kind="none"
    )
    assert first["source"] == "synthetic" and again["source"] == "datalist"
    assert first["corrupted"] is None and again["corrupted"] is None
    assert first["training"] == again["training"]
    assert set(first["training"][0]) == {"id", "image", "label"}


def test_prepare_echo_data_noise_is_recorded(tmp_path):
    d = prepare_echo_data(
        tmp_path / "data",
        output_dir=tmp_path / "out",
        num_synthetic=12,
        image_size=(16, 16),
        noise_kind="omission",
        noise_rate=0.5,
    )
    assert d["corrupted"] == corrupted_ids(d["manifest"])
    assert all(str(tmp_path / "out") in e["label"] for e in d["training"] if e["id"] in d["corrupted"])
    assert all(str(tmp_path / "data") in e["label"] for e in d["validation"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_rate": 1.5}, "'noise_rate'"),
        ({"image_size": (16,)}, "'image_size'"),
        ({"camus_fold": 11}, "'camus_fold'"),
    ],
)
def test_prepare_echo_data_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        prepare_echo_data(tmp_path / "data", output_dir=tmp_path / "out", **kwargs)


def test_list_images(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_dir"):
        list_images(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="'pattern'"):
        list_images(tmp_path / "empty")


def test_finish_training_reports_flag_precision_and_recall(tmp_path, capsys):
    import json

    import numpy as np

    from monai_noisylabel.bundle import finish_training
    from monai_noisylabel.data import save_nifti
    from monai_noisylabel.handlers import write_label_scores

    rows = []
    for i in range(6):
        image = save_nifti(np.full((8, 8), i, np.float32), tmp_path / f"im{i}.nii.gz")
        label = save_nifti(np.zeros((8, 8), np.uint8), tmp_path / f"lb{i}.nii.gz")
        rows.append({"id": f"s{i}", "image": str(image), "label": str(label), "loss": float(i), "combined": i / 5})
    for r in rows:
        r["flagged"] = r["combined"] >= 0.8
    write_label_scores(tmp_path / "label_scores.csv", rows)
    manifest = tmp_path / "manifest.json"
    corrupted = {"s3", "s4", "s5"}
    manifest.write_text(json.dumps({"samples": [{"id": r["id"], "corrupted": r["id"] in corrupted} for r in rows]}))
    summary = finish_training(tmp_path, manifest=manifest, top_k=2)
    # flagged s4, s5: both corrupted (precision 1), two of the three corrupted (recall 2/3)
    assert summary["num_flagged"] == 2 and summary["num_corrupted"] == 3
    assert summary["flag_precision"] == 1.0 and summary["flag_recall"] == round(2 / 3, 4)
    assert "precision 1.000, recall 0.667" in capsys.readouterr().out
    saved = json.loads((tmp_path / "detection_metrics.json").read_text())
    assert saved["flag_recall"] == summary["flag_recall"]


def test_resume_refuses_a_checkpoint_of_other_training_data(tmp_path):
    """A finished run's folder, trained again on another datalist (or on labels rewritten with another noise rate):
    resuming would train nothing and write the old run's scores as this run's, so it stops with a message."""
    from ignite.engine import Engine

    from monai_noisylabel.bundle.workflow import FINGERPRINT_FILENAME, data_fingerprint

    label = tmp_path / "data" / "a.nii.gz"
    label.parent.mkdir()
    label.write_bytes(b"first labels")
    entries = [{"id": "a", "image": str(tmp_path / "data" / "a_img.nii.gz"), "label": str(label)}]
    ckpt = tmp_path / "out" / "checkpoints"
    net = torch.nn.Linear(2, 2)
    # a fresh run records what it trains on
    ResumeFromLatestCheckpoint(ckpt, {"model": net}, fingerprint=entries).attach(Engine(lambda e, b: None))
    assert json.loads((ckpt / FINGERPRINT_FILENAME).read_text())["training_data"] == data_fingerprint(entries)
    torch.save({"model": net.state_dict()}, ckpt / "checkpoint_epoch=3.pt")
    # the same data: resumes (the load itself happens when the engine starts)
    same = ResumeFromLatestCheckpoint(ckpt, {"model": net}, fingerprint=entries)
    same.attach(Engine(lambda e, b: None))
    assert same.path.name == "checkpoint_epoch=3.pt"
    # the same paths with other content, or another datalist: refused, naming the checkpoint and the way out
    before = label.read_bytes()
    label.write_bytes(b"labels with another noise rate")
    with pytest.raises(
        ValueError, match=r"checkpoint_epoch=3.pt was written by a run on other training data.*output_dir"
    ):
        ResumeFromLatestCheckpoint(ckpt, {"model": net}, fingerprint=entries).attach(Engine(lambda e, b: None))
    label.write_bytes(before)
    with pytest.raises(ValueError, match="other training data"):
        ResumeFromLatestCheckpoint(ckpt, {"model": net}, fingerprint=entries[:0]).attach(Engine(lambda e, b: None))
    # resume off: starts over and records the new data; an older folder without the record resumes with a warning
    ResumeFromLatestCheckpoint(ckpt, {"model": net}, enabled=False, fingerprint=entries[:0]).attach(
        Engine(lambda e, b: None)
    )
    assert json.loads((ckpt / FINGERPRINT_FILENAME).read_text())["training_data"] == data_fingerprint([])
    (ckpt / FINGERPRINT_FILENAME).unlink()
    ResumeFromLatestCheckpoint(ckpt, {"model": net}, fingerprint=entries).attach(Engine(lambda e, b: None))
