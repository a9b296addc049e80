"""Private input checks shared by the detection core: array conversion, sample ids, choices."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from monai_noisylabel.utils import param_error

__all__: list[str] = []


def as_float_array(owner: str, name: str, value: Any, *, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """A float64 numpy copy of ``value`` (numpy, torch, list); the caller's object is never touched."""
    if isinstance(value, torch.Tensor):
        arr = value.detach().cpu().to(torch.float64).numpy()
    else:
        try:
            arr = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise param_error(owner, name, "an array of numbers", type(value).__name__) from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            expected = " or ".join(f"{d}-D" for d in allowed)
            raise param_error(owner, name, f"a {expected} array", f"an array of shape {arr.shape}")
    return arr


def as_int_array(owner: str, name: str, value: Any) -> np.ndarray:
    """An int64 numpy copy of an integer-valued array; raises if it holds fractions or non-finite values."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number):
        raise param_error(owner, name, "an integer-valued array", f"an array of dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise param_error(owner, name, "an integer-valued array", "an array with fractional or non-finite values")
    return arr.astype(np.int64)


def check_finite(owner: str, name: str, arr: np.ndarray) -> None:
    """Raise if ``arr`` holds NaN or inf."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise param_error(owner, name, "finite (no NaN or inf)", f"an array with {bad} non-finite value(s)")


def as_ids(owner: str, ids: Any, *, expected_len: int | None = None) -> list[str]:
    """Sample ids as a list of ``str``; raises on a bad container, a wrong length or an id that repeats."""
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().reshape(-1).tolist()
    elif isinstance(ids, np.ndarray):
        ids = ids.reshape(-1).tolist()
    elif isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise param_error(owner, "ids", "a sequence of sample ids (str or int)", ids)
    out = []
    for i in ids:
        if i is None or isinstance(i, (float, bool)) or not isinstance(i, (str, int, np.integer)):
            raise param_error(owner, "ids", "a sequence of sample ids (str or int)", ids)
        out.append(str(int(i)) if isinstance(i, np.integer) else str(i))
    if expected_len is not None and len(out) != expected_len:
        raise param_error(owner, "ids", f"a sequence of {expected_len} ids (one per sample)", f"{len(out)} ids")
    seen: set[str] = set()
    for i in out:
        if i in seen:
            raise param_error(owner, "ids", "unique within one call (ids that collide mix two samples)", i)
        seen.add(i)
    return out
