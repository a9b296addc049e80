"""ConfidenceToSoftLabel and ConfidenceToSoftLabeld: declared scales, overlap rule, contract checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_noisylabel.data.synthetic import make_lus_case
from monai_noisylabel.transforms.soft_label import (
    ConfidenceToSoftLabel,
    ConfidenceToSoftLabelD,
    ConfidenceToSoftLabeld,
    ConfidenceToSoftLabelDict,
)

from ._soft_label_helpers import assert_kind, assert_unchanged, kinds, snapshot, to_numpy


def lus_confidence(index: int = 0) -> np.ndarray:
    return np.moveaxis(make_lus_case(0, index, size=(64, 64))["confidence"], -1, 0)  # (4, H, W)


@pytest.mark.parametrize("scale,top", [("0-1", 1.0), ("0-10", 10.0), ("0-100", 100.0)])
def test_scales(scale, top):
    conf = lus_confidence()
    out = ConfidenceToSoftLabel(scale=scale)(conf * np.float32(top))
    np.testing.assert_allclose(out, conf, atol=1e-6)


@pytest.mark.parametrize("shape", [(7, 6), (5, 4, 3)], ids=["2d", "3d"])
@pytest.mark.parametrize("kind,make", list(kinds()), ids=[k for k, _ in kinds()])
def test_integer_percent_maps_keep_kind(shape, kind, make, global_rng_guard):
    conf = np.random.default_rng(0).integers(0, 101, size=(3, *shape)).astype(np.uint8)
    x = make(conf)
    before = snapshot(x)
    t = ConfidenceToSoftLabel(scale="0-100")
    out = t(x)
    assert_kind(out, x, np.float32)
    np.testing.assert_allclose(to_numpy(out), conf / 100.0, atol=1e-6)
    assert np.array_equal(to_numpy(t(x)), to_numpy(out))
    assert_unchanged(before, x)


def test_float_dtype_kept():
    conf = torch.rand(2, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert ConfidenceToSoftLabel()(conf).dtype == torch.float64


def test_normalize_gives_a_distribution_with_background():
    conf = lus_confidence(3)
    out = ConfidenceToSoftLabel(overlap="normalize")(conf)
    assert out.shape == (5, *conf.shape[1:])
    assert out.min() >= 0 and out.max() <= 1
    np.testing.assert_allclose(out.sum(0), 1.0, atol=1e-5)
    total = conf.sum(0)
    low = total <= 1
    np.testing.assert_allclose(out[1:, low], conf[:, low], atol=1e-6)  # untouched where classes fit
    np.testing.assert_allclose(out[0, low], 1 - total[low], atol=1e-5)
    high = total > 1
    assert high.any()
    np.testing.assert_allclose(out[1:, high], conf[:, high] / total[high], atol=1e-5)  # proportions kept
    np.testing.assert_allclose(out[0, high], 0.0, atol=1e-6)


def test_independent_keeps_overlapping_classes():
    conf = np.stack([np.full((2, 2), 0.8), np.full((2, 2), 0.7)])
    np.testing.assert_allclose(ConfidenceToSoftLabel(overlap="independent")(conf), conf)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            {"scale": "0-5"},
            r"The 'scale' parameter of ConfidenceToSoftLabel must be one of '0-1', '0-10', '0-100'. Got '0-5' instead.",
        ),
        ({"scale": 100}, r"The 'scale' parameter .* Got 100 instead."),
        (
            {"overlap": "softmax"},
            r"The 'overlap' parameter .* one of 'independent', 'normalize'. Got 'softmax' instead.",
        ),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConfidenceToSoftLabel(**kwargs)


def test_values_outside_the_declared_scale():
    with pytest.raises(
        ValueError,
        match=r"The 'img' parameter of ConfidenceToSoftLabel must be values in \[0, 10\] without NaN. Got values in \[0, 50\] instead.",
    ):
        ConfidenceToSoftLabel(scale="0-10")(np.array([[[0.0, 50.0]]]))
    with pytest.raises(
        ValueError, match=r"must be values in \[0, 1\] without NaN. Got values in \[-0.2, 0.5\] instead."
    ):
        ConfidenceToSoftLabel()(np.array([[[-0.2, 0.5]]]))
    with pytest.raises(ValueError, match=r"Got 1 NaN value\(s\) instead."):
        ConfidenceToSoftLabel()(np.array([[[np.nan, 0.5]]]))
    with pytest.raises(ValueError, match=r"channel-first 2D or 3D array"):
        ConfidenceToSoftLabel()(np.zeros((4, 4)))


def test_dict_agrees_with_array():
    conf = lus_confidence(1) * np.float32(100)
    data = {"confidence": conf, "image": np.zeros((1, 64, 64))}
    before = snapshot(data)
    out = ConfidenceToSoftLabeld("confidence", scale="0-100", overlap="normalize")(data)
    np.testing.assert_array_equal(out["confidence"], ConfidenceToSoftLabel(scale="0-100", overlap="normalize")(conf))
    assert out["image"] is data["image"]
    assert_unchanged(before, data)
    assert ConfidenceToSoftLabelD is ConfidenceToSoftLabeld and ConfidenceToSoftLabelDict is ConfidenceToSoftLabeld
