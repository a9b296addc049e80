"""Downstream clinical use of segmentations: mask features, patient-grouped models, patient-bootstrap intervals.

Pure functions (numpy, scipy, scikit-learn; no torch, no ignite), used by the lung ultrasound bundle and the
``lus-sweep`` command.
"""

from __future__ import annotations

from monai_noisylabel.downstream.bootstrap import MetricFn, patient_bootstrap, row_metric
from monai_noisylabel.downstream.clinical import (
    CLINICAL_FIELDS,
    DOWNSTREAM_TASKS,
    clinical_tables,
    grouped_cv_predict,
    run_downstream,
)
from monai_noisylabel.downstream.features import LUS_FEATURES, lus_mask_features, pool_features

__all__ = [
    "CLINICAL_FIELDS",
    "DOWNSTREAM_TASKS",
    "LUS_FEATURES",
    "MetricFn",
    "clinical_tables",
    "grouped_cv_predict",
    "lus_mask_features",
    "patient_bootstrap",
    "pool_features",
    "row_metric",
    "run_downstream",
]
