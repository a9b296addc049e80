"""Ignite handlers: thin adapters that run the :mod:`monai_noisylabel.detection` core inside a MONAI training run.

- :class:`VarianceOfGradientsHandler`: VoG per training sample (checkpoint passes or online from the training step).
- :class:`SampleLossHandler`: per-sample eval loss every epoch, its window mean, the GMM split, the offset score.
- :class:`LabelRefurbishHandler`: swaps flagged labels for pseudo-labels (a label store the training pipeline
  reads), writes them to ``refurbished/``; :class:`PseudoLabelWeightedLoss` ramps their loss weight up.
- :class:`LabelQualityReportHandler`: how ``combined``/``flagged`` are computed; writes ``label_scores.csv``.
- :class:`NonFiniteLossHandler`: stops training (or skips the batch) on a NaN/inf loss, naming the batch's ids.
- :func:`write_label_scores`, :func:`read_label_scores`: the ``label_scores.csv`` contract (docs/architecture.md).

All of them keep their results on ``engine.state.label_scores`` (id -> row), save and restore their state
through ``CheckpointSaver``/``CheckpointLoader``, gather across DDP ranks and write files on rank 0 only.
"""

from __future__ import annotations

from monai_noisylabel.handlers.label_quality_report import LabelQualityReportHandler
from monai_noisylabel.handlers.label_refurbish import LabelRefurbishHandler, PseudoLabelWeightedLoss
from monai_noisylabel.handlers.non_finite_loss import NON_FINITE_LOSS_ACTIONS, NonFiniteLossHandler
from monai_noisylabel.handlers.sample_loss import SampleLossHandler
from monai_noisylabel.handlers.schedule import EpochSchedule
from monai_noisylabel.handlers.variance_of_gradients import VarianceOfGradientsHandler
from monai_noisylabel.label_scores import (
    LABEL_SCORES_COLUMNS,
    LABEL_SCORES_FILENAME,
    SCORE_COLUMNS,
    read_label_scores,
    write_label_scores,
)

__all__ = [
    "EpochSchedule",
    "LABEL_SCORES_COLUMNS",
    "LABEL_SCORES_FILENAME",
    "SCORE_COLUMNS",
    "LabelQualityReportHandler",
    "LabelRefurbishHandler",
    "PseudoLabelWeightedLoss",
    "SampleLossHandler",
    "VarianceOfGradientsHandler",
    "read_label_scores",
    "write_label_scores",
    "NON_FINITE_LOSS_ACTIONS",
    "NonFiniteLossHandler",
]
