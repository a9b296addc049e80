"""Shared plumbing of the per-voxel losses: argument checks, target preparation, ignore masks and reduction.

Every loss of this package computes an unreduced loss map of shape ``(B, C, *spatial)`` and hands it, with
an optional validity mask and an optional per-voxel weight map, to :class:`VoxelLoss`, which implements the
three MONAI reductions and :meth:`VoxelLoss.per_sample`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from monai.networks import one_hot
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_noisylabel.utils import as_plain_tensor, check_choice, check_number, param_error

__all__ = [
    "VoxelLoss",
    "as_float_sequence",
    "check_activation",
    "check_ignore_index",
    "check_probabilities",
    "check_reduction",
    "check_voxel_map",
    "combine_valid",
    "compute_dtype",
    "per_sample_mean",
    "prepare_target",
    "reduce_loss",
    "slice_channels",
]

REDUCTIONS = ("mean", "sum", "none")


def check_reduction(owner: str, reduction: Any) -> str:
    """``reduction`` as one of ``"mean"``, ``"sum"``, ``"none"`` (a ``LossReduction`` is accepted)."""
    if isinstance(reduction, LossReduction):
        reduction = reduction.value
    return str(check_choice(owner, "reduction", reduction, REDUCTIONS))


def check_activation(owner: str, sigmoid: bool, softmax: bool) -> None:
    """At most one of ``sigmoid`` and ``softmax``."""
    if sigmoid and softmax:
        raise param_error(owner, "softmax", "False when 'sigmoid' is True (choose one activation)", softmax)


def check_ignore_index(owner: str, ignore_index: Any, to_onehot_y: bool) -> int | float | None:
    """``None`` or a finite number; outside [0, 1] unless the targets are index maps (``to_onehot_y=True``)."""
    if ignore_index is None:
        return None
    value = check_number(owner, "ignore_index", ignore_index)
    if not to_onehot_y and 0.0 <= value <= 1.0:
        raise param_error(
            owner,
            "ignore_index",
            "a sentinel outside [0, 1] when to_onehot_y=False (targets are probabilities), e.g. -1 or 255",
            ignore_index,
        )
    return int(value) if float(value).is_integer() else value


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype (bf16, fp16, ints) is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _bounds(t: torch.Tensor) -> tuple[float, float]:
    if t.numel() == 0:
        return 0.0, 0.0
    lo, hi = torch.aminmax(t.detach())
    return float(lo), float(hi)


def prepare_target(
    owner: str,
    input: torch.Tensor,
    target: Any,
    *,
    to_onehot_y: bool,
    ignore_index: int | float | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check ``target`` against ``input`` ``(B, N, *spatial)`` and return it as probabilities of ``input``'s shape.

    Index maps ``(B, 1, *spatial)`` (with ``to_onehot_y`` and ``N > 1``) must hold integers in ``[0, N)`` or
    ``ignore_index``; other targets must have ``input``'s shape and values in [0, 1] or ``ignore_index``.

    Returns:
        ``(target, ignored)``: the target in ``dtype`` with ignored entries set to 0, and a bool map of the
        ignored entries (``(B, 1, *spatial)`` for index maps, else ``input``'s shape), or ``None`` without
        ``ignore_index``.

    Raises:
        ValueError: a shape that fits neither layout, index labels out of range or not integer, probabilities
            outside [0, 1] or NaN.
    """
    t = as_plain_tensor(target).to(device=input.device)
    n = input.shape[1]
    spatial = tuple(input.shape[2:])
    index_map = to_onehot_y and n > 1
    if to_onehot_y and n == 1:
        warnings.warn(f"{owner}: single channel prediction, `to_onehot_y=True` ignored.", stacklevel=3)
    if t.dtype == torch.bool:
        t = t.to(dtype)
    expected = (input.shape[0], 1, *spatial) if index_map else tuple(input.shape)
    if tuple(t.shape) != expected:
        layout = "an index map" if index_map else "a probability map"
        raise param_error(
            owner, "target", f"{layout} of shape {expected} for input of shape {tuple(input.shape)}", tuple(t.shape)
        )
    ignored = (t == ignore_index) if ignore_index is not None else None
    values = t if ignored is None else t.masked_fill(ignored, 0)
    lo, hi = _bounds(values)
    if index_map:
        if not (lo >= 0 and hi <= n - 1):
            raise param_error(
                owner,
                "target",
                f"an index map with labels in [0, {n - 1}] (or ignore_index)",
                f"labels in [{lo:.4g}, {hi:.4g}]",
            )
        if values.is_floating_point() and bool((values != torch.round(values)).any()):
            raise param_error(owner, "target", "an index map of integer labels", "non-integer labels")
        return one_hot(values, num_classes=n, dtype=dtype, dim=1), ignored
    if not (lo >= 0.0 and hi <= 1.0):
        shown = "NaN values" if lo != lo or hi != hi else f"values in [{lo:.4g}, {hi:.4g}]"
        raise param_error(owner, "target", "probabilities in [0, 1] (or ignore_index)", shown)
    return values.to(dtype), ignored


def check_probabilities(owner: str, x: torch.Tensor) -> None:
    """Raise unless every value of ``x`` (a prediction without activation) lies in [0, 1]."""
    lo, hi = _bounds(x.detach())
    if not (lo >= 0.0 and hi <= 1.0):
        raise param_error(
            owner,
            "input",
            "probabilities in [0, 1] when sigmoid and softmax are False",
            f"values in [{lo:.4g}, {hi:.4g}]",
        )


def check_voxel_map(
    owner: str, name: str, value: Any, input: torch.Tensor, per_channel: bool, dtype: torch.dtype
) -> torch.Tensor | None:
    """A per-voxel map of shape ``(B, 1, *spatial)`` (or ``(B, N, *spatial)`` if ``per_channel``), finite, >= 0."""
    if value is None:
        return None
    m = as_plain_tensor(value).to(device=input.device, dtype=dtype)
    b, n, *spatial = input.shape
    shapes = [(b, 1, *spatial)] + ([(b, n, *spatial)] if per_channel and n > 1 else [])
    if tuple(m.shape) not in shapes:
        expected = " or ".join(str(s) for s in shapes)
        raise param_error(owner, name, f"a map of shape {expected}", tuple(m.shape))
    lo, _ = _bounds(m)
    if not lo >= 0.0 or not bool(torch.isfinite(m).all()):
        raise param_error(owner, name, "a finite map with values >= 0", f"minimum {lo:.4g}")
    return m


def combine_valid(ignored: torch.Tensor | None, mask: torch.Tensor | None, per_voxel: bool) -> torch.Tensor | None:
    """Bool map of the entries that count: not ignored and ``mask != 0``; ``per_voxel`` folds the channels."""
    valid = None if ignored is None else ~ignored
    if valid is not None and per_voxel and valid.shape[1] > 1:
        valid = valid.all(dim=1, keepdim=True)
    if mask is not None:
        keep = mask != 0
        valid = keep if valid is None else valid & keep
    return valid


def reduce_loss(
    loss: torch.Tensor, valid: torch.Tensor | None, weight: torch.Tensor | None, reduction: str
) -> torch.Tensor:
    """Weight, mask and reduce a loss map ``(B, C, *spatial)``.

    ``"mean"`` divides by the number of valid entries (not by the sum of the weights), so a weight map in
    [0, 1] down-weights voxels the way ``torch.nn.BCELoss(weight=...)`` does; with no valid entry the mean is 0.
    """
    loss = _masked(loss, valid, weight)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if valid is None:
        return loss.mean()
    count = valid.sum() * (loss.shape[1] // valid.shape[1])
    return loss.sum() / count.clamp(min=1)


def per_sample_mean(loss: torch.Tensor, valid: torch.Tensor | None, weight: torch.Tensor | None) -> torch.Tensor:
    """``(B,)`` mean of the weighted loss over each sample's valid entries (0 for a sample with none)."""
    loss = _masked(loss, valid, weight)
    total = loss.flatten(1).sum(dim=1)
    if valid is None:
        return total / loss[0].numel()
    count = valid.flatten(1).sum(dim=1) * (loss.shape[1] // valid.shape[1])
    return total / count.clamp(min=1)


def _masked(loss: torch.Tensor, valid: torch.Tensor | None, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is not None:
        loss = loss * weight
    if valid is not None:
        loss = torch.where(valid, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
    return loss


def slice_channels(x: torch.Tensor | None, start: int, channels: int) -> torch.Tensor | None:
    """Drop the first ``start`` channels of a per-channel map; a ``(B, 1, ...)`` map is returned unchanged."""
    if x is None or start == 0 or x.shape[1] != channels:
        return x
    return x[:, start:]


class VoxelLoss(_Loss):
    """Base of the losses here: subclasses return an unreduced loss map; this class masks, weights and reduces.

    Subclasses implement :meth:`loss_map`, returning ``(loss, valid, weight)`` where ``loss`` is
    ``(B, C, *spatial)``, ``valid`` a bool map broadcastable to it (or ``None``) and ``weight`` a map
    broadcastable to it (or ``None``).
    """

    def __init__(self, reduction: LossReduction | str = LossReduction.MEAN) -> None:
        super().__init__(reduction=check_reduction(type(self).__name__, reduction))

    def loss_map(
        self, input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        raise NotImplementedError

    def forward(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Loss of ``input`` against ``target``, reduced as ``self.reduction`` says (see the class docstring).

        Args:
            input: ``BNH[WD]`` prediction (logits, or probabilities where the loss allows it).
            target: ``B1H[WD]`` index map (``to_onehot_y``) or ``BNH[WD]`` one-hot / soft probabilities.
            weight: optional per-voxel weight map ``B1H[WD]`` (``BNH[WD]`` where the loss is per channel),
                finite and >= 0, e.g. the expert's confidence. ``"mean"`` divides by the number of valid
                entries, not by the sum of the weights.
            mask: optional map of the same shapes as ``weight``; entries where it is 0 are left out, like
                ``ignore_index`` entries.

        Raises:
            ValueError: a shape mismatch, index labels out of range, probabilities outside [0, 1], a
                negative or non-finite weight or mask.
        """
        loss, valid, w = self.loss_map(input, target, weight, mask)
        return reduce_loss(loss, valid, w, self.reduction)

    def per_sample(
        self,
        input: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One loss per sample, shape ``(B,)``: the weighted mean over the sample's valid entries.

        Same arguments as :meth:`forward`; ``self.reduction`` is not used. Ignored entries do not count in
        the mean (a sample whose entries are all ignored gets 0), so this is exact where averaging the
        ``reduction="none"`` map is not. Use it as the ``loss_fn`` of
        :func:`monai_noisylabel.detection.per_sample_loss`.
        """
        loss, valid, w = self.loss_map(input, target, weight, mask)
        return per_sample_mean(loss, valid, w)


def as_float_sequence(owner: str, name: str, value: float | Sequence[float]) -> list[float]:
    """A number or a sequence of numbers, each finite and > 0, as a list."""
    items = list(value) if isinstance(value, (Sequence, torch.Tensor)) and not isinstance(value, str) else [value]
    if not items:
        raise param_error(owner, name, "a number > 0 or a non-empty sequence of numbers > 0", value)
    try:
        return [
            check_number(owner, name, float(v) if isinstance(v, torch.Tensor) else v, 0.0, open_min=True) for v in items
        ]
    except ValueError:
        raise param_error(owner, name, "a number > 0 or a sequence of numbers > 0", value) from None
