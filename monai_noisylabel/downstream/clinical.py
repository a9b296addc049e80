"""The LUS downstream clinical tasks on mask features, with patient-grouped cross-validation.

Three tasks, as in the lung ultrasound confidence-label study:

- ``sf_regression``: the S/F oxygenation ratio of a patient at a time point, from the features of that time
  point's frames (pooled); MAE and Pearson r.
- ``sf_change``: whether the S/F ratio worsened between the two time points, from the change of the pooled
  features and the first time point's features; patients with one time point are left out (counted). AUC.
- ``readmission``: 30-day readmission, from the features of the patient's last time point and their change
  since the first (0 with one time point). AUC.

Folds never split a patient (scikit-learn ``GroupKFold`` / ``StratifiedGroupKFold``), and the whole
cross-validation is repeated over several shuffles; the out-of-fold predictions averaged over the repeats are
returned for the patient bootstrap of :mod:`monai_noisylabel.downstream.bootstrap`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import mean_absolute_error, roc_auc_score
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from monai_noisylabel.downstream.features import pool_features
from monai_noisylabel.utils import check_int, param_error

__all__ = ["CLINICAL_FIELDS", "DOWNSTREAM_TASKS", "clinical_tables", "grouped_cv_predict", "run_downstream"]

logger = logging.getLogger(__name__)

CLINICAL_FIELDS = ("sf_ratio", "sf_change", "readmission_30d")
#: task -> (kind, metric names)
DOWNSTREAM_TASKS = {
    "sf_regression": ("regression", ("mae", "pearson_r")),
    "sf_change": ("classification", ("auc",)),
    "readmission": ("classification", ("auc",)),
}


def _number(record: Mapping[str, Any], field: str) -> float | None:
    value = record.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(
            f"The '{field}' field of case {record.get('id')!r} must be a finite number or absent. Got {value!r} instead."
        )
    return float(value)


def _order(timepoint: Any) -> tuple[int, float, str]:
    """Sort key of a time point: numbers in numeric order, then anything else by its text."""
    if isinstance(timepoint, (int, float)) and not isinstance(timepoint, bool):
        return (0, float(timepoint), "")
    return (1, 0.0, str(timepoint))


def clinical_tables(records: Sequence[Mapping[str, Any]]) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """The design matrices of the three tasks from per-frame records.

    Args:
        records: one dict per frame with ``id``, ``patient``, ``timepoint`` (0/1, or any sortable value),
            ``features`` (from :func:`~monai_noisylabel.downstream.lus_mask_features`) and the optional clinical
            fields ``sf_ratio``, ``sf_change``, ``readmission_30d`` (numbers; ``None`` or absent leaves the frame
            out of the tasks that need it).

    Returns:
        ``(tables, skipped)``: ``tables[task] = {"X", "y", "groups", "patients"}`` (rows are patient-time points
        for ``sf_regression``, patients for the other two); ``skipped`` counts the frames / patients left out
        (``frames_without_<field>``, ``patients_with_one_timepoint``).

    Raises:
        ValueError: a clinical field that is not a number (the message names the case and the field), a record
            without ``patient`` or ``timepoint``, a patient whose ``sf_change`` / ``readmission_30d`` differs
            between frames.
    """
    skipped = {f"frames_without_{f}": 0 for f in CLINICAL_FIELDS}
    skipped["patients_with_one_timepoint"] = 0
    for r in records:
        for key in ("patient", "timepoint"):
            if r.get(key) is None:
                raise ValueError(f"Case {r.get('id')!r} has no '{key}' field; the downstream step needs it.")
    pooled = pool_features([r["features"] for r in records], [(str(r["patient"]), r["timepoint"]) for r in records])
    names = list(next(iter(pooled.values()))) if pooled else []

    sf_values: dict[tuple[str, Any], list[float]] = {}
    per_patient: dict[str, dict[str, set[float]]] = {}
    for r in records:
        pt_key = (str(r["patient"]), r["timepoint"])
        sf = _number(r, "sf_ratio")
        if sf is None:
            skipped["frames_without_sf_ratio"] += 1
        else:
            sf_values.setdefault(pt_key, []).append(sf)
        for field in ("sf_change", "readmission_30d"):
            v = _number(r, field)
            if v is None:
                skipped[f"frames_without_{field}"] += 1
            else:
                per_patient.setdefault(pt_key[0], {}).setdefault(field, set()).add(v)
    for patient, fields in per_patient.items():
        for field, values in fields.items():
            if len(values) > 1:
                raise ValueError(f"Patient {patient!r} has different '{field}' values across frames: {sorted(values)}.")

    def vec(key: tuple[str, Any]) -> np.ndarray:
        return np.array([pooled[key][n] for n in names], dtype=np.float64)

    sf_keys = sorted(sf_values, key=lambda k: (k[0], _order(k[1])))
    tables: dict[str, dict[str, Any]] = {
        "sf_regression": {
            "X": np.array([vec(k) for k in sf_keys]).reshape(len(sf_keys), len(names)),
            "y": np.array([np.mean(sf_values[k]) for k in sf_keys]),
            "groups": [k[0] for k in sf_keys],
            "patients": [k[0] for k in sf_keys],
        }
    }
    timepoints: dict[str, list[Any]] = {}
    for patient, tp in pooled:
        timepoints.setdefault(patient, []).append(tp)
    for task, field in (("sf_change", "sf_change"), ("readmission", "readmission_30d")):
        rows, ys, pts = [], [], []
        for patient in sorted(timepoints):
            tps = sorted(timepoints[patient], key=_order)
            label = per_patient.get(patient, {}).get(field)
            if label is None:
                continue
            last = vec((patient, tps[-1]))
            first = vec((patient, tps[0]))
            if task == "sf_change":
                if len(tps) < 2:
                    skipped["patients_with_one_timepoint"] += 1
                    continue
                rows.append(np.concatenate([last - first, first]))
            else:
                rows.append(np.concatenate([last, last - first]))
            ys.append(next(iter(label)))
            pts.append(patient)
        tables[task] = {
            "X": np.array(rows).reshape(len(rows), 2 * len(names)),
            "y": np.array(ys),
            "groups": pts,
            "patients": pts,
        }
    return tables, skipped


def grouped_cv_predict(
    X: np.ndarray,
    y: np.ndarray,
    groups: Sequence[Any],
    *,
    kind: str,
    n_splits: int = 5,
    n_repeats: int = 5,
    seed: int = 0,
) -> np.ndarray:
    """Out-of-fold predictions of a linear model, folds grouped by patient, repeated over ``n_repeats`` shuffles.

    ``kind="regression"``: standardized ridge (``RidgeCV``); ``kind="classification"``: standardized
    L2 logistic regression, predicting the positive-class probability (a fold whose training part has one class
    predicts its rate). Classification folds are stratified (``StratifiedGroupKFold``).

    Returns:
        ``(n_repeats, n)`` out-of-fold predictions.

    Raises:
        ValueError: fewer than 2 groups, an unknown ``kind``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(40, 2)); y = 3 * X[:, 0] + rng.normal(0, 0.1, 40)
        >>> p = grouped_cv_predict(X, y, np.arange(40) // 2, kind="regression", n_repeats=2)
        >>> p.shape, bool(np.corrcoef(p.mean(0), y)[0, 1] > 0.95)
        ((2, 40), True)
    """
    owner = "grouped_cv_predict"
    if kind not in ("regression", "classification"):
        raise param_error(owner, "kind", "'regression' or 'classification'", kind)
    n_repeats = check_int(owner, "n_repeats", n_repeats, minimum=1)
    groups_arr = np.asarray([str(g) for g in groups])
    n_groups = len(set(groups_arr))
    if n_groups < 2:
        raise param_error(owner, "groups", "at least 2 distinct groups", n_groups)
    splits = min(check_int(owner, "n_splits", n_splits, minimum=2), n_groups)
    out = np.zeros((n_repeats, len(y)))
    for r in range(n_repeats):
        if kind == "regression":
            folds = GroupKFold(splits, shuffle=True, random_state=seed + r).split(X, y, groups_arr)
        else:
            min_class = int(np.bincount(y.astype(int)).min()) if len(set(y.tolist())) > 1 else 0
            folds = StratifiedGroupKFold(
                max(2, min(splits, max(min_class, 2))), shuffle=True, random_state=seed + r
            ).split(X, y.astype(int), groups_arr)
        for train, test in folds:
            if kind == "regression":
                model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 11)))
                out[r, test] = model.fit(X[train], y[train]).predict(X[test])
            elif len(set(y[train].tolist())) < 2:
                out[r, test] = float(y[train].mean())
            else:
                model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
                out[r, test] = model.fit(X[train], y[train].astype(int)).predict_proba(X[test])[:, 1]
    return out


def _metrics(kind: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    if kind == "regression":
        r = float(np.corrcoef(y, pred)[0, 1]) if np.std(pred) > 0 and np.std(y) > 0 else float("nan")
        return {"mae": float(mean_absolute_error(y, pred)), "pearson_r": r}
    if len(set(y.tolist())) < 2:
        return {"auc": float("nan")}
    return {"auc": float(roc_auc_score(y.astype(int), pred))}


def run_downstream(
    records: Sequence[Mapping[str, Any]],
    *,
    n_splits: int = 5,
    n_repeats: int = 5,
    seed: int = 0,
    min_patients: int = 6,
) -> dict[str, Any]:
    """Run the three downstream tasks on per-frame records (see :func:`clinical_tables`).

    A task with fewer than ``min_patients`` patients, or a classification task whose patients all have the same
    label, is skipped (logged, metrics ``None``).

    Returns:
        ``{task: {"metrics": {name: mean over repeats}, "metrics_std": {...}, "n_rows", "n_patients",
        "patients", "y", "pred" (out-of-fold, averaged over repeats), "skipped_reason"}, "skipped": counts}``.

    Example:
        >>> from monai_noisylabel.downstream import LUS_FEATURES
        >>> rng = np.random.default_rng(0)
        >>> recs = []
        >>> for p in range(30):
        ...     for t in (0, 1):
        ...         s = rng.uniform()
        ...         recs.append({"id": f"{p}_{t}", "patient": p, "timepoint": t, "sf_ratio": 400 - 300 * s,
        ...                      "sf_change": p % 2, "readmission_30d": int(p % 3 == 0),
        ...                      "features": {k: s for k in LUS_FEATURES}})
        >>> out = run_downstream(recs, n_repeats=2)
        >>> out["sf_regression"]["metrics"]["pearson_r"] > 0.99, out["sf_change"]["n_patients"]
        (True, 30)
    """
    tables, skipped = clinical_tables(records)
    for k, v in skipped.items():
        if v:
            logger.info(f"downstream: {v} {k.replace('_', ' ')} left out")
    result: dict[str, Any] = {"skipped": skipped}
    for task, (kind, names) in DOWNSTREAM_TASKS.items():
        t = tables[task]
        n_patients = len(set(t["patients"]))
        entry: dict[str, Any] = {
            "metrics": dict.fromkeys(names),
            "metrics_std": dict.fromkeys(names),
            "n_rows": len(t["y"]),
            "n_patients": n_patients,
            "patients": list(t["patients"]),
            "y": t["y"].tolist(),
            "pred": None,
            "skipped_reason": None,
        }
        if n_patients < min_patients:
            entry["skipped_reason"] = f"{n_patients} patients (fewer than {min_patients})"
        elif kind == "classification" and len(set(t["y"].tolist())) < 2:
            entry["skipped_reason"] = "every patient has the same label"
        if entry["skipped_reason"]:
            logger.info(f"downstream: {task} skipped: {entry['skipped_reason']}")
            result[task] = entry
            continue
        preds = grouped_cv_predict(
            t["X"], t["y"], t["groups"], kind=kind, n_splits=n_splits, n_repeats=n_repeats, seed=seed
        )
        per_repeat = [_metrics(kind, t["y"], p) for p in preds]
        entry["metrics"] = {n: float(np.nanmean([m[n] for m in per_repeat])) for n in names}
        entry["metrics_std"] = {n: float(np.nanstd([m[n] for m in per_repeat])) for n in names}
        entry["pred"] = preds.mean(0).tolist()
        result[task] = entry
    return result
