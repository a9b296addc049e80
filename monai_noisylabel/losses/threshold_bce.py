"""Binary cross entropy against soft or confidence targets binarized at a threshold inside the loss.

The lung-ultrasound confidence-label study found that binarizing expert per-pixel confidence at 60 % works
best and 50 % is clearly worse; an ignore band leaves the ambiguous pixels out of the loss. This loss does
the binarization on the fly, so the same soft labels can feed soft-target losses, this loss and the
metrics without a second copy of the data.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.utils import LossReduction

from monai_noisylabel.losses._utils import (
    VoxelLoss,
    as_float_sequence,
    check_ignore_index,
    check_voxel_map,
    combine_valid,
    compute_dtype,
    prepare_target,
    slice_channels,
)
from monai_noisylabel.utils import as_plain_tensor, check_number, param_error

__all__ = ["ThresholdBinarizedBCELoss"]


class ThresholdBinarizedBCELoss(VoxelLoss):
    """BCE with logits against targets binarized at ``threshold``, with an optional ignore band.

    Each channel is an independent binary problem (multi-label, as ``torch.nn.BCEWithLogitsLoss``): the
    target entry becomes 1 where it is ``>= threshold`` and 0 below; entries in the ignore band
    ``[low, high)`` contribute nothing. The loss itself is
    :func:`torch.nn.functional.binary_cross_entropy_with_logits` (computed in float32 with autocast
    disabled, so bf16/fp16 and saturated logits stay finite).

    Inputs are ``BNH[WD]`` logits. Targets: soft / confidence maps in [0, 1] of the input's shape, or an
    index map ``B1H[WD]`` with ``to_onehot_y=True`` (then binarization changes nothing and the band is
    empty). ``reduction="none"`` returns ``(B, N', *spatial)`` (``N'`` = ``N``, or ``N - 1`` without
    background) with 0 at ignored entries; ``"mean"`` averages over the valid entries; :meth:`per_sample`
    returns ``(B,)``.

    Args:
        threshold: binarization threshold in (0, 1]; default 0.6 (the LUS study's best).
        ignore_band: ``None`` (default, no band), a number ``low`` meaning ``[low, threshold)``, or a pair
            ``(low, high)`` with ``0 <= low < high <= 1``: entries with ``low <= target < high`` are ignored.
        pos_weight: weight of the positive entries, a number > 0 or one per (kept) channel, as in
            ``torch.nn.BCEWithLogitsLoss``; ``None`` for 1.
        include_background: if False, channel 0 is dropped (ignored with a warning for one channel).
        to_onehot_y: convert an index-map target to one-hot with ``N`` classes.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``.
        ignore_index: target value whose entries contribute nothing (any label value with
            ``to_onehot_y``, otherwise a sentinel outside [0, 1], e.g. -1), checked per entry.

    Raises:
        ValueError: a threshold outside (0, 1], a bad ignore band, a non-positive ``pos_weight``.

    Example:
        >>> import torch
        >>> loss = ThresholdBinarizedBCELoss(threshold=0.6, ignore_band=0.4, reduction="none")
        >>> logits = torch.zeros(1, 1, 1, 3)
        >>> confidence = torch.tensor([[[[0.9, 0.5, 0.1]]]])  # positive, ignored, negative
        >>> loss(logits, confidence).squeeze().tolist()  # log(2) where it counts
        [0.6931471824645996, 0.0, 0.6931471824645996]
    """

    def __init__(
        self,
        threshold: float = 0.6,
        ignore_band: float | Sequence[float] | None = None,
        pos_weight: float | Sequence[float] | None = None,
        include_background: bool = True,
        to_onehot_y: bool = False,
        reduction: LossReduction | str = LossReduction.MEAN,
        ignore_index: int | float | None = None,
    ) -> None:
        super().__init__(reduction=reduction)
        owner = type(self).__name__
        self.threshold = check_number(owner, "threshold", threshold, 0.0, 1.0, open_min=True)
        self.ignore_band = self._check_band(owner, ignore_band, self.threshold)
        self.include_background = bool(include_background)
        self.to_onehot_y = bool(to_onehot_y)
        self.ignore_index = check_ignore_index(owner, ignore_index, self.to_onehot_y)
        pw = None if pos_weight is None else torch.tensor(as_float_sequence(owner, "pos_weight", pos_weight))
        self.pos_weight: torch.Tensor | None
        self.register_buffer("pos_weight", pw)

    @staticmethod
    def _check_band(owner: str, band: float | Sequence[float] | None, threshold: float) -> tuple[float, float] | None:
        if band is None:
            return None
        expected = "None, a number in [0, threshold) or a pair (low, high) with 0 <= low < high <= 1"
        if isinstance(band, numbers.Real) and not isinstance(band, bool):
            low, high = float(band), threshold
        elif isinstance(band, Sequence) and not isinstance(band, str) and len(band) == 2:
            try:
                low, high = check_number(owner, "ignore_band", band[0]), check_number(owner, "ignore_band", band[1])
            except ValueError:
                raise param_error(owner, "ignore_band", expected, band) from None
        else:
            raise param_error(owner, "ignore_band", expected, band)
        if not 0.0 <= low < high <= 1.0:
            raise param_error(owner, "ignore_band", expected, band)
        return low, high

    def loss_map(
        self, input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        owner = type(self).__name__
        x = as_plain_tensor(input)
        if x.ndim < 3:
            raise param_error(owner, "input", "a tensor of shape BNH[WD]", tuple(x.shape))
        n = x.shape[1]
        dtype = compute_dtype(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(dtype)
            t, ignored = prepare_target(
                owner, x, target, to_onehot_y=self.to_onehot_y, ignore_index=self.ignore_index, dtype=dtype
            )
            if self.ignore_band is not None:
                low, high = self.ignore_band
                in_band = (t >= low) & (t < high)
                ignored = in_band if ignored is None else ignored | in_band
            w = check_voxel_map(owner, "weight", weight, x, per_channel=True, dtype=dtype)
            m = check_voxel_map(owner, "mask", mask, x, per_channel=True, dtype=dtype)
            valid = combine_valid(ignored, m, per_voxel=False)
            drop = 1 if not self.include_background and n > 1 else 0
            if not self.include_background and n == 1:
                warnings.warn(f"{owner}: single channel prediction, `include_background=False` ignored.", stacklevel=3)
            x, t = x[:, drop:], t[:, drop:]
            valid, w = slice_channels(valid, drop, n), slice_channels(w, drop, n)
            pos_weight = None
            if self.pos_weight is not None:
                if self.pos_weight.numel() not in (1, x.shape[1]):
                    raise param_error(
                        owner,
                        "pos_weight",
                        f"one number or {x.shape[1]} (one per kept channel)",
                        self.pos_weight.tolist(),
                    )
                pos_weight = self.pos_weight.to(device=x.device, dtype=dtype).reshape(-1, *([1] * (x.ndim - 2)))
            loss = F.binary_cross_entropy_with_logits(
                x, (t >= self.threshold).to(dtype), pos_weight=pos_weight, reduction="none"
            )
        return loss, valid, w
