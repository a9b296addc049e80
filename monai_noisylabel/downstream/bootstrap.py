"""Patient-bootstrap intervals for arms evaluated on the same patients, with paired differences to a reference arm.

A bootstrap draw resamples patients with replacement; every metric is recomputed with each row weighted by how
often its patient was drawn (``sample_weight`` in scikit-learn), so an arm's rows never need copying. All arms
and seeds see the same draws, which makes the differences paired.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from monai_noisylabel.utils import check_int, check_number, param_error

__all__ = ["MetricFn", "row_metric", "patient_bootstrap"]

#: maps per-patient weights (draw counts, aligned with the bootstrap's patient list) to a metric value
MetricFn = Callable[[np.ndarray], float]


def row_metric(
    name: str,
    patients: Sequence[Any],
    all_patients: Sequence[Any],
    y: Sequence[float],
    pred: Sequence[float] | None = None,
) -> MetricFn:
    """A :data:`MetricFn` over rows that belong to ``patients``.

    Args:
        name: ``"mean"`` (of ``y``, NaN rows skipped), ``"mae"``, ``"pearson_r"`` or ``"auc"`` (``y`` the
            0/1 truth, ``pred`` the score).
        patients: the patient of each row.
        all_patients: the bootstrap's patient list (the weights' order).
        y: per-row values or truth.
        pred: per-row predictions (not for ``"mean"``).

    Example:
        >>> f = row_metric("mean", ["a", "a", "b"], ["a", "b"], [1.0, 1.0, 4.0])
        >>> f(np.array([1, 1])), f(np.array([0, 2]))
        (2.0, 4.0)
    """
    index = {p: i for i, p in enumerate(all_patients)}
    try:
        rows = np.array([index[p] for p in patients], dtype=np.int64)
    except KeyError as e:
        raise param_error("row_metric", "patients", "patients of 'all_patients'", e.args[0]) from None
    yv = np.asarray(y, dtype=np.float64)
    pv = None if pred is None else np.asarray(pred, dtype=np.float64)
    if name != "mean" and (pv is None or len(pv) != len(yv)):
        raise param_error("row_metric", "pred", f"one prediction per row for {name!r}", None if pv is None else len(pv))

    def metric(weights: np.ndarray) -> float:
        w = weights[rows].astype(np.float64)
        if name == "mean":
            ok = ~np.isnan(yv) & (w > 0)
            return float(np.average(yv[ok], weights=w[ok])) if ok.any() else float("nan")
        assert pv is not None
        keep = w > 0
        if name == "mae":
            return float(np.average(np.abs(yv - pv)[keep], weights=w[keep]))
        if name == "pearson_r":
            c = np.cov(yv[keep], pv[keep], aweights=w[keep])
            denom = np.sqrt(c[0, 0] * c[1, 1])
            return float(c[0, 1] / denom) if denom > 0 else float("nan")
        if name == "auc":
            if len(set(yv[keep].tolist())) < 2:
                return float("nan")
            return float(roc_auc_score(yv[keep].astype(int), pv[keep], sample_weight=w[keep]))
        raise param_error("row_metric", "name", "'mean', 'mae', 'pearson_r' or 'auc'", name)

    return metric


def patient_bootstrap(
    arms: Mapping[str, Sequence[MetricFn]],
    patients: Sequence[Any],
    *,
    reference: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """Percentile intervals of each arm's metric (averaged over its seeds) and of its difference to ``reference``.

    Args:
        arms: arm name -> one :data:`MetricFn` per seed (the arm's value is their mean).
        patients: the patients to resample.
        reference: the arm the differences are taken to (``None``: no differences).
        n_boot: number of draws.
        seed: seed of the draws (the global RNG is not used).
        level: the interval's coverage.

    Returns:
        ``{arm: {"value", "low", "high", "diff", "diff_low", "diff_high", "diff_excludes_zero"}}``; the
        ``diff*`` entries are ``None`` for the reference itself or without a reference. Draws whose metric is
        undefined (e.g. an AUC with one class) are left out of the percentiles.

    Example:
        >>> pts = list(range(50)); rng = np.random.default_rng(0); vals = rng.normal(size=50)
        >>> arms = {"a": [row_metric("mean", pts, pts, vals)], "b": [row_metric("mean", pts, pts, vals + 1.0)]}
        >>> out = patient_bootstrap(arms, pts, reference="a", n_boot=200)
        >>> round(out["b"]["diff"], 6), out["b"]["diff_excludes_zero"], out["a"]["low"] < out["a"]["value"]
        (1.0, True, True)
    """
    owner = "patient_bootstrap"
    n_boot = check_int(owner, "n_boot", n_boot, minimum=1)
    level = check_number(owner, "level", level, 0.0, 1.0)
    if reference is not None and reference not in arms:
        raise param_error(owner, "reference", f"one of {sorted(arms)}", reference)
    n = len(patients)
    if n == 0:
        raise param_error(owner, "patients", "a non-empty list", list(patients))
    rng = np.random.default_rng(seed)
    ones = np.ones(n, dtype=np.int64)
    draws = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)])

    def value(fns: Sequence[MetricFn], w: np.ndarray) -> float:
        vals = [f(w) for f in fns]
        return float(np.mean(vals)) if not any(np.isnan(vals)) else float("nan")

    boot = {arm: np.array([value(fns, w) for w in draws]) for arm, fns in arms.items()}
    point = {arm: value(fns, ones) for arm, fns in arms.items()}
    q = (100 * (1 - level) / 2, 100 * (1 + level) / 2)

    def interval(x: np.ndarray) -> tuple[float | None, float | None]:
        x = x[~np.isnan(x)]
        if not x.size:
            return None, None
        lo, hi = np.percentile(x, q)
        return float(lo), float(hi)

    out: dict[str, dict[str, Any]] = {}
    for arm in arms:
        lo, hi = interval(boot[arm])
        row: dict[str, Any] = {"value": point[arm], "low": lo, "high": hi}
        row.update(diff=None, diff_low=None, diff_high=None, diff_excludes_zero=None)
        if reference is not None and arm != reference:
            dlo, dhi = interval(boot[arm] - boot[reference])
            row["diff"] = point[arm] - point[reference]
            row["diff_low"], row["diff_high"] = dlo, dhi
            row["diff_excludes_zero"] = None if dlo is None or dhi is None else bool(dlo > 0 or dhi < 0)
        out[arm] = row
    return out
