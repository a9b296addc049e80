from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from monai_noisylabel.losses import ThresholdBinarizedBCELoss


def _data(channels=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(2, channels, 6, 6, generator=g), torch.rand(2, channels, 6, 6, generator=g)


@pytest.mark.parametrize("threshold", [0.5, 0.6, 1.0])
def test_equals_bce_on_binarized_target(threshold):
    logits, conf = _data()
    expected = F.binary_cross_entropy_with_logits(logits, (conf >= threshold).float())
    torch.testing.assert_close(ThresholdBinarizedBCELoss(threshold=threshold)(logits, conf), expected)


def test_default_threshold_is_point_six():
    logits = torch.zeros(1, 1, 1, 2)
    conf = torch.tensor([[[[0.6, 0.59]]]])
    none = ThresholdBinarizedBCELoss(reduction="none")(logits + torch.tensor([5.0, -5.0]), conf)
    assert none.max().item() < 0.01  # 0.6 is positive, 0.59 negative


@pytest.mark.parametrize("band", [0.4, (0.4, 0.6), [0.3, 0.7]])
def test_ignore_band(band):
    logits, conf = _data()
    low, high = (band, 0.6) if isinstance(band, float) else band
    loss = ThresholdBinarizedBCELoss(threshold=0.6, ignore_band=band)
    keep = ~((conf >= low) & (conf < high))
    full = F.binary_cross_entropy_with_logits(logits, (conf >= 0.6).float(), reduction="none")
    torch.testing.assert_close(loss(logits, conf), full[keep].mean())
    none = ThresholdBinarizedBCELoss(threshold=0.6, ignore_band=band, reduction="none")(logits, conf)
    assert (none[~keep] == 0).all()
    x = logits.clone().requires_grad_()
    loss(x, conf).backward()
    assert (x.grad[~keep] == 0).all()


@pytest.mark.parametrize("pos_weight", [2.0, [1.0, 2.0, 3.0]])
def test_pos_weight_matches_torch(pos_weight):
    logits, conf = _data()
    pw = torch.as_tensor(pos_weight).reshape(-1, 1, 1)
    expected = F.binary_cross_entropy_with_logits(logits, (conf >= 0.6).float(), pos_weight=pw)
    torch.testing.assert_close(ThresholdBinarizedBCELoss(pos_weight=pos_weight)(logits, conf), expected)


def test_without_background_and_pos_weight_per_kept_channel():
    logits, conf = _data()
    loss = ThresholdBinarizedBCELoss(include_background=False, pos_weight=[2.0, 3.0])
    pw = torch.tensor([2.0, 3.0]).reshape(-1, 1, 1)
    expected = F.binary_cross_entropy_with_logits(logits[:, 1:], (conf[:, 1:] >= 0.6).float(), pos_weight=pw)
    torch.testing.assert_close(loss(logits, conf), expected)
    with pytest.raises(
        ValueError, match=r"The 'pos_weight' parameter of ThresholdBinarizedBCELoss must be one number or 3"
    ):
        ThresholdBinarizedBCELoss(pos_weight=[2.0, 3.0])(logits, conf)


def test_index_maps_and_ignore_value_from_threshold_binarize():
    logits, _ = _data()
    labels = torch.randint(0, 3, (2, 1, 6, 6), generator=torch.Generator().manual_seed(1))
    labels[0, 0, 0] = 255
    loss = ThresholdBinarizedBCELoss(to_onehot_y=True, ignore_index=255, reduction="none")
    out = loss(logits, labels)
    assert (out[0, :, 0] == 0).all()
    one_hot = F.one_hot(labels.clamp(max=2)[:, 0], 3).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(
        out[:, :, 1:], F.binary_cross_entropy_with_logits(logits, one_hot, reduction="none")[:, :, 1:]
    )


def test_sentinel_per_entry():
    logits, conf = _data()
    conf = conf.clone()
    conf[0, 1, 2, 3] = -1
    none = ThresholdBinarizedBCELoss(ignore_index=-1, reduction="none")(logits, conf)
    assert none[0, 1, 2, 3] == 0 and none[0, 0, 2, 3] > 0 and none[0, 2, 2, 3] > 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"threshold": 0.0},
            r"The 'threshold' parameter of ThresholdBinarizedBCELoss must be a finite number > 0.0 and <= 1.0. Got 0.0",
        ),
        (
            {"threshold": 1.5},
            r"'threshold' parameter of ThresholdBinarizedBCELoss must be a finite number > 0.0 and <= 1.0. Got 1.5",
        ),
        (
            {"ignore_band": 0.7},
            r"The 'ignore_band' parameter of ThresholdBinarizedBCELoss must be None, a number in \[0, threshold\)",
        ),
        (
            {"ignore_band": (0.6, 0.4)},
            r"'ignore_band' parameter of ThresholdBinarizedBCELoss .* Got \(0.6, 0.4\) instead",
        ),
        ({"ignore_band": (0.1, 0.2, 0.3)}, r"'ignore_band' parameter"),
        ({"ignore_band": "low"}, r"'ignore_band' parameter"),
        ({"pos_weight": 0.0}, r"The 'pos_weight' parameter of ThresholdBinarizedBCELoss must be a number > 0"),
        ({"pos_weight": [1.0, -1.0]}, r"The 'pos_weight' parameter of ThresholdBinarizedBCELoss must be a number > 0"),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ThresholdBinarizedBCELoss(**kwargs)
