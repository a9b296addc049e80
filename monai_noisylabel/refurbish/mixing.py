"""Soft refurbished targets (label-correction mixing) and the sigmoid ramp-up of their loss weight.

The self-cleansing label-correction module (LCM) mixes the given label with the model's prediction
in proportion to how clean the sample looks, then sharpens the result, as DivideMix does for its
labelled set:

``target = sharpen(w * onehot(given) + (1 - w) * mean_k(p_k), T)``, ``sharpen(p, T) = p^(1/T) / sum_c p_c^(1/T)``

with ``w = P(clean)`` (the GMM posterior of the low-loss component) and ``T = 0.5``.

- Li, Socher and Hoi, "DivideMix: Learning with Noisy Labels as Semi-supervised Learning", ICLR 2020,
  https://arxiv.org/abs/2002.07394
- Laine and Aila, "Temporal Ensembling for Semi-Supervised Learning", ICLR 2017,
  https://arxiv.org/abs/1610.02242 (the ``exp(-5 (1 - t)^2)`` ramp-up)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.networks.utils import one_hot
from monai.utils import convert_to_dst_type

from monai_noisylabel.refurbish._checks import Raw, Shape, as_tensor_input, check_prob_range
from monai_noisylabel.utils import check_number, param_error

__all__ = ["sharpen", "lcm_soft_target", "sigmoid_rampup"]


def sharpen(probs: Any, temperature: float = 0.5, *, dim: int = 1) -> Any:
    """Temperature sharpening ``p^(1/T)`` renormalized along ``dim`` (``T < 1`` sharpens, ``T = 1`` is identity).

    Computed in log space, so tiny probabilities do not underflow to an all-zero column.

    Example:
        >>> import torch
        >>> sharpen(torch.tensor([[0.25, 0.75]]), 0.5)
        tensor([[0.1000, 0.9000]])
    """
    t = check_number("sharpen", "temperature", temperature, 0.0, open_min=True)
    p = as_tensor_input("sharpen", "probs", probs)
    check_prob_range("sharpen", "probs", p)
    pf = p if p.is_floating_point() else p.float()
    logits = torch.log(pf.clamp_min(0.0)) / t
    out = torch.softmax(logits, dim=dim)
    return convert_to_dst_type(out, dst=probs, dtype=pf.dtype)[0]


def _clean_weights(clean_prob: Any, batch: int, ref: torch.Tensor) -> torch.Tensor:
    owner = "lcm_soft_target"
    if isinstance(clean_prob, (int, float, np.floating, np.integer)) and not isinstance(clean_prob, bool):
        w = torch.full((batch,), float(check_number(owner, "clean_prob", clean_prob, 0.0, 1.0)))
    else:
        if isinstance(clean_prob, (list, tuple)):
            try:
                clean_prob = np.asarray(clean_prob, dtype=np.float64)
            except (TypeError, ValueError):
                raise param_error(owner, "clean_prob", "a number or per-sample values in [0, 1]", clean_prob) from None
        w = as_tensor_input(owner, "clean_prob", clean_prob).double().reshape(-1)
        if w.numel() != batch:
            raise param_error(owner, "clean_prob", f"a number or {batch} per-sample values", Shape(w.shape))
        if not bool(torch.isfinite(w).all()) or float(w.min()) < 0 or float(w.max()) > 1:
            raise param_error(owner, "clean_prob", "values in [0, 1]", w.tolist())
    return w.to(device=ref.device, dtype=ref.dtype).view(batch, *([1] * (ref.ndim - 1)))


def lcm_soft_target(
    given: Any,
    predictions: Any | Sequence[Any],
    clean_prob: Any,
    *,
    temperature: float = 0.5,
    validate_args: bool = True,
) -> Any:
    """Soft targets ``sharpen(w * onehot(given) + (1 - w) * mean prediction, T)`` of the self-cleansing LCM.

    Args:
        given: ``(B, 1, *spatial)`` class-index map, or ``(B, C, *spatial)`` one-hot / soft label.
        predictions: ``(B, C, *spatial)`` probabilities, or a sequence of them (several augmentations or
            checkpoints), averaged. ``C == 1`` is a binary foreground probability: the two-class
            distribution ``(1 - p, p)`` is mixed and sharpened and its foreground channel returned.
        clean_prob: ``w = P(clean)``: one number, or one value per sample (``(B,)`` array, tensor or list),
            in [0, 1].
            ``w = 1`` returns the given label, ``w = 0`` the sharpened prediction.
        temperature: ``T > 0`` (default 0.5).
        validate_args: check the values (finite predictions and ``clean_prob``, probabilities in [0, 1], class
            indices in range); ``False`` skips the passes over the data that this takes, for a training loop
            whose inputs are known valid (a softmax output, the labels the loss also checks). Shapes are
            always checked.

    Returns:
        ``(B, C, *spatial)`` soft targets (each voxel sums to 1 for ``C > 1``), of the type, device and
        floating dtype of the (first) prediction.

    Raises:
        ValueError: for shapes that disagree, non-finite or out-of-range predictions, bad ``clean_prob``.

    Example:
        >>> import torch
        >>> given = torch.tensor([[[[1]]]])            # class 1 at one voxel, 2 classes
        >>> pred = torch.tensor([[[[0.8]], [[0.2]]]])  # the model says class 0
        >>> lcm_soft_target(given, pred, 0.5).flatten()   # mix (0.4, 0.6), sharpen T=0.5
        tensor([0.3077, 0.6923])
    """
    owner = "lcm_soft_target"
    temperature = check_number(owner, "temperature", temperature, 0.0, open_min=True)
    preds: list[Any] = list(predictions) if isinstance(predictions, (list, tuple)) else [predictions]
    if not preds:
        raise param_error(owner, "predictions", "a tensor or a non-empty sequence of tensors", predictions)
    ps = [as_tensor_input(owner, "predictions", p) for p in preds]
    shape = tuple(ps[0].shape)
    if len(shape) < 3 or shape[1] == 0:
        raise param_error(owner, "predictions", "arrays of shape (B, C, *spatial)", Shape(shape))
    for p in ps[1:]:
        if tuple(p.shape) != shape:
            raise param_error(owner, "predictions", f"arrays of one shape {shape}", Shape(p.shape))
    dtype = ps[0].dtype if ps[0].is_floating_point() else torch.float32
    if len(ps) == 1:
        mean = ps[0].to(dtype)
    else:
        mean = torch.stack([p.to(device=ps[0].device, dtype=dtype) for p in ps]).mean(0)
    if validate_args:
        if not bool(torch.isfinite(mean).all()):
            raise param_error(owner, "predictions", "finite probabilities", "NaN or inf values")
        check_prob_range(owner, "predictions", mean)
    batch, channels, spatial = shape[0], shape[1], shape[2:]
    binary = channels == 1
    if binary:
        mean = torch.cat([1 - mean, mean], dim=1)
    num_classes = mean.shape[1]

    g = as_tensor_input(owner, "given", given).to(device=mean.device)
    if tuple(g.shape) == (batch, 1, *spatial) and not binary:
        if validate_args and g.numel() and (float(g.min()) < 0 or float(g.max()) > num_classes - 1):
            raise param_error(
                owner,
                "given",
                f"class indices in [0, {num_classes - 1}]",
                Raw(f"values in [{float(g.min()):g}, {float(g.max()):g}]"),
            )
        target = one_hot(g.long(), num_classes=num_classes, dim=1).to(dtype)
    elif tuple(g.shape) == (batch, channels, *spatial):
        target = g.to(dtype)
        if binary:
            target = torch.cat([1 - target, target], dim=1)
    else:
        raise param_error(
            owner, "given", f"a (B, 1, *spatial) index map or (B, C, *spatial) label matching {shape}", Shape(g.shape)
        )
    if validate_args:
        check_prob_range(owner, "given", target)

    w = _clean_weights(clean_prob, batch, mean)  # a few numbers: always checked
    mixed = w * target + (1 - w) * mean
    out = torch.softmax(torch.log(mixed.clamp_min(0.0)) / temperature, dim=1)
    if binary:
        out = out[:, 1:]
    return convert_to_dst_type(out, dst=preds[0], dtype=dtype)[0]


def sigmoid_rampup(current: float, rampup_length: float, *, start: float = 0.0) -> float:
    """Ramp-up weight ``exp(-5 (1 - t)^2)``, ``t = clip((current - start) / rampup_length, 0, 1)``.

    The standard sigmoid-shaped ramp of temporal ensembling / mean teacher: ``exp(-5) ~ 0.0067`` at
    the start of the ramp, 1 from ``start + rampup_length`` on. Before ``start`` it is 0; a ramp of
    length 0 is a step from 0 to 1 at ``start``. Use it as the loss weight of pseudo-labelled samples
    with ``current`` the epoch (or iteration) and ``start`` the epoch refurbishment begins.

    Example:
        >>> round(sigmoid_rampup(0, 10), 4), round(sigmoid_rampup(5, 10), 4), sigmoid_rampup(10, 10)
        (0.0067, 0.2865, 1.0)
        >>> sigmoid_rampup(3, 10, start=5)
        0.0
    """
    current = check_number("sigmoid_rampup", "current", current)
    rampup_length = check_number("sigmoid_rampup", "rampup_length", rampup_length, 0.0)
    start = check_number("sigmoid_rampup", "start", start)
    if current < start:
        return 0.0
    if rampup_length == 0:
        return 1.0
    t = min(max((current - start) / rampup_length, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))
