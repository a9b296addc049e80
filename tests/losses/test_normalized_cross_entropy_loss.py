from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_noisylabel.losses import NormalizedCrossEntropyLoss


def _labels(k, shape=(2, 1, 4, 5)):
    return torch.full(shape, k)


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_sums_to_one_over_all_labels(num_classes):
    logits = torch.randn(2, num_classes, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True, reduction="none")
    total = sum(loss(logits, _labels(k)) for k in range(num_classes))
    torch.testing.assert_close(total, torch.ones_like(total))
    # and with probabilities as input
    probs = torch.softmax(logits, 1)
    loss_p = NormalizedCrossEntropyLoss(to_onehot_y=True, reduction="none")
    total = sum(loss_p(probs, _labels(k)) for k in range(num_classes))
    torch.testing.assert_close(total, torch.ones_like(total))


def test_sigmoid_two_classes_sum_to_one():
    logits = torch.randn(2, 3, 4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = NormalizedCrossEntropyLoss(sigmoid=True, reduction="none")
    total = loss(logits, torch.zeros_like(logits)) + loss(logits, torch.ones_like(logits))
    torch.testing.assert_close(total, torch.ones_like(total))


@pytest.mark.parametrize("num_classes", [2, 4, 7])
def test_uniform_prediction_gives_one_over_k(num_classes):
    labels = torch.randint(0, num_classes, (2, 1, 3, 3), generator=torch.Generator().manual_seed(2))
    value = NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True)(torch.zeros(2, num_classes, 3, 3), labels)
    assert value.item() == pytest.approx(1.0 / num_classes, rel=1e-6)
    soft = torch.softmax(torch.randn(2, num_classes, 3, 3, generator=torch.Generator().manual_seed(3)), 1)
    value = NormalizedCrossEntropyLoss(softmax=True)(torch.zeros(2, num_classes, 3, 3), soft)
    assert value.item() == pytest.approx(1.0 / num_classes, rel=1e-6)  # any target summing to 1


def test_hand_value():
    z = np.array([1.0, 2.0, 0.5])
    logp = z - np.log(np.exp(z).sum())
    q = np.array([0.2, 0.7, 0.1])
    expected = (q * logp).sum() / logp.sum()
    logits = torch.tensor(z).reshape(1, 3, 1, 1)
    value = NormalizedCrossEntropyLoss(softmax=True)(logits, torch.tensor(q).reshape(1, 3, 1, 1))
    assert value.item() == pytest.approx(expected, rel=1e-12)
    # without background the numerator drops class 0, the normalizer keeps all classes
    value = NormalizedCrossEntropyLoss(softmax=True, include_background=False)(
        logits, torch.tensor(q).reshape(1, 3, 1, 1)
    )
    assert value.item() == pytest.approx((q[1:] * logp[1:]).sum() / logp.sum(), rel=1e-12)


def test_soft_target_equal_to_one_hot_gives_hard_value():
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(4))
    labels = torch.randint(0, 3, (2, 1, 4, 4), generator=torch.Generator().manual_seed(5))
    soft = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).float()
    hard = NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True)(logits, labels)
    assert NormalizedCrossEntropyLoss(softmax=True)(logits, soft).item() == hard.item()


def test_values_in_unit_interval_and_background_voxels_drop_out():
    logits = 3 * torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(6))
    labels = torch.randint(0, 3, (2, 1, 6, 6), generator=torch.Generator().manual_seed(7))
    none = NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True, reduction="none")(logits, labels)
    assert (none >= 0).all() and (none <= 1).all()
    no_bg = NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True, include_background=False, reduction="none")
    out = no_bg(logits, labels)
    assert (out[labels == 0] == 0).all()
    torch.testing.assert_close(out[labels != 0], none[labels != 0])
