"""Shared by the property-based tests: hypothesis profiles, strategies, the call contract, the case count.

Profiles (``MONAI_NOISYLABEL_HYPOTHESIS`` selects one; ``ci`` when unset):

- ``ci``: ``derandomize=True`` (the same cases on every run, so CI is reproducible), ``deadline=None``,
  ``max_examples=CI_EXAMPLES`` per property, no example database.
- ``long``: 500 random examples per property for local runs (``MONAI_NOISYLABEL_HYPOTHESIS=long pytest
  tests/hardening/test_properties.py``).
"""

from __future__ import annotations

import os
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from monai.data import MetaTensor

PROFILE_ENV = "MONAI_NOISYLABEL_HYPOTHESIS"
CI_EXAMPLES = 25
_SUPPRESS = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "ci", derandomize=True, deadline=None, max_examples=CI_EXAMPLES, database=None, suppress_health_check=_SUPPRESS
)
settings.register_profile("long", deadline=None, max_examples=500, suppress_health_check=_SUPPRESS)
PROFILE = os.environ.get(PROFILE_ENV, "ci")
settings.load_profile(PROFILE)

CASES: Counter[str] = Counter()  # function -> calls made (``tests/conftest.py`` prints the total at the end)
OUTCOMES: Counter[str] = Counter()  # "result" / "ValueError"

INT_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.int64]
FLOAT_DTYPES = [np.float16, np.float32, np.float64]
DTYPES = [*INT_DTYPES, *FLOAT_DTYPES, np.bool_]
CONTAINERS = ("numpy", "torch", "meta")
LABEL_MODES = ("empty", "one_class", "all_classes", "unknown_classes", "random")

spatial_shapes = st.lists(st.sampled_from([1, 2, 3, 5, 6]), min_size=2, max_size=3).map(tuple)  # 2D/3D, odd, 1


def wrap(a: np.ndarray, container: str) -> Any:
    """``a`` as a numpy array, a torch tensor or a MetaTensor (with a non-identity affine)."""
    if container == "numpy":
        return a.copy()
    t = torch.as_tensor(a.copy())
    if container == "torch":
        return t
    return MetaTensor(t, affine=torch.diag(torch.tensor([0.5, 0.5, 2.0, 1.0], dtype=torch.float64)))


def as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.as_tensor() if isinstance(x, MetaTensor) else x
        return x.detach().cpu().numpy()
    return np.asarray(x)


def label_values(draw: Any, shape: tuple[int, ...], num_classes: int, rng: np.random.Generator) -> np.ndarray:
    """Integer labels: empty (all background), one class, every class present, classes >= num_classes, or random."""
    mode = draw(st.sampled_from(LABEL_MODES))
    if mode == "empty":
        return np.zeros(shape, np.int64)
    if mode == "one_class":
        return np.full(shape, draw(st.integers(0, num_classes - 1)), np.int64)
    if mode == "unknown_classes":
        return rng.integers(0, num_classes + 3, shape)
    values = rng.integers(0, num_classes, shape)
    if mode == "all_classes" and values.size >= num_classes:
        values.reshape(-1)[:num_classes] = np.arange(num_classes)
    return values


def with_nonfinite(draw: Any, a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A float array with NaN, +inf or -inf at a few drawn places (or none)."""
    kind = draw(st.sampled_from(["none", "none", "nan", "inf", "-inf", "all_nan"]))
    if kind == "none" or a.size == 0:
        return a
    a = a.copy()
    if kind == "all_nan":
        a[...] = np.nan
        return a
    mask = rng.random(a.shape) < 0.3
    mask.reshape(-1)[0] = True
    a[mask] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[kind]
    return a


def as_dtype(values: np.ndarray, dtype: Any) -> np.ndarray:
    if dtype is np.bool_:
        return values > 0
    if np.issubdtype(dtype, np.integer):
        return np.clip(values, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype)


def call(name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, ValueError | None]:
    """Run ``fn``; return ``(result, None)`` or ``(None, error)`` for a ``ValueError`` raised by the package itself.

    Anything else (an ``IndexError``/``RuntimeError``/``TypeError``, or a ``ValueError`` raised deep inside torch,
    numpy, scikit-learn or MONAI) propagates and fails the property. Every argument must come back unchanged.
    """
    before = [snapshot(a) for a in (*args, *kwargs.values())]
    CASES[name] += 1
    try:
        out = fn(*args, **kwargs)
    except ValueError as err:
        where = traceback.extract_tb(err.__traceback__)[-1].filename
        assert f"{os.sep}monai_noisylabel{os.sep}" in where, f"{name}: ValueError from {where}: {err}"
        OUTCOMES["ValueError"] += 1
        out, error = None, err
    else:
        OUTCOMES["result"] += 1
        error = None
    for b, a in zip(before, (*args, *kwargs.values())):
        if b is not None:
            np.testing.assert_array_equal(snapshot(a), b, err_msg=f"{name} changed its input")
    return out, error


def snapshot(x: Any) -> np.ndarray | None:
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return as_numpy(x).copy()
    if isinstance(x, (list, tuple)) and x and all(isinstance(i, (np.ndarray, torch.Tensor)) for i in x):
        return np.stack([as_numpy(i) for i in x])
    return None
