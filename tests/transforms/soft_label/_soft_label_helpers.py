"""Shared checks for the soft-label transform tests: input kinds, type/dtype/device kept, no mutation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from _array_helpers import assert_unchanged, devices, snapshot, to_numpy  # tests/transforms (on sys.path)
from monai.data import MetaTensor
from monai.utils import get_equivalent_dtype

__all__ = ["AFFINE_2D", "AFFINE_3D", "kinds", "to_numpy", "snapshot", "assert_unchanged", "assert_kind"]

AFFINE_3D = torch.tensor([[0.7, 0, 0, 3.0], [0, 0.8, 0, -2.0], [0, 0, 1.5, 1.0], [0, 0, 0, 1]], dtype=torch.float64)
AFFINE_2D = torch.tensor([[0.2, 0, 0, 1.0], [0, 0.3, 0, 2.0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)


def kinds() -> Iterator[tuple[str, Callable[[np.ndarray], Any]]]:
    """(name, make) pairs: numpy, torch and MetaTensor (with a non-trivial affine) on every device."""
    yield "numpy", lambda a: a.copy()
    for dev in devices():
        yield f"torch-{dev}", lambda a, dev=dev: torch.as_tensor(a.copy(), device=dev)
        yield (
            f"meta-{dev}",
            lambda a, dev=dev: MetaTensor(
                torch.as_tensor(a.copy(), device=dev),
                affine=(AFFINE_3D if a.ndim == 4 else AFFINE_2D).clone(),
                meta={"filename_or_obj": "case_001.nii.gz"},
            ),
        )


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
