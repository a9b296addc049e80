from __future__ import annotations

import pytest
import torch

from monai_noisylabel.losses import (
    MeanAbsoluteErrorLoss,
    NormalizedActivePassiveLoss,
    NormalizedCrossEntropyLoss,
    NormalizedFocalLoss,
    ReverseCrossEntropyLoss,
)


def _data():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64)
    soft = torch.softmax(2 * torch.randn(2, 4, 5, 5, generator=g, dtype=torch.float64), 1)
    return logits, soft


@pytest.mark.parametrize("active", ["nce", "nfl"])
@pytest.mark.parametrize("passive", ["rce", "mae"])
@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
@pytest.mark.parametrize("include_background", [True, False])
def test_is_weighted_sum_of_parts(active, passive, act, include_background):
    logits, soft = _data()
    common = {act: True, "include_background": include_background, "reduction": "none"}
    act_loss = NormalizedCrossEntropyLoss(**common) if active == "nce" else NormalizedFocalLoss(gamma=0.7, **common)
    pas_loss = ReverseCrossEntropyLoss(**common) if passive == "rce" else MeanAbsoluteErrorLoss(**common)
    nap = NormalizedActivePassiveLoss(active, passive, alpha=10.0, beta=0.1, gamma=0.7, **common)
    torch.testing.assert_close(nap(logits, soft), 10.0 * act_loss(logits, soft) + 0.1 * pas_loss(logits, soft))


def test_defaults_and_single_terms():
    logits, soft = _data()
    nap = NormalizedActivePassiveLoss(softmax=True)
    assert (nap.active, nap.passive, nap.alpha, nap.beta, nap.gamma) == ("nce", "rce", 1.0, 1.0, 0.5)
    expected = NormalizedCrossEntropyLoss(softmax=True)(logits, soft) + ReverseCrossEntropyLoss(softmax=True)(
        logits, soft
    )
    torch.testing.assert_close(nap(logits, soft), expected)
    only_active = NormalizedActivePassiveLoss(alpha=2.0, beta=0.0, softmax=True)(logits, soft)
    torch.testing.assert_close(only_active, 2.0 * NormalizedCrossEntropyLoss(softmax=True)(logits, soft))
    only_passive = NormalizedActivePassiveLoss(passive="mae", alpha=0.0, beta=3.0, softmax=True)(logits, soft)
    torch.testing.assert_close(only_passive, 3.0 * MeanAbsoluteErrorLoss(softmax=True)(logits, soft))


def test_soft_one_hot_equals_hard():
    logits, _ = _data()
    labels = torch.randint(0, 4, (2, 1, 5, 5), generator=torch.Generator().manual_seed(1))
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 3, 1, 2).double()
    for active in ("nce", "nfl"):
        for passive in ("rce", "mae"):
            hard = NormalizedActivePassiveLoss(active, passive, softmax=True, to_onehot_y=True)(logits, labels)
            soft = NormalizedActivePassiveLoss(active, passive, softmax=True)(logits, one_hot)
            assert hard.item() == soft.item()


def test_robust_loss_is_bounded_under_a_wrong_label():
    # the normalized active term is in [0, 1] and RCE in [0, A]: a confidently wrong label cannot blow up
    labels = torch.zeros(1, 1, 1, 1, dtype=torch.long)
    logits = torch.tensor([-50.0, 50.0, 0.0]).reshape(1, 3, 1, 1)
    nap = NormalizedActivePassiveLoss(softmax=True, to_onehot_y=True)(logits, labels)
    ce = torch.nn.functional.cross_entropy(logits, labels[:, 0])
    assert nap.item() <= 1.0 + 9.22 and ce.item() > 99


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"active": "ce"},
            r"The 'active' parameter of NormalizedActivePassiveLoss must be one of 'nce', 'nfl'. Got 'ce'",
        ),
        (
            {"passive": "nrce"},
            r"The 'passive' parameter of NormalizedActivePassiveLoss must be one of 'rce', 'mae'. Got 'nrce'",
        ),
        (
            {"alpha": -1.0},
            r"The 'alpha' parameter of NormalizedActivePassiveLoss must be a finite number >= 0.0. Got -1.0",
        ),
        (
            {"beta": -0.1},
            r"The 'beta' parameter of NormalizedActivePassiveLoss must be a finite number >= 0.0. Got -0.1",
        ),
        (
            {"alpha": 0.0, "beta": 0.0},
            r"The 'beta' parameter of NormalizedActivePassiveLoss must be > 0 when alpha is 0",
        ),
        ({"gamma": -1}, r"The 'gamma' parameter of NormalizedActivePassiveLoss must be a finite number >= 0.0. Got -1"),
        ({"alpha": float("nan")}, r"The 'alpha' parameter of NormalizedActivePassiveLoss must be a finite number"),
        (
            {"sigmoid": True, "softmax": True},
            r"The 'softmax' parameter of NormalizedActivePassiveLoss must be False when",
        ),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NormalizedActivePassiveLoss(**kwargs)
