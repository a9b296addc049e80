"""Soft and confidence label transforms: raters, anatomy, confidence, thresholds.

Array transforms (channel-first numpy / torch / MetaTensor, 2D and 3D) and their dictionary twins:
:class:`MultiRaterSoftLabel`, :class:`AnatomicalPrior`, :class:`ConfidenceToSoftLabel`,
:class:`ThresholdBinarize`. The pure kernels live in :mod:`.functional`.
"""

from __future__ import annotations

from monai_noisylabel.transforms.soft_label.array import (
    RATER_WEIGHTS_META_KEY,
    STAPLE_META_KEY,
    AnatomicalPrior,
    ConfidenceToSoftLabel,
    MultiRaterSoftLabel,
    ThresholdBinarize,
)
from monai_noisylabel.transforms.soft_label.dictionary import (
    AnatomicalPriorD,
    AnatomicalPriord,
    AnatomicalPriorDict,
    ConfidenceToSoftLabelD,
    ConfidenceToSoftLabeld,
    ConfidenceToSoftLabelDict,
    MultiRaterSoftLabelD,
    MultiRaterSoftLabeld,
    MultiRaterSoftLabelDict,
    ThresholdBinarizeD,
    ThresholdBinarized,
    ThresholdBinarizeDict,
)

__all__ = [
    "RATER_WEIGHTS_META_KEY",
    "STAPLE_META_KEY",
    "AnatomicalPrior",
    "AnatomicalPriord",
    "AnatomicalPriorD",
    "AnatomicalPriorDict",
    "ConfidenceToSoftLabel",
    "ConfidenceToSoftLabeld",
    "ConfidenceToSoftLabelD",
    "ConfidenceToSoftLabelDict",
    "MultiRaterSoftLabel",
    "MultiRaterSoftLabeld",
    "MultiRaterSoftLabelD",
    "MultiRaterSoftLabelDict",
    "ThresholdBinarize",
    "ThresholdBinarized",
    "ThresholdBinarizeD",
    "ThresholdBinarizeDict",
]
