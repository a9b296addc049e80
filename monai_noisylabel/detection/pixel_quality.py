"""Where in an image the label is likely wrong: per-voxel self-confidence and a per-image summary.

The self-confidence of a voxel is the predicted probability of the class its label gives
(Northcutt et al., confident learning, https://arxiv.org/abs/1911.00068, applied per voxel as in
cleanlab's segmentation module). Low values mark voxels whose label the model disputes. Use
out-of-sample probabilities where possible: a network that memorized a wrong label agrees with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy.special import softmax

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

__all__ = ["pixel_label_quality", "image_label_quality"]


def _check_pixel_inputs(probs: Any, labels: Any, spatial_dims: int | None) -> tuple[np.ndarray, np.ndarray, bool, Any]:
    """Input checks of :func:`pixel_label_quality`: arrays, layout (batched or single), ranges."""
    owner = "pixel_label_quality"
    is_float32 = (
        isinstance(probs, torch.Tensor) and probs.dtype in (torch.float16, torch.bfloat16, torch.float32)
    ) or (isinstance(probs, np.ndarray) and probs.dtype in (np.float16, np.float32))
    p = as_float_array(owner, "probs", probs)
    y = as_int_array(owner, "labels", labels)
    if spatial_dims is not None:
        spatial_dims = check_int(owner, "spatial_dims", spatial_dims, 1, 3)
    layouts = []
    for batched, lead in ((True, 2), (False, 1)):
        nsp = p.ndim - lead
        if not 1 <= nsp <= 3 or (spatial_dims is not None and nsp != spatial_dims):
            continue
        sp = p.shape[lead:]
        head = (p.shape[0],) if batched else ()
        if y.shape in ((*head, 1, *sp), (*head, *sp)):
            layouts.append(batched)
    if not layouts:
        raise param_error(
            owner,
            "labels",
            f"class indices matching probs {p.shape} as (B, C, *spatial) -> (B[, 1], *spatial) or "
            "(C, *spatial) -> ([1, ]*spatial)",
            f"shape {y.shape}",
        )
    wide = [b for b in layouts if p.shape[1 if b else 0] >= 2]
    if not wide:
        raise param_error(owner, "probs", "an array with >= 2 class channels", f"shape {p.shape}")
    if len(wide) > 1:
        raise param_error(owner, "spatial_dims", "given when the shapes fit both a batch and a single image", None)
    batched = wide[0]
    if not batched:
        p, y = p[None], y[None]
    y = y.reshape((p.shape[0], *p.shape[2:]))
    check_finite(owner, "probs", p)
    if p.size and (p.min() < -1e-6 or p.max() > 1 + 1e-6):
        raise param_error(owner, "probs", "probabilities in [0, 1] (apply softmax/sigmoid first)", (p.min(), p.max()))
    num_classes = p.shape[1]
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise param_error(owner, "labels", f"class indices in [0, {num_classes - 1}]", (int(y.min()), int(y.max())))
    return p, y, batched, np.float32 if is_float32 else np.float64


def pixel_label_quality(
    probs: NdarrayOrTensor, labels: NdarrayOrTensor, *, spatial_dims: int | None = None
) -> np.ndarray:
    """Per-voxel self-confidence: the predicted probability of the class the label gives.

    Args:
        probs: class probabilities, a batch ``(B, C, *spatial)`` or one image ``(C, *spatial)``, 1 to 3
            spatial dims (2D and 3D), numpy or torch.
        labels: class indices ``(B, 1, *spatial)`` / ``(B, *spatial)``, or ``(1, *spatial)`` /
            ``spatial`` for one image.
        spatial_dims: 1, 2 or 3; only needed when the shapes fit both a batch and a single image
            (e.g. probs ``(4, 4, 8, 8)`` with labels ``(4, 8, 8)``).

    Returns:
        ``(B, *spatial)`` (or ``spatial`` for one image) numpy array in [0, 1], float32 for float32 (or
        half) probabilities, float64 otherwise. Low = the model disputes the label there.

    Raises:
        ValueError: shapes that do not fit, probabilities outside [0, 1] or not finite, labels out of range.

    Example:
        >>> import numpy as np
        >>> probs = np.array([[[0.9, 0.2]], [[0.1, 0.8]]])  # (C=2, H=1, W=2)
        >>> pixel_label_quality(probs, np.array([[0, 0]])).tolist()
        [[0.9, 0.2]]
    """
    p, y, batched, dtype = _check_pixel_inputs(probs, labels, spatial_dims)
    quality = np.take_along_axis(p, y[:, None], axis=1)[:, 0].astype(dtype)
    return quality if batched else quality[0]


def image_label_quality(quality: NdarrayOrTensor, *, method: str = "softmin", temperature: float = 0.1) -> np.ndarray:
    """One label-quality value per image from its per-voxel quality (higher = label more likely right).

    Args:
        quality: ``(B, *spatial)`` per-voxel quality, e.g. :func:`pixel_label_quality` of a batch.
        method: ``"mean"``; ``"min"``; or ``"softmin"`` (default): the mean weighted by
            ``softmax(-q / temperature)`` over voxels, which follows the worst voxels while staying
            smooth, so a small wrong region is not diluted by a large correct background.
        temperature: softmin temperature, > 0 (smaller = closer to ``"min"``).

    Returns:
        ``(B,)`` float64 in [0, 1]. To rank suspects with the other scores use ``1 - quality``.

    Example:
        >>> import numpy as np
        >>> q = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
        >>> image_label_quality(q, method="mean").tolist(), image_label_quality(q).round(3).tolist()
        ([0.75, 1.0], [0.0, 1.0])
    """
    owner = "image_label_quality"
    check_choice(owner, "method", method, ("mean", "min", "softmin"))
    temperature = check_number(owner, "temperature", temperature, 0.0, open_min=True)
    q = as_float_array(owner, "quality", quality)
    if q.ndim < 2:
        raise param_error(owner, "quality", "a (B, *spatial) array", f"shape {q.shape}")
    check_finite(owner, "quality", q)
    flat = q.reshape(q.shape[0], -1)
    if flat.shape[1] == 0:
        raise param_error(owner, "quality", "maps with at least one voxel", f"shape {q.shape}")
    if method == "mean":
        return flat.mean(axis=1)
    if method == "min":
        return flat.min(axis=1)
    weights = softmax(-flat / temperature, axis=1)
    return (weights * flat).sum(axis=1)
