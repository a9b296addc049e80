"""Dice + cross entropy with one value per sample, for per-sample detection and weighting.

MONAI's ``DiceCELoss`` averages over the batch (it has no ``reduction="none"``); the detection handlers
(:class:`~monai_noisylabel.handlers.SampleLossHandler`) and :class:`~monai_noisylabel.handlers.PseudoLabelWeightedLoss`
need the loss of each sample. This is the echo bundle's default training loss.
"""

from __future__ import annotations

import torch
from monai.losses import DiceLoss
from monai.utils import LossReduction
from torch.nn.modules.loss import _Loss

from monai_noisylabel.losses._utils import check_reduction
from monai_noisylabel.utils import check_int, check_number, param_error

__all__ = ["SampleDiceCELoss"]


class SampleDiceCELoss(_Loss):
    """``lambda_dice * Dice + lambda_ce * CE`` per sample: ``(B,)`` for ``reduction="none"``, else reduced.

    Labels are class-index maps ``(B, 1, H, W[, D])``; voxels equal to ``ignore_index`` are left out of both
    terms (a pseudo-label's gated voxels). Soft targets ``(B, C, H, W[, D])`` (floating, e.g. the
    self-cleansing LCM targets) use soft cross entropy and MONAI's soft-label Dice. Softmax over the ``C`` channels of ``(B, C, H, W[, D])`` logits; the
    Dice term skips the background unless ``include_background``. With no ignored voxel the batch mean equals
    MONAI's ``DiceCELoss(to_onehot_y=True, softmax=True)``.

    Args:
        include_background: include channel 0 in the Dice term.
        lambda_dice: weight of the Dice term (>= 0).
        lambda_ce: weight of the cross-entropy term (>= 0).
        ignore_index: label value left out of both terms (MONAI's name; default 255).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per sample).

    Example:
        >>> loss = SampleDiceCELoss(reduction="none")
        >>> loss(torch.zeros(2, 3, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long)).shape
        torch.Size([2])
    """

    def __init__(
        self,
        include_background: bool = False,
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        ignore_index: int = 255,
        reduction: LossReduction | str = LossReduction.MEAN,
    ) -> None:
        owner = type(self).__name__
        super().__init__(reduction=check_reduction(owner, reduction))
        self.dice = DiceLoss(include_background=include_background, softmax=True, reduction="none", soft_label=True)
        self.lambda_dice = check_number(owner, "lambda_dice", lambda_dice, 0.0)
        self.lambda_ce = check_number(owner, "lambda_ce", lambda_ce, 0.0)
        self.ignore_index = check_int(owner, "ignore_index", ignore_index)

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input``: ``(B, C, H, W[, D])`` logits; ``target``: ``(B, 1, H, W[, D])`` class indices or soft targets
        of the logits' shape."""
        if target.is_floating_point() and target.shape == input.shape and target.shape[1] > 1:
            q = target.float()
            ce = -(q * torch.log_softmax(input.float(), dim=1)).sum(1).flatten(1).mean(1)
            return self._reduce(self.lambda_dice * self.dice(input, q).flatten(1).mean(1) + self.lambda_ce * ce)
        if target.ndim != input.ndim or target.shape[1] != 1 or target.shape[2:] != input.shape[2:]:
            raise param_error(
                type(self).__name__,
                "target",
                f"a (B, 1, *spatial) class map for logits {tuple(input.shape)}",
                tuple(target.shape),
            )
        y = target[:, 0].long()
        valid = y != self.ignore_index
        unknown = valid & ((y < 0) | (y >= input.shape[1]))
        if bool(unknown.any()):
            expected = f"class indices in [0, {input.shape[1]}) or ignore_index {self.ignore_index}"
            raise param_error(type(self).__name__, "target", expected, sorted(set(y[unknown].tolist()))[:5])
        y_safe = torch.where(valid, y, torch.zeros_like(y))
        ce = torch.nn.functional.cross_entropy(input.float(), y_safe, reduction="none") * valid
        ce = ce.flatten(1).sum(1) / valid.flatten(1).sum(1).clamp_min(1)
        onehot = torch.nn.functional.one_hot(y_safe, input.shape[1]).movedim(-1, 1).to(input.dtype)
        mask = valid.unsqueeze(1).to(input.dtype)
        # ignored voxels: the target equals the prediction there, so they add nothing to Dice's terms
        probs = torch.softmax(input.float(), dim=1).detach()
        soft_target = onehot * mask + probs * (1 - mask)
        dice = self.dice(input, soft_target).flatten(1).mean(1)
        return self._reduce(self.lambda_dice * dice + self.lambda_ce * ce)

    def _reduce(self, out: torch.Tensor) -> torch.Tensor:
        if self.reduction == "mean":
            return out.mean()
        if self.reduction == "sum":
            return out.sum()
        return out
