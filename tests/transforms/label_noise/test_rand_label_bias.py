"""RandLabelBias: one fixed signed change on every affected sample; defaults; modes; bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_noisylabel.transforms.label_noise import RandLabelBias
from monai_noisylabel.transforms.label_noise import functional as F

from ._label_noise_helpers import echo_label, label_3d


def test_default_over_segments_the_lv_cavity_by_three_pixels(global_rng_guard):
    lab = echo_label(0, size=(128, 128))
    t = RandLabelBias()
    out = t(lab)
    expected = F.dilate_class(torch.as_tensor(lab), 1, 3).numpy()
    assert np.array_equal(out, expected)
    assert (out == 1).sum() > (lab == 1).sum()
    assert t.last_record["params"]["ops"] == [{"op": "dilate", "class": 1, "radius": 3}]
    assert t.last_record["kind"] == "bias" and t.last_record["class"] == [1]


def test_same_change_on_every_affected_sample():
    t = RandLabelBias(prob=0.5, label_class=3, mode="erode", radius=1, fixed_per_sample=True, seed=1)
    records = []
    for i in range(12):
        t(echo_label(i % 4), sample_id=f"case{i}")
        records.append(t.last_record)
    applied = [r["params"]["ops"] for r in records if r["applied"]]
    assert 0 < len(applied) < 12
    assert all(ops == applied[0] for ops in applied)
    assert all(r["params"]["ops"] == [] for r in records if not r["applied"])


def test_two_biases_with_one_seed_hit_the_same_samples():
    a = RandLabelBias(prob=0.5, label_class=1, fixed_per_sample=True, seed=9)
    b = RandLabelBias(prob=0.5, label_class=3, mode="erode", radius=1, fixed_per_sample=True, seed=9)
    lab = echo_label(0)
    for i in range(10):
        a(lab, sample_id=str(i))
        b(lab, sample_id=str(i))
        assert a.last_record["applied"] == b.last_record["applied"]


def test_erode_and_shift_modes():
    lab = label_3d(16)
    eroded = RandLabelBias(label_class=1, mode="erode", radius=1)(lab)
    assert (eroded == 1).sum() < (lab == 1).sum() and ((eroded == 1) <= (lab == 1)).all()
    t = RandLabelBias(label_class=1, mode="shift", offset=(0, 2, 0))
    shifted = t(lab)
    expected = np.zeros_like(lab[0] == 1)
    expected[:, 2:] = (lab[0] == 1)[:, :-2]
    assert np.array_equal(shifted[0] == 1, expected)
    assert t.last_record["params"]["ops"][0]["offset"] == [0, 2, 0]


def test_absent_class_is_recorded_as_not_corrupted():
    lab = np.zeros((1, 8, 8), np.uint8)
    t = RandLabelBias()
    out = t(lab)
    assert np.array_equal(out, lab)
    assert t.last_record["applied"] and not t.last_record["corrupted"] and t.last_record["changed_voxels"] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            {"label_class": 0},
            "The 'label_class' parameter of RandLabelBias must be an int >= 0 other than the background",
        ),
        ({"label_class": 4, "num_classes": 4}, "and < num_classes=4. Got 4 instead."),
        ({"mode": "grow"}, "The 'mode' parameter of RandLabelBias must be one of 'dilate', 'erode', 'shift'."),
        ({"radius": -1}, "The 'radius' parameter of RandLabelBias must be an int >= 0. Got -1 instead."),
        ({"mode": "shift"}, "The 'offset' parameter of RandLabelBias must be a sequence of 2 or 3 ints"),
        ({"mode": "shift", "offset": (0, 0)}, "not all 0. Got (0, 0) instead."),
        ({"offset": (1, 0)}, "The 'offset' parameter of RandLabelBias must be None unless mode='shift'."),
        ({"prob": -0.1}, "The 'prob' parameter of RandLabelBias must be a number in [0, 1]. Got -0.1 instead."),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as err:
        RandLabelBias(**kwargs)
    assert message in str(err.value)


def test_offset_must_match_the_label():
    with pytest.raises(ValueError, match=r"'offset' parameter of RandLabelBias must be 2 ints for a label of shape"):
        RandLabelBias(mode="shift", offset=(1, 0, 0))(echo_label(0))
