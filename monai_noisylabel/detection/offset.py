"""Directional disagreement: signed label-vs-prediction volume offsets and their distance from a clean reference.

This project's own score (DESIGN.md section 4). A systematic bias on many training labels (e.g. every
corrupted LV cavity dilated by 3 px) defeats loss, GMM and VoG: the model learns the average boundary,
so clean and biased labels fit it equally badly. What still differs is the sign: the biased labels lie
on one side of the prediction, the clean ones on the other. Per sample and class,
``(label volume - predicted volume) / predicted volume`` is a feature vector (:func:`volume_offsets`);
its distance from the same vectors measured on a trusted clean set, e.g. the curated validation set,
is the score (:func:`offset_scores`).

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

from typing import Any

import numpy as np

from monai_noisylabel.detection._checks import as_float_array, as_int_array, check_finite
from monai_noisylabel.utils import check_int, check_number, param_error

__all__ = ["volume_offsets", "offset_scores"]

_MAD_TO_STD = 1.4826


def volume_offsets(
    preds: Any,
    labels: Any,
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


def offset_scores(offsets: Any, *, reference: Any = None, min_scale: float = 0.01) -> np.ndarray:
    """Distance of each sample's offset vector from the offsets of a trusted clean reference set.

    The distance is standardized Euclidean (Mahalanobis with a diagonal covariance):
    ``sqrt(sum_k ((x_k - centre_k) / scale_k)^2)``. With ``reference`` the centre and scale are its mean
    and standard deviation per feature; without, the median and ``1.4826 * MAD`` of ``offsets`` itself
    (robust to a minority of wrong labels, blind to a 50/50 split: see the module docstring). Scales
    are floored at ``min_scale`` so a constant feature does not divide by zero.

    Args:
        offsets: ``(N, K)`` (or ``(N,)`` for one class) offsets of the samples to score, e.g.
            :func:`volume_offsets` on the training set.
        reference: ``(M, K)`` offsets of trusted clean samples (e.g. the validation set, predicted by the
            same model), or ``None``.
        min_scale: floor of each feature's scale (offsets are relative, so 0.01 = 1 % of the volume).

    Returns:
        ``(N,)`` float64 distances >= 0, higher = more suspicious.

    Raises:
        ValueError: NaN/inf or mismatched feature counts.

    Example:
        >>> import numpy as np
        >>> ref = np.array([[-0.1], [0.0], [0.1]])
        >>> offset_scores(np.array([[0.0], [0.3], [-0.2]]), reference=ref).round(2).tolist()
        [0.0, 3.0, 2.0]
    """
    owner = "offset_scores"
    x = as_float_array(owner, "offsets", offsets, ndim=(1, 2))
    x = x[:, None] if x.ndim == 1 else x
    check_finite(owner, "offsets", x)
    min_scale = check_number(owner, "min_scale", min_scale, 0.0, open_min=True)
    if reference is None:
        if x.shape[0] == 0:
            return np.zeros(0)
        centre = np.median(x, axis=0)
        scale = _MAD_TO_STD * np.median(np.abs(x - centre), axis=0)
    else:
        ref = as_float_array(owner, "reference", reference, ndim=(1, 2))
        ref = ref[:, None] if ref.ndim == 1 else ref
        check_finite(owner, "reference", ref)
        if ref.shape[0] == 0 or ref.shape[1] != x.shape[1]:
            raise param_error(owner, "reference", f"an (M >= 1, {x.shape[1]}) array", f"shape {ref.shape}")
        centre = ref.mean(axis=0)
        scale = ref.std(axis=0, ddof=1) if ref.shape[0] > 1 else np.zeros(ref.shape[1])
    scale = np.maximum(scale, min_scale)
    return np.sqrt((((x - centre) / scale) ** 2).sum(axis=1))
