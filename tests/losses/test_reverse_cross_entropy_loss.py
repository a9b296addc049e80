from __future__ import annotations

import itertools
import math

import pytest
import torch

from monai_noisylabel.losses import ReverseCrossEntropyLoss

A = -math.log(1e-4)


def test_hard_label_value_is_a_times_one_minus_p():
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = torch.randint(0, 3, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    none = ReverseCrossEntropyLoss(softmax=True, to_onehot_y=True, reduction="none")(logits, labels)
    p_y = torch.softmax(logits, 1).gather(1, labels)
    torch.testing.assert_close(none, A * (1 - p_y))


def test_soft_target_value():
    logits = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    soft = torch.tensor([0.0, 0.3, 0.7], dtype=torch.float64).reshape(1, 3, 1, 1).expand(1, 3, 2, 2)
    expected = -(torch.softmax(logits, 1) * soft.clamp(1e-4, 1).log()).sum(1, keepdim=True)
    torch.testing.assert_close(ReverseCrossEntropyLoss(softmax=True, reduction="none")(logits, soft), expected)


@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
def test_goes_to_zero_as_prediction_becomes_correct(act):
    labels = torch.randint(0, 3, (2, 1, 4, 4), generator=torch.Generator().manual_seed(3))
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).float()
    loss = ReverseCrossEntropyLoss(**{act: True})
    values = [loss(margin * (2 * one_hot - 1), one_hot).item() for margin in (0.0, 1.0, 3.0, 6.0, 12.0, 24.0)]
    assert all(a > b or a == b < 1e-6 for a, b in itertools.pairwise(values))  # float32 reaches 0 exactly
    assert values[-1] < 1e-6


def test_bounded_by_a():
    logits = 10 * torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(4))
    soft = torch.softmax(torch.randn(2, 4, 5, 5, generator=torch.Generator().manual_seed(5)), 1)
    none = ReverseCrossEntropyLoss(softmax=True, reduction="none")(logits, soft)
    assert (none >= 0).all() and (none <= A + 1e-5).all()
