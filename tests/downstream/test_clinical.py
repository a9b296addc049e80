"""The downstream tasks: known answers, skips, bad clinical fields, the RNG left alone."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from monai_noisylabel.data.synthetic import make_lus_case
from monai_noisylabel.downstream import (
    LUS_FEATURES,
    clinical_tables,
    grouped_cv_predict,
    lus_mask_features,
    run_downstream,
)


@pytest.fixture(scope="module")
def cases():
    return [make_lus_case(0, i, (64, 64)) for i in range(72)]


def _records(cases, masks):
    keys = ("patient", "timepoint", "sf_ratio", "sf_change", "readmission_30d")
    return [
        {"id": i, **{k: c[k] for k in keys}, "features": lus_mask_features(m)}
        for i, (c, m) in enumerate(zip(cases, masks))
    ]


def test_true_masks_beat_empty_masks(cases, global_rng_guard):
    true = run_downstream(_records(cases, [c["truth"] for c in cases]), n_repeats=2)
    empty = run_downstream(_records(cases, [np.zeros_like(c["truth"]) for c in cases]), n_repeats=2)
    assert true["sf_regression"]["metrics"]["pearson_r"] > 0.8
    assert true["sf_regression"]["metrics"]["mae"] < empty["sf_regression"]["metrics"]["mae"] - 20
    assert true["sf_change"]["metrics"]["auc"] > 0.65 > empty["sf_change"]["metrics"]["auc"]
    assert true["sf_regression"]["n_patients"] == 36 and true["sf_regression"]["n_rows"] == 72
    assert len(true["readmission"]["pred"]) == 36


def test_one_timepoint_and_missing_fields_are_skipped_and_logged(cases, caplog):
    recs = _records(cases[:25], [c["truth"] for c in cases[:25]])  # patient 12 has time point 0 only
    recs[0]["sf_ratio"] = None
    with caplog.at_level(logging.INFO):
        out = run_downstream(recs, n_repeats=1)
    assert out["skipped"]["patients_with_one_timepoint"] == 1
    assert out["skipped"]["frames_without_sf_ratio"] == 1
    assert out["sf_change"]["n_patients"] == 12 and out["readmission"]["n_patients"] == 13
    assert "1 patients with one timepoint left out" in caplog.text


def test_too_few_patients_is_a_logged_skip(cases):
    out = run_downstream(_records(cases[:6], [c["truth"] for c in cases[:6]]))
    assert out["sf_change"]["skipped_reason"] and out["sf_change"]["metrics"]["auc"] is None


@pytest.mark.parametrize("value", ["high", float("nan"), True])
def test_non_numeric_clinical_field(cases, value):
    recs = _records(cases[:4], [c["truth"] for c in cases[:4]])
    recs[2]["readmission_30d"] = value
    with pytest.raises(ValueError, match="'readmission_30d' field of case 2"):
        clinical_tables(recs)


def test_grouped_cv_never_splits_a_patient():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    groups = np.arange(30) // 3
    y = X[:, 0] + groups  # a patient effect: leaking a patient would help
    preds = grouped_cv_predict(X, y, groups, kind="regression", n_splits=5, n_repeats=2, seed=1)
    assert preds.shape == (2, 30) and not np.allclose(preds[0], preds[1])
    with pytest.raises(ValueError, match="'kind' parameter"):
        grouped_cv_predict(X, y, groups, kind="ranking")


def test_time_points_in_numeric_order():
    """Day 2 then day 10: the change is day 10 minus day 2, not the text order."""
    recs = [
        {
            "id": f"{p}_{t}",
            "patient": p,
            "timepoint": t,
            "sf_change": 0,
            "features": dict.fromkeys(LUS_FEATURES, float(t)),
        }
        for p in range(3)
        for t in (10, 2)
    ]
    tables, _ = clinical_tables(recs)
    assert tables["sf_change"]["X"][0, 0] == 8.0  # change of the pooled feature: 10 - 2
