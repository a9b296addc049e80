"""RandLabelOmission: whole structures or single connected components set to background."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from monai_noisylabel.transforms.label_noise import RandLabelOmission

from ._label_noise_helpers import echo_label, label_3d


def test_default_drops_the_left_atrium(global_rng_guard):
    lab = echo_label(0)
    t = RandLabelOmission()
    out = t(lab)
    assert not (out == 3).any()
    assert np.array_equal(out[lab != 3], lab[lab != 3]) and (out[lab == 3] == 0).all()
    assert t.last_record["params"]["ops"] == [{"op": "drop", "class": 3, "background": 0}]
    assert t.last_record["kind"] == "omission" and t.last_record["class"] == [3]


def test_random_class_among_the_present_ones():
    t = RandLabelOmission(classes=None).set_random_state(0)
    lab = echo_label(0)
    dropped = set()
    for _ in range(40):
        out = t(lab)
        (c,) = t.last_record["class"]
        dropped.add(c)
        assert not (out == c).any()
    assert dropped == {1, 2, 3}


def test_one_connected_component():
    lab = label_3d(16)
    comps, n = ndimage.label(lab[0] == 3, structure=np.ones((3, 3, 3)))
    assert n == 2
    t = RandLabelOmission(classes=3, mode="component").set_random_state(0)
    seen = set()
    for _ in range(20):
        out = t(lab)
        (op,) = t.last_record["params"]["ops"]
        k = comps[tuple(op["point"])]
        seen.add(int(k))
        removed = (lab[0] == 3) & (out[0] != 3)
        assert np.array_equal(removed, comps == k)
        assert (out[0][removed] == 0).all()
    assert seen == {1, 2}


def test_nothing_to_omit():
    lab = np.where(echo_label(0) == 3, 0, echo_label(0)).astype(np.uint8)
    t = RandLabelOmission()
    out = t(lab)
    assert np.array_equal(out, lab)
    assert t.last_record["applied"] and not t.last_record["corrupted"] and t.last_record["params"]["ops"] == []


def test_background_value():
    lab = echo_label(0)
    out = RandLabelOmission(classes=1, background=2)(lab)
    assert (out[lab == 1] == 2).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "slice"}, "The 'mode' parameter of RandLabelOmission must be one of 'class', 'component'."),
        ({"classes": "la"}, "must be None, an int or a non-empty sequence of ints. Got 'la' instead."),
        ({"classes": 7, "num_classes": 4}, "The 'classes' parameter of RandLabelOmission must be an int >= 0"),
        ({"background": -1}, "The 'background' parameter of RandLabelOmission must be an int >= 0. Got -1 instead."),
        ({"prob": "0.5"}, "The 'prob' parameter of RandLabelOmission must be a number in [0, 1]. Got '0.5' instead."),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as err:
        RandLabelOmission(**kwargs)
    assert message in str(err.value)
