"""AnatomicalPrior and AnatomicalPriord: region mask, intensity term, distance decay; synthetic knee BML."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from scipy import ndimage

from monai_noisylabel.data.synthetic import make_knee_case
from monai_noisylabel.transforms.soft_label import (
    AnatomicalPrior,
    AnatomicalPriorD,
    AnatomicalPriord,
    AnatomicalPriorDict,
    MultiRaterSoftLabel,
    MultiRaterSoftLabeld,
)

from ._soft_label_helpers import assert_kind, assert_unchanged, kinds, snapshot, to_numpy


def toy(shape: tuple[int, ...], seed: int = 0):
    """Soft label (1, ...), region (1, ...), image (1, ...) with a bright blob inside the region."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r2 = sum(g**2 for g in grid)
    region = (r2 < 0.8).astype(np.uint8)
    image = 0.2 + 0.6 * (r2 < 0.15) + 0.02 * rng.standard_normal(shape)
    soft = np.clip((r2 < 0.3) * 0.7 + (r2 < 0.1) * 0.3, 0, 1)
    soft[(grid[0] > 0.7)] = 1.0  # part of the label outside the region
    return soft[None].astype(np.float32), region[None], image[None].astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_knee_soft_label_zero_outside_bone_and_favours_true_lesion(seed, global_rng_guard):
    case = make_knee_case(0, seed, size=(32, 32, 32))
    raters = np.stack(case["raters"])
    p = MultiRaterSoftLabel("mean")(raters)
    q = AnatomicalPrior(centre=1.0, width=0.5, decay=4.0)(p, region=case["bone"][None], image=case["image"][None])[0]
    bone, truth = case["bone"].astype(bool), case["truth"].astype(bool)
    assert q.min() >= 0 and q.max() <= 1
    assert np.all(q[~bone] == 0)
    assert np.all(q[raters.max(0) == 0] == 0)  # nothing outside the raters' union
    rater_only = (raters.max(0) > 0) & ~truth  # voxels some rater marked but the lesion does not cover
    assert q[truth].mean() > q[rater_only].mean()
    # the intensity term adds information the rater mean does not have
    assert q[truth].mean() / q[rater_only].mean() > p[0][truth].mean() / p[0][rater_only].mean()


def test_knee_recipe_dictionary_matches_array():
    case = make_knee_case(0, 1, size=(32, 32, 32))
    data = {"image": case["image"][None], "raters": np.stack(case["raters"]), "bone": case["bone"][None]}
    before = snapshot(data)
    soft = MultiRaterSoftLabeld("raters", output_key="label")(data)
    out = AnatomicalPriord("label", region_key="bone", image_key="image", decay=4.0)(soft)
    arr = AnatomicalPrior(decay=4.0)(MultiRaterSoftLabel()(data["raters"]), region=data["bone"], image=data["image"])
    np.testing.assert_array_equal(out["label"], arr)
    assert_unchanged(before, data)


@pytest.mark.parametrize("shape", [(16, 14), (10, 9, 8)], ids=["2d", "3d"])
@pytest.mark.parametrize("kind,make", list(kinds()), ids=[k for k, _ in kinds()])
def test_kind_kept_and_input_untouched(shape, kind, make, global_rng_guard):
    soft, region, image = toy(shape)
    x = make(soft)
    before = snapshot(x)
    t = AnatomicalPrior(centre=0.5, width=0.5, decay=2.0)
    out = t(x, region=region, image=image)
    assert tuple(out.shape) == (1, *shape)
    assert_kind(out, x, np.float32)
    assert_unchanged(before, x)
    ref = t(soft, region=region, image=image)
    np.testing.assert_allclose(to_numpy(out), ref, atol=1e-6)
    assert np.array_equal(to_numpy(t(x, region=region, image=image)), to_numpy(out))  # deterministic


def test_multiply_and_mean_formulas_zscore():
    soft, region, image = toy((20, 20))
    inside = region[0] > 0
    vals = image[0][inside].astype(np.float64)
    z = (image[0] - vals.mean()) / vals.std()
    term = 1 / (1 + np.exp(-(z - 0.8) / 0.4))
    keep = inside & (soft[0] > 0)
    mult = AnatomicalPrior(centre=0.8, width=0.4, combine="multiply", dtype=np.float64)(soft, region, image)[0]
    np.testing.assert_allclose(mult, np.where(keep, soft[0] * term, 0), atol=1e-6)
    mean = AnatomicalPrior(centre=0.8, width=0.4, combine="mean", dtype=np.float64)(soft, region, image)[0]
    np.testing.assert_allclose(mean, np.where(keep, 0.5 * (soft[0] + term), 0), atol=1e-6)


def test_percentile_normalization_is_scale_free():
    soft, region, image = toy((18, 18))
    t = AnatomicalPrior(centre=0.9, width=0.05, normalize="percentile")
    a = t(soft, region, image)
    b = t(soft, region, image * 37.0 + 5.0)  # any increasing affine change of intensities
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_decay_with_distance_from_core_and_spacing():
    soft = np.zeros((1, 1, 21), np.float32)
    soft[0, 0, 8:13] = 0.4
    soft[0, 0, 10] = 0.9  # the core
    region, image = np.ones((1, 1, 21)), np.ones((1, 1, 21))
    base = AnatomicalPrior(width=1.0)(soft, region, image)[0, 0]
    decayed = AnatomicalPrior(width=1.0, decay=2.0)(soft, region, image)[0, 0]
    dist = np.abs(np.arange(21) - 10.0)
    np.testing.assert_allclose(decayed, base * np.exp(-dist / 2.0), atol=1e-6)
    spaced = AnatomicalPrior(width=1.0, decay=2.0, spacing=[1.0, 0.5])(soft, region, image)[0, 0]
    np.testing.assert_allclose(spaced, base * np.exp(-0.5 * dist / 2.0), atol=1e-6)


def test_channel_without_core_is_not_decayed():
    soft = np.zeros((2, 6, 6), np.float32)
    soft[0, 2:4, 2:4] = 0.3  # no voxel reaches the core threshold
    soft[1, 1:5, 1:5] = 0.6
    region, image = np.ones((1, 6, 6)), np.ones((1, 6, 6))
    base = AnatomicalPrior()(soft, region, image)
    decayed = AnatomicalPrior(decay=1.0, core_threshold=0.5)(soft, region, image)
    np.testing.assert_array_equal(decayed[0], base[0])
    np.testing.assert_allclose(decayed[1], base[1], atol=1e-6)  # whole label is core: distance 0


def test_empty_region_gives_zeros():
    soft, _, image = toy((8, 8))
    out = AnatomicalPrior()(soft, np.zeros((1, 8, 8)), image)
    assert np.all(out == 0)


def test_meta_and_affine_kept():
    soft, region, image = toy((6, 6, 6))
    x = MetaTensor(torch.as_tensor(soft), affine=torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0])))
    out = AnatomicalPrior()(x, region, image)
    assert isinstance(out, MetaTensor) and torch.equal(out.affine, x.affine)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"width": 0}, r"The 'width' parameter of AnatomicalPrior must be a finite number > 0.0. Got 0 instead."),
        (
            {"centre": float("nan")},
            r"The 'centre' parameter of AnatomicalPrior must be a finite number. Got nan instead.",
        ),
        ({"normalize": "minmax"}, r"The 'normalize' parameter .* one of 'zscore', 'percentile'. Got 'minmax' instead."),
        ({"combine": "max"}, r"The 'combine' parameter .* Got 'max' instead."),
        ({"decay": -1.0}, r"The 'decay' parameter .* > 0.0. Got -1.0 instead."),
        ({"core_threshold": 0.0}, r"The 'core_threshold' parameter .* Got 0.0 instead."),
        ({"spacing": [1.0, 0.0]}, r"The 'spacing' parameter .* Got \[1.0, 0.0\] instead."),
        ({"spacing": "1mm"}, r"The 'spacing' parameter .* Got '1mm' instead."),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AnatomicalPrior(**kwargs)


def test_bad_inputs():
    soft, region, image = toy((8, 8))
    t = AnatomicalPrior()
    with pytest.raises(
        ValueError,
        match=r"The 'img' parameter of AnatomicalPrior must be values in \[0, 1\] without NaN. Got values in \[0, 2\] instead.",
    ):
        t(soft * 2, region, image)
    bad = soft.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"Got 1 NaN value\(s\) instead."):
        t(bad, region, image)
    nan_image = image.copy()
    nan_image[0, 1, 1] = np.nan
    with pytest.raises(ValueError, match=r"The 'image' parameter of AnatomicalPrior must be intensities without NaN"):
        t(soft, region, nan_image)
    with pytest.raises(
        ValueError, match=r"The 'region' parameter .* shape \(1, 8, 8\)\. Got shape \(1, 8, 9\) instead."
    ):
        t(soft, np.ones((1, 8, 9)), image)
    with pytest.raises(ValueError, match=r"The 'image' parameter .* Got shape \(2, 8, 8\) instead."):
        t(soft, region, np.ones((2, 8, 8)))
    with pytest.raises(
        ValueError, match=r"The 'region' parameter of AnatomicalPrior must be a channel-first array. Got None"
    ):
        t(soft, image=image)
    with pytest.raises(ValueError, match=r"The 'spacing' parameter .* one value per spatial axis \(2\)"):
        AnatomicalPrior(spacing=[1.0, 1.0, 1.0])(soft, region, image)


def test_dict_missing_keys_and_aliases():
    soft, region, image = toy((8, 8))
    t = AnatomicalPriord("label", region_key="bone", image_key="image")
    with pytest.raises(
        ValueError,
        match=r"The 'region_key' parameter of AnatomicalPriord must be a key present in the data. Got 'bone' instead.",
    ):
        t({"label": soft, "image": image})
    out = AnatomicalPriord(["label", "other"], allow_missing_keys=True)({"label": soft, "bone": region, "image": image})
    assert "other" not in out
    assert AnatomicalPriorD is AnatomicalPriord and AnatomicalPriorDict is AnatomicalPriord


def test_distance_matches_scipy_edt_in_3d():
    soft = np.zeros((1, 9, 9, 9), np.float32)
    soft[0, 2:7, 2:7, 2:7] = 0.5
    soft[0, 4, 4, 4] = 1.0
    region, image = np.ones((1, 9, 9, 9)), np.ones((1, 9, 9, 9))
    base = AnatomicalPrior()(soft, region, image)[0]
    out = AnatomicalPrior(decay=3.0, core_threshold=0.9)(soft, region, image)[0]
    core = soft[0] >= 0.9
    dist = ndimage.distance_transform_edt(~core)
    np.testing.assert_allclose(out, base * np.exp(-dist / 3.0), atol=1e-6)
