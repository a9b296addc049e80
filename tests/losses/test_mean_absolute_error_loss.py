from __future__ import annotations

import itertools

import pytest
import torch

from monai_noisylabel.losses import MeanAbsoluteErrorLoss


def test_hard_label_value_is_one_minus_p_and_half_l1():
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    none = MeanAbsoluteErrorLoss(softmax=True, to_onehot_y=True, reduction="none")(logits, labels)
    p = torch.softmax(logits, 1)
    torch.testing.assert_close(none, 1 - p.gather(1, labels))
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).double()
    torch.testing.assert_close(none, 0.5 * (p - one_hot).abs().sum(1, keepdim=True))


def test_soft_target_value_is_one_minus_dot():
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    soft = torch.softmax(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64), 1)
    value = MeanAbsoluteErrorLoss(softmax=True, reduction="none")(logits, soft)
    torch.testing.assert_close(value, 1 - (soft * torch.softmax(logits, 1)).sum(1, keepdim=True))


def test_sigmoid_binary_value():
    x = torch.tensor([[[[0.3, -2.0]]]], dtype=torch.float64)
    t = torch.tensor([[[[0.8, 0.1]]]], dtype=torch.float64)
    s = torch.sigmoid(x)
    expected = 1 - ((1 - t) * (1 - s) + t * s)
    torch.testing.assert_close(MeanAbsoluteErrorLoss(sigmoid=True, reduction="none")(x, t), expected)


@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
def test_goes_to_zero_as_prediction_becomes_correct(act):
    labels = torch.randint(0, 4, (2, 1, 4, 4), generator=torch.Generator().manual_seed(4))
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 3, 1, 2).float()
    loss = MeanAbsoluteErrorLoss(**{act: True})
    values = [loss(margin * (2 * one_hot - 1), one_hot).item() for margin in (0.0, 1.0, 3.0, 6.0, 12.0, 24.0)]
    assert all(a > b or a == b < 1e-6 for a, b in itertools.pairwise(values))  # float32 reaches 0 exactly
    assert values[-1] < 1e-6
    assert 0.0 <= min(values) and max(values) <= 1.0
