"""The pure kernels: exact agreement with scipy.ndimage, multi-class rules, replay and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from monai_noisylabel.transforms.label_noise import functional as F
from monai_noisylabel.utils import ParameterError

from ._label_noise_helpers import echo_label, label_3d


def ball(radius: int, ndim: int) -> np.ndarray:
    g = np.mgrid[tuple(slice(-radius, radius + 1) for _ in range(ndim))]
    return (g**2).sum(0) <= radius * radius


def random_mask(shape, seed, p=0.35):
    rng = np.random.default_rng(seed)
    return ndimage.binary_opening(rng.random(shape) < p) | (rng.random(shape) < 0.02)


def scipy_fill_nearest(lab: np.ndarray, hole: np.ndarray, exclude: int, background: int, steps: int) -> np.ndarray:
    """Reference: grow the other labels into the hole with a 3^d maximum filter, one voxel per step."""
    cur = np.where(hole | (lab == exclude), -1, lab.astype(np.int64))
    todo = hole.copy()
    for _ in range(steps):
        grown = ndimage.maximum_filter(cur, size=3, mode="constant", cval=-1)
        new = todo & (grown >= 0)
        cur[new] = grown[new]
        todo &= ~new
    out = lab.copy()
    out[hole] = np.where(todo, background, cur)[hole]
    return out


@pytest.mark.parametrize("shape", [(1, 9), (23, 31), (12, 13, 14)])
@pytest.mark.parametrize("radius", [0, 1, 2, 3])
def test_ball_morphology_equals_scipy(shape, radius):
    for seed in range(3):
        m = random_mask(shape, seed)
        t = torch.from_numpy(m)
        st = ball(radius, len(shape))
        np.testing.assert_array_equal(F.binary_dilate_ball(t, radius).numpy(), ndimage.binary_dilation(m, st))
        np.testing.assert_array_equal(
            F.binary_erode_ball(t, radius).numpy(), ndimage.binary_erosion(m, st, border_value=1)
        )
    empty = torch.zeros(shape, dtype=torch.bool)
    assert not F.binary_dilate_ball(empty, radius).any()


@pytest.mark.parametrize("radius", [1, 2, 3])
@pytest.mark.parametrize("fill", ["nearest", 0, 2])
def test_erode_and_dilate_class_equal_scipy_reference(radius, fill):
    for lab in (echo_label(1)[0], label_3d(14)[0]):
        for cls in (1, 2, 3):
            mask = lab == cls
            st = ball(radius, lab.ndim)
            dil = lab.copy()
            dil[ndimage.binary_dilation(mask, st)] = cls
            got = F.dilate_class(torch.from_numpy(lab[None]), cls, radius)[0].numpy()
            np.testing.assert_array_equal(got, dil)

            hole = mask & ~ndimage.binary_erosion(mask, st, border_value=1)
            if fill == "nearest":
                ero = scipy_fill_nearest(lab, hole, cls, 0, radius)
            else:
                ero = np.where(hole, fill, lab)
            got = F.erode_class(torch.from_numpy(lab[None]), cls, radius, fill=fill)[0].numpy()
            np.testing.assert_array_equal(got, ero)


def test_dilation_overwrites_neighbours_and_erosion_hands_border_to_nearest():
    lab = torch.tensor([[[0, 0, 1, 1, 2, 2, 2, 3, 0]]])
    assert F.dilate_class(lab, 2, 1).tolist() == [[[0, 0, 1, 2, 2, 2, 2, 2, 0]]]
    # myocardium (2) eroded: its left border goes to 1, its right border to 3
    assert F.erode_class(lab, 2, 1).tolist() == [[[0, 0, 1, 1, 1, 2, 3, 3, 0]]]
    # a structure touching the image edge is not eroded from the edge
    assert F.erode_class(torch.tensor([[[1, 1, 1, 0]]]), 1, 1).tolist() == [[[1, 1, 0, 0]]]


def test_fill_nearest_is_bounded_and_falls_back_to_background():
    lab = torch.full((1, 5, 5), 4)
    out = F.erode_class(lab, 4, 2, background=0)
    assert torch.equal(out, lab)  # nothing to erode: the image border counts as the class
    shifted = F.shift_class(lab, 4, [0, 2], background=0)  # nothing else to fill the vacated columns with
    assert shifted[0, :, :2].eq(0).all() and shifted[0, :, 2:].eq(4).all()


def test_shift_class_moves_the_structure():
    lab = echo_label(2)
    t = torch.from_numpy(lab)
    out = F.shift_class(t, 1, [3, -2])
    moved = np.zeros_like(lab[0] == 1)
    moved[3:, :-2] = (lab[0] == 1)[:-3, 2:]
    assert np.array_equal(out[0].numpy() == 1, moved)
    assert set(np.unique(out.numpy())) <= {0, 1, 2, 3}
    with pytest.raises(ValueError, match="'offset' needs 2 values"):
        F.shift_class(t, 1, [1, 2, 3])


def test_drop_class_and_component():
    lab = label_3d(14)
    t = torch.from_numpy(lab)
    assert not (F.drop_class(t, 3) == 3).any()
    points = F.component_points(t[0] == 3)
    assert len(points) == 2 and points == sorted(points)
    structure = np.ones((3, 3, 3), bool)
    comps, n = ndimage.label(lab[0] == 3, structure=structure)
    assert n == 2
    for p in points:
        out = F.drop_component(t, 3, p)[0].numpy()
        expected = lab[0].copy()
        expected[comps == comps[tuple(p)]] = 0
        np.testing.assert_array_equal(out, expected)
        # the on-device flood fill (used for CUDA tensors) finds the same component
        flood = F._flood_torch(t[0] == 3, p).numpy()
        np.testing.assert_array_equal(flood, comps == comps[tuple(p)])
    with pytest.raises(ValueError, match="not a voxel of class 3"):
        F.drop_component(t, 3, [7, 7, 7])
    with pytest.raises(ValueError, match="is not a voxel of a label"):
        F.drop_component(t, 3, [99, 0, 0])
    assert F.component_points(torch.zeros(4, 4, dtype=torch.bool)) == []


def test_component_connectivity_is_full():
    m = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0]], dtype=torch.bool)  # diagonal neighbours
    assert F.component_points(m) == [[0, 0]]


@pytest.mark.parametrize("lab", [echo_label(3), label_3d(16)], ids=["2d", "3d"])
def test_jitter_is_bounded_deterministic_and_keeps_values(lab):
    t = torch.from_numpy(lab)
    out = F.jitter_labels(t, 2.0, 8, seed=5)
    assert torch.equal(out, F.jitter_labels(t, 2.0, 8, seed=5))
    assert not torch.equal(out, F.jitter_labels(t, 2.0, 8, seed=6))
    assert set(out.unique().tolist()) <= set(t.unique().tolist())
    changed = (out != t)[0].numpy()
    assert changed.any()
    # every changed voxel lies within 2 voxels (chessboard, rounding) of a boundary of the input
    near_boundary = np.zeros_like(changed)
    for v in np.unique(lab):
        m = lab[0] == v
        near_boundary |= ndimage.binary_dilation(m, iterations=3) & ~m
    assert not (changed & ~near_boundary).any()
    assert torch.equal(F.jitter_labels(t, 0.0, 8, seed=5), t)


def test_apply_ops_replays_in_order_and_never_mutates():
    lab = torch.from_numpy(echo_label(0))
    before = lab.clone()
    ops = [
        {"op": "dilate", "class": 1, "radius": 2},
        {"op": "erode", "class": 2, "radius": 1, "fill": "nearest", "background": 0},
        {"op": "shift", "class": 3, "offset": [1, 0]},
        {"op": "jitter", "magnitude": 1.0, "spacing": 8, "seed": 3},
        {"op": "drop", "class": 3},
    ]
    out = F.apply_ops(lab, ops)
    step = lab
    for op in ops:
        step = F.apply_ops(step, [op])
    assert torch.equal(out, step)
    assert torch.equal(lab, before)
    empty = F.apply_ops(lab, [])
    assert torch.equal(empty, lab) and empty is not lab
    with pytest.raises(ValueError, match="'op' one of"):
        F.apply_ops(lab, [{"op": "blur"}])
    with pytest.raises(ValueError, match="needs a 'radius' entry"):
        F.apply_ops(lab, [{"op": "dilate", "class": 1}])


def test_present_labels_and_count_changed():
    lab = torch.tensor([[[0, 5, 5], [2, 0, 0]]], dtype=torch.uint8)
    assert F.present_labels(lab) == [0, 2, 5]
    assert F.present_labels(lab.to(torch.int32) * 40000) == [0, 80000, 200000]
    assert F.present_labels(lab[:, :0]) == []
    assert F.count_changed(lab, F.drop_class(lab, 5)) == 2
    assert F.class_mask(lab, 5).dtype == torch.bool and int(F.class_mask(lab, 300).sum()) == 0


def test_component_points_without_raster_numbering(monkeypatch):
    """The fast first-voxel search checks scipy's numbering and falls back to np.unique if it differs."""
    lab = torch.from_numpy(label_3d(14))
    expected = F.component_points(lab[0] == 3)
    real = F._components

    def reversed_numbering(mask):
        labels, num = real(mask)
        return np.where(labels > 0, num + 1 - labels, 0), num

    monkeypatch.setattr(F, "_components", reversed_numbering)
    assert F.component_points(lab[0] == 3) == expected


def test_kernels_reject_multichannel():
    with pytest.raises(ValueError, match=r"single-channel label \(1, H, W\)"):
        F.dilate_class(torch.zeros(2, 4, 4, dtype=torch.long), 1, 1)


def test_check_label_messages():
    owner = "RandLabelNoise"
    assert F.check_label(owner, "label", torch.ones(1, 2, 2, dtype=torch.bool)).dtype == torch.uint8
    assert F.check_label(owner, "label", torch.ones(1, 2, 2, dtype=torch.float32)).dtype == torch.uint8
    assert F.check_label(owner, "label", torch.full((1, 2, 2), 300.0)).dtype == torch.int16
    assert F.check_label(owner, "label", torch.full((1, 2, 2), 70000.0, dtype=torch.float64)).dtype == torch.int32
    cases = [
        (
            torch.zeros(2, 4, 4),
            "must be a channel-first single-channel label, (1, H, W) or (1, H, W, D). Got shape (2, 4, 4) instead.",
        ),
        (torch.zeros(4, 4), "Got shape (4, 4) instead."),
        (
            torch.full((1, 2, 2), 0.5),
            "must be an integer label map (whole numbers >= 0). Got non-integer values such as 0.5 instead.",
        ),
        (torch.full((1, 2, 2), float("nan")), "Got 4 NaN or infinite value(s) instead."),
        (torch.full((1, 2, 2), -1), "Got values in [-1, -1] instead."),
        (torch.tensor([[[-2.0, 3.0]]]), "Got values in [-2, 3] instead."),
    ]
    for value, message in cases:
        with pytest.raises(ParameterError) as err:
            F.check_label(owner, "label", value)
        assert message in str(err.value)
        assert str(err.value).startswith("The 'label' parameter of RandLabelNoise must be")
    with pytest.raises(ValueError, match=r"values in \[0, 3\] \(num_classes=4\). Got values in \[0, 4\] instead."):
        F.check_label(owner, "label", torch.tensor([[[0, 4]]]), num_classes=4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    lab = torch.from_numpy(label_3d(16))
    ops = [
        {"op": "dilate", "class": 1, "radius": 2},
        {"op": "erode", "class": 2, "radius": 2},
        {"op": "shift", "class": 1, "offset": [1, 0, -1]},
        {"op": "drop_component", "class": 3, "point": F.component_points(lab[0] == 3)[0]},
    ]
    cpu = F.apply_ops(lab, ops)
    gpu = F.apply_ops(lab.cuda(), ops)
    assert gpu.device.type == "cuda"
    assert torch.equal(gpu.cpu(), cpu)
