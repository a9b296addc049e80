from __future__ import annotations

import pytest
import torch

from monai_noisylabel.losses import NormalizedCrossEntropyLoss, NormalizedFocalLoss


def _reference(logits, target, gamma, detach=False):
    """Plain autograd NFL (optionally with the reference code's detached focal factor)."""
    logp = torch.log_softmax(logits, 1)
    p = logp.exp().detach() if detach else logp.exp()
    focal = (1 - p) ** gamma * logp
    return ((target * focal).sum(1) / focal.sum(1)).mean()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_sums_to_one_over_all_labels(gamma):
    logits = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = NormalizedFocalLoss(gamma=gamma, softmax=True, to_onehot_y=True, reduction="none")
    total = sum(loss(logits, torch.full((2, 1, 3, 5), k)) for k in range(4))
    torch.testing.assert_close(total, torch.ones_like(total))
    sig = NormalizedFocalLoss(gamma=gamma, sigmoid=True, reduction="none")
    total = sig(logits, torch.zeros_like(logits)) + sig(logits, torch.ones_like(logits))
    torch.testing.assert_close(total, torch.ones_like(total))


def test_gamma_zero_is_nce_and_uniform_gives_one_over_k():
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(1))
    soft = torch.softmax(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(2)), 1)
    torch.testing.assert_close(
        NormalizedFocalLoss(gamma=0.0, softmax=True)(logits, soft),
        NormalizedCrossEntropyLoss(softmax=True)(logits, soft),
    )
    value = NormalizedFocalLoss(gamma=2.0, softmax=True)(torch.zeros(2, 3, 4, 4), soft)
    assert value.item() == pytest.approx(1 / 3, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_value_and_full_gradient_match_plain_autograd(gamma):
    logits = torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    soft = torch.softmax(torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(4), dtype=torch.float64), 1)
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = NormalizedFocalLoss(gamma=gamma, softmax=True)(a, soft)
    ref = _reference(b, soft, gamma)
    torch.testing.assert_close(ours, ref)
    ours.backward()
    ref.backward()
    torch.testing.assert_close(a.grad, b.grad)
    # the reference code's detached focal factor gives a different gradient: we do not copy it
    c = logits.clone().requires_grad_()
    _reference(c, soft, gamma, detach=True).backward()
    assert not torch.allclose(a.grad, c.grad)


def test_gradient_with_respect_to_soft_targets():
    logits = torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    soft = torch.softmax(torch.randn(1, 3, 2, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64), 1)
    loss = NormalizedFocalLoss(gamma=0.5, softmax=True, include_background=False)
    assert torch.autograd.gradcheck(lambda q: loss(logits, q), (soft.clone().requires_grad_(),))


def test_focus_on_hard_voxels():
    # an easy voxel loses more (relative to NCE) than a hard one: the focal factor down-weights it
    logits = torch.tensor([[[[4.0, -1.0]], [[0.0, 0.0]]]])
    labels = torch.zeros(1, 1, 1, 2)
    nfl = NormalizedFocalLoss(gamma=2.0, softmax=True, to_onehot_y=True, reduction="none")(logits, labels)
    nce = NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True, reduction="none")(logits, labels)
    ratio = nfl / nce
    assert ratio[0, 0, 0, 0] < ratio[0, 0, 0, 1]


def test_bad_gamma():
    with pytest.raises(
        ValueError, match=r"The 'gamma' parameter of NormalizedFocalLoss must be a finite number >= 0.0"
    ):
        NormalizedFocalLoss(gamma=-0.5)
