"""SampleDiceCELoss: per-sample Dice + CE that matches MONAI's DiceCELoss and skips ignored voxels."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss

from monai_noisylabel.bundle import SampleDiceCELoss as BundleSampleDiceCELoss
from monai_noisylabel.losses import SampleDiceCELoss


def test_sample_dice_ce_matches_monai_and_ignores_voxels():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 8, 8, generator=g)
    labels = torch.randint(0, 4, (3, 1, 8, 8), generator=g)
    ours = SampleDiceCELoss(reduction="none")(logits, labels)
    assert ours.shape == (3,)
    ref = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False)
    assert float(ours.mean()) == pytest.approx(float(ref(logits, labels)), rel=1e-4)
    # ignored voxels contribute nothing: changing the logits there leaves the loss unchanged
    ignored = labels.clone()
    ignored[:, :, :4] = 255
    other = logits.clone()
    other[:, :, :4] += 5.0
    loss = SampleDiceCELoss(reduction="none")
    assert torch.allclose(loss(logits, ignored), loss(other, ignored), atol=1e-6)
    with pytest.raises(ValueError, match="'target'"):
        loss(logits, labels[:, 0])


@pytest.mark.parametrize("spatial", [(6, 6), (4, 5, 6)])
def test_reductions_2d_3d(spatial):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 3, *spatial, generator=g, requires_grad=True)
    labels = torch.randint(0, 3, (2, 1, *spatial), generator=g)
    per = SampleDiceCELoss(reduction="none")(logits, labels)
    assert torch.allclose(SampleDiceCELoss()(logits, labels), per.mean())
    assert torch.allclose(SampleDiceCELoss(reduction="sum")(logits, labels), per.sum())
    per.sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()


def test_bad_arguments_and_the_bundle_alias():
    with pytest.raises(ValueError, match=r"The 'reduction' parameter of SampleDiceCELoss .* Got 'avg' instead"):
        SampleDiceCELoss(reduction="avg")
    with pytest.raises(ValueError, match=r"'lambda_ce' parameter of SampleDiceCELoss"):
        SampleDiceCELoss(lambda_ce=-1.0)
    assert BundleSampleDiceCELoss is SampleDiceCELoss
