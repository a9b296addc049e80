from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from monai.networks.utils import one_hot

from monai_noisylabel.refurbish import lcm_soft_target, sharpen, sigmoid_rampup


def _probs(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.softmax(torch.randn(shape, generator=g), dim=1)


def test_sharpen_values_and_types(global_rng_guard):
    torch.testing.assert_close(sharpen(torch.tensor([[0.25, 0.75]])), torch.tensor([[0.1, 0.9]]))
    p = _probs((2, 3, 4, 4))
    torch.testing.assert_close(sharpen(p, 1.0), p)
    s = sharpen(p, 0.5)
    torch.testing.assert_close(s.sum(1), torch.ones(2, 4, 4))
    manual = p**2 / (p**2).sum(1, keepdim=True)
    torch.testing.assert_close(s, manual)
    assert (s.max(1).values >= p.max(1).values - 1e-6).all()  # sharper
    n = sharpen(p.numpy(), 0.5)
    assert isinstance(n, np.ndarray) and n.dtype == np.float32
    np.testing.assert_allclose(n, manual.numpy(), rtol=1e-5)
    onehot = one_hot(torch.tensor([[[0, 2]]]), 3, dim=1)
    torch.testing.assert_close(sharpen(onehot, 0.5), onehot)
    tiny = torch.tensor([[1e-30, 1e-30]])
    torch.testing.assert_close(sharpen(tiny, 0.1), torch.tensor([[0.5, 0.5]]))  # log-space: no 0/0
    with pytest.raises(
        ValueError, match=r"The 'temperature' parameter of sharpen must be a finite number > 0\.0\. Got 0 instead\."
    ):
        sharpen(p, 0)


def test_lcm_limits_and_formula():
    given = torch.tensor([0, 1, 2, 1]).reshape(1, 1, 2, 2)
    pred = _probs((1, 3, 2, 2), seed=1)
    target_onehot = one_hot(given, 3, dim=1)
    torch.testing.assert_close(lcm_soft_target(given, pred, 1.0), target_onehot)
    torch.testing.assert_close(lcm_soft_target(given, pred, 0.0), sharpen(pred, 0.5))
    w = 0.3
    mixed = w * target_onehot + (1 - w) * pred
    expected = mixed**2 / (mixed**2).sum(1, keepdim=True)
    out = lcm_soft_target(given, pred, w)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(out.sum(1), torch.ones(1, 2, 2))
    torch.testing.assert_close(lcm_soft_target(target_onehot, pred, w), out)  # one-hot given == index given
    mixed_t1 = lcm_soft_target(given, pred, w, temperature=1.0)
    torch.testing.assert_close(mixed_t1, mixed)


def test_lcm_per_sample_weights_and_several_predictions(global_rng_guard):
    given = torch.randint(0, 3, (3, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    preds = [_probs((3, 3, 4, 4), seed=s) for s in range(4)]
    mean = torch.stack(preds).mean(0)
    w = torch.tensor([0.0, 0.5, 1.0])
    out = lcm_soft_target(given, preds, w)
    torch.testing.assert_close(out, lcm_soft_target(given, mean, w))
    torch.testing.assert_close(out[0], sharpen(mean, 0.5)[0])
    torch.testing.assert_close(out[2], one_hot(given, 3, dim=1)[2].float())
    torch.testing.assert_close(lcm_soft_target(given, tuple(preds), w.numpy()), out)
    assert out.dtype == torch.float32


def test_lcm_numpy_3d_and_not_mutated():
    rng = np.random.default_rng(0)
    pred = rng.random((2, 2, 3, 3, 3)).astype(np.float64)
    pred /= pred.sum(1, keepdims=True)
    given = rng.integers(0, 2, (2, 1, 3, 3, 3))
    p0, g0 = pred.copy(), given.copy()
    out = lcm_soft_target(given, pred, [0.2, 0.9])
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (2, 2, 3, 3, 3)
    np.testing.assert_allclose(out.sum(1), 1.0)
    np.testing.assert_array_equal(pred, p0)
    np.testing.assert_array_equal(given, g0)


def test_lcm_binary_single_channel():
    pred = torch.tensor([0.8, 0.3]).reshape(1, 1, 1, 2)
    given = torch.tensor([0.0, 1.0]).reshape(1, 1, 1, 2)
    out = lcm_soft_target(given, pred, 0.5)
    assert out.shape == (1, 1, 1, 2)
    mixed = 0.5 * given + 0.5 * pred  # foreground probability (0.4, 0.65)
    expected = mixed**2 / (mixed**2 + (1 - mixed) ** 2)
    torch.testing.assert_close(out, expected)


def test_lcm_errors():
    given = torch.zeros(2, 1, 3, 3, dtype=torch.long)
    pred = _probs((2, 3, 3, 3))
    with pytest.raises(
        ValueError,
        match=r"'predictions' parameter of lcm_soft_target must be finite probabilities\. Got 'NaN or inf values'",
    ):
        bad = pred.clone()
        bad[0, 0, 0, 0] = float("nan")
        lcm_soft_target(given, bad, 0.5)
    with pytest.raises(
        ValueError, match=r"'predictions' .* arrays of one shape \(2, 3, 3, 3\)\. Got shape \(2, 3, 3, 2\) instead"
    ):
        lcm_soft_target(given, [pred, pred[..., :2]], 0.5)
    with pytest.raises(ValueError, match=r"'predictions' .* Got values in \[-1, 2\] instead"):
        lcm_soft_target(given, torch.tensor([-1.0, 2.0, 0.0]).reshape(1, 3, 1, 1), 0.5)
    with pytest.raises(ValueError, match=r"'given' .* Got shape \(2, 1, 3, 2\) instead"):
        lcm_soft_target(given[..., :2], pred, 0.5)
    with pytest.raises(ValueError, match=r"'given' .* class indices in \[0, 2\]\. Got values in \[0, 3\] instead"):
        lcm_soft_target(given + torch.tensor([0, 3]).reshape(2, 1, 1, 1), pred, 0.5)
    with pytest.raises(
        ValueError,
        match=r"'clean_prob' .* a number in \[0, 1\]|'clean_prob' .* finite number >= 0.0 and <= 1.0\. Got 1.5",
    ):
        lcm_soft_target(given, pred, 1.5)
    with pytest.raises(ValueError, match=r"'clean_prob' .* a number or 2 per-sample values\. Got shape \(3,\) instead"):
        lcm_soft_target(given, pred, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"'clean_prob' .* values in \[0, 1\]\. Got \[0.1, -0.2\] instead"):
        lcm_soft_target(given, pred, [0.1, -0.2])
    with pytest.raises(ValueError, match=r"'temperature' .* Got -1 instead"):
        lcm_soft_target(given, pred, 0.5, temperature=-1)


def test_sigmoid_rampup():
    assert sigmoid_rampup(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(5, 10) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(10, 10) == 1.0
    assert sigmoid_rampup(50, 10) == 1.0
    assert sigmoid_rampup(4, 10, start=5) == 0.0
    assert sigmoid_rampup(10, 10, start=5) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(3, 0) == 1.0 and sigmoid_rampup(-1, 0) == 0.0
    values = [sigmoid_rampup(e, 20) for e in range(25)]
    assert all(b >= a for a, b in itertools.pairwise(values))
    with pytest.raises(
        ValueError,
        match=r"The 'rampup_length' parameter of sigmoid_rampup must be a finite number >= 0\.0\. Got -2 instead\.",
    ):
        sigmoid_rampup(1, -2)
    with pytest.raises(ValueError, match=r"'current' .* Got nan instead"):
        sigmoid_rampup(float("nan"), 5)


def test_lcm_soft_target_without_value_checks_gives_the_same_targets():
    """validate_args=False (the training loop's path) skips only the value checks: same targets for valid input,
    and bad values then pass unchecked where the checked call names them."""
    g = torch.Generator().manual_seed(0)
    given = torch.randint(0, 4, (3, 1, 8, 8), generator=g)
    probs = torch.softmax(torch.randn(3, 4, 8, 8, generator=g), dim=1)
    w = [0.0, 0.3, 1.0]
    checked = lcm_soft_target(given, probs, w, temperature=0.5)
    fast = lcm_soft_target(given, probs, w, temperature=0.5, validate_args=False)
    assert torch.equal(checked, fast)
    with pytest.raises(ValueError, match="'predictions' parameter of lcm_soft_target"):
        lcm_soft_target(given, probs * 2, w)
    lcm_soft_target(given, probs * 2, w, validate_args=False)  # not checked
    with pytest.raises(ValueError, match="'clean_prob' parameter of lcm_soft_target"):
        lcm_soft_target(given, probs, [0.0, 0.3, 2.0], validate_args=False)  # a few numbers: always checked
