"""The pure kernels in monai_noisylabel.transforms.soft_label.functional."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_noisylabel.transforms.soft_label import functional as F


def naive_staple(d: np.ndarray, iters: int, prior: float | None = None):
    """Textbook per-voxel EM (no pattern compression), same start and clamping as the kernel."""
    d = d.reshape(d.shape[0], -1).astype(np.float64)
    p = np.full(d.shape[0], 0.9)
    q = np.full(d.shape[0], 0.9)
    f = float(np.clip(d.mean(), 1e-6, 1 - 1e-6)) if prior is None else prior
    for _ in range(iters):
        a = f * np.prod(np.where(d == 1, p[:, None], 1 - p[:, None]), axis=0)
        b = (1 - f) * np.prod(np.where(d == 0, q[:, None], 1 - q[:, None]), axis=0)
        w = a / (a + b)
        p = np.clip((w * d).sum(1) / w.sum(), 1e-6, 1 - 1e-6)
        q = np.clip(((1 - w) * (1 - d)).sum(1) / (1 - w).sum(), 1e-6, 1 - 1e-6)
        if prior is None:
            f = float(np.clip(w.mean(), 1e-6, 1 - 1e-6))
    a = f * np.prod(np.where(d == 1, p[:, None], 1 - p[:, None]), axis=0)
    b = (1 - f) * np.prod(np.where(d == 0, q[:, None], 1 - q[:, None]), axis=0)
    return a / (a + b), p, q, f


@pytest.mark.parametrize("prior", [None, 0.2])
def test_staple_matches_naive_em(prior):
    rng = np.random.default_rng(3)
    truth = rng.random((30, 20)) < 0.25
    d = np.stack(
        [np.where(truth, rng.random(truth.shape) < s, rng.random(truth.shape) > 0.93) for s in (0.9, 0.7, 0.8)]
    )
    post, info = F.staple(torch.as_tensor(d.astype(np.uint8)), prior=prior, max_iter=7, tol=1e-300)
    w, p, q, f = naive_staple(d.astype(np.uint8), iters=7, prior=prior)
    assert info["iterations"] == 7 and not info["converged"]
    np.testing.assert_allclose(post.numpy().ravel(), w, atol=1e-5)
    np.testing.assert_allclose(info["sensitivity"], p, atol=1e-10)
    np.testing.assert_allclose(info["specificity"], q, atol=1e-10)
    assert info["prior"] == pytest.approx(f)


def test_staple_degenerate_inputs_stay_finite():
    for value in (0, 1):
        post, info = F.staple(torch.full((3, 4, 4), value, dtype=torch.uint8))
        assert torch.isfinite(post).all()
        assert all(np.isfinite(info["sensitivity"])) and all(np.isfinite(info["specificity"]))
        assert float(post.mean()) == pytest.approx(float(value), abs=1e-3)


def test_staple_many_raters_uses_row_unique_fallback():
    rng = np.random.default_rng(0)
    truth = rng.random((8, 8)) < 0.4
    d = np.stack([np.where(truth, rng.random(truth.shape) < 0.9, rng.random(truth.shape) > 0.9) for _ in range(64)])
    post, info = F.staple(torch.as_tensor(d.astype(np.uint8)))
    assert len(info["sensitivity"]) == 64
    assert ((post[0].numpy() > 0.5) == truth).all()


def test_rater_mean_weights_and_clamp():
    r = torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]], [[1.0, 1.0]]])
    assert F.rater_mean(r).shape == (1, 1, 2)
    out = F.rater_mean(r, weights=[1.0, 1.0, 1.0 / 3.0])
    assert float(out.max()) <= 1.0
    assert out[0, 0, 1].item() == pytest.approx((4.0 / 3.0) / (7.0 / 3.0))


def test_rater_reliability_properties():
    assert F.rater_reliability(torch.ones(1, 3, 3)).tolist() == [1.0]
    empty = F.rater_reliability(torch.zeros(3, 4, 4))
    assert empty.tolist() == [1.0, 1.0, 1.0]  # empty masks agree perfectly
    disjoint = torch.zeros(2, 4)
    disjoint[0, :2] = 1
    disjoint[1, 2:] = 1
    assert F.rater_reliability(disjoint).tolist() == [1.0, 1.0]  # all zero: fall back to equal weights


def test_normalize_in_region():
    rng = np.random.default_rng(0)
    image = torch.as_tensor(rng.normal(5.0, 2.0, (1, 20, 20)))
    region = torch.zeros(1, 20, 20, dtype=torch.bool)
    region[0, 5:15, 5:15] = True
    z = F.normalize_in_region(image, region, "zscore")
    assert float(z[region].mean()) == pytest.approx(0.0, abs=1e-9)
    assert float(z[region].std(unbiased=False)) == pytest.approx(1.0, abs=1e-9)
    pct = F.normalize_in_region(image, region, "percentile")
    assert float(pct.min()) >= 0.0 and float(pct.max()) <= 1.0
    order = torch.argsort(image.flatten())
    assert bool((pct.flatten()[order].diff() >= 0).all())  # monotone in intensity
    assert torch.equal(F.normalize_in_region(image, torch.zeros_like(region)), torch.zeros_like(image))
    with pytest.raises(
        ValueError, match=r"The 'mode' parameter of normalize_in_region must be one of 'zscore', 'percentile'"
    ):
        F.normalize_in_region(image, region, "minmax")


def test_check_unit_range_messages():
    F.check_unit_range("X", "img", torch.tensor([0.0, 1.0]))
    F.check_unit_range("X", "img", torch.tensor([True, False]))
    F.check_unit_range("X", "img", torch.tensor([0, 7]), upper=10)
    with pytest.raises(
        ValueError,
        match=r"The 'img' parameter of X must be values in \[0, 10\] without NaN. Got values in \[0, 11\] instead.",
    ):
        F.check_unit_range("X", "img", torch.tensor([0, 11]), upper=10)
    with pytest.raises(ValueError, match=r"Got 2 NaN value\(s\) instead."):
        F.check_unit_range("X", "img", torch.tensor([float("nan"), float("nan"), 0.3]))


def test_confidence_to_soft_and_threshold_binarize_validate_on_their_own():
    with pytest.raises(ValueError, match=r"The 'scale' parameter of confidence_to_soft must be one of"):
        F.confidence_to_soft(torch.zeros(1, 2, 2), scale="percent")
    with pytest.raises(ValueError, match=r"The 'overlap' parameter of confidence_to_soft"):
        F.confidence_to_soft(torch.zeros(1, 2, 2), overlap="max")
    out = F.threshold_binarize(torch.tensor([[[0.2, 0.7]]]), threshold=0.6)
    assert out.dtype == torch.int64 and out.tolist() == [[[0, 1]]]


def test_kernels_do_not_modify_inputs():
    label = torch.tensor([[[0.2, 0.9, 0.5]]])
    region = torch.ones(1, 1, 3)
    image = torch.tensor([[[1.0, 3.0, 2.0]]])
    copies = [label.clone(), region.clone(), image.clone()]
    F.anatomical_prior(label, region, image, decay=1.0)
    F.confidence_to_soft(label, overlap="normalize")
    F.threshold_binarize(label, low=0.1)
    for a, b in zip(copies, (label, region, image)):
        assert torch.equal(a, b)
