"""Code the bundles under ``bundles/`` instantiate by dotted ``_target_`` (bundle code lives in the installed package).

- :func:`prepare_echo_data`: synthetic default data, CAMUS, or a user datalist, with optional noise injection.
- :func:`prepare_lus_data`, :func:`lus_label_transforms`, :func:`lus_loss`, :func:`evaluate_lus`: the lung
  ultrasound bundle (confidence labels, per-class Dice/IoU, downstream clinical tasks).
- :mod:`monai_noisylabel.bundle.workflow`: seeded network init, per-structure metric
  transforms, resume from the latest checkpoint, progress lines with time left, and the end-of-training report.
- :mod:`monai_noisylabel.bundle.knee` / :mod:`monai_noisylabel.bundle.knee_eval`: the knee BML bundle's data,
  soft-label target, class-balanced loss, and voxel + lesion-level evaluation.
- :mod:`monai_noisylabel.bundle.checks`: output-folder, image/label content and checkpoint checks that stop a run
  before training with a message naming the file.
- :class:`TrainingRandomState`: the training transforms' and loaders' random states, saved with each checkpoint so
  a resumed run goes on exactly as an uninterrupted one; :class:`BestModelState`, the best-model record.
"""

from __future__ import annotations

from monai_noisylabel.bundle.checks import (
    CheckedCheckpointLoader,
    check_output_dir,
    check_segmentation_files,
    prepare_output_dir,
)
from monai_noisylabel.bundle.data import SECTIONS, list_images, noise_manifest, prepare_echo_data
from monai_noisylabel.bundle.knee import KneeLesionLoss, KneeTargetd, knee_probe_shape, prepare_knee_data
from monai_noisylabel.bundle.knee_eval import evaluate_knee, lesion_scores, rater_scores
from monai_noisylabel.bundle.lus import IGNORE_VALUE, LABEL_MODES, lus_label_transforms, lus_loss, prepare_lus_data
from monai_noisylabel.bundle.lus_eval import evaluate_lus, predict_lus_masks
from monai_noisylabel.bundle.random_state import BestModelState, TrainingRandomState
from monai_noisylabel.bundle.workflow import (
    HISTORY_FILENAME,
    ResumeFromLatestCheckpoint,
    TrainingProgress,
    as_flag,
    channel_output_transform,
    data_fingerprint,
    finish_training,
    named,
    rank_zero_only,
    seeded_init,
    vog_checkpoints,
)
from monai_noisylabel.losses.dice_ce import SampleDiceCELoss  # configs written before it moved to losses

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
    "data_fingerprint",
    "channel_output_transform",
    "finish_training",
    "rank_zero_only",
    "vog_checkpoints",
    "named",
    "seeded_init",
    "prepare_knee_data",
    "KneeTargetd",
    "KneeLesionLoss",
    "knee_probe_shape",
    "evaluate_knee",
    "lesion_scores",
    "rater_scores",
    "IGNORE_VALUE",
    "LABEL_MODES",
    "prepare_lus_data",
    "lus_label_transforms",
    "lus_loss",
    "evaluate_lus",
    "predict_lus_masks",
    "CheckedCheckpointLoader",
    "check_output_dir",
    "check_segmentation_files",
    "prepare_output_dir",
    "TrainingRandomState",
    "BestModelState",
]
