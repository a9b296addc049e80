"""RandLabelNoise: per-structure random erosion/dilation, shift, jitter; draws, defaults, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_noisylabel.transforms.label_noise import RandLabelNoise, apply_label_noise
from monai_noisylabel.transforms.label_noise import functional as F

from ._label_noise_helpers import echo_label, label_3d


def test_defaults_corrupt_every_echo_structure(global_rng_guard):
    lab = echo_label(0, size=(128, 128))
    t = RandLabelNoise().set_random_state(0)
    out = t(lab)
    ops = t.last_record["params"]["ops"]
    assert [op["class"] for op in ops] == [1, 2, 3]
    assert all(op["op"] in ("erode", "dilate") and 1 <= op["radius"] <= 3 for op in ops)
    assert t.last_record["kind"] == "random" and t.last_record["class"] == [1, 2, 3]
    assert t.last_record["corrupted"] and out.dtype == lab.dtype


def test_draws_are_balanced_and_fresh_each_call():
    lab = echo_label(1)
    t = RandLabelNoise(classes=1, radius=(1, 3)).set_random_state(0)
    kinds, radii, outs = [], [], set()
    for _ in range(300):
        out = t(lab)
        (op,) = t.last_record["params"]["ops"]
        kinds.append(op["op"])
        radii.append(op["radius"])
        outs.add(out.tobytes())
    assert 0.4 < np.mean([k == "dilate" for k in kinds]) < 0.6  # zero mean bias: equal odds
    assert set(radii) == {1, 2, 3}
    assert len(outs) == 6  # 2 ops x 3 radii, each seen


def test_sequential_rule_eroded_cavity_thickens_the_myocardium():
    lab = echo_label(0)
    out = RandLabelNoise(classes=1, radius=2, dilate_prob=0.0)(lab)
    lost = (lab == 1) & (out != 1)
    assert lost.any() and (out[lost] == 2).all()
    grown = RandLabelNoise(classes=1, radius=2, dilate_prob=1.0)(lab)
    assert ((grown == 1) >= (lab == 1)).all() and (grown == 1).sum() > (lab == 1).sum()


def test_absent_classes_are_skipped_without_changing_the_other_draws():
    lab = echo_label(0)
    no_la = np.where(lab == 3, 0, lab).astype(lab.dtype)
    a = RandLabelNoise(classes=(1, 2, 3)).set_random_state(4)
    b = RandLabelNoise(classes=(1, 2, 3)).set_random_state(4)
    a(lab)
    b(no_la)
    ops_a, ops_b = a.last_record["params"]["ops"], b.last_record["params"]["ops"]
    assert [op["class"] for op in ops_b] == [1, 2]
    assert ops_a[:2] == ops_b


def test_shift_and_jitter_are_recorded_and_replayed():
    lab = label_3d(16)
    t = RandLabelNoise(radius=1, max_shift=2, jitter=1.5, jitter_spacing=6).set_random_state(2)
    out = t(torch.as_tensor(lab))
    ops = t.last_record["params"]["ops"]
    assert any(op["op"] == "shift" and max(map(abs, op["offset"])) <= 2 for op in ops)
    assert ops[-1]["op"] == "jitter" and ops[-1]["magnitude"] == 1.5 and ops[-1]["spacing"] == 6
    assert torch.equal(apply_label_noise(torch.as_tensor(lab), t.last_record), out)


def test_fill_label_and_num_classes():
    lab = echo_label(0)
    out = RandLabelNoise(classes=2, radius=1, dilate_prob=0.0, fill=0, num_classes=4)(lab)
    lost = (lab == 2) & (out != 2)
    assert lost.any() and (out[lost] == 0).all()


def test_fixed_per_sample_reads_the_meta_file_name():
    lab = MetaTensor(torch.as_tensor(echo_label(0)), meta={"filename_or_obj": "/data/p1_ED.nii.gz"})
    t = RandLabelNoise(fixed_per_sample=True, seed=3)
    a, b = t(lab), t(lab)
    assert torch.equal(a, b) and t.last_record["sample_id"] == "/data/p1_ED.nii.gz"
    other = MetaTensor(torch.as_tensor(echo_label(0)), meta={"filename_or_obj": "/data/p2_ED.nii.gz"})
    draws = set()
    for i in range(6):
        t(other, sample_id=f"id{i}")
        draws.add(str(t.last_record["params"]))
    assert len(draws) > 1  # different samples, different corruption
    with pytest.raises(ValueError, match="fixed_per_sample=True needs a sample id"):
        t(echo_label(0))


def test_randomize_then_apply_without_drawing_again():
    lab = echo_label(0)
    t = RandLabelNoise().set_random_state(1)
    with pytest.raises(RuntimeError, match="call randomize"):
        RandLabelNoise()(lab, randomize=False)
    t.randomize(lab)
    a = t(lab, randomize=False)
    b = t(lab, randomize=False)
    assert np.array_equal(a, b)
    assert np.array_equal(a, RandLabelNoise().set_random_state(1)(lab))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"prob": 1.5}, "The 'prob' parameter of RandLabelNoise must be a number in [0, 1]. Got 1.5 instead."),
        ({"radius": -1}, "The 'radius' parameter of RandLabelNoise must be an int >= 0. Got -1 instead."),
        ({"radius": (3, 1)}, "a pair (low, high) of ints with 0 <= low <= high. Got (3, 1) instead."),
        ({"classes": 0}, "The 'classes' parameter of RandLabelNoise must be an int >= 0 other than the background"),
        ({"classes": 5, "num_classes": 4}, "and < num_classes=4. Got 5 instead."),
        ({"classes": []}, "must be None, an int or a non-empty sequence of ints. Got [] instead."),
        ({"fill": "mean"}, "The 'fill' parameter of RandLabelNoise must be 'nearest' or a label"),
        ({"jitter": -1}, "The 'jitter' parameter of RandLabelNoise must be a finite number >= 0.0. Got -1 instead."),
        ({"max_shift": -2}, "The 'max_shift' parameter of RandLabelNoise must be an int >= 0. Got -2 instead."),
        ({"dilate_prob": 2}, "The 'dilate_prob' parameter of RandLabelNoise must be a number in [0, 1]."),
        ({"seed": -1}, "The 'seed' parameter of RandLabelNoise must be an int >= 0. Got -1 instead."),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as err:
        RandLabelNoise(**kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize(
    "label, message",
    [
        (np.zeros((2, 8, 8), np.uint8), "must be a channel-first single-channel label, (1, H, W) or (1, H, W, D)"),
        (np.full((1, 8, 8), 1.5, np.float32), "Got non-integer values such as 1.5 instead."),
        (np.full((1, 8, 8), -1, np.int16), "Got values in [-1, -1] instead."),
    ],
)
def test_bad_labels(label, message, global_rng_guard):
    with pytest.raises(ValueError) as err:
        RandLabelNoise()(label)
    assert message in str(err.value) and "The 'label' parameter of RandLabelNoise" in str(err.value)


def test_label_out_of_range_for_num_classes():
    with pytest.raises(ValueError, match=r"values in \[0, 2\] \(num_classes=3\). Got values in \[0, 3\] instead."):
        RandLabelNoise(num_classes=3)(echo_label(0))


def test_binary_bool_label_roundtrip():
    lab = torch.as_tensor(label_3d(12) == 1)
    out = RandLabelNoise(radius=1).set_random_state(0)(lab)
    assert out.dtype == torch.bool and out.shape == lab.shape
    op = RandLabelNoise(radius=1).set_random_state(0)
    op(lab)
    expected = F.apply_ops(lab.to(torch.uint8), op.last_record["params"]["ops"]).bool()
    assert torch.equal(out, expected)
