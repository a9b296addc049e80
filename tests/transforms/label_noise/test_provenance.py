"""Provenance: records in meta survive list_data_collate, DataLoader workers and decollation; replay."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader as MonaiDataLoader
from monai.data import Dataset, MetaTensor, decollate_batch, list_data_collate
from monai.transforms import Compose

from monai_noisylabel.transforms.label_noise import (
    RandLabelBias,
    RandLabelNoise,
    RandLabelNoised,
    RandLabelOmissiond,
    apply_label_noise,
    encode_label_noise,
    read_label_noise,
)

from ._label_noise_helpers import echo_label

N = 6


def _data():
    return [
        {
            "id": f"p{i}",
            "label": MetaTensor(
                torch.as_tensor(echo_label(i % 4, size=(32, 32))), meta={"filename_or_obj": f"p{i}.nii"}
            ),
        }
        for i in range(N)
    ]


def _pipeline():
    return Compose(
        [
            RandLabelNoised("label", prob=0.5, radius=(1, 2), fixed_per_sample=True, seed=1),
            RandLabelOmissiond("label", prob=0.5, classes=None, fixed_per_sample=True, seed=2),
        ]
    )


def _per_sample(loader):
    records, labels = {}, {}
    for batch in loader:
        per_sample = read_label_noise(batch)
        assert len(per_sample) == batch["label"].shape[0]
        for sid, recs, lab in zip(batch["id"], per_sample, batch["label"]):
            records[sid] = recs
            labels[sid] = lab.as_tensor().clone()
    return records, labels


def test_records_survive_a_dataloader_with_two_workers():
    pipeline = _pipeline()
    expected = {d["id"]: pipeline(d) for d in _data()}
    runs = []
    for loader_cls in (torch.utils.data.DataLoader, MonaiDataLoader):  # MONAI's re-seeds every worker
        for _ in range(2):  # two epochs
            loader = loader_cls(
                Dataset(_data(), transform=_pipeline()), batch_size=4, num_workers=2, collate_fn=list_data_collate
            )
            runs.append(_per_sample(loader))
    for records, labels in runs:
        assert set(records) == set(expected)
        for sid, item in expected.items():
            assert records[sid] == read_label_noise(item["label"])[0]
            assert [r["kind"] for r in records[sid]] == ["random", "omission"]
            assert torch.equal(labels[sid], item["label"].as_tensor())
            original = _data()[int(sid[1:])]["label"]
            assert torch.equal(apply_label_noise(original, records[sid]).as_tensor(), labels[sid])
    corrupted = [any(r["corrupted"] for r in recs) for recs in runs[0][0].values()]
    assert any(corrupted) and not all(corrupted)


def test_list_data_collate_and_decollate():
    items = [_pipeline()(d) for d in _data()]
    batch = list_data_collate(items)
    assert isinstance(batch["label"].meta["label_noise"], list)
    per_sample = read_label_noise(batch)
    assert per_sample == [read_label_noise(it["label"])[0] for it in items]
    assert read_label_noise(batch["label"]) == per_sample
    for item, back in zip(items, decollate_batch(batch)):
        assert read_label_noise(back["label"]) == read_label_noise(item["label"])


def test_chained_records_in_order_and_replay():
    lab = MetaTensor(torch.as_tensor(echo_label(0)), meta={"filename_or_obj": "a.nii"})
    a = RandLabelNoise().set_random_state(0)
    b = RandLabelBias(label_class=2, mode="erode", radius=1)
    out = b(a(lab))
    (records,) = read_label_noise(out)
    assert [r["transform"] for r in records] == ["RandLabelNoise", "RandLabelBias"]
    assert "label_noise" not in lab.meta  # the input's meta was not touched
    assert torch.equal(apply_label_noise(lab, records).as_tensor(), out.as_tensor())
    assert torch.equal(apply_label_noise(lab, out.meta["label_noise"]).as_tensor(), out.as_tensor())


def test_read_label_noise_inputs_and_errors():
    rec = {"kind": "bias", "corrupted": True}
    text = encode_label_noise([rec])
    assert read_label_noise(text) == [[rec]]
    assert read_label_noise([text, encode_label_noise([])]) == [[rec], []]
    assert read_label_noise({"label_noise": text}) == [[rec]]
    assert read_label_noise({"label": np.zeros(3), "label_label_noise": text}) == [[rec]]
    assert read_label_noise(MetaTensor(torch.zeros(1, 2, 2))) == [[]]
    with pytest.raises(ValueError, match="found no label-noise provenance in dict"):
        read_label_noise({"image": np.zeros(3)})
    with pytest.raises(ValueError, match="is not a list of label-noise records"):
        read_label_noise("[1, 2]")


def test_plain_inputs_have_no_meta_but_a_last_record():
    lab = echo_label(0)
    t = RandLabelNoise().set_random_state(0)
    out = t(torch.as_tensor(lab))
    assert type(out) is torch.Tensor and t.last_record["params"]["ops"]
    assert np.array_equal(apply_label_noise(lab, t.last_record), out.numpy())
