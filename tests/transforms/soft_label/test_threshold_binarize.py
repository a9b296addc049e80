"""ThresholdBinarize and ThresholdBinarized: thresholds, ignore band, multi-class vote; synthetic LUS maps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.transforms import AsDiscrete
from scipy import ndimage

from monai_noisylabel.data.synthetic import make_lus_case
from monai_noisylabel.transforms.soft_label import (
    ConfidenceToSoftLabel,
    ThresholdBinarize,
    ThresholdBinarizeD,
    ThresholdBinarized,
    ThresholdBinarizeDict,
)

from ._soft_label_helpers import assert_kind, assert_unchanged, kinds, snapshot, to_numpy

LUS_CASES = range(8)


def lus(index: int) -> tuple[np.ndarray, np.ndarray]:
    case = make_lus_case(0, index, size=(64, 64))
    return np.moveaxis(case["confidence"], -1, 0), case["truth"]  # (4, H, W) channel first, (H, W)


def boundary_band(truth: np.ndarray) -> np.ndarray:
    """Pixels within 1 px of a boundary between two truth labels."""
    edge = np.zeros(truth.shape, bool)
    for value in np.unique(truth):
        mask = truth == value
        edge |= mask & ~ndimage.binary_erosion(mask, border_value=1)
    return ndimage.binary_dilation(edge)


def test_lus_foreground_area_decreases_with_threshold(global_rng_guard):
    for i in LUS_CASES:
        conf, _ = lus(i)
        areas = [int((ThresholdBinarize(threshold=t)(conf) > 0).sum()) for t in (0.5, 0.6, 0.7)]
        assert areas[0] > areas[1] > areas[2], (i, areas)


def test_lus_sixty_percent_drops_ambiguous_findings():
    """Away from the truth's boundaries (where expert confidence drops by design), 0.6 disagrees less than 0.5.

    The phantom puts Z-line artefacts (not B-lines) at confidence [0.45, 0.6): 0.5 labels them, 0.6 does not.
    """
    disagree = {0.5: 0, 0.6: 0}
    artefacts = {0.5: 0, 0.6: 0}
    for i in LUS_CASES:
        conf, truth = lus(i)
        away = ~boundary_band(truth)
        for t in disagree:
            label = ThresholdBinarize(threshold=t)(conf)[0]
            disagree[t] += int(((label != truth) & away).sum())
            artefacts[t] += int(((label == 3) & (truth == 0) & away).sum())
    assert disagree[0.6] < 0.5 * disagree[0.5], disagree
    assert artefacts[0.5] > 0 and artefacts[0.6] < 0.2 * artefacts[0.5], artefacts


def test_lus_sixty_percent_beats_fifty_and_seventy_on_whole_images():
    """The LUS paper's finding on the phantom: binarizing expert confidence at 0.6 matches the truth best."""
    disagree = {0.5: 0, 0.6: 0, 0.7: 0}
    for i in LUS_CASES:
        conf, truth = lus(i)
        for t in disagree:
            disagree[t] += int((ThresholdBinarize(threshold=t)(conf)[0] != truth).sum())
    assert disagree[0.6] < 0.5 * disagree[0.5] and disagree[0.6] < 0.5 * disagree[0.7], disagree


def test_binary_matches_monai_as_discrete():
    x = torch.rand(1, 9, 7, generator=torch.Generator().manual_seed(0))
    x[0, 0, 0] = 0.6  # exactly at the threshold counts as foreground
    out = ThresholdBinarize(threshold=0.6)(x)
    assert torch.equal(out, AsDiscrete(threshold=0.6)(x).as_tensor())
    assert out[0, 0, 0] == 1


def test_multiclass_most_confident_among_those_above_threshold():
    x = np.array(
        [
            [[0.7, 0.65, 0.2, 0.61, 0.59]],
            [[0.9, 0.65, 0.3, 0.10, 0.59]],
            [[0.1, 0.10, 0.5, 0.70, 0.00]],
        ],
        dtype=np.float32,
    )
    out = ThresholdBinarize(threshold=0.6)(x)
    assert out.tolist() == [[[2, 1, 0, 3, 0]]]  # ties go to the lowest class index; nothing >= 0.6: background


def test_ignore_band():
    x = np.array([[[0.1, 0.45, 0.5, 0.59, 0.6, 0.95]]])
    out = ThresholdBinarize(threshold=0.6, low=0.5, ignore_index=255, dtype=np.uint8)(x)
    assert out.dtype == np.uint8
    assert out.tolist() == [[[0, 0, 255, 255, 1, 1]]]
    out = ThresholdBinarize(threshold=0.6, low=0.45, ignore_index=-1, dtype=torch.int64)(torch.as_tensor(x))
    assert out.tolist() == [[[0, -1, -1, -1, 1, 1]]]


def test_background_channel_after_normalized_confidence():
    conf, _ = lus(2)
    soft = ConfidenceToSoftLabel(overlap="normalize")(conf)  # (5, H, W), channel 0 background
    with_bg = ThresholdBinarize(threshold=0.6, background_channel=True)(soft)
    values = set(np.unique(with_bg).tolist())
    assert values <= {0, 1, 2, 3, 4}
    # where the classes sum to <= 1 the normalized map equals the raw one, so the labels agree there
    fit = conf.sum(0) <= 1
    plain = ThresholdBinarize(threshold=0.6)(conf)
    np.testing.assert_array_equal(with_bg[0][fit], plain[0][fit])


@pytest.mark.parametrize("shape", [(11, 9), (6, 5, 4)], ids=["2d", "3d"])
@pytest.mark.parametrize("kind,make", list(kinds()), ids=[k for k, _ in kinds()])
def test_kind_kept_and_input_untouched(shape, kind, make, global_rng_guard):
    soft = np.random.default_rng(0).random((3, *shape)).astype(np.float32)
    x = make(soft)
    before = snapshot(x)
    t = ThresholdBinarize(threshold=0.6, low=0.4)
    out = t(x)
    assert tuple(out.shape) == (1, *shape)
    assert_kind(out, x, np.float32)  # the input's dtype, as AsDiscrete does
    assert set(np.unique(to_numpy(out)).tolist()) <= {0, 1, 2, 3, 255}
    np.testing.assert_array_equal(to_numpy(out), t(soft))
    assert_unchanged(before, x)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            {"threshold": 0.0},
            r"The 'threshold' parameter of ThresholdBinarize must be a finite number > 0.0 and < 1.0. Got 0.0 instead.",
        ),
        ({"threshold": 1.0}, r"The 'threshold' parameter .* Got 1.0 instead."),
        ({"threshold": 1.5}, r"The 'threshold' parameter .* Got 1.5 instead."),
        ({"threshold": -0.1}, r"The 'threshold' parameter .* Got -0.1 instead."),
        ({"threshold": "0.6"}, r"The 'threshold' parameter .* Got '0.6' instead."),
        ({"threshold": 0.6, "low": 0.6}, r"The 'low' parameter .* > 0.0 and < 0.6. Got 0.6 instead."),
        ({"threshold": 0.6, "low": 0.0}, r"The 'low' parameter .* Got 0.0 instead."),
        ({"ignore_index": 2.5}, r"The 'ignore_index' parameter of ThresholdBinarize must be an int. Got 2.5 instead."),
        ({"background_channel": 1}, r"The 'background_channel' parameter .* a bool. Got 1 instead."),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ThresholdBinarize(**kwargs)


def test_bad_inputs():
    t = ThresholdBinarize()
    with pytest.raises(
        ValueError,
        match=r"The 'img' parameter of ThresholdBinarize must be values in \[0, 1\] without NaN. Got values in \[0, 100\] instead.",
    ):
        t(np.array([[[0.0, 100.0]]]))
    with pytest.raises(ValueError, match=r"Got 1 NaN value\(s\) instead."):
        t(np.array([[[np.nan, 0.5]]]))
    with pytest.raises(
        ValueError, match=r"The 'ignore_index' parameter .* outside the class values 0..3. Got 2 instead."
    ):
        ThresholdBinarize(low=0.5, ignore_index=2)(np.zeros((3, 2, 2)))
    with pytest.raises(
        ValueError, match=r"The 'ignore_index' parameter .* fit the output dtype torch.uint8 .* Got -1 instead."
    ):
        ThresholdBinarize(low=0.5, ignore_index=-1, dtype=np.uint8)(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"The 'dtype' parameter .* fit the output dtype torch.bool"):
        ThresholdBinarize(dtype=bool)(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"The 'background_channel' parameter .* False for an input with one channel"):
        ThresholdBinarize(background_channel=True)(np.zeros((1, 2, 2)))


def test_dict_agrees_with_array():
    conf, _ = lus(4)
    data = {"confidence": torch.as_tensor(conf), "id": "lus0004"}
    before = snapshot(data)
    out = ThresholdBinarized("confidence", threshold=0.6, low=0.5, dtype=torch.uint8)(data)
    expected = ThresholdBinarize(threshold=0.6, low=0.5, dtype=torch.uint8)(torch.as_tensor(conf))
    assert torch.equal(out["confidence"], expected) and out["id"] == "lus0004"
    assert_unchanged(before, data)
    assert ThresholdBinarizeD is ThresholdBinarized and ThresholdBinarizeDict is ThresholdBinarized


def test_ignore_value_is_a_deprecated_alias():
    x = np.array([[[0.2, 0.55], [0.7, 0.1]]], np.float32)
    with pytest.warns(DeprecationWarning, match="'ignore_value' is deprecated; use 'ignore_index'"):
        old = ThresholdBinarize(threshold=0.6, low=0.5, ignore_value=7)(x)
    new = ThresholdBinarize(threshold=0.6, low=0.5, ignore_index=7)(x)
    np.testing.assert_array_equal(np.asarray(old), np.asarray(new))
    assert np.asarray(new).tolist() == [[[0, 7], [1, 0]]]
