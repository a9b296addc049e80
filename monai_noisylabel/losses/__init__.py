"""Noise-tolerant segmentation losses: the normalized Active-Passive family, threshold-binarized BCE, and a per-sample
Dice + CE (:class:`SampleDiceCELoss`) for per-sample scoring and weighting.

All are ``torch.nn.modules.loss._Loss`` subclasses with MONAI's arguments (``include_background``,
``to_onehot_y``, ``sigmoid``/``softmax``, ``reduction``) plus ``ignore_index``, and take an optional
per-voxel ``weight`` and ``mask`` in ``forward``. ``per_sample(input, target)`` gives one loss per sample.
"""

from __future__ import annotations

from monai_noisylabel.losses.active_passive import (
    MeanAbsoluteErrorLoss,
    NormalizedActivePassiveLoss,
    NormalizedCrossEntropyLoss,
    NormalizedFocalLoss,
    ReverseCrossEntropyLoss,
)
from monai_noisylabel.losses.dice_ce import SampleDiceCELoss
from monai_noisylabel.losses.threshold_bce import ThresholdBinarizedBCELoss

__all__ = [
    "MeanAbsoluteErrorLoss",
    "NormalizedActivePassiveLoss",
    "NormalizedCrossEntropyLoss",
    "NormalizedFocalLoss",
    "ReverseCrossEntropyLoss",
    "SampleDiceCELoss",
    "ThresholdBinarizedBCELoss",
]
