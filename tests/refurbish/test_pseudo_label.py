from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from conftest import add_island, dice_fg
from monai.data import MetaTensor

from monai_noisylabel.refurbish import PseudoLabelResult, build_pseudo_labels, fraction_changed


def _two_class_probs(fg_mask: np.ndarray, conf: float = 0.9) -> np.ndarray:
    """(1, 2, *spatial) probabilities with class 1 at ``conf`` inside ``fg_mask``."""
    p1 = np.where(fg_mask, conf, 1 - conf).astype(np.float32)
    return np.stack([1 - p1, p1])[None]


def test_argmax_2d_numpy_in_numpy_out(global_rng_guard):
    fg = np.zeros((6, 6), bool)
    fg[1:4, 1:4] = True
    probs = _two_class_probs(fg)
    res = build_pseudo_labels(probs)
    assert isinstance(res, PseudoLabelResult) and len(res) == 1
    assert isinstance(res.labels, np.ndarray) and res.labels.dtype == np.int64
    assert res.labels.shape == (1, 1, 6, 6)
    np.testing.assert_array_equal(res.labels[0, 0], fg.astype(np.int64))
    assert res.refurbished.tolist() == [True]
    assert np.isnan(res.fraction_changed[0])  # no given label
    assert res.mean_confidence[0] == pytest.approx(0.9)
    assert res.reasons == (None,)


def test_given_type_dtype_and_meta_are_kept():
    fg = np.zeros((5, 5), bool)
    fg[2, 2] = True
    probs = torch.as_tensor(_two_class_probs(fg))
    given = MetaTensor(torch.zeros(1, 1, 5, 5, dtype=torch.uint8), meta={"filename_or_obj": "x.nii.gz"})
    res = build_pseudo_labels(probs, given)
    assert isinstance(res.labels, MetaTensor) and res.labels.dtype == torch.uint8
    assert res.labels.meta["filename_or_obj"] == "x.nii.gz"
    assert int(res.labels.sum()) == 1
    assert res.fraction_changed[0] == pytest.approx(1 / 25)
    assert int(given.sum()) == 0  # input untouched


def test_inputs_not_modified():
    rng = np.random.default_rng(0)
    probs = rng.random((2, 3, 8, 8)).astype(np.float32)
    probs /= probs.sum(1, keepdims=True)
    given = rng.integers(0, 3, (2, 1, 8, 8))
    p0, g0 = probs.copy(), given.copy()
    build_pseudo_labels(probs, given, delta=0.5, below="ignore")
    build_pseudo_labels(torch.from_numpy(probs), torch.from_numpy(given), delta=0.5)
    np.testing.assert_array_equal(probs, p0)
    np.testing.assert_array_equal(given, g0)


@pytest.mark.parametrize("below, expected_low, changed", [("keep", 2, 0.75), ("ignore", 255, 1.0)])
def test_confidence_gate(below, expected_low, changed):
    probs = np.zeros((1, 3, 4, 4), np.float32)
    probs[0, 1] = 0.9  # confident class 1 ...
    probs[0, 0] = 0.1
    probs[0, :, 0, :] = np.array([0.3, 0.4, 0.3])[:, None]  # ... except the first row
    given = np.full((1, 1, 4, 4), 2, np.int16)
    res = build_pseudo_labels(probs, given, delta=0.5, below=below, largest_component=False)
    out = res.labels[0, 0]
    assert out.dtype == np.int16
    assert (out[0] == expected_low).all()
    assert (out[1:] == 1).all()
    assert res.fraction_changed[0] == pytest.approx(changed)  # ignore-marked voxels count as changed


def test_gate_zero_rewrites_everything_and_delta_one_nothing():
    fg = np.zeros((6, 6), bool)
    fg[2:4, 2:4] = True
    probs = _two_class_probs(fg)
    given = np.zeros((1, 1, 6, 6), np.int64)
    assert build_pseudo_labels(probs, given, delta=0.0).labels.sum() == 4
    res = build_pseudo_labels(probs, given, delta=1.0)
    np.testing.assert_array_equal(res.labels, given)
    assert res.fraction_changed[0] == 0.0


def test_largest_component_per_class_2d(echo_noisy):
    clean, noisy, probs = echo_noisy[0]
    spurious = add_island(probs, cls=1, centre=(6, 6))
    with_lcc = build_pseudo_labels(spurious[None], noisy[None, None], delta=0.0)
    without = build_pseudo_labels(spurious[None], noisy[None, None], delta=0.0, largest_component=False)
    assert (without.labels[0, 0, 4:9, 4:9] == 1).any()
    assert not (with_lcc.labels[0, 0, 4:9, 4:9] == 1).any()  # the island became background
    assert dice_fg(with_lcc.labels[0, 0], clean) > dice_fg(without.labels[0, 0], clean) + 0.01


def test_largest_component_3d_and_applied_labels():
    probs = np.zeros((1, 3, 10, 10, 10), np.float32)
    probs[0, 0] = 0.8
    probs[0, 1:] = 0.1
    for cls, sl in (
        (1, np.s_[1:5, 1:5, 1:5]),
        (1, np.s_[8:10, 8:10, 8:10]),
        (2, np.s_[6:8, 0:2, 0:2]),
        (2, np.s_[0:1, 8:9, 8:9]),
    ):
        region = probs[0][(slice(None), *sl)]
        region[:] = 0.1
        region[cls] = 0.8
    res = build_pseudo_labels(probs)
    out = res.labels[0, 0]
    assert out.shape == (10, 10, 10)
    assert (out == 1).sum() == 64 and (out == 2).sum() == 8  # the small blobs of both classes removed
    only1 = build_pseudo_labels(probs, applied_labels=[1]).labels[0, 0]
    assert (only1 == 1).sum() == 64 and (only1 == 2).sum() == 9  # class 2 left alone


def test_activation_logits_equal_probabilities():
    rng = np.random.default_rng(1)
    logits = torch.as_tensor(rng.normal(size=(2, 3, 6, 6)).astype(np.float32))
    a = build_pseudo_labels(logits, activation="softmax", largest_component=False)
    b = build_pseudo_labels(torch.softmax(logits, 1), largest_component=False)
    assert torch.equal(a.labels, b.labels)
    assert a.labels.dtype == torch.int64


def test_single_channel_is_binary():
    p = torch.zeros(1, 1, 4, 4)
    p[0, 0, 1:3, 1:3] = 0.95
    p[0, 0, 0, 0] = 0.55  # above 0.5 but not confident
    res = build_pseudo_labels(p, torch.zeros(1, 1, 4, 4), delta=0.6, largest_component=False)
    assert res.labels.dtype == torch.float32
    assert float(res.labels.sum()) == 4.0
    logits = torch.logit(p.clamp(1e-4, 1 - 1e-4))
    assert torch.equal(build_pseudo_labels(logits, activation="sigmoid").labels, build_pseudo_labels(p).labels)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_sample_is_not_refurbished(bad, caplog):
    fg = np.zeros((6, 6), bool)
    fg[1:4, 1:4] = True
    probs = np.concatenate([_two_class_probs(fg), _two_class_probs(fg)])
    probs[1, 1, 0, 0] = bad
    given = np.full((2, 1, 6, 6), 7, np.int64)
    with caplog.at_level(logging.WARNING, logger="monai_noisylabel.refurbish.pseudo_label"):
        res = build_pseudo_labels(probs, given, delta=0.5)
    assert res.refurbished.tolist() == [True, False]
    np.testing.assert_array_equal(res.labels[1], given[1])  # untouched, never a corrupted label
    assert res.fraction_changed[1] == 0.0 and np.isnan(res.mean_confidence[1])
    assert res.reasons[0] is None and "non-finite" in res.reasons[1]
    assert ("1 NaN" in res.reasons[1]) == np.isnan(bad)
    assert "sample 1" in caplog.text
    np.testing.assert_array_equal(res.labels[0, 0], fg.astype(np.int64))  # the good sample still works
    no_given = build_pseudo_labels(probs, below="ignore", ignore_index=-5)
    assert (no_given.labels[1] == -5).all() and not no_given.refurbished[1]


def test_errors_name_the_value():
    probs = np.full((1, 2, 4, 4), 0.5, np.float32)
    with pytest.raises(
        ValueError,
        match=r"The 'probs' parameter of build_pseudo_labels must be an array of shape \(B, C, H, W\) or \(B, C, H, W, D\)\. Got shape \(2, 4\) instead\.",
    ):
        build_pseudo_labels(np.zeros((2, 4)))
    with pytest.raises(
        ValueError,
        match=r"The 'given' parameter .* shape \(1, 1, 4, 4\) matching 'probs'\. Got shape \(1, 4, 4\) instead\.",
    ):
        build_pseudo_labels(probs, np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match=r"'delta' .* Got 1\.5 instead"):
        build_pseudo_labels(probs, delta=1.5)
    with pytest.raises(ValueError, match=r"'below' .* one of 'keep', 'ignore'\. Got 'drop' instead"):
        build_pseudo_labels(probs, below="drop")
    with pytest.raises(ValueError, match=r"'given' .* a label array when below='keep' and delta > 0\. Got None"):
        build_pseudo_labels(probs, delta=0.3)
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\] .*Got values in \[-2, 3\] instead"):
        build_pseudo_labels(np.array([-2.0, 3.0], np.float32).reshape(1, 2, 1, 1))
    with pytest.raises(
        ValueError, match=r"'ignore_index' .* fits the label dtype torch.uint8 \(\[0, 255\]\)\. Got -1 instead"
    ):
        build_pseudo_labels(probs, np.zeros((1, 1, 4, 4), np.uint8), delta=0.6, below="ignore", ignore_index=-1)
    with pytest.raises(ValueError, match=r"'activation' .* for a single-channel output\. Got 'softmax'"):
        build_pseudo_labels(probs[:, :1], activation="softmax")
    with pytest.raises(ValueError, match=r"'probs' .* numeric torch.Tensor or numpy.ndarray\. Got 'list' instead"):
        build_pseudo_labels([[0.5]])


def test_fraction_changed():
    assert fraction_changed(np.array([[1, 2], [3, 4]]), np.array([[1, 0], [3, 0]])) == 0.5
    assert fraction_changed(torch.ones(3), torch.ones(3)) == 0.0
    with pytest.raises(ValueError, match=r"'old' parameter of fraction_changed .* Got shape \(2,\) instead"):
        fraction_changed(np.ones(3), np.ones(2))


def test_ignore_index_is_the_packages_name_and_default():
    """255, as the losses and ThresholdBinarize skip; the old name still works, with a DeprecationWarning."""
    probs = np.zeros((1, 2, 4, 4), np.float32)
    probs[:, 0], probs[:, 1] = 0.55, 0.45
    given = np.zeros((1, 1, 4, 4), np.uint8)
    assert (build_pseudo_labels(probs, given, delta=0.6, below="ignore").labels == 255).all()
    with pytest.warns(DeprecationWarning, match="'ignore_value' is deprecated; use 'ignore_index'"):
        old = build_pseudo_labels(probs, given, delta=0.6, below="ignore", ignore_value=7)
    assert (old.labels == 7).all()
