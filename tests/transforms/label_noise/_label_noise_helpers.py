"""Shared data and checks for the label-noise tests: small 2D/3D label maps, input kinds, snapshots."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from _array_helpers import assert_unchanged, devices, snapshot, to_numpy  # tests/transforms (on sys.path)
from monai.data import MetaTensor

from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.transforms.label_noise import (
    RandLabelBias,
    RandLabelBiasd,
    RandLabelNoise,
    RandLabelNoised,
    RandLabelOmission,
    RandLabelOmissiond,
)

__all__ = [
    "AFFINE_2D",
    "AFFINE_3D",
    "PAIRS",
    "echo_label",
    "label_3d",
    "kinds",
    "to_numpy",
    "snapshot",
    "assert_unchanged",
    "assert_kind",
]

AFFINE_3D = torch.tensor([[0.7, 0, 0, 3.0], [0, 0.8, 0, -2.0], [0, 0, 1.5, 1.0], [0, 0, 0, 1]], dtype=torch.float64)
AFFINE_2D = torch.tensor([[0.3, 0, 0, 1.0], [0, 0.3, 0, 2.0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)

# (array class, dict class, constructor kwargs that make each one do something on the test labels)
PAIRS: list[tuple[type, type, dict[str, Any]]] = [
    (RandLabelNoise, RandLabelNoised, {"radius": (1, 2), "max_shift": 1, "jitter": 1.5, "jitter_spacing": 8}),
    (RandLabelBias, RandLabelBiasd, {"label_class": 1, "radius": 2}),
    (RandLabelOmission, RandLabelOmissiond, {"classes": None, "mode": "component"}),
]


def echo_label(index: int = 0, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """A synthetic 4-class echo label ``(1, H, W)`` uint8 (0 bg, 1 LV, 2 myocardium, 3 LA)."""
    return make_echo_case(0, index, size=size)["label"][None].copy()


def label_3d(size: int = 20, seed: int = 0) -> np.ndarray:
    """A small 3-class 3D label ``(1, S, S, S)`` uint8: a ball (1) inside a shell (2), two blobs of class 3."""
    rng = np.random.default_rng(seed)
    g = np.stack(np.mgrid[0:size, 0:size, 0:size]).astype(float)
    c = size / 2 + rng.uniform(-1, 1, 3)[:, None, None, None]
    d = np.sqrt(((g - c) ** 2).sum(0))
    lab = np.zeros((size,) * 3, np.uint8)
    lab[d < 0.35 * size] = 2
    lab[d < 0.22 * size] = 1
    lab[1:4, 1:4, 1:4] = 3
    lab[-4:-1, -4:-1, 1:3] = 3
    return lab[None]


def kinds() -> Iterator[tuple[str, Callable[[np.ndarray], Any]]]:
    """(name, make) pairs over containers and dtypes: numpy uint8/int32, torch int64/float32, MetaTensor."""
    yield "numpy-uint8", lambda a: a.astype(np.uint8)
    yield "numpy-int32", lambda a: a.astype(np.int32)
    for dev in devices():
        yield f"torch-int64-{dev}", lambda a, dev=dev: torch.as_tensor(a.astype(np.int64), device=dev)
        yield f"torch-float32-{dev}", lambda a, dev=dev: torch.as_tensor(a.astype(np.float32), device=dev)
        yield (
            f"meta-float32-{dev}",
            lambda a, dev=dev: MetaTensor(
                torch.as_tensor(a.astype(np.float32), device=dev),
                affine=(AFFINE_3D if a.ndim == 4 else AFFINE_2D).clone(),
                meta={"filename_or_obj": "case_001.nii.gz"},
            ),
        )


def assert_kind(out: Any, ref: Any) -> None:
    """``out`` has ``ref``'s container type, dtype and device, and ``ref``'s affine and file name if it has them."""
    if isinstance(ref, MetaTensor):
        assert isinstance(out, MetaTensor), type(out)
        assert torch.equal(out.affine, ref.affine), "affine not preserved"
        assert out.meta.get("filename_or_obj") == ref.meta.get("filename_or_obj")
    elif isinstance(ref, torch.Tensor):
        assert type(out) is torch.Tensor, type(out)
    else:
        assert isinstance(out, np.ndarray), type(out)
    assert out.dtype == ref.dtype, (out.dtype, ref.dtype)
    assert getattr(out, "device", None) == getattr(ref, "device", None)
    assert out.shape == ref.shape
