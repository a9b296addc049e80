"""Voxel and lesion-level scores of the knee bundle's evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_noisylabel.bundle import evaluate_knee, lesion_scores
from monai_noisylabel.bundle.knee_eval import SCORE_NAMES, choose_threshold, summarize_scores


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


def _faint_case(seed: int) -> dict:
    """A lesion the (identity) network sees at p 0.31-0.38, a rim around it at p 0.12."""
    g = torch.Generator().manual_seed(seed)
    ref = torch.zeros(1, 12, 12, 12)
    ref[:, 3:8, 3:8, 3:8] = 1
    logits = torch.full((1, 12, 12, 12), -6.0)
    logits[:, 2:9, 2:9, 2:9] = -2.0
    logits[:, 3:8, 3:8, 3:8] = -0.8 + 0.3 * torch.rand(1, 5, 5, 5, generator=g)
    return {"id": f"c{seed}", "image": logits, "label": ref, "reference": ref, "reference_kind": "truth"}


def test_threshold_chosen_on_validation_cases(tmp_path):
    identity, infer = torch.nn.Identity(), (lambda x, n: n(x))
    val = [_faint_case(0), _faint_case(1)]
    t, by = choose_threshold(identity, val, preprocessing=dict, inferer=infer)
    assert t == 0.3 and by[0.3] == 1.0 and by[0.5] == 0.0 and by[0.1] < 0.6  # ties go to the one nearest 0.5
    summary = evaluate_knee(identity, [_faint_case(2)], preprocessing=dict, inferer=infer, output_dir=tmp_path,
                            threshold="validation", validation_data=val, validation_preprocessing=dict)  # fmt: skip
    assert summary["threshold"] == 0.3 and summary["threshold_source"] == "validation"
    assert summary["dice_mean"] == 1.0 and summary["validation_dice_by_threshold"]["0.5"] == 0.0
    fixed = evaluate_knee(identity, [_faint_case(2)], preprocessing=dict, inferer=infer, output_dir=tmp_path)
    assert fixed["dice_mean"] == 0.0 and fixed["threshold_source"] == "given"
    with pytest.raises(ValueError, match="needs 'validation_data'"):
        evaluate_knee(identity, val, preprocessing=dict, inferer=infer, output_dir=tmp_path, threshold="validation")
    with pytest.raises(ValueError, match="'threshold' parameter of evaluate_knee"):
        evaluate_knee(identity, val, preprocessing=dict, inferer=infer, output_dir=tmp_path, threshold="auto")
