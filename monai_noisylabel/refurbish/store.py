"""An in-memory store of refurbished labels keyed by sample id, with exact save/resume.

The store is the single source of truth for which samples currently train on a refurbished label:
``put`` when a sample is refurbished, ``remove`` when it is re-scored clean (its original label is used
again), and :class:`~monai_noisylabel.refurbish.ApplyStoredLabeld` reads it inside the training
pipeline. Labels are kept as CPU torch tensors (copies), so ``state_dict()`` holds tensors and plain
Python values only and loads with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from monai_noisylabel.refurbish._checks import Raw, as_tensor_input
from monai_noisylabel.utils import check_int, check_number, param_error

__all__ = ["StoredLabel", "LabelStore"]

_FORMAT = 1
_PLAIN = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class StoredLabel:
    """One stored label: the label (a CPU tensor), the epoch it was made, its score and free metadata."""

    label: torch.Tensor
    epoch: int | None = None
    score: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


def _check_plain(owner: str, name: str, value: Any) -> Any:
    """Plain JSON-like values only (so the state loads with ``weights_only=True`` and writes to CSV)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_check_plain(owner, name, v) for v in value]
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            raise param_error(owner, name, "a mapping with str keys", Raw(f"keys {list(value)!r}"))
        return {k: _check_plain(owner, name, v) for k, v in value.items()}
    raise param_error(
        owner, name, "plain values (str, int, float, bool, None, lists and dicts of them)", Raw(type(value).__name__)
    )


def _check_id(owner: str, sample_id: Any) -> str:
    if isinstance(sample_id, bool) or not isinstance(sample_id, (str, int, np.integer)) or str(sample_id) == "":
        raise param_error(owner, "sample_id", "a non-empty str (or int)", sample_id)
    return str(sample_id)


def _check_label(owner: str, label: Any) -> torch.Tensor:
    t = as_tensor_input(owner, "label", label)
    if t.numel() == 0:
        raise param_error(owner, "label", "a non-empty array", Raw(f"shape {tuple(t.shape)}"))
    if t.is_floating_point() and not bool(torch.isfinite(t).all()):
        raise param_error(owner, "label", "a finite array", Raw("an array with NaN or inf values"))
    return t.detach().to("cpu", copy=True).contiguous()


class LabelStore:
    """Refurbished labels in memory, keyed by sample id.

    Ids are compared as strings (``str(sample_id)``), so ids that went through collation or a CSV
    still match. Labels are copied in (CPU tensors) and copied out, so no caller can change a stored
    label by accident. Thread-safe; picklable (a DataLoader worker process gets a snapshot: see
    :class:`~monai_noisylabel.refurbish.ApplyStoredLabeld` for what that means for ``num_workers``).

    Example:
        >>> import torch
        >>> store = LabelStore()
        >>> store.put("case_1", torch.ones(1, 4, 4), epoch=3, score=0.9)
        >>> "case_1" in store, store.get("case_1").epoch
        (True, 3)
        >>> store.remove("case_1"), len(store)
        (True, 0)
    """

    def __init__(self) -> None:
        self._entries: dict[str, StoredLabel] = {}
        self._lock = threading.RLock()
        self._version = 0

    @property
    def version(self) -> int:
        """A counter that grows with every change (``put``, ``remove``, ``clear``, ``load_state_dict``)."""
        return self._version

    def put(
        self,
        sample_id: Any,
        label: Any,
        *,
        epoch: int | None = None,
        score: float | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Store (or replace) the label of ``sample_id``.

        Args:
            sample_id: the sample's stable id (str, or an int).
            label: the refurbished label, torch or numpy, usually channel-first ``(1, *spatial)``
                in the space of the training pipeline where :class:`ApplyStoredLabeld` runs.
            epoch: epoch it was made (int >= 0), optional.
            score: the detection score that flagged it (finite), optional.
            meta: plain values to keep with it (e.g. ``fraction_changed``, ``original_path``).

        Raises:
            ValueError: a bad id, an empty or non-finite label, or non-plain metadata.
        """
        owner = "LabelStore.put"
        sid = _check_id(owner, sample_id)
        t = _check_label(owner, label)
        ep = None if epoch is None else check_int(owner, "epoch", epoch, 0)
        sc = None if score is None else check_number(owner, "score", score)
        md = {} if meta is None else _check_plain(owner, "meta", dict(meta))
        with self._lock:
            self._entries[sid] = StoredLabel(label=t, epoch=ep, score=sc, meta=md)
            self._version += 1

    def get(self, sample_id: Any) -> StoredLabel | None:
        """The stored entry of ``sample_id`` (its label a fresh copy), or ``None``."""
        sid = str(sample_id)
        with self._lock:
            entry = self._entries.get(sid)
        if entry is None:
            return None
        return StoredLabel(label=entry.label.clone(), epoch=entry.epoch, score=entry.score, meta=dict(entry.meta))

    def remove(self, sample_id: Any) -> bool:
        """Forget ``sample_id`` (re-scored clean: its original label is used again). True if it was stored."""
        sid = str(sample_id)
        with self._lock:
            found = self._entries.pop(sid, None) is not None
            if found:
                self._version += 1
        return found

    def contains(self, sample_id: Any) -> bool:
        """Whether ``sample_id`` has a stored label."""
        with self._lock:
            return str(sample_id) in self._entries

    __contains__ = contains

    def ids(self) -> list[str]:
        """Stored ids, in insertion order."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids())

    def clear(self) -> None:
        """Forget every stored label."""
        with self._lock:
            self._entries.clear()
            self._version += 1

    def state_dict(self) -> dict[str, Any]:
        """``{"format": 1, "entries": {id: {"label", "epoch", "score", "meta"}}}`` (tensors are copies)."""
        with self._lock:
            entries = {
                sid: {"label": e.label.clone(), "epoch": e.epoch, "score": e.score, "meta": dict(e.meta)}
                for sid, e in self._entries.items()
            }
        return {"format": _FORMAT, "entries": entries}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Replace the contents with what :meth:`state_dict` returned (validated before anything changes)."""
        owner = "LabelStore.load_state_dict"
        if (
            not isinstance(state, Mapping)
            or state.get("format") != _FORMAT
            or not isinstance(state.get("entries"), Mapping)
        ):
            raise param_error(
                owner, "state", f"a mapping with 'format' == {_FORMAT} and 'entries'", Raw(type(state).__name__)
            )
        new: dict[str, StoredLabel] = {}
        for sid, e in state["entries"].items():
            if not isinstance(e, Mapping) or "label" not in e:
                raise param_error(owner, "state", "entries with a 'label'", Raw(f"entry {sid!r}"))
            new[_check_id(owner, sid)] = StoredLabel(
                label=_check_label(owner, e["label"]),
                epoch=None if e.get("epoch") is None else check_int(owner, "epoch", e["epoch"], 0),
                score=None if e.get("score") is None else check_number(owner, "score", e["score"]),
                meta=_check_plain(owner, "meta", dict(e.get("meta") or {})),
            )
        with self._lock:
            self._entries = new
            self._version += 1

    def __getstate__(self) -> dict[str, Any]:
        with self._lock:
            return {"_entries": dict(self._entries), "_version": self._version}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._entries = state["_entries"]
        self._version = state["_version"]
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"LabelStore({len(self)} labels)"
