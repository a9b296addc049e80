"""Array helpers shared by the transform tests (imported by them, not collected)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor


def devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


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
