from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_noisylabel.detection import detection_metrics, offset_scores, volume_offsets


def test_volume_offsets_hand_values(global_rng_guard):
    pred = np.zeros((3, 1, 4, 4), np.int64)
    pred[:, 0, :2, :2] = 1  # 4 voxels of class 1
    pred[:, 0, 3, :] = 2  # 4 voxels of class 2
    label = pred.copy()
    label[0, 0, 2, 0] = 1  # sample 0: class 1 dilated by one voxel -> +1/4
    label[1, 0, 3, :] = 0  # sample 1: class 2 omitted -> -1
    out = volume_offsets(torch.as_tensor(pred), label)
    np.testing.assert_allclose(out, [[0.25, 0.0], [0.0, -1.0], [0.0, 0.0]])
    with_bg = volume_offsets(pred, label, include_background=True)
    np.testing.assert_allclose(with_bg[:, 0], [-1 / 8, 4 / 8, 0.0])
    assert volume_offsets(pred, label, num_classes=4).shape == (3, 3)


def test_unpredicted_class_uses_min_volume():
    pred = np.zeros((1, 6), np.int64)
    label = np.array([[0, 1, 1, 1, 0, 0]])
    np.testing.assert_allclose(volume_offsets(pred, label), [[3.0]])
    np.testing.assert_allclose(volume_offsets(pred, label, min_volume=10), [[0.3]])


def test_volume_offsets_errors():
    with pytest.raises(ValueError, match="'labels' parameter of volume_offsets must be class indices of the same"):
        volume_offsets(np.zeros((2, 4)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\]"):
        volume_offsets(np.zeros((1, 4)), np.array([[0, 3, 0, 0]]), num_classes=3)
    with pytest.raises(ValueError, match="'preds' parameter of volume_offsets must be an integer-valued array"):
        volume_offsets(np.full((1, 4), 0.5), np.zeros((1, 4)))


def test_offset_scores_hand_values(global_rng_guard):
    ref = np.array([[0.0, -0.1], [0.2, 0.1]])  # mean (0.1, 0), std ddof=1 (0.1414, 0.1414)
    x = np.array([[0.1, 0.0], [0.1, 0.1414213562], [0.3, -0.1414213562]])
    d = offset_scores(x, reference=ref, covariance="diagonal")
    np.testing.assert_allclose(d, [0.0, 1.0, np.sqrt(2.0 + 1.0)], rtol=1e-6)
    # without reference: median and 1.4826 * MAD of the samples themselves
    y = np.array([0.0, 0.1, 0.2, 0.3, 1.0])
    mad = 1.4826 * 0.1
    np.testing.assert_allclose(offset_scores(y, covariance="diagonal"), np.abs(y - 0.2) / mad)
    # a constant reference feature is floored at min_scale
    np.testing.assert_allclose(offset_scores([[0.05]], reference=[[0.0], [0.0]], covariance="diagonal"), [5.0])
    np.testing.assert_allclose(offset_scores([[0.05]], reference=[[0.0]], min_scale=0.1), [0.5])
    # full covariance: the floor is added to the variance (sqrt(0.05^2 / 0.01^2) = 5 for a zero-variance reference)
    np.testing.assert_allclose(offset_scores([[0.05]], reference=[[0.0], [0.0]]), [5.0])


def test_systematic_bias_needs_a_trusted_reference():
    """Half the labels dilated the same way: separable with a clean reference, not without (documented)."""
    rng = np.random.default_rng(0)
    n = 40
    biased = np.arange(n) < n // 2
    offsets = rng.normal(0.0, 0.03, size=(n, 3))
    offsets[biased, 0] += 0.25  # every biased label 25 % larger on class 1
    reference = rng.normal(0.0, 0.03, size=(15, 3))
    with_ref = detection_metrics(offset_scores(offsets, reference=reference), biased)
    without = detection_metrics(offset_scores(offsets), biased)
    assert with_ref["auroc"] == 1.0
    assert without["auroc"] < 0.8


def test_offset_scores_errors():
    with pytest.raises(ValueError, match="'offsets' parameter of offset_scores must be finite"):
        offset_scores([[np.nan]])
    with pytest.raises(ValueError, match=r"'reference' parameter of offset_scores must be an \(M >= 1, 2\) array"):
        offset_scores(np.zeros((3, 2)), reference=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="'min_scale' parameter"):
        offset_scores(np.zeros((3, 2)), min_scale=0)
    assert offset_scores(np.zeros((0, 2))).shape == (0,)
