from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
import torch

from monai_noisylabel.refurbish import LabelStore, StoredLabel


def test_put_get_remove_contains_ids():
    store = LabelStore()
    assert len(store) == 0 and store.get("a") is None and not store.contains("a")
    store.put("a", torch.ones(1, 3, 3, dtype=torch.uint8), epoch=2, score=0.7, meta={"fraction_changed": 0.1})
    store.put(5, np.zeros((1, 3, 3), np.int16))
    assert store.ids() == ["a", "5"] and list(store) == ["a", "5"]
    assert "5" in store and store.contains(5)  # ids compare as strings
    entry = store.get("a")
    assert isinstance(entry, StoredLabel)
    assert entry.epoch == 2 and entry.score == 0.7 and entry.meta == {"fraction_changed": 0.1}
    assert entry.label.dtype == torch.uint8 and entry.label.device.type == "cpu"
    assert store.get(5).label.dtype == torch.int16 and store.get(5).epoch is None
    store.put("a", torch.full((1, 3, 3), 2), epoch=4)  # replace
    assert store.get("a").epoch == 4 and int(store.get("a").label.sum()) == 18 and store.ids() == ["a", "5"]
    assert store.remove("a") is True and store.remove("a") is False  # re-scored clean: original used again
    assert store.ids() == ["5"]
    store.clear()
    assert len(store) == 0
    assert repr(store) == "LabelStore(0 labels)"


def test_copies_in_and_out():
    store = LabelStore()
    src = np.zeros((1, 2, 2), np.int64)
    store.put("x", src)
    src[:] = 9  # caller changes its array afterwards
    got = store.get("x").label
    assert int(got.sum()) == 0
    got += 5  # caller changes what it got
    assert int(store.get("x").label.sum()) == 0
    meta = {"k": [1, 2]}
    store.put("y", torch.zeros(1), meta=meta)
    store.get("y").meta["k"] = "changed"
    assert store.get("y").meta == {"k": [1, 2]}


def test_version_counts_changes():
    store = LabelStore()
    v0 = store.version
    store.put("a", torch.zeros(1))
    store.remove("missing")
    assert store.version == v0 + 1
    store.remove("a")
    store.clear()
    assert store.version == v0 + 3


def test_bad_input_is_rejected_with_message():
    store = LabelStore()
    with pytest.raises(
        ValueError,
        match=r"The 'sample_id' parameter of LabelStore.put must be a non-empty str \(or int\)\. Got '' instead\.",
    ):
        store.put("", torch.zeros(1))
    with pytest.raises(ValueError, match=r"'sample_id' .* Got None instead"):
        store.put(None, torch.zeros(1))
    with pytest.raises(
        ValueError,
        match=r"'label' parameter of LabelStore.put must be a finite array\. Got an array with NaN or inf values instead",
    ):
        store.put("a", torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match=r"'label' .* a non-empty array\. Got shape \(0,\) instead"):
        store.put("a", np.zeros(0))
    with pytest.raises(ValueError, match=r"'label' .* numeric torch.Tensor or numpy.ndarray\. Got 'list' instead"):
        store.put("a", [1, 2])
    with pytest.raises(ValueError, match=r"'epoch' parameter of LabelStore.put must be an int >= 0\. Got -1 instead"):
        store.put("a", torch.zeros(1), epoch=-1)
    with pytest.raises(ValueError, match=r"'score' .* Got nan instead"):
        store.put("a", torch.zeros(1), score=float("nan"))
    with pytest.raises(ValueError, match=r"'meta' .* plain values .* Got object instead"):
        store.put("a", torch.zeros(1), meta={"x": object()})
    assert len(store) == 0  # nothing half-stored


def test_state_dict_round_trip_through_torch_save_weights_only():
    store = LabelStore()
    store.put(
        "case/1", torch.arange(8, dtype=torch.uint8).reshape(1, 2, 4), epoch=3, score=-0.5, meta={"orig": "a.nii.gz"}
    )
    store.put("case/2", np.full((1, 2, 4), -1, np.int64), epoch=None, score=None)
    buf = io.BytesIO()
    torch.save({"refurbish": store.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)["refurbish"]
    resumed = LabelStore()
    resumed.put("stale", torch.zeros(1))
    resumed.load_state_dict(state)
    assert resumed.ids() == store.ids()
    for sid in store.ids():
        a, b = store.get(sid), resumed.get(sid)
        assert torch.equal(a.label, b.label) and a.label.dtype == b.label.dtype
        assert (a.epoch, a.score, a.meta) == (b.epoch, b.score, b.meta)
    # the state is a snapshot: later changes to the store do not leak into it
    snap = store.state_dict()
    store.remove("case/1")
    assert "case/1" in snap["entries"]


def test_load_state_dict_validates_before_changing():
    store = LabelStore()
    store.put("keep", torch.ones(1))
    with pytest.raises(
        ValueError, match=r"'state' parameter of LabelStore.load_state_dict must be a mapping with 'format' == 1"
    ):
        store.load_state_dict({"entries": {}})
    with pytest.raises(ValueError, match=r"'label' parameter of LabelStore.load_state_dict must be a finite array"):
        store.load_state_dict(
            {"format": 1, "entries": {"a": {"label": torch.ones(1)}, "b": {"label": torch.tensor([float("inf")])}}}
        )
    assert store.ids() == ["keep"]


def test_pickle_keeps_contents_and_gets_a_fresh_lock():
    store = LabelStore()
    store.put("a", torch.ones(1, 2, 2), epoch=1)
    clone = pickle.loads(pickle.dumps(store))
    assert clone.ids() == ["a"] and clone.get("a").epoch == 1
    clone.put("b", torch.zeros(1))  # the lock works
    assert store.ids() == ["a"]
