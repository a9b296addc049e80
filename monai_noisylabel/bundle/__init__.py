"""Code the bundles under ``bundles/`` instantiate by dotted ``_target_`` (bundle code lives in the installed package).

- :func:`prepare_echo_data`: synthetic default data, CAMUS, or a user datalist, with optional noise injection.
- :func:`prepare_lus_data`, :func:`lus_label_transforms`, :func:`lus_loss`, :func:`evaluate_lus`: the lung
  ultrasound bundle (confidence labels, per-class Dice/IoU, downstream clinical tasks).
- :mod:`monai_noisylabel.bundle.workflow`: seeded network init, a per-sample Dice+CE loss, per-structure metric
  transforms, resume from the latest checkpoint, progress lines with time left, and the end-of-training report.
"""

from __future__ import annotations

from monai_noisylabel.bundle.data import SECTIONS, list_images, noise_manifest, prepare_echo_data
from monai_noisylabel.bundle.lus import IGNORE_VALUE, LABEL_MODES, lus_label_transforms, lus_loss, prepare_lus_data
from monai_noisylabel.bundle.lus_eval import evaluate_lus, predict_lus_masks
from monai_noisylabel.bundle.workflow import (
    HISTORY_FILENAME,
    ResumeFromLatestCheckpoint,
    SampleDiceCELoss,
    TrainingProgress,
    as_flag,
    channel_output_transform,
    finish_training,
    named,
    seeded_init,
)

__all__ = [
    "SECTIONS",
    "prepare_echo_data",
    "list_images",
    "noise_manifest",
    "HISTORY_FILENAME",
    "ResumeFromLatestCheckpoint",
    "SampleDiceCELoss",
    "TrainingProgress",
    "as_flag",
    "channel_output_transform",
    "finish_training",
    "named",
    "seeded_init",
    "IGNORE_VALUE",
    "LABEL_MODES",
    "prepare_lus_data",
    "lus_label_transforms",
    "lus_loss",
    "evaluate_lus",
    "predict_lus_masks",
]
