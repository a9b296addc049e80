"""Directional disagreement: signed label-vs-prediction volume offsets and their distance from a clean reference.

This project's own score. A systematic bias on many training labels (e.g. every
corrupted LV cavity dilated by 3 px) defeats loss, GMM and VoG: the model learns the average boundary,
so clean and biased labels fit it equally badly. What still differs is the sign: the biased labels lie
on one side of the prediction, the clean ones on the other. Per sample and class,
``(label volume - predicted volume) / predicted volume`` is a feature vector (:func:`volume_offsets`);
its Mahalanobis distance from the same vectors measured on a trusted clean set, e.g. the curated
validation set, is the score (:func:`offset_scores`). The covariance is the full one, shrunk with
Ledoit-Wolf because the reference is small: the classes' offsets are correlated (a dilated cavity grows the
LV and shrinks the wall). :func:`reference_offset_scores` gives the reference's own scores (leave-one-out),
the clean distribution that :mod:`~monai_noisylabel.detection.reference` compares the training scores with.

Memorization: on its own training samples a network eventually reproduces their wrong labels (an
omitted structure stops being predicted), and the offsets of the final model shrink towards 0. As
with the loss, measure the distances every epoch (training and reference predicted by the same
model) and average them over a window of epochs, e.g. with
:class:`~monai_noisylabel.detection.SampleLossAccumulator` and
:func:`~monai_noisylabel.detection.sample_loss_scores`; in ``benchmarks/bench_detection.py`` this
window mean raised AUROC on omissions from 0.50-0.54 (final model) to 0.85-1.00 (64x64, 200 images,
30 epochs).

Limitation: without a trusted reference the centre is the median of all samples. When about half the
labels share one bias, that median falls inside one group or between the two, and the two groups can
no longer be told apart (which side is "wrong" is undecidable from the training labels alone). The
score is also weak where the model itself is poor (strong omission on small images); combine it with
the loss score (:func:`~monai_noisylabel.detection.combine_scores` does by default).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from sklearn.covariance import LedoitWolf, MinCovDet

from monai_noisylabel.utils import (
    as_float_array,
    as_int_array,
    check_choice,
    check_finite,
    check_int,
    check_number,
    param_error,
)

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["volume_offsets", "offset_scores", "reference_offset_scores"]

_MAD_TO_STD = 1.4826


def volume_offsets(
    preds: NdarrayOrTensor,
    labels: NdarrayOrTensor,
    *,
    num_classes: int | None = None,
    include_background: bool = False,
    min_volume: float = 1.0,
) -> np.ndarray:
    """Signed relative volume offset of the given label against the prediction, per sample and class.

    Args:
        preds: predicted class indices (e.g. the argmax of the probabilities), ``(N, *spatial)`` or
            ``(N, 1, *spatial)``; measure them in eval mode without augmentation.
        labels: the given labels, class indices of the same shape.
        num_classes: number of classes ``C``; default: the largest index in either array + 1 (at least 2).
        include_background: keep class 0 as a feature (default: classes ``1..C-1`` only).
        min_volume: denominator floor in voxels, so a class the model does not predict gives a large but
            finite offset.

    Returns:
        ``(N, C)`` or ``(N, C - 1)`` float64: ``(v_label - v_pred) / max(v_pred, min_volume)``; positive
        = the label is larger than the prediction, -1 = the label omits a predicted structure.

    Raises:
        ValueError: shapes that differ, non-integer or out-of-range classes.

    Example:
        >>> import numpy as np
        >>> pred = np.array([[0, 1, 1, 1, 1, 0, 0, 0]])
        >>> label = np.array([[1, 1, 1, 1, 1, 0, 0, 0]])
        >>> volume_offsets(pred, label).tolist()
        [[0.25]]
    """
    owner = "volume_offsets"
    p = as_int_array(owner, "preds", preds)
    y = as_int_array(owner, "labels", labels)
    if p.shape != y.shape or p.ndim < 2:
        raise param_error(owner, "labels", f"class indices of the same (N, ...) shape as preds {p.shape}", y.shape)
    min_volume = check_number(owner, "min_volume", min_volume, 0.0, open_min=True)
    top = int(max(p.max(initial=0), y.max(initial=0)))
    if num_classes is None:
        num_classes = max(top + 1, 2)
    num_classes = check_int(owner, "num_classes", num_classes, 2)
    if min(p.min(initial=0), y.min(initial=0)) < 0 or top >= num_classes:
        raise param_error(owner, "labels", f"class indices in [0, {num_classes - 1}] (preds too)", top)
    flat_p, flat_y = p.reshape(p.shape[0], -1), y.reshape(y.shape[0], -1)
    classes = range(0 if include_background else 1, num_classes)
    v_pred = np.stack([(flat_p == c).sum(axis=1) for c in classes], axis=1).astype(np.float64)
    v_label = np.stack([(flat_y == c).sum(axis=1) for c in classes], axis=1).astype(np.float64)
    return (v_label - v_pred) / np.maximum(v_pred, min_volume)


def _centre_and_precision(
    owner: str, ref: np.ndarray, covariance: str, min_scale: float, robust: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Centre and inverse covariance of ``ref``: diagonal (mean/std or median/MAD) or full (Ledoit-Wolf
    shrinkage, or scikit-learn's MinCovDet when ``robust``), with ``min_scale ** 2`` added to the diagonal."""
    k = ref.shape[1]
    if covariance == "diagonal" or ref.shape[0] < 2:
        if robust:
            centre = np.median(ref, axis=0)
            scale = _MAD_TO_STD * np.median(np.abs(ref - centre), axis=0)
        else:
            centre = ref.mean(axis=0)
            scale = ref.std(axis=0, ddof=1) if ref.shape[0] > 1 else np.zeros(k)
        return centre, np.diag(1.0 / np.maximum(scale, min_scale) ** 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", UserWarning)
        est = MinCovDet(random_state=0) if robust and ref.shape[0] > 2 * k else LedoitWolf()
        try:
            est.fit(ref)
        except ValueError:  # MinCovDet on degenerate data: fall back to the shrunk estimate
            est = LedoitWolf().fit(ref)
    cov = np.asarray(est.covariance_) + min_scale**2 * np.eye(k)
    return np.asarray(est.location_, dtype=np.float64), np.linalg.pinv(cov)


def _distances(x: np.ndarray, centre: np.ndarray, precision: np.ndarray) -> np.ndarray:
    d = x - centre
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, precision, d), 0.0))


def offset_scores(
    offsets: NdarrayOrTensor | Sequence[float],
    *,
    reference: NdarrayOrTensor | Sequence[float] | None = None,
    min_scale: float = 0.01,
    covariance: str = "full",
) -> np.ndarray:
    """Distance of each sample's offset vector from the offsets of a trusted clean reference set.

    With ``covariance="full"`` (default) the distance is Mahalanobis with the reference's full covariance,
    estimated with Ledoit-Wolf shrinkage (scikit-learn ``LedoitWolf``) because the reference is small: the
    classes' offsets are correlated (a dilated cavity grows the LV and shrinks the wall), and a change
    that breaks that correlation stands out even when each class alone looks ordinary. With
    ``covariance="diagonal"`` it is the standardized Euclidean distance
    ``sqrt(sum_k ((x_k - centre_k) / scale_k)^2)`` (mean and standard deviation per feature). Without
    ``reference`` the centre and spread come from ``offsets`` itself, robustly (scikit-learn ``MinCovDet``,
    or the median and ``1.4826 * MAD`` per feature): this finds a minority of wrong labels but is blind to a
    50/50 split (see the module docstring). ``min_scale ** 2`` is added to every variance so a constant
    feature does not divide by zero.

    Args:
        offsets: ``(N, K)`` (or ``(N,)`` for one class) offsets of the samples to score, e.g.
            :func:`volume_offsets` on the training set.
        reference: ``(M, K)`` offsets of trusted clean samples (e.g. the validation set, predicted by the
            same model), or ``None``.
        min_scale: floor of each feature's scale (offsets are relative, so 0.01 = 1 % of the volume).
        covariance: ``"full"`` or ``"diagonal"``.

    Returns:
        ``(N,)`` float64 distances >= 0, higher = more suspicious.

    Raises:
        ValueError: NaN/inf or mismatched feature counts.

    Example:
        >>> import numpy as np
        >>> ref = np.array([[-0.1], [0.0], [0.1]])
        >>> offset_scores(np.array([[0.0], [0.3], [-0.2]]), reference=ref, covariance="diagonal").round(2).tolist()
        [0.0, 3.0, 2.0]
        >>> ref2 = np.array([[0.1, -0.1], [-0.1, 0.1], [0.2, -0.2], [-0.2, 0.2]])  # the two classes trade voxels
        >>> d = offset_scores(np.array([[0.1, -0.1], [0.1, 0.1]]), reference=ref2)
        >>> bool(d[1] > 2 * d[0])  # both larger breaks the correlation
        True
    """
    owner = "offset_scores"
    x = as_float_array(owner, "offsets", offsets, ndim=(1, 2))
    x = x[:, None] if x.ndim == 1 else x
    check_finite(owner, "offsets", x)
    min_scale = check_number(owner, "min_scale", min_scale, 0.0, open_min=True)
    check_choice(owner, "covariance", covariance, ("full", "diagonal"))
    if reference is None:
        if x.shape[0] == 0:
            return np.zeros(0)
        return _distances(x, *_centre_and_precision(owner, x, covariance, min_scale, robust=True))
    ref = as_float_array(owner, "reference", reference, ndim=(1, 2))
    ref = ref[:, None] if ref.ndim == 1 else ref
    check_finite(owner, "reference", ref)
    if ref.shape[0] == 0 or ref.shape[1] != x.shape[1]:
        raise param_error(owner, "reference", f"an (M >= 1, {x.shape[1]}) array", f"shape {ref.shape}")
    return _distances(x, *_centre_and_precision(owner, ref, covariance, min_scale, robust=False))


def reference_offset_scores(
    reference: NdarrayOrTensor | Sequence[float], *, min_scale: float = 0.01, covariance: str = "full"
) -> np.ndarray:
    """:func:`offset_scores` of every reference sample against the OTHER reference samples (leave-one-out).

    This is the reference distribution of the offset score: a training sample is scored against all
    ``M`` reference samples, so each reference sample is scored against the ``M - 1`` others, not against a
    set that contains itself (which would make the reference look tighter than it is).

    Example:
        >>> import numpy as np
        >>> reference_offset_scores(np.array([[0.0], [0.1], [0.2], [1.0]]), covariance="diagonal").round(1).tolist()
        [0.9, 0.6, 0.3, 9.0]
    """
    ref = as_float_array("reference_offset_scores", "reference", reference, ndim=(1, 2))
    ref = ref[:, None] if ref.ndim == 1 else ref
    if ref.shape[0] < 2:
        return np.full(ref.shape[0], np.nan)
    keep = ~np.eye(ref.shape[0], dtype=bool)
    return np.array(
        [
            offset_scores(ref[i : i + 1], reference=ref[keep[i]], min_scale=min_scale, covariance=covariance)[0]
            for i in range(ref.shape[0])
        ]
    )
