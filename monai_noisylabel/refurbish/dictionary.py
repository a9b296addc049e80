"""``ApplyStoredLabeld``: read labels through a :class:`LabelStore` inside a MONAI pipeline.

Placement rule: put it right after the deterministic loading/preprocessing and before the random
augmentation, e.g. ``[LoadImaged, EnsureChannelFirstd, Spacingd, ApplyStoredLabeld, RandFlipd, ...]``.
The store holds labels in the space of the pipeline at that point, and the random transforms that
follow act on the image and the refurbished label together.

Caches never win: MONAI's ``CacheDataset``, ``PersistentDataset``, ``SmartCacheDataset`` and
``LMDBDataset`` cache the transforms before the first one that is a
:class:`~monai.transforms.RandomizableTrait` (``Compose.get_index_of_first`` in ``_pre_transform`` /
``_load_cache_item``) and re-run the rest on every access. ``ApplyStoredLabeld`` carries that trait
(it draws no random numbers; its output depends on the store, which changes during training), so the
cache always stops before it and a store update is seen on the next access even when the cache was
built earlier. ``CacheNTransDataset`` caches a fixed number of transforms instead: its
``cache_n_trans`` must not reach past this transform; :func:`check_store_not_cached` checks any
dataset. ``PersistentDataset`` stores plain tensors by default (``track_meta=False``), so the label
reaching this transform has no meta to flag: use the ``flag_key`` entry of the data dict instead.

Workers: the store lives in the main process, where the training handler updates it.

- ``ThreadDataLoader`` (or ``DataLoader(num_workers=0)``): the pipeline runs in the main process and
  sees an update from the next item it loads (a few batches may already sit in the thread buffer).
- ``DataLoader(num_workers > 0, persistent_workers=False)`` (the default): worker processes are
  started, each with a snapshot of the store, whenever an epoch's iterator is created, so an update
  made between epochs is seen from the next epoch on; an update made during an epoch is not seen
  until the next one. ignite 0.5 creates the next epoch's iterator when that epoch fetches its first
  batch (after ``EPOCH_STARTED``), so updates made on ``EPOCH_COMPLETED`` reach the next epoch.
- ``persistent_workers=True``: workers keep the snapshot of the first epoch and never see an update.
  Do not use it with refurbishment.
- Several processes (DDP): each rank has its own store; update every rank with the same labels
  (e.g. broadcast from rank 0) or each rank trains on what its own store holds.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.data import CacheDataset, CacheNTransDataset, MetaTensor, PersistentDataset
from monai.transforms import Compose, MapTransform, Transform
from monai.transforms.traits import RandomizableTrait
from monai.utils import TransformBackends, convert_to_dst_type

from monai_noisylabel.refurbish._checks import Raw, Shape, as_tensor_input
from monai_noisylabel.refurbish.store import LabelStore
from monai_noisylabel.utils import param_error, sample_id_of

__all__ = [
    "REFURBISHED_KEY",
    "REFURBISHED_EPOCH_KEY",
    "ApplyStoredLabeld",
    "ApplyStoredLabelD",
    "ApplyStoredLabelDict",
    "check_store_not_cached",
]

REFURBISHED_KEY = "refurbished"
"""Meta key: ``True`` when the label came from the store, ``False`` otherwise (set on every sample)."""

REFURBISHED_EPOCH_KEY = "refurbished_epoch"
"""Meta key: the epoch the stored label was made, ``-1`` when not refurbished or unknown."""


def _with_flags(x: Any, template: Any, refurbished: bool, epoch: int) -> Any:
    """``x`` carrying ``template``'s meta plus the refurbish flags, in a NEW meta dict (caches stay clean)."""
    if not isinstance(template, MetaTensor):
        return x
    data = x.as_tensor() if isinstance(x, MetaTensor) else x
    meta = dict(template.meta)
    meta[REFURBISHED_KEY] = refurbished
    meta[REFURBISHED_EPOCH_KEY] = epoch
    return MetaTensor(data, meta=meta, applied_operations=list(template.applied_operations))


class ApplyStoredLabeld(MapTransform, RandomizableTrait):
    """Replace ``data[key]`` by the stored label when the sample's id is in ``store``.

    ``data[flag_key]`` (default ``"refurbished"``) tells whether the label came from the store, and
    every output label that is a MetaTensor keeps the original's meta (affine, filename, applied
    operations) and gets ``meta["refurbished"]`` (bool) and ``meta["refurbished_epoch"]`` (int, -1 if
    not refurbished), on every sample, so batches collate. The stored label is converted to the type,
    dtype and device of the label it replaces; a stored label of another shape, or with values that
    dtype cannot hold, raises ``ValueError`` instead of silently corrupting a batch. The input dict
    and its tensors are never modified (cached items stay clean).

    See the module docstring for where to place it (after any cached transform: it is marked
    :class:`~monai.transforms.RandomizableTrait` so caching datasets stop before it) and for
    DataLoader workers.

    Args:
        keys: label key(s), default ``"label"``.
        store: the :class:`LabelStore` to read.
        id_key: the key of the sample id (fallback: the label's ``filename_or_obj``).
        flag_key: key under which every sample gets a bool "label came from the store" in the data
            dict itself (collates to a ``(B,)`` tensor, e.g. for the ramped loss weight of
            pseudo-labelled samples); it survives where meta does not (``PersistentDataset`` caches
            plain tensors by default). ``None`` disables it.
        allow_missing_keys: don't raise if a key is missing.

    Example:
        >>> import torch
        >>> store = LabelStore()
        >>> store.put("a", torch.ones(1, 2, 2))
        >>> t = ApplyStoredLabeld("label", store=store)
        >>> t({"id": "a", "label": torch.zeros(1, 2, 2)})["label"].sum().item()
        4.0
        >>> t({"id": "b", "label": torch.zeros(1, 2, 2)})["label"].sum().item()
        0.0
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]  # noqa: RUF012 (MONAI convention)

    def __init__(
        self,
        keys: KeysCollection = "label",
        *,
        store: LabelStore,
        id_key: str = "id",
        flag_key: str | None = REFURBISHED_KEY,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        if not isinstance(store, LabelStore):
            raise param_error("ApplyStoredLabeld", "store", "a LabelStore", Raw(type(store).__name__))
        if not isinstance(id_key, str) or not id_key:
            raise param_error("ApplyStoredLabeld", "id_key", "a non-empty str", id_key)
        if flag_key is not None and (not isinstance(flag_key, str) or not flag_key):
            raise param_error("ApplyStoredLabeld", "flag_key", "a non-empty str or None", flag_key)
        self.store = store
        self.id_key = id_key
        self.flag_key = flag_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        first = self.first_key(d)
        sid = sample_id_of(d, id_key=self.id_key, label_key=first if isinstance(first, str) else None)
        if sid is None:
            raise param_error("ApplyStoredLabeld", "id_key", "the key of an id present in every sample", self.id_key)
        entry = self.store.get(sid)
        for key in self.key_iterator(d):
            orig = d[key]
            if entry is None:
                d[key] = _with_flags(orig, orig, False, -1)
                continue
            new = entry.label
            if tuple(new.shape) != tuple(orig.shape):
                raise param_error(
                    "ApplyStoredLabeld",
                    "store",
                    f"a label of shape {tuple(orig.shape)} for sample {sid!r}",
                    Shape(new.shape),
                )
            out = convert_to_dst_type(new, dst=orig, dtype=orig.dtype)[0]
            if not torch.equal(as_tensor_input("ApplyStoredLabeld", "store", out).to("cpu", new.dtype), new):
                raise param_error(
                    "ApplyStoredLabeld",
                    "store",
                    f"a label whose values the dtype {orig.dtype} of {key!r} can hold (sample {sid!r})",
                    Raw(f"values in [{new.min().item():g}, {new.max().item():g}]"),
                )
            d[key] = _with_flags(out, orig, True, -1 if entry.epoch is None else entry.epoch)
        if self.flag_key is not None:
            d[self.flag_key] = entry is not None
        return d


ApplyStoredLabelD = ApplyStoredLabelDict = ApplyStoredLabeld


def _holds_store_transform(t: Any, depth: int = 0) -> bool:
    if isinstance(t, ApplyStoredLabeld):
        return True
    inner = getattr(t, "transforms", None)
    if depth < 16 and isinstance(inner, (list, tuple)):
        return any(_holds_store_transform(x, depth + 1) for x in inner)
    return False


def check_store_not_cached(dataset: Any) -> int:
    """Raise if an :class:`ApplyStoredLabeld` of ``dataset``'s pipeline would be cached; return how many there are.

    Understands MONAI's caching datasets: ``CacheNTransDataset`` caches its first ``cache_n_trans``
    transforms; ``CacheDataset``/``PersistentDataset`` (and their subclasses) cache up to the first
    randomizable (or non-``Transform``) one. Wrappers with a ``.dataset`` attribute (``Subset``) are
    unwrapped. A plain ``Dataset`` caches nothing.

    Raises:
        ValueError: when a store transform (also inside a nested ``Compose``) lies in the cached part.

    Example:
        >>> from monai.data import CacheDataset
        >>> from monai.transforms import Compose, Identityd
        >>> t = Compose([Identityd("label"), ApplyStoredLabeld("label", store=LabelStore())])
        >>> check_store_not_cached(CacheDataset([{"id": "a", "label": 0}], t, progress=False))
        1
    """
    ds = dataset
    for _ in range(8):
        if isinstance(ds, (CacheDataset, PersistentDataset)) or not hasattr(ds, "dataset"):
            break
        ds = ds.dataset
    transform = getattr(ds, "transform", None)
    if transform is None:
        return 0
    items = list(transform.transforms) if isinstance(transform, Compose) else [transform]
    found = [i for i, t in enumerate(items) if _holds_store_transform(t)]
    end = 0
    if isinstance(ds, CacheNTransDataset):
        end = int(ds.cache_n_trans)
    elif isinstance(ds, (CacheDataset, PersistentDataset)) and isinstance(transform, Compose):
        first = transform.get_index_of_first(lambda t: isinstance(t, RandomizableTrait) or not isinstance(t, Transform))
        end = len(items) if first is None else int(first)
    cached = [i for i in found if i < end]
    if cached:
        raise param_error(
            type(ds).__name__,
            "transform",
            f"a pipeline whose ApplyStoredLabeld lies after the cached transforms (the first {end})",
            Raw(f"ApplyStoredLabeld at index {cached[0]}"),
        )
    return len(found)
