"""Transforms: label-noise injection with provenance (:mod:`.label_noise`) and soft/confidence labels
(:mod:`.soft_label`), each family with array and dictionary versions."""

from __future__ import annotations

from monai_noisylabel.transforms import label_noise, soft_label
from monai_noisylabel.transforms.label_noise import *  # noqa: F403
from monai_noisylabel.transforms.soft_label import *  # noqa: F403

__all__ = [*label_noise.__all__, *soft_label.__all__]
