from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_noisylabel.detection import image_label_quality, pixel_label_quality


def _batch(b, c, spatial, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(b, c, *spatial))
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, c, size=(b, 1, *spatial))
    return probs, labels


def _loop_reference(probs, labels):
    out = np.zeros((probs.shape[0], *probs.shape[2:]))
    for b in range(probs.shape[0]):
        for idx in np.ndindex(*probs.shape[2:]):
            out[(b, *idx)] = probs[(b, labels[(b, 0, *idx)], *idx)]
    return out


@pytest.mark.parametrize("spatial", [(5, 6), (4, 5, 6)])
def test_batch_and_single_2d_3d(spatial, global_rng_guard):
    probs, labels = _batch(2, 3, spatial)
    expected = _loop_reference(probs, labels)
    np.testing.assert_allclose(pixel_label_quality(probs, labels), expected)
    np.testing.assert_allclose(pixel_label_quality(probs, labels[:, 0]), expected)  # no channel dim
    np.testing.assert_allclose(pixel_label_quality(probs[1], labels[1]), expected[1])  # single image
    np.testing.assert_allclose(pixel_label_quality(probs[1], labels[1, 0]), expected[1])


def test_torch_in_numpy_out_and_dtype():
    probs, labels = _batch(2, 4, (4, 4))
    t = torch.as_tensor(probs, dtype=torch.float32)
    before = t.clone()
    out = pixel_label_quality(t, torch.as_tensor(labels))
    assert isinstance(out, np.ndarray) and out.dtype == np.float32 and out.shape == (2, 4, 4)
    assert torch.equal(t, before)
    assert pixel_label_quality(probs, labels).dtype == np.float64


def test_ambiguous_layout_needs_spatial_dims():
    probs, labels = _batch(4, 4, (3, 3))  # (4, 4, 3, 3) is a 2D batch or a 3D single image
    with pytest.raises(ValueError, match="'spatial_dims' parameter of pixel_label_quality must be given"):
        pixel_label_quality(probs, labels[:, 0])
    np.testing.assert_allclose(pixel_label_quality(probs, labels[:, 0], spatial_dims=2), _loop_reference(probs, labels))
    single_3d = pixel_label_quality(probs, labels[:, 0], spatial_dims=3)  # (D=4, H, W) labels, C=4
    assert single_3d.shape == (4, 3, 3)
    np.testing.assert_allclose(single_3d[1, 2, 0], probs[labels[1, 0, 2, 0], 1, 2, 0])


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        (np.full((1, 2, 3, 3), 0.5), np.zeros((1, 1, 3, 4)), "'labels' parameter of pixel_label_quality must be"),
        (np.full((1, 2, 3, 3), 0.5), np.full((1, 1, 3, 3), 2), r"class indices in \[0, 1\]"),
        (np.full((1, 2, 3, 3), 0.5), np.full((1, 1, 3, 3), 0.5), "integer-valued"),
        (np.full((1, 2, 3, 3), 2.0), np.zeros((1, 1, 3, 3)), r"probabilities in \[0, 1\]"),
        (np.full((1, 2, 3, 3), np.nan), np.zeros((1, 1, 3, 3)), "finite"),
        (np.full((1, 1, 3, 3), 0.5), np.zeros((1, 1, 3, 3)), ">= 2 class channels"),
    ],
)
def test_bad_input(probs, labels, match):
    with pytest.raises(ValueError, match=match):
        pixel_label_quality(probs, labels)


def test_image_summary_hand_values():
    q = np.array([[1.0, 1.0, 1.0, 0.2], [0.9, 0.9, 0.9, 0.9]])
    np.testing.assert_allclose(image_label_quality(q, method="mean"), [0.8, 0.9])
    np.testing.assert_allclose(image_label_quality(q, method="min"), [0.2, 0.9])
    w = np.exp(-np.array([1.0, 1.0, 1.0, 0.2]) / 0.5)
    expected = (w * [1.0, 1.0, 1.0, 0.2]).sum() / w.sum()
    np.testing.assert_allclose(image_label_quality(q, temperature=0.5), [expected, 0.9])
    # softmin follows the worst voxels: a small wrong region outweighs a large right background
    small_error = np.ones((1, 10, 10))
    small_error[0, :2, :2] = 0.0
    assert image_label_quality(small_error)[0] < 0.05 < 0.96 == image_label_quality(small_error, method="mean")[0]
    with pytest.raises(ValueError, match="'temperature' parameter of image_label_quality must be a finite number > 0"):
        image_label_quality(q, temperature=0)
    with pytest.raises(ValueError, match="'quality' parameter of image_label_quality must be a"):
        image_label_quality(np.ones(3))
