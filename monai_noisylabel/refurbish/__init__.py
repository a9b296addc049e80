"""Refurbishment (pure, no ignite): pseudo-labels, an EMA teacher, LCM soft targets and a label store.

A flagged sample's label is replaced by a pseudo-label (:func:`build_pseudo_labels`) from the current
model or an :class:`EMATeacher`, or by a soft target (:func:`lcm_soft_target`); the replacement lives in a
:class:`LabelStore` that the training pipeline reads through :class:`ApplyStoredLabeld`, and is written to
disk with :func:`write_refurbished_label`. The ignite ``LabelRefurbishHandler`` wires these together.
"""

from __future__ import annotations

from monai_noisylabel.refurbish.cleansing import SPLIT_SOURCES, lcm_mix_weight, lcm_pseudo_labels, split_noisy
from monai_noisylabel.refurbish.dictionary import (
    REFURBISHED_EPOCH_KEY,
    REFURBISHED_KEY,
    ApplyStoredLabelD,
    ApplyStoredLabeld,
    ApplyStoredLabelDict,
    check_store_not_cached,
)
from monai_noisylabel.refurbish.mixing import lcm_soft_target, sharpen, sigmoid_rampup
from monai_noisylabel.refurbish.pseudo_label import PseudoLabelResult, build_pseudo_labels, fraction_changed
from monai_noisylabel.refurbish.store import LabelStore, StoredLabel
from monai_noisylabel.refurbish.teacher import EMATeacher, ema_decay, predict_probabilities
from monai_noisylabel.refurbish.writer import (
    MANIFEST_COLUMNS,
    MANIFEST_NAME,
    REFURBISHED_DIR,
    read_refurbish_manifest,
    remove_refurbished_label,
    safe_sample_id,
    write_refurbished_label,
)

__all__ = [
    "PseudoLabelResult",
    "build_pseudo_labels",
    "fraction_changed",
    "EMATeacher",
    "ema_decay",
    "predict_probabilities",
    "sharpen",
    "lcm_soft_target",
    "sigmoid_rampup",
    "StoredLabel",
    "LabelStore",
    "ApplyStoredLabeld",
    "ApplyStoredLabelD",
    "ApplyStoredLabelDict",
    "REFURBISHED_KEY",
    "REFURBISHED_EPOCH_KEY",
    "check_store_not_cached",
    "REFURBISHED_DIR",
    "MANIFEST_NAME",
    "MANIFEST_COLUMNS",
    "safe_sample_id",
    "write_refurbished_label",
    "remove_refurbished_label",
    "read_refurbish_manifest",
    "SPLIT_SOURCES",
    "split_noisy",
    "lcm_mix_weight",
    "lcm_pseudo_labels",
]
