"""Normalized and passive losses of the Active-Passive Loss family for segmentation.

Ma et al., "Normalized Loss Functions for Deep Learning with Noisy Labels", ICML 2020,
https://arxiv.org/abs/2006.13554. With ``p`` the predicted class distribution of a voxel and ``q`` its
target distribution (one-hot or soft), over ``K`` classes:

- NCE  = sum_k q_k log p_k / sum_j log p_j                                   (active, in [0, 1])
- NFL  = sum_k q_k (1 - p_k)^g log p_k / sum_j (1 - p_j)^g log p_j           (active, in [0, 1])
- RCE  = -sum_k p_k log(clamp(q_k, 1e-4, 1))                                  (passive, in [0, -log 1e-4])
- MAE  = 1 - sum_k q_k p_k = sum_k q_k (1 - p_k)  for sum_k q_k = 1          (passive, in [0, 1])
- NAP  = alpha * active + beta * passive

Both normalizers are differentiated through (the reference code detaches the focal factor of NFL; here
``torch.autograd.gradcheck`` passes). ``sum_j log p_j <= -log 2`` and ``sum_j (1 - p_j)^g log p_j <=
-2^-g log 2`` for ``K >= 2``, so the ratios never divide by zero. Everything is computed from
``log_softmax`` / ``softplus`` in float32 (float64 stays float64) with autocast disabled, so bf16/fp16
logits and saturated logits (|x| = 1e4) give finite losses and gradients.

The arithmetic lives in two fused ``torch.autograd.Function`` kernels with hand-written backward passes,
:func:`active_passive_map` (``K`` classes along a dimension) and :func:`binary_active_passive_map` (the
2-class sigmoid case in closed form); the loss classes only prepare inputs and reduce. Fusing keeps every
loss within about 1.5x of MONAI ``DiceCELoss`` (``benchmarks/bench_losses.py``).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from monai.utils import LossReduction
from torch.autograd.function import once_differentiable

from monai_noisylabel.losses._utils import (
    VoxelLoss,
    check_activation,
    check_ignore_index,
    check_probabilities,
    check_voxel_map,
    combine_valid,
    compute_dtype,
    prepare_target,
    slice_channels,
)
from monai_noisylabel.utils import as_plain_tensor, check_choice, check_number, param_error

__all__ = [
    "NormalizedCrossEntropyLoss",
    "NormalizedFocalLoss",
    "ReverseCrossEntropyLoss",
    "MeanAbsoluteErrorLoss",
    "NormalizedActivePassiveLoss",
]

#: lower clamp of the target inside the log of the reverse cross entropy (the paper's A = log 1e-4 < 0).
RCE_TARGET_CLAMP = 1e-4
ACTIVE = ("nce", "nfl")
PASSIVE = ("rce", "mae")

_ARGS_DOC = """
    Inputs are ``BNH[WD]``. The prediction is turned into a class distribution per voxel:

    - ``softmax=True``: logits, ``N >= 2`` classes (``log_softmax`` over the channels);
    - ``sigmoid=True``: logits, each channel an independent binary problem with the 2-class distribution
      ``(1 - s, s)``; so one channel is a foreground/background problem (multi-label for ``N > 1``);
    - neither: the input already holds probabilities in [0, 1] (checked): a distribution over the
      channels for ``N >= 2``, the foreground probability ``s`` of ``(1 - s, s)`` for ``N = 1``.

    Targets: an index map ``B1H[WD]`` with ``to_onehot_y=True``, or a one-hot or soft probability map
    of the input's shape (values in [0, 1]; with softmax they should sum to 1 over the channels). A soft
    target equal to a one-hot map gives exactly the hard-label value.

    Shape of ``reduction="none"``: ``(B, 1, *spatial)`` for a class distribution over the channels
    (softmax or probabilities), ``(B, N', *spatial)`` for sigmoid (one binary loss per channel, ``N'`` =
    ``N`` or ``N - 1`` without background); ignored entries are 0 and the weight map is applied. ``"mean"``
    averages that map over the valid entries, ``"sum"`` sums it. For one value per sample call
    :meth:`per_sample` (shape ``(B,)``, ignored entries left out of the mean), e.g. as the ``loss_fn`` of
    :func:`monai_noisylabel.detection.per_sample_loss`.

    Args:
        include_background: if False, class 0 leaves the loss: with sigmoid its binary problem is dropped;
            with softmax or probabilities its term leaves the class sum (the prediction and the
            normalizers still use all classes), so voxels labelled background no longer contribute to
            NCE, NFL and MAE, and RCE no longer penalizes background probability on foreground voxels.
            Ignored with a warning for one channel, as in MONAI.
        to_onehot_y: convert an index-map target ``B1H[WD]`` to one-hot with ``N`` classes (ignored with
            a warning for one channel, as in MONAI).
        sigmoid: input holds logits; apply a per-channel sigmoid (2 classes per channel).
        softmax: input holds logits; apply a softmax over the channels. At most one of the two.
        reduction: ``"mean"`` (default), ``"sum"`` or ``"none"``, see above.
        ignore_index: target value whose entries contribute nothing. With ``to_onehot_y`` any label value
            (e.g. 255 from :class:`~monai_noisylabel.transforms.soft_label.ThresholdBinarize`); with probability
            targets a sentinel outside [0, 1] (e.g. -1): a voxel is ignored where a channel of its target
            equals it (per channel for sigmoid).
"""


def _focal_weight(logp: torch.Tensor, gamma: float) -> torch.Tensor:
    """``(1 - p)^g`` with ``1 - p = -expm1(log p)`` clamped at the dtype's eps (a new tensor)."""
    return torch.expm1(logp).neg_().clamp_(min=torch.finfo(logp.dtype).eps).pow_(gamma)


_RAISES_DOC = """
    Raises:
        ValueError: at construction, both activations, an unknown ``reduction``/``active``/``passive``, a
            negative or non-finite ``alpha``/``beta``/``gamma``, an ``ignore_index`` inside [0, 1] without
            ``to_onehot_y``; at call time, see :meth:`forward`.
"""


class _ActivePassive(torch.autograd.Function):
    """Per-voxel ``alpha * active + beta * passive`` over dim 2 of ``(B, C, K, ...)`` log-probabilities.

    active = ``sum_{k >= first} q_k a_k / sum_j a_j`` with ``a = (1 - p)^g log p`` (NCE for ``g = 0``, else
    NFL); passive = ``sum_{k >= first} p_k c_k`` with ``c = -log clamp(q, 1e-4, 1)`` (RCE) or
    ``sum_{k >= first} q_k (1 - p_k)`` (MAE). One fused function with a hand-written backward serves every
    loss of this module. It allocates about a third of the full-size temporaries of autograd's graph (on CPU
    the allocations, not the arithmetic, dominate), and ``torch.autograd.gradcheck`` checks it with respect
    to the log-probabilities and the targets. ``1 - p`` is clamped at the dtype's eps so ``(1 - p)^g`` keeps
    a finite derivative where ``p`` rounds to 1.
    """

    @staticmethod
    def forward(
        ctx: Any,
        logp: torch.Tensor,
        q: torch.Tensor,
        alpha: float,
        gamma: float,
        beta: float,
        passive: str,
        first: int,
    ) -> torch.Tensor:
        qf = q[:, :, first:]
        p = torch.exp(logp) if beta > 0 or (alpha > 0 and gamma > 0) else None
        dfocal = den = ratio = None
        scratch = torch.empty_like(logp)
        out = None
        if alpha > 0:
            if gamma > 0:
                assert p is not None
                one_minus_p = torch.expm1(logp).neg_().clamp_(min=torch.finfo(logp.dtype).eps)
                torch.pow(one_minus_p, gamma, out=scratch)  # (1 - p)^g
                # d a_k / d log p_k = (1 - p_k)^g (1 - g p_k log p_k / (1 - p_k)), kept for backward
                dfocal = one_minus_p.reciprocal_().mul_(p).mul_(logp).mul_(-gamma).add_(1).mul_(scratch)
                focal = scratch.mul_(logp)
            else:
                focal = scratch.copy_(logp)
            den = focal.sum(dim=2)
            ratio = focal[:, :, first:].mul_(qf).sum(dim=2).div_(den)
            out = ratio * alpha
        if beta > 0:
            assert p is not None
            cost = scratch[:, :, first:]
            if passive == "rce":
                cost.copy_(qf).clamp_(min=RCE_TARGET_CLAMP, max=1.0).log_().neg_()
            else:
                cost.copy_(qf).neg_()  # MAE = sum q - sum q p
            term = cost.mul_(p[:, :, first:]).sum(dim=2)
            if passive != "rce":
                term.add_(qf.sum(dim=2))
            out = term.mul_(beta) if out is None else out.add_(term, alpha=beta)
        assert out is not None
        ctx.save_for_backward(logp, q, p, dfocal, den, ratio)
        ctx.options = (alpha, gamma, beta, passive, first)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logp, q, p, dfocal, den, ratio = ctx.saved_tensors
        alpha, gamma, beta, passive, first = ctx.options
        go = grad_out.unsqueeze(2)
        grad_logp = grad_q = None
        if ctx.needs_input_grad[0]:
            if alpha > 0:
                # d active / d a_k = (q_k [k >= first] - active) / den
                scale = go / den.unsqueeze(2) * alpha
                grad_logp = q * scale
                if first:
                    grad_logp[:, :, :first] = 0
                grad_logp.sub_(ratio.unsqueeze(2) * scale)
                if dfocal is not None:
                    grad_logp.mul_(dfocal)
            if beta > 0:
                # d passive / d log p_k = p_k c_k (RCE) or -q_k p_k (MAE), for k >= first
                if passive == "rce":
                    term = q.clamp(min=RCE_TARGET_CLAMP, max=1.0).log_().neg_().mul_(p)
                else:
                    term = torch.mul(q, p).neg_()
                term.mul_(go * beta)
                if first:
                    term[:, :, :first] = 0
                grad_logp = term if grad_logp is None else grad_logp.add_(term)
        if ctx.needs_input_grad[1]:
            if alpha > 0:
                focal = logp if gamma == 0 else _focal_weight(logp, gamma).mul_(logp)
                grad_q = focal * (go / den.unsqueeze(2) * alpha)
            if beta > 0:
                if passive == "rce":  # clamp passes the gradient on [1e-4, 1], as torch.clamp does
                    inside = (q >= RCE_TARGET_CLAMP) & (q <= 1.0)
                    term = torch.where(inside, -p / q.clamp(min=RCE_TARGET_CLAMP), torch.zeros_like(p))
                else:
                    term = torch.sub(1.0, p)
                term.mul_(go * beta)
                grad_q = term if grad_q is None else grad_q.add_(term)
            if first and grad_q is not None:
                grad_q[:, :, :first] = 0
        return grad_logp, grad_q, None, None, None, None, None


def active_passive_map(
    logp: torch.Tensor,
    q: torch.Tensor,
    *,
    alpha: float = 1.0,
    active: str = "nce",
    gamma: float = 0.0,
    beta: float = 0.0,
    passive: str = "rce",
    first: int = 0,
) -> torch.Tensor:
    """``alpha * active + beta * passive`` per voxel from ``(B, C, K, *spatial)`` log-probabilities and targets.

    Returns ``(B, C, *spatial)``; classes ``< first`` leave the class sums (not the normalizers).
    """
    return _ActivePassive.apply(
        logp, q, float(alpha), float(gamma) if active == "nfl" else 0.0, float(beta), passive, first
    )


class _BinaryActivePassive(torch.autograd.Function):
    """The 2-class case ``p = (1 - s, s)``, ``q = (1 - t, t)`` in closed form, elementwise, fused with its gradient.

    ``x`` holds logits (``s = sigmoid(x)``, ``log s = logsigmoid(x)``, ``log(1 - s) = log s - x``) or, with
    ``logits=False``, probabilities ``s`` (logs of values clamped at the dtype's tiny). With ``a1``, ``a0`` the
    foreground and background terms (``log s``, ``log(1 - s)`` for NCE; ``(1 - s)^g log s``,
    ``s^g log(1 - s)`` for NFL, the focal factors written as ``exp(g log(.))``, smooth everywhere):
    active = ``((1 - t) a0 + t a1) / (a0 + a1)``; RCE = ``c0 + s (c1 - c0)`` with ``c1 = -log clamp(t)``,
    ``c0 = -log clamp(1 - t)``; MAE = ``(1 - t) s + t (1 - s)``. Half the memory of stacking the two
    classes for :class:`_ActivePassive`; ``torch.autograd.gradcheck`` checks the backward.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        t: torch.Tensor,
        logits: bool,
        alpha: float,
        gamma: float,
        beta: float,
        passive: str,
    ) -> torch.Tensor:
        if logits:
            log_1ms = F.softplus(x).neg_()  # log(1 - s) = -softplus(x); log s = log(1 - s) + x
            log_s = log_1ms + x if gamma > 0 else None  # NCE needs only log(1 - s) and x
            s = torch.sigmoid(x)
        else:
            tiny = torch.finfo(x.dtype).tiny
            log_s = x.clamp(min=tiny).log_()
            log_1ms = torch.sub(1.0, x).clamp_(min=tiny).log_()
            s = x
        out = ratio = den = dpds = None
        if alpha > 0:
            if log_s is None:  # NCE from logits: a1 - a0 = x
                den = torch.mul(log_1ms, 2.0).add_(x)
                ratio = torch.addcmul(log_1ms, t, x).div_(den)
            else:
                a1, a0 = log_s, log_1ms
                if gamma > 0:
                    a1 = torch.mul(log_1ms, gamma).exp_().mul_(log_s)
                    a0 = torch.mul(log_s, gamma).exp_().mul_(log_1ms)
                den = a0 + a1
                ratio = torch.sub(a1, a0).mul_(t).add_(a0).div_(den)
        if beta > 0:
            if passive == "rce":
                c0 = torch.sub(1.0, t).clamp_(min=RCE_TARGET_CLAMP, max=1.0).log_().neg_()
                dpds = t.clamp(min=RCE_TARGET_CLAMP, max=1.0).log_().neg_().sub_(c0)  # c1 - c0
                out = c0.addcmul_(s, dpds).mul_(beta)
            else:
                dpds = torch.mul(t, -2.0).add_(1.0)  # 1 - 2 t
                out = torch.addcmul(t, s, dpds).mul_(beta)
            if ratio is not None:
                out.add_(ratio, alpha=alpha)
        else:
            assert ratio is not None
            out = ratio * alpha
        ctx.save_for_backward(x, t, log_s, log_1ms, s, ratio, den, dpds)
        ctx.options = (logits, alpha, gamma, beta, passive)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, t, log_s, log_1ms, s, ratio, den, dpds = ctx.saved_tensors
        logits, alpha, gamma, beta, passive = ctx.options
        grad_x = grad_t = None
        if ctx.needs_input_grad[0]:
            if alpha > 0:
                if logits and gamma == 0:
                    # NCE from logits: ((t - active) - s (1 - 2 active)) / den
                    grad_x = torch.mul(ratio, 2.0).sub_(1.0).mul_(s).add_(t).sub_(ratio).div_(den)
                else:
                    # d active / d a1 = (t - active) / den, d active / d a0 = (1 - t - active) / den
                    u = torch.sub(t, ratio).div_(den)
                    v = torch.sub(1.0, t).sub_(ratio).div_(den)
                    if gamma > 0:
                        w1 = torch.mul(log_1ms, gamma).exp_()  # (1 - s)^g
                        w0 = torch.mul(log_s, gamma).exp_()  # s^g
                        d_log_s = (u * w1).addcmul_(v, w0.mul(log_1ms), value=gamma)
                        d_log_1ms = (v * w0).addcmul_(u, w1.mul(log_s), value=gamma)
                    else:
                        d_log_s, d_log_1ms = u, v
                    if logits:  # d log s / dx = 1 - s, d log(1 - s) / dx = -s
                        grad_x = d_log_s.sub_(d_log_1ms.add_(d_log_s).mul_(s))
                    else:  # d log s / dx = 1 / s, d log(1 - s) / dx = -1 / (1 - s), zero where clamped
                        tiny = torch.finfo(x.dtype).tiny
                        d_log_s.div_(x).masked_fill_(x < tiny, 0.0)
                        d_log_1ms.div_(torch.sub(1.0, x)).masked_fill_(1.0 - x < tiny, 0.0)
                        grad_x = d_log_s.sub_(d_log_1ms)
                grad_x.mul_(alpha)
            if beta > 0:
                # d passive / ds = c1 - c0 (RCE) or 1 - 2 t (MAE); ds / dx = s (1 - s) for logits
                term = torch.sub(1.0, s).mul_(s).mul_(dpds) if logits else dpds.clone()
                grad_x = term.mul_(beta) if grad_x is None else grad_x.add_(term, alpha=beta)
            assert grad_x is not None
            grad_x.mul_(grad_out)
        if ctx.needs_input_grad[1]:
            grad_t = torch.zeros_like(t)
            if alpha > 0:
                if log_s is None:  # NCE from logits: a1 - a0 = x
                    grad_t.add_(torch.div(x, den), alpha=alpha)
                else:
                    a1, a0 = log_s, log_1ms
                    if gamma > 0:
                        a1 = torch.mul(log_1ms, gamma).exp_().mul_(log_s)
                        a0 = torch.mul(log_s, gamma).exp_().mul_(log_1ms)
                    grad_t.add_(torch.sub(a1, a0).div_(den), alpha=alpha)
            if beta > 0:
                if passive == "rce":  # clamp passes the gradient on [1e-4, 1], as torch.clamp does
                    one_minus_t = 1.0 - t
                    dc1 = torch.where((t >= RCE_TARGET_CLAMP) & (t <= 1.0), -1.0 / t.clamp(min=RCE_TARGET_CLAMP), 0.0)
                    dc0 = torch.where(
                        (one_minus_t >= RCE_TARGET_CLAMP) & (one_minus_t <= 1.0),
                        1.0 / one_minus_t.clamp(min=RCE_TARGET_CLAMP),
                        0.0,
                    )
                    grad_t.add_(dc0.addcmul_(s, dc1 - dc0), alpha=beta)
                else:
                    grad_t.add_(torch.mul(s, -2.0).add_(1.0), alpha=beta)
            grad_t.mul_(grad_out)
        return grad_x, grad_t, None, None, None, None, None


def binary_active_passive_map(
    x: torch.Tensor,
    t: torch.Tensor,
    *,
    logits: bool = True,
    alpha: float = 1.0,
    active: str = "nce",
    gamma: float = 0.0,
    beta: float = 0.0,
    passive: str = "rce",
) -> torch.Tensor:
    """``alpha * active + beta * passive`` per entry of the 2-class problems ``(1 - s, s)`` against ``(1 - t, t)``.

    ``x`` holds logits (``logits=True``) or probabilities ``s``; returns ``x``'s shape.
    """
    g = float(gamma) if active == "nfl" else 0.0
    return _BinaryActivePassive.apply(x, t, bool(logits), float(alpha), g, float(beta), passive)


class _ActivePassiveBase(VoxelLoss):
    """Shared input handling: targets, activation, ignore/weight maps; subclasses only name their terms."""

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        reduction: LossReduction | str = LossReduction.MEAN,
        ignore_index: int | float | None = None,
    ) -> None:
        super().__init__(reduction=reduction)
        owner = type(self).__name__
        check_activation(owner, sigmoid, softmax)
        self.include_background = bool(include_background)
        self.to_onehot_y = bool(to_onehot_y)
        self.sigmoid = bool(sigmoid)
        self.softmax = bool(softmax)
        self.ignore_index = check_ignore_index(owner, ignore_index, self.to_onehot_y)

    def terms(self) -> dict[str, Any]:
        """The ``alpha``/``active``/``gamma``/``beta``/``passive`` keywords of the kernels that define this loss."""
        raise NotImplementedError

    def loss_map(
        self, input: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, mask: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        owner = type(self).__name__
        x = as_plain_tensor(input)
        if x.ndim < 3:
            raise param_error(owner, "input", "a tensor of shape BNH[WD]", tuple(x.shape))
        n = x.shape[1]
        if self.softmax and n < 2:
            raise param_error(owner, "softmax", "False for a one-channel input (use sigmoid=True)", self.softmax)
        binary = self.sigmoid or (not self.softmax and n == 1)  # C = N problems of K = 2 classes
        dtype = compute_dtype(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.to(dtype)
            t, ignored = prepare_target(
                owner, x, target, to_onehot_y=self.to_onehot_y, ignore_index=self.ignore_index, dtype=dtype
            )
            if not (self.sigmoid or self.softmax):
                check_probabilities(owner, x)
            w = check_voxel_map(owner, "weight", weight, x, per_channel=binary, dtype=dtype)
            m = check_voxel_map(owner, "mask", mask, x, per_channel=binary, dtype=dtype)
            valid = combine_valid(ignored, m, per_voxel=not binary)
            drop = 1 if not self.include_background and n > 1 else 0
            if not self.include_background and n == 1:
                warnings.warn(f"{owner}: single channel prediction, `include_background=False` ignored.", stacklevel=3)
            if binary:
                x, t = x[:, drop:], t[:, drop:]
                valid, w = slice_channels(valid, drop, n), slice_channels(w, drop, n)
                loss = binary_active_passive_map(x, t, logits=self.sigmoid, **self.terms())
            else:
                if self.softmax:
                    logp = F.log_softmax(x, dim=1).unsqueeze(1)
                else:
                    logp = x.clamp(min=torch.finfo(dtype).tiny).log().unsqueeze(1)
                loss = active_passive_map(logp, t.unsqueeze(1), first=drop, **self.terms())
        return loss, valid, w


class NormalizedCrossEntropyLoss(_ActivePassiveBase):
    __doc__ = (
        """Normalized cross entropy (NCE), an active robust loss (Ma et al., ICML 2020, arXiv 2006.13554).

    ``NCE = sum_k q_k log p_k / sum_j log p_j`` per voxel, in [0, 1]: summed over all ``K`` possible
    labels it is 1, and a uniform prediction gives ``1 / K`` whatever the label.
"""
        + _ARGS_DOC
        + _RAISES_DOC
        + """
    Example:
        >>> import torch
        >>> loss = NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True)
        >>> logits = torch.zeros(2, 4, 8, 8)  # uniform prediction over 4 classes
        >>> labels = torch.randint(0, 4, (2, 1, 8, 8), generator=torch.Generator().manual_seed(0))
        >>> round(loss(logits, labels).item(), 4)
        0.25
    """
    )

    def terms(self) -> dict[str, Any]:
        return {"alpha": 1.0, "active": "nce", "beta": 0.0}


class NormalizedFocalLoss(_ActivePassiveBase):
    __doc__ = (
        """Normalized focal loss (NFL), an active robust loss (Ma et al., ICML 2020, arXiv 2006.13554).

    ``NFL = sum_k q_k (1 - p_k)^gamma log p_k / sum_j (1 - p_j)^gamma log p_j`` per voxel, in [0, 1];
    summed over all ``K`` labels it is 1. ``gamma = 0`` gives NCE. Unlike the reference code, the focal
    factor is not detached.
"""
        + _ARGS_DOC
        + """        gamma: focusing parameter, >= 0 (default 0.5, the paper's).
"""
        + _RAISES_DOC
        + """
    Example:
        >>> import torch
        >>> loss = NormalizedFocalLoss(gamma=0.5, sigmoid=True)
        >>> logits = torch.tensor([[[[4.0, -4.0]]]])  # B=1, N=1, 1x2 image
        >>> target = torch.tensor([[[[1.0, 0.0]]]])
        >>> loss(logits, target).item() < 0.01
        True
    """
    )

    def __init__(
        self,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        reduction: LossReduction | str = LossReduction.MEAN,
        ignore_index: int | float | None = None,
        gamma: float = 0.5,
    ) -> None:
        super().__init__(include_background, to_onehot_y, sigmoid, softmax, reduction, ignore_index)
        self.gamma = check_number(type(self).__name__, "gamma", gamma, minimum=0.0)

    def terms(self) -> dict[str, Any]:
        return {"alpha": 1.0, "active": "nfl", "gamma": self.gamma, "beta": 0.0}


class ReverseCrossEntropyLoss(_ActivePassiveBase):
    __doc__ = (
        """Reverse cross entropy (RCE), a passive robust loss (Ma et al., ICML 2020; Wang et al., ICCV 2019).

    ``RCE = -sum_k p_k log(clamp(q_k, 1e-4, 1))`` per voxel: for a hard label ``y`` it equals
    ``-log(1e-4) * (1 - p_y)``, so it goes to 0 as the prediction becomes correct.
"""
        + _ARGS_DOC
        + _RAISES_DOC
        + """
    Example:
        >>> import torch
        >>> loss = ReverseCrossEntropyLoss(softmax=True, to_onehot_y=True)
        >>> logits = torch.tensor([[[[20.0]], [[0.0]]]])  # class 0 predicted
        >>> loss(logits, torch.zeros(1, 1, 1, 1)).item() < 1e-6
        True
    """
    )

    def terms(self) -> dict[str, Any]:
        return {"alpha": 0.0, "beta": 1.0, "passive": "rce"}


class MeanAbsoluteErrorLoss(_ActivePassiveBase):
    __doc__ = (
        """Mean absolute error (MAE) between distributions, a passive robust loss (Ma et al., ICML 2020).

    Reduced form ``MAE = 1 - sum_k q_k p_k`` per voxel (half the L1 distance for a hard label), in [0, 1].
"""
        + _ARGS_DOC
        + _RAISES_DOC
        + """
    Example:
        >>> import torch
        >>> loss = MeanAbsoluteErrorLoss(softmax=True, to_onehot_y=True)
        >>> logits = torch.zeros(1, 2, 2, 2)  # p = (0.5, 0.5) everywhere
        >>> loss(logits, torch.ones(1, 1, 2, 2)).item()
        0.5
    """
    )

    def terms(self) -> dict[str, Any]:
        return {"alpha": 0.0, "beta": 1.0, "passive": "mae"}


class NormalizedActivePassiveLoss(_ActivePassiveBase):
    __doc__ = (
        """Active-Passive Loss: ``alpha * active + beta * passive`` (Ma et al., ICML 2020, arXiv 2006.13554).

    ``active`` is NCE or NFL (:class:`NormalizedCrossEntropyLoss`, :class:`NormalizedFocalLoss`), ``passive``
    is RCE or MAE (:class:`ReverseCrossEntropyLoss`, :class:`MeanAbsoluteErrorLoss`); both are computed from
    one ``log_softmax``/``logsigmoid`` pass. The paper's defaults: ``alpha = beta = 1`` (CIFAR-10),
    ``alpha = 10, beta = 0.1`` (CIFAR-100), ``gamma = 0.5`` for NFL. The knee BML paper trains NAP on soft
    labels instead of BCE.
"""
        + _ARGS_DOC
        + """        active: ``"nce"`` (default) or ``"nfl"``.
        passive: ``"rce"`` (default) or ``"mae"``.
        alpha: weight of the active loss, >= 0.
        beta: weight of the passive loss, >= 0 (``alpha + beta > 0``).
        gamma: focusing parameter of NFL, >= 0 (unused with NCE).
"""
        + _RAISES_DOC
        + """
    Example:
        >>> import torch
        >>> loss = NormalizedActivePassiveLoss(active="nce", passive="rce", alpha=1.0, beta=1.0, softmax=True)
        >>> logits = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0), requires_grad=True)
        >>> soft = torch.softmax(torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1)), dim=1)
        >>> value = loss(logits, soft)
        >>> value.backward()
        >>> value.ndim, logits.grad.shape
        (0, torch.Size([2, 3, 8, 8]))
        >>> NormalizedActivePassiveLoss(softmax=True, reduction="none")(logits, soft).shape
        torch.Size([2, 1, 8, 8])
        >>> NormalizedActivePassiveLoss(softmax=True).per_sample(logits, soft).shape
        torch.Size([2])
    """
    )

    def __init__(
        self,
        active: str = "nce",
        passive: str = "rce",
        alpha: float = 1.0,
        beta: float = 1.0,
        gamma: float = 0.5,
        include_background: bool = True,
        to_onehot_y: bool = False,
        sigmoid: bool = False,
        softmax: bool = False,
        reduction: LossReduction | str = LossReduction.MEAN,
        ignore_index: int | float | None = None,
    ) -> None:
        super().__init__(include_background, to_onehot_y, sigmoid, softmax, reduction, ignore_index)
        owner = type(self).__name__
        self.active = check_choice(owner, "active", active, ACTIVE)
        self.passive = check_choice(owner, "passive", passive, PASSIVE)
        self.alpha = check_number(owner, "alpha", alpha, minimum=0.0)
        self.beta = check_number(owner, "beta", beta, minimum=0.0)
        self.gamma = check_number(owner, "gamma", gamma, minimum=0.0)
        if self.alpha == 0 and self.beta == 0:
            raise param_error(owner, "beta", "> 0 when alpha is 0 (the loss would be identically 0)", beta)

    def terms(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "active": self.active,
            "gamma": self.gamma,
            "beta": self.beta,
            "passive": self.passive,
        }
