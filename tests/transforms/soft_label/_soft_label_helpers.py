"""Shared checks for the soft-label transform tests: input kinds, type/dtype/device kept, no mutation."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import get_equivalent_dtype

__all__ = ["AFFINE_2D", "AFFINE_3D", "kinds", "to_numpy", "snapshot", "assert_unchanged", "assert_kind"]

AFFINE_3D = torch.tensor([[0.7, 0, 0, 3.0], [0, 0.8, 0, -2.0], [0, 0, 1.5, 1.0], [0, 0, 0, 1]], dtype=torch.float64)
AFFINE_2D = torch.tensor([[0.2, 0, 0, 1.0], [0, 0.3, 0, 2.0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)


def _devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def kinds() -> Iterator[tuple[str, Callable[[np.ndarray], Any]]]:
    """(name, make) pairs: numpy, torch and MetaTensor (with a non-trivial affine) on every device."""
    yield "numpy", lambda a: a.copy()
    for dev in _devices():
        yield f"torch-{dev}", lambda a, dev=dev: torch.as_tensor(a.copy(), device=dev)
        yield (
            f"meta-{dev}",
            lambda a, dev=dev: MetaTensor(
                torch.as_tensor(a.copy(), device=dev),
                affine=(AFFINE_3D if a.ndim == 4 else AFFINE_2D).clone(),
                meta={"filename_or_obj": "case_001.nii.gz"},
            ),
        )


def to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def snapshot(x: Any) -> Any:
    """A deep copy of an input (array, tensor, MetaTensor with meta, dict, list) to compare against later."""
    if isinstance(x, MetaTensor):
        return (x.as_tensor().clone(), copy.deepcopy(dict(x.meta)))
    if isinstance(x, torch.Tensor):
        return x.clone()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, dict):
        return {k: snapshot(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [snapshot(v) for v in x]
    return copy.deepcopy(x)


def assert_unchanged(before: Any, x: Any) -> None:
    """Fail if ``x`` differs from its earlier :func:`snapshot` ``before`` (values, meta keys, affine)."""
    if isinstance(x, MetaTensor):
        data, meta = before
        assert torch.equal(data, x.as_tensor()), "input values were modified"
        assert set(meta) == set(x.meta), f"input meta keys changed: {set(x.meta) ^ set(meta)}"
        assert torch.equal(torch.as_tensor(meta["affine"]), torch.as_tensor(x.meta["affine"])), "affine modified"
    elif isinstance(x, torch.Tensor):
        assert torch.equal(before, x), "input tensor was modified"
    elif isinstance(x, np.ndarray):
        np.testing.assert_array_equal(before, x)
    elif isinstance(x, dict):
        assert set(before) == set(x), "input dict keys changed"
        for k in x:
            assert_unchanged(before[k], x[k])
    elif isinstance(x, (list, tuple)):
        for b, v in zip(before, x):
            assert_unchanged(b, v)
    else:
        assert before == x


def assert_kind(out: Any, ref: Any, dtype: Any) -> None:
    """``out`` has ``ref``'s container type and device, the given dtype, and ``ref``'s affine if it has one."""
    dtype = get_equivalent_dtype(dtype, np.ndarray if isinstance(ref, np.ndarray) else torch.Tensor)
    if isinstance(ref, MetaTensor):
        assert isinstance(out, MetaTensor), type(out)
        assert out.device == ref.device
        assert torch.equal(out.affine, ref.affine), "affine not preserved"
        assert out.meta.get("filename_or_obj") == ref.meta.get("filename_or_obj")
        assert out.dtype == dtype, (out.dtype, dtype)
    elif isinstance(ref, torch.Tensor):
        assert type(out) is torch.Tensor, type(out)
        assert out.device == ref.device
        assert out.dtype == dtype, (out.dtype, dtype)
    else:
        assert isinstance(out, np.ndarray), type(out)
        assert out.dtype == np.dtype(dtype), (out.dtype, dtype)
