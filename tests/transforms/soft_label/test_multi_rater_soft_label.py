"""MultiRaterSoftLabel and MultiRaterSoftLabeld: mean, weighted, STAPLE; missing raters; contract checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate
from monai.transforms import MeanEnsemble

from monai_noisylabel.transforms.soft_label import (
    MultiRaterSoftLabel,
    MultiRaterSoftLabelD,
    MultiRaterSoftLabeld,
    MultiRaterSoftLabelDict,
)

from ._soft_label_helpers import assert_kind, assert_unchanged, kinds, snapshot, to_numpy

SENSITIVITY = [0.95, 0.80, 0.65, 0.90, 0.75]
SPECIFICITY = [0.97, 0.90, 0.99, 0.94, 0.92]


def simulate_raters(seed: int, shape: tuple[int, ...], sens=SENSITIVITY, spec=SPECIFICITY):
    """A blob-shaped truth and raters who mark each voxel independently with known sensitivity/specificity."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    truth = sum(g**2 for g in grid) < 0.45
    raters = []
    for p, q in zip(sens, spec):
        u = rng.random(shape)
        raters.append(np.where(truth, u < p, u >= q))
    return truth, np.stack(raters).astype(np.uint8)


def random_masks(seed: int, shape: tuple[int, ...], num: int = 3) -> np.ndarray:
    return (np.random.default_rng(seed).random((num, *shape)) < 0.4).astype(np.uint8)


@pytest.mark.parametrize("shape", [(12, 10), (6, 7, 5)], ids=["2d", "3d"])
@pytest.mark.parametrize("kind,make", list(kinds()), ids=[k for k, _ in kinds()])
def test_mean_matches_numpy_and_keeps_kind(shape, kind, make, global_rng_guard):
    raters = random_masks(1, shape)
    x = make(raters)
    before = snapshot(x)
    out = MultiRaterSoftLabel("mean")(x)
    assert tuple(out.shape) == (1, *shape)
    np.testing.assert_allclose(to_numpy(out)[0], raters.mean(0), atol=1e-6)
    assert_kind(out, x, np.float32)  # integer masks give float32 soft labels
    assert_unchanged(before, x)


@pytest.mark.parametrize("method", ["mean", "weighted", "staple"])
def test_float_dtype_kept_and_deterministic(method):
    raters = random_masks(2, (8, 9, 4)).astype(np.float64)
    t = MultiRaterSoftLabel(method)
    a, b = t(torch.as_tensor(raters)), t(torch.as_tensor(raters))
    assert a.dtype == torch.float64
    assert torch.equal(a, b)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0


def test_dtype_argument():
    out = MultiRaterSoftLabel("mean", dtype=torch.float16)(random_masks(0, (4, 4)))
    assert out.dtype == np.float16


def test_mean_reuses_monai_mean_ensemble():
    raters = torch.as_tensor(random_masks(3, (5, 6)), dtype=torch.float32)
    expected = MeanEnsemble()(raters.unsqueeze(1))
    assert torch.allclose(MultiRaterSoftLabel("mean")(raters), expected)


def test_sequence_equals_stack():
    raters = random_masks(4, (6, 5, 4))
    t = MultiRaterSoftLabel("staple")
    stacked = t(torch.as_tensor(raters))
    listed = t([torch.as_tensor(r[None]) for r in raters])
    assert torch.equal(stacked, listed)


def test_weighted_with_given_weights():
    raters = random_masks(5, (7, 7))
    w = np.array([3.0, 1.0, 0.5])
    out = MultiRaterSoftLabel("weighted", weights=w)(raters)
    expected = np.tensordot(w, raters.astype(np.float64), axes=1) / w.sum()
    np.testing.assert_allclose(out[0], expected, atol=1e-6)
    # call-time weights override the constructor's
    out2 = MultiRaterSoftLabel("weighted", weights=w)(raters, weights=[1, 1, 1])
    np.testing.assert_allclose(out2[0], raters.mean(0), atol=1e-6)


def test_weighted_estimates_low_weight_for_outlier_rater():
    truth, raters = simulate_raters(0, (24, 24), sens=[0.95, 0.95, 0.95, 0.95], spec=[0.98, 0.98, 0.98, 0.98])
    raters[3] = 1 - raters[3]  # an adversarial rater
    out = MultiRaterSoftLabel("weighted")(MetaTensor(torch.as_tensor(raters)))
    w = out.meta["rater_weights"]
    assert math.isclose(sum(w), 1.0, rel_tol=1e-9)
    assert w[3] < 0.5 * min(w[:3])
    # closer to the truth than the plain mean
    mean = raters.mean(0)
    err_w = np.abs(to_numpy(out)[0] - truth).mean()
    assert err_w < np.abs(mean - truth).mean()


def test_staple_recovers_known_rater_performance(global_rng_guard):
    truth, raters = simulate_raters(42, (40, 40, 24))
    out = MultiRaterSoftLabel("staple")(MetaTensor(torch.as_tensor(raters)))
    est = out.meta["staple"]
    assert est["converged"]
    np.testing.assert_allclose(est["sensitivity"], SENSITIVITY, atol=0.05)
    np.testing.assert_allclose(est["specificity"], SPECIFICITY, atol=0.05)
    assert abs(est["prior"] - truth.mean()) < 0.05
    # the posterior beats the majority vote against the truth
    post = to_numpy(out)[0] > 0.5
    majority = raters.mean(0) > 0.5
    assert (post != truth).sum() < (majority != truth).sum()


def test_staple_fixed_prior_is_reported():
    _, raters = simulate_raters(1, (20, 20))
    out = MultiRaterSoftLabel("staple", prior=0.3)(MetaTensor(torch.as_tensor(raters)))
    assert out.meta["staple"]["prior"] == pytest.approx(0.3)
    assert len(out.meta["staple"]["sensitivity"]) == 5


def test_staple_rejects_soft_raters():
    with pytest.raises(ValueError, match=r"The 'raters' parameter of MultiRaterSoftLabel must be binary masks"):
        MultiRaterSoftLabel("staple")(np.full((2, 3, 3), 0.5))


def test_meta_preserved_and_input_meta_untouched():
    x = MetaTensor(torch.as_tensor(random_masks(6, (5, 5, 5))), meta={"filename_or_obj": "a.nii.gz"})
    before = snapshot(x)
    out = MultiRaterSoftLabel("staple")(x)
    assert "staple" in out.meta and "staple" not in x.meta
    assert out.meta["filename_or_obj"] == "a.nii.gz"
    assert_unchanged(before, x)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (
            {"method": "median"},
            r"The 'method' parameter of MultiRaterSoftLabel must be one of 'mean', 'weighted', 'staple'. Got 'median' instead.",
        ),
        (
            {"method": "mean", "weights": [1, 2]},
            r"The 'weights' parameter of MultiRaterSoftLabel must be None unless method='weighted'",
        ),
        (
            {"method": "weighted", "weights": [1, -2]},
            r"The 'weights' parameter .* non-negative .* Got \[1, -2\] instead.",
        ),
        ({"method": "weighted", "weights": [0, 0]}, r"positive sum. Got \[0, 0\] instead."),
        ({"method": "weighted", "weights": ["a"]}, r"The 'weights' parameter"),
        (
            {"method": "staple", "prior": 1.0},
            r"The 'prior' parameter of MultiRaterSoftLabel must be a finite number > 0.0 and < 1.0. Got 1.0 instead.",
        ),
        ({"method": "staple", "max_iter": 0}, r"The 'max_iter' parameter .* an int >= 1. Got 0 instead."),
        ({"method": "staple", "tol": 0.0}, r"The 'tol' parameter .* > 0.0. Got 0.0 instead."),
        ({"dtype": "not-a-dtype"}, r"The 'dtype' parameter"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MultiRaterSoftLabel(**kwargs)


@pytest.mark.parametrize(
    "raters,match",
    [
        (
            np.full((2, 3, 3), 1.5),
            r"The 'raters' parameter of MultiRaterSoftLabel must be values in \[0, 1\] without NaN. Got values in \[1.5, 1.5\] instead.",
        ),
        (np.full((2, 3, 3), -0.5), r"Got values in \[-0.5, -0.5\] instead."),
        (np.array([[[np.nan, 0.0]], [[1.0, 0.0]]]), r"without NaN. Got 1 NaN value\(s\) instead."),
        (
            [np.zeros((1, 3, 3)), np.zeros((1, 3, 4))],
            r"must be masks of one shape. Got shapes \[\(1, 3, 3\), \(1, 3, 4\)\] instead.",
        ),
        ([np.zeros((2, 3, 3)), np.zeros((2, 3, 3))], r"channel-first masks with one channel each"),
        ([], r"at least one rater mask"),
        (np.zeros((3, 4)), r"channel-first 2D or 3D array"),
    ],
)
def test_bad_raters(raters, match):
    with pytest.raises(ValueError, match=match):
        MultiRaterSoftLabel("mean")(raters)


def test_wrong_number_of_weights():
    with pytest.raises(
        ValueError,
        match=r"The 'weights' parameter of MultiRaterSoftLabel must be 3 weights, one per rater. Got 2 weights instead.",
    ):
        MultiRaterSoftLabel("weighted", weights=[1, 2])(random_masks(0, (3, 3)))


# ----------------------------------------------------------------------------- dictionary version


@pytest.mark.parametrize("method", ["mean", "weighted", "staple"])
@pytest.mark.parametrize("shape", [(9, 8), (5, 6, 4)], ids=["2d", "3d"])
def test_dict_agrees_with_array(method, shape):
    raters = random_masks(7, shape)
    arr = MultiRaterSoftLabel(method)(torch.as_tensor(raters))
    data = {f"r{i}": torch.as_tensor(r[None]) for i, r in enumerate(raters)}
    before = snapshot(data)
    out = MultiRaterSoftLabeld(list(data), output_key="soft", method=method)(data)
    assert torch.equal(out["soft"], arr)
    assert "soft" not in data
    assert_unchanged(before, data)
    # one key holding the stack gives the same result
    stacked = MultiRaterSoftLabeld("raters", output_key="soft", method=method)({"raters": torch.as_tensor(raters)})
    assert torch.equal(stacked["soft"], arr)


def test_dict_missing_raters_use_the_present_ones():
    raters = random_masks(8, (6, 6, 6), num=4)
    data = {f"r{i}": MetaTensor(torch.as_tensor(r[None])) for i, r in enumerate(raters)}
    del data["r1"]
    data["r3"] = None  # also counted as missing
    keys = ["r0", "r1", "r2", "r3"]
    w = [1.0, 5.0, 3.0, 2.0]
    out = MultiRaterSoftLabeld(keys, output_key="label", method="weighted", weights=w)(data)["label"]
    expected = (1.0 * raters[0] + 3.0 * raters[2]) / 4.0
    np.testing.assert_allclose(to_numpy(out)[0], expected, atol=1e-6)
    weights = out.meta["rater_weights"]
    assert math.isnan(weights[1]) and math.isnan(weights[3])
    assert weights[0] == pytest.approx(0.25) and weights[2] == pytest.approx(0.75)

    st = MultiRaterSoftLabeld(keys, output_key="label", method="staple")(data)["label"]
    sens = st.meta["staple"]["sensitivity"]
    assert len(sens) == 4 and math.isnan(sens[1]) and math.isnan(sens[3]) and not math.isnan(sens[0])


def test_dict_no_rater_present():
    t = MultiRaterSoftLabeld(["r0", "r1"], output_key="label")
    with pytest.raises(
        ValueError,
        match=r"The 'keys' parameter of MultiRaterSoftLabeld must be keys of which at least one holds a rater in the data. Got \('r0', 'r1'\) instead.",
    ):
        t({"image": np.zeros((1, 2, 2))})


def test_dict_missing_not_allowed():
    t = MultiRaterSoftLabeld(["r0", "r1"], output_key="label", allow_missing_keys=False)
    with pytest.raises(KeyError):
        t({"r0": np.zeros((1, 2, 2))})


def test_dict_aliases_and_bad_output_key():
    assert MultiRaterSoftLabelD is MultiRaterSoftLabeld and MultiRaterSoftLabelDict is MultiRaterSoftLabeld
    with pytest.raises(ValueError, match=r"The 'output_key' parameter of MultiRaterSoftLabeld"):
        MultiRaterSoftLabeld(["a"], output_key=None)


def test_staple_meta_collates_with_missing_raters():
    keys = ["r0", "r1", "r2"]
    t = MultiRaterSoftLabeld(keys, output_key="label", method="staple")
    items = []
    for seed, drop in ((0, None), (1, "r1")):
        raters = random_masks(seed, (6, 6))
        d = {k: MetaTensor(torch.as_tensor(r[None])) for k, r in zip(keys, raters) if k != drop}
        items.append({"label": t(d)["label"]})
    batch = list_data_collate(items)
    sens = batch["label"].meta["staple"]["sensitivity"]
    assert len(sens) == 3 and sens[1].shape == (2,)
    assert torch.isnan(sens[1][1]) and not torch.isnan(sens[1][0])
