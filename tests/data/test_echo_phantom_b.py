from __future__ import annotations

import numpy as np
import pytest

from monai_noisylabel.data.echo_phantom_b import corrupt_echo_phantom_b, make_echo_phantom_b


def test_phantom_b_is_deterministic_and_has_every_class(global_rng_guard):
    a, b = make_echo_phantom_b(3, 7, size=(48, 56)), make_echo_phantom_b(3, 7, size=(48, 56))
    assert a["image"].shape == a["label"].shape == (48, 56) and a["image"].dtype == np.uint8
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["label"], b["label"])
    assert set(np.unique(a["label"]).tolist()) == {0, 1, 2, 3}
    other = make_echo_phantom_b(3, 8, size=(48, 56))
    assert not np.array_equal(a["label"], other["label"])
    # the cavity is dark and the wall bright, so the labels are learnable
    img, lab = a["image"].astype(float), a["label"]
    assert img[lab == 2].mean() > img[lab == 1].mean() + 40


@pytest.mark.parametrize("kind", ["random", "systematic", "omission"])
def test_corruption_changes_the_label_and_keeps_the_input(kind, global_rng_guard):
    lab = make_echo_phantom_b(0, 2, size=(64, 64))["label"]
    before = lab.copy()
    bad = corrupt_echo_phantom_b(lab, kind, radius=3, rng=np.random.default_rng(0))
    assert np.array_equal(lab, before) and bad.shape == lab.shape
    assert set(np.unique(bad).tolist()) <= {0, 1, 2, 3} and not np.array_equal(bad, lab)
    if kind == "systematic":  # grown LV, taken from the wall
        assert (bad == 1).sum() > (lab == 1).sum() and (bad == 2).sum() < (lab == 2).sum()
    if kind == "omission":
        assert not (bad == 3).any()


def test_corruption_errors():
    lab = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match="'kind' parameter of corrupt_echo_phantom_b"):
        corrupt_echo_phantom_b(lab, "bias", radius=1, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="'radius' parameter of corrupt_echo_phantom_b must be an int >= 1"):
        corrupt_echo_phantom_b(lab, "random", radius=0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="'label' parameter of corrupt_echo_phantom_b must be a 2D"):
        corrupt_echo_phantom_b(lab[None], "random", radius=1, rng=np.random.default_rng(0))
