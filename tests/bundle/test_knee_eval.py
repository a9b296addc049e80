"""Voxel and lesion-level scores of the knee bundle's evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from monai_noisylabel.bundle import lesion_scores
from monai_noisylabel.bundle.knee_eval import SCORE_NAMES, summarize_scores


def _two_lesions():
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[1:4, 1:4, 1:4] = 1  # 27 voxels
    ref[7:10, 7:10, 7:10] = 1
    return ref


def test_perfect_and_empty_predictions():
    ref = _two_lesions()
    assert all(v == 1.0 for k, v in lesion_scores(ref, ref).items() if k in SCORE_NAMES)
    empty = lesion_scores(np.zeros_like(ref), ref)
    # a collapsed model scores 0 everywhere, precision included
    assert all(empty[k] == 0.0 for k in SCORE_NAMES)
    both_empty = lesion_scores(np.zeros_like(ref), np.zeros_like(ref))
    assert all(both_empty[k] == 1.0 for k in SCORE_NAMES)


def test_partial_detection_and_false_positives():
    ref = _two_lesions()
    pred = np.zeros_like(ref)
    pred[2, 2, 2] = 1  # touches lesion 1: it is found
    pred[5, 0, 11] = 1  # a false positive component
    s = lesion_scores(pred, ref)
    assert s["lesion_recall"] == 0.5 and s["lesion_precision"] == 0.5
    assert s["precision"] == 0.5 and s["recall"] == pytest.approx(1 / 54)
    assert s["num_reference_lesions"] == 2 and s["num_predicted_lesions"] == 2
    # components below min_size do not count as detections (nor as false positives)
    assert lesion_scores(pred, ref, min_size=2)["lesion_precision"] == 0.0  # nothing left: reference has lesions


def test_diagonal_voxels_are_one_lesion():
    ref = np.zeros((4, 4, 4), np.uint8)
    ref[0, 0, 0] = ref[1, 1, 1] = 1  # 26-connected
    assert lesion_scores(ref, ref)["num_reference_lesions"] == 1


def test_shape_mismatch_and_summary():
    with pytest.raises(ValueError, match="prediction shape"):
        lesion_scores(np.zeros((4, 4, 4)), np.zeros((4, 4, 5)))
    rows = [{n: 1.0 for n in SCORE_NAMES}, {n: 0.5 for n in SCORE_NAMES}]
    summary = summarize_scores(rows)
    assert summary["dice_mean"] == 0.75 and summary["dice_std"] == 0.25
