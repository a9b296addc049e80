from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import (
    CacheDataset,
    CacheNTransDataset,
    DataLoader,
    Dataset,
    MetaTensor,
    PersistentDataset,
    ThreadDataLoader,
    list_data_collate,
)
from monai.transforms import Compose, MapTransform, RandFlipd

from monai_noisylabel.refurbish import (
    REFURBISHED_EPOCH_KEY,
    REFURBISHED_KEY,
    ApplyStoredLabelD,
    ApplyStoredLabeld,
    ApplyStoredLabelDict,
    LabelStore,
    check_store_not_cached,
)

SHAPE = (1, 6, 6)


class CountingLoad(MapTransform):
    """Deterministic 'loading': arrays to MetaTensors with an affine; counts its calls (to prove caching)."""

    def __init__(self) -> None:
        super().__init__(("image", "label"))
        self.calls = 0

    def __call__(self, data):
        self.calls += 1
        d = dict(data)
        for key in self.keys:
            meta = {
                "affine": torch.diag(torch.tensor([2.0, 2.0, 1.0, 1.0])),
                "filename_or_obj": f"{d['id']}_{key}.nii.gz",
            }
            d[key] = MetaTensor(torch.as_tensor(np.asarray(d[key]))[None].float(), meta=meta)
        return d


def _items(n: int = 4) -> list[dict]:
    return [
        {"id": f"s{i}", "image": np.full(SHAPE[1:], i, np.float32), "label": np.zeros(SHAPE[1:], np.uint8)}
        for i in range(n)
    ]


def _stored(value: int) -> torch.Tensor:
    return torch.full(SHAPE, value, dtype=torch.uint8)


def test_replaces_label_keeps_meta_and_flags_every_sample(global_rng_guard):
    store = LabelStore()
    store.put("s1", _stored(2), epoch=5)
    t = ApplyStoredLabeld("label", store=store)
    src = CountingLoad()({"id": "s1", "image": np.zeros(SHAPE[1:]), "label": np.zeros(SHAPE[1:], np.uint8)})
    out = t(src)
    lab = out["label"]
    assert isinstance(lab, MetaTensor) and lab.dtype == torch.float32 and lab.shape == SHAPE
    assert float(lab.sum()) == 2 * 36
    assert lab.meta["filename_or_obj"] == "s1_label.nii.gz"
    torch.testing.assert_close(lab.affine, src["label"].affine)
    assert lab.meta[REFURBISHED_KEY] is True and lab.meta[REFURBISHED_EPOCH_KEY] == 5
    # the input (e.g. a cached item) is untouched
    assert float(src["label"].sum()) == 0 and REFURBISHED_KEY not in src["label"].meta
    other = t(CountingLoad()({"id": "s2", "image": np.zeros(SHAPE[1:]), "label": np.zeros(SHAPE[1:], np.uint8)}))
    assert other["label"].meta[REFURBISHED_KEY] is False and other["label"].meta[REFURBISHED_EPOCH_KEY] == -1
    assert out["refurbished"] is True and other["refurbished"] is False
    silent = ApplyStoredLabeld("label", store=store, flag_key=None)(src)
    assert "refurbished" not in silent
    assert ApplyStoredLabelD is ApplyStoredLabeld and ApplyStoredLabelDict is ApplyStoredLabeld


def test_numpy_labels_and_id_fallback():
    store = LabelStore()
    store.put("/data/a_label.nii.gz", torch.ones(1, 2, 2, dtype=torch.int64))
    t = ApplyStoredLabeld(["label"], store=store)
    out = t({"id": "n", "label": np.zeros((1, 2, 2), np.int16)})
    assert isinstance(out["label"], np.ndarray) and out["label"].sum() == 0
    store.put("n", torch.ones(1, 2, 2, dtype=torch.int64))
    out = t({"id": "n", "label": np.zeros((1, 2, 2), np.int16)})
    assert isinstance(out["label"], np.ndarray) and out["label"].dtype == np.int16 and out["label"].sum() == 4
    mt = MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": "/data/a_label.nii.gz"})
    assert float(t({"label": mt})["label"].sum()) == 4  # no id key: the label's filename is the id


def test_bad_stored_label_raises_instead_of_corrupting():
    store = LabelStore()
    t = ApplyStoredLabeld(store=store)
    store.put("a", torch.ones(1, 3, 3))
    with pytest.raises(
        ValueError,
        match=r"The 'store' parameter of ApplyStoredLabeld must be a label of shape \(1, 2, 2\) for sample 'a'\. Got shape \(1, 3, 3\) instead\.",
    ):
        t({"id": "a", "label": np.zeros((1, 2, 2), np.uint8)})
    store.put("a", torch.full((1, 2, 2), -1))
    with pytest.raises(
        ValueError, match=r"the dtype uint8 of 'label' can hold \(sample 'a'\)\. Got values in \[-1, -1\] instead"
    ):
        t({"id": "a", "label": np.zeros((1, 2, 2), np.uint8)})
    with pytest.raises(
        ValueError,
        match=r"'id_key' parameter of ApplyStoredLabeld must be the key of an id present in every sample\. Got 'id' instead",
    ):
        t({"label": np.zeros((1, 2, 2), np.uint8)})
    with pytest.raises(
        ValueError, match=r"'store' parameter of ApplyStoredLabeld must be a LabelStore\. Got dict instead"
    ):
        ApplyStoredLabeld("label", store={})  # type: ignore[arg-type]


def _pipeline(store: LabelStore, load: CountingLoad) -> Compose:
    return Compose([load, ApplyStoredLabeld("label", store=store), RandFlipd(("image", "label"), prob=0.0)])


@pytest.mark.parametrize("kind", ["cache", "persistent"])
def test_caching_datasets_never_return_a_stale_label(kind, tmp_path):
    store = LabelStore()
    load = CountingLoad()
    tf = _pipeline(store, load)
    if kind == "cache":
        ds = CacheDataset(_items(), tf, cache_rate=1.0, num_workers=1, progress=False)
        assert load.calls == 4  # the loading part was cached up front ...
    else:
        ds = PersistentDataset(_items(), tf, cache_dir=tmp_path / "cache")
        _ = [ds[i] for i in range(4)]  # ... or on first access, to disk
    calls = load.calls
    assert check_store_not_cached(ds) == 1
    assert all(float(ds[i]["label"].sum()) == 0 for i in range(4))
    store.put("s2", _stored(3), epoch=1)  # refurbish after the cache exists
    assert float(ds[2]["label"].sum()) == 3 * 36 and ds[2]["refurbished"] is True
    if kind == "cache":  # PersistentDataset caches plain tensors by default (track_meta=False): no meta there
        assert ds[2]["label"].meta[REFURBISHED_KEY] is True
    assert float(ds[1]["label"].sum()) == 0 and ds[1]["refurbished"] is False
    store.remove("s2")  # re-scored clean: the original label again
    assert float(ds[2]["label"].sum()) == 0
    assert load.calls == calls  # the cache was really used, and still lost to the store
    if kind == "persistent":
        assert len(list((tmp_path / "cache").glob("*.pt"))) == 4


def test_cache_n_trans_reaching_past_the_store_is_detected():
    store = LabelStore()
    load = CountingLoad()
    ds = CacheNTransDataset(_items(2), _pipeline(store, load), cache_n_trans=2, cache_dir=None)
    with pytest.raises(
        ValueError,
        match=r"The 'transform' parameter of CacheNTransDataset must be a pipeline whose ApplyStoredLabeld lies after the cached transforms \(the first 2\)\. Got ApplyStoredLabeld at index 1 instead\.",
    ):
        check_store_not_cached(ds)
    ok = CacheNTransDataset(_items(2), _pipeline(store, load), cache_n_trans=1, cache_dir=None)
    assert check_store_not_cached(ok) == 1
    nested = Compose([load, Compose([ApplyStoredLabeld("label", store=store)])])
    assert check_store_not_cached(CacheDataset(_items(1), nested, progress=False)) == 1
    assert check_store_not_cached(Dataset(_items(1), nested)) == 1
    assert check_store_not_cached(torch.utils.data.Subset(CacheDataset(_items(1), nested, progress=False), [0])) == 1
    with pytest.raises(ValueError, match=r"CacheNTransDataset"):
        check_store_not_cached(CacheNTransDataset(_items(1), nested, cache_n_trans=2, cache_dir=None))
    assert check_store_not_cached(Dataset(_items(1), load)) == 0


def test_mixed_batch_collates():
    store = LabelStore()
    store.put("s0", _stored(1), epoch=2)
    ds = CacheDataset(_items(3), _pipeline(store, CountingLoad()), progress=False)
    batch = next(iter(DataLoader(ds, batch_size=3, num_workers=0)))
    assert batch["label"].shape == (3, *SHAPE)
    assert batch["label"].meta[REFURBISHED_KEY].tolist() == [True, False, False]
    assert batch["label"].meta[REFURBISHED_EPOCH_KEY].tolist() == [2, -1, -1]
    assert batch["refurbished"].tolist() == [True, False, False]


def _epoch_sums(loader) -> list[float]:
    return [float(b["label"].sum()) for b in loader]


def test_thread_dataloader_sees_updates_at_once():
    store = LabelStore()
    ds = CacheDataset(_items(2), _pipeline(store, CountingLoad()), progress=False)
    loader = ThreadDataLoader(ds, batch_size=1, num_workers=0, buffer_size=1)
    assert _epoch_sums(loader) == [0.0, 0.0]
    store.put("s1", _stored(1))
    assert _epoch_sums(loader) == [0.0, 36.0]


def test_worker_processes_see_updates_from_the_next_epoch_only_without_persistent_workers():
    store = LabelStore()
    ds = CacheDataset(_items(2), _pipeline(store, CountingLoad()), progress=False)
    fresh = DataLoader(ds, batch_size=1, num_workers=1, persistent_workers=False, collate_fn=list_data_collate)
    persistent = DataLoader(ds, batch_size=1, num_workers=1, persistent_workers=True, collate_fn=list_data_collate)
    assert _epoch_sums(fresh) == [0.0, 0.0]
    assert _epoch_sums(persistent) == [0.0, 0.0]  # workers start here, with an empty store snapshot
    store.put("s0", _stored(1))  # between epochs, in the main process
    assert _epoch_sums(fresh) == [36.0, 0.0]  # new workers, new snapshot
    assert _epoch_sums(persistent) == [0.0, 0.0]  # stale: documented, do not use persistent workers


def test_ignite_epoch_completed_updates_reach_the_next_epoch_with_worker_processes():
    from ignite.engine import Engine, Events

    store = LabelStore()
    ds = CacheDataset(_items(2), _pipeline(store, CountingLoad()), progress=False)
    loader = DataLoader(ds, batch_size=1, num_workers=1, persistent_workers=False, collate_fn=list_data_collate)
    seen: dict[int, list[float]] = {}

    def step(engine, batch):
        seen.setdefault(engine.state.epoch, []).append(float(batch["label"].sum()))

    engine = Engine(step)

    @engine.on(Events.EPOCH_COMPLETED)
    def refurbish(engine):
        store.put("s1", _stored(engine.state.epoch))

    engine.run(loader, max_epochs=3)
    assert seen == {1: [0.0, 0.0], 2: [0.0, 36.0], 3: [0.0, 72.0]}
