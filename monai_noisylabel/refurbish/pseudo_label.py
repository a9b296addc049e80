"""Pseudo-labels from model probabilities: argmax, largest connected component per class, confidence gate.

This is the hard-label refurbishment step of the echo label-noise study (a flagged sample's label is
replaced by the model's prediction) with the two safeguards of SELFIE-style refurbishment: a per-voxel
confidence gate (only confident voxels are rewritten) and anatomy-aware cleaning (one connected
component per structure, via MONAI's :class:`~monai.transforms.KeepLargestConnectedComponent`).

- Song et al., "SELFIE: Refurbishing Unclean Samples for Robust Deep Learning", ICML 2019,
  https://proceedings.mlr.press/v97/song19b.html
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.transforms import KeepLargestConnectedComponent
from monai.utils import convert_to_dst_type, convert_to_tensor, optional_import

from monai_noisylabel.refurbish._checks import Shape, as_tensor_input, check_prob_range
from monai_noisylabel.utils import check_choice, check_int, check_number, param_error

__all__ = ["PseudoLabelResult", "build_pseudo_labels", "fraction_changed"]

logger = logging.getLogger(__name__)

_, _HAS_SKIMAGE = optional_import("skimage.measure")

_OWNER = "build_pseudo_labels"


@dataclass(frozen=True)
class PseudoLabelResult:
    """What :func:`build_pseudo_labels` returns, one entry per sample of the batch.

    Attributes:
        labels: ``(B, 1, *spatial)`` label maps, of the type, dtype and device of ``given`` (or, without
            ``given``, of the type and device of ``probs`` with an int64 dtype). A sample that was not
            refurbished holds a copy of its given label (or ``ignore_index`` everywhere without one):
            check :attr:`refurbished` before using it.
        refurbished: ``(B,)`` bool, ``False`` where the model output could not be used.
        fraction_changed: ``(B,)`` fraction of voxels whose value differs from the given label
            (voxels set to the ignore value count as changed); 0 for samples not refurbished and NaN
            when no given label was passed.
        mean_confidence: ``(B,)`` mean over voxels of the maximum class probability; NaN when not
            refurbished.
        reasons: per sample, ``None`` or why the sample was not refurbished.
    """

    labels: Any
    refurbished: np.ndarray
    fraction_changed: np.ndarray
    mean_confidence: np.ndarray
    reasons: tuple[str | None, ...]

    def __len__(self) -> int:
        return len(self.reasons)


def fraction_changed(new: Any, old: Any) -> float:
    """Fraction of voxels where ``new`` differs from ``old`` (same shape, any array type).

    Example:
        >>> import numpy as np
        >>> fraction_changed(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]))
        0.25
    """
    a = as_tensor_input("fraction_changed", "new", new)
    b = as_tensor_input("fraction_changed", "old", old)
    if tuple(a.shape) != tuple(b.shape):
        raise param_error("fraction_changed", "old", f"an array of the shape of 'new' {tuple(a.shape)}", Shape(b.shape))
    if a.numel() == 0:
        return 0.0
    return float((a.to(b.device) != b).sum().item()) / a.numel()


def _check_ignore_fits(ignore_index: int, dtype: torch.dtype) -> None:
    if dtype.is_floating_point:
        return
    if dtype == torch.bool:
        lo, hi = 0, 1
    else:
        info = torch.iinfo(dtype)
        lo, hi = info.min, info.max
    if not lo <= ignore_index <= hi:
        raise param_error(
            _OWNER, "ignore_index", f"an int that fits the label dtype {dtype} ([{lo}, {hi}])", ignore_index
        )


def _nonfinite_reason(values: torch.Tensor) -> str:
    n_nan = int(torch.isnan(values).sum().item())
    n_inf = int(torch.isinf(values).sum().item())
    return f"non-finite model output ({n_nan} NaN and {n_inf} inf values): sample not refurbished"


@dataclass(frozen=True)
class _Checked:
    """The validated inputs of :func:`build_pseudo_labels`."""

    p: torch.Tensor
    g: torch.Tensor | None
    delta: float
    below: str
    ignore_index: int
    largest_component: bool
    fg: tuple[int, ...]
    connectivity: int | None
    activation: str | None
    out_dtype: torch.dtype


def _check_inputs(
    probs: Any,
    given: Any,
    *,
    delta: float,
    below: str,
    ignore_index: int,
    largest_component: bool,
    applied_labels: Sequence[int] | None,
    connectivity: int | None,
    activation: str | None,
) -> _Checked:
    """Step 1 of :func:`build_pseudo_labels`: every argument checked once, with the offending value named."""
    p = as_tensor_input(_OWNER, "probs", probs)
    if p.ndim not in (4, 5) or p.shape[0] == 0 or p.shape[1] == 0:
        raise param_error(_OWNER, "probs", "an array of shape (B, C, H, W) or (B, C, H, W, D)", Shape(p.shape))
    delta = check_number(_OWNER, "delta", delta, 0.0, 1.0)
    check_choice(_OWNER, "below", below, ("keep", "ignore"))
    check_choice(_OWNER, "activation", activation, (None, "softmax", "sigmoid"))
    ignore_index = check_int(_OWNER, "ignore_index", ignore_index)
    if not isinstance(largest_component, bool):
        raise param_error(_OWNER, "largest_component", "a bool", largest_component)
    batch, channels, spatial = p.shape[0], p.shape[1], tuple(p.shape[2:])
    if activation == "softmax" and channels == 1:
        raise param_error(_OWNER, "activation", "'sigmoid' or None for a single-channel output", activation)
    num_classes = max(channels, 2)
    if connectivity is not None:
        connectivity = check_int(_OWNER, "connectivity", connectivity, 1, len(spatial))
    if applied_labels is None:
        fg: tuple[int, ...] = tuple(range(1, num_classes))
    else:
        fg = tuple(check_int(_OWNER, "applied_labels", c, 0, num_classes - 1) for c in applied_labels)
    g: torch.Tensor | None = None
    if given is not None:
        g = as_tensor_input(_OWNER, "given", given)
        expected = (batch, 1, *spatial)
        if tuple(g.shape) != expected:
            raise param_error(_OWNER, "given", f"an array of shape {expected} matching 'probs'", Shape(g.shape))
    elif below == "keep" and delta > 0:
        raise param_error(_OWNER, "given", "a label array when below='keep' and delta > 0", None)
    out_dtype = g.dtype if g is not None else torch.int64
    if below == "ignore" and delta > 0:
        _check_ignore_fits(ignore_index, out_dtype)
    if largest_component and fg and not _HAS_SKIMAGE:
        raise param_error(
            _OWNER,
            "largest_component",
            "False when scikit-image (used by MONAI's connected components) is missing",
            True,
        )
    return _Checked(p, g, delta, below, ignore_index, largest_component, fg, connectivity, activation, out_dtype)


def _compute_labels(chk: _Checked) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Step 2: argmax, largest component per class, confidence gate; NaN/inf samples keep their given label.

    Returns the labels, the per-voxel confidence, the per-sample "output is finite" flags and the float output.
    """
    p, g = chk.p, chk.g
    pf = p if p.is_floating_point() else p.float()
    finite_vox = torch.isfinite(pf)
    finite = finite_vox.flatten(1).all(1)
    safe = torch.where(finite_vox, pf, torch.zeros((), dtype=pf.dtype, device=pf.device))
    if chk.activation == "softmax":
        safe = torch.softmax(safe, dim=1)
    elif chk.activation == "sigmoid":
        safe = torch.sigmoid(safe)
    else:
        check_prob_range(_OWNER, "probs", pf[finite])
    if p.shape[1] == 1:
        safe = torch.cat([1 - safe, safe], dim=1)
    conf, arg = safe.max(dim=1, keepdim=True)
    if chk.largest_component and chk.fg:
        keep = KeepLargestConnectedComponent(
            applied_labels=chk.fg, is_onehot=False, independent=True, connectivity=chk.connectivity
        )
        for i in range(p.shape[0]):
            if bool(finite[i]):
                cleaned = keep(arg[i].clone())
                arg[i] = convert_to_tensor(cleaned, device=arg.device, track_meta=False).to(arg.dtype)
    labels = arg.to(chk.out_dtype)
    low = conf < chk.delta
    g_dev = None if g is None else g.to(labels.device)
    if g_dev is not None and chk.below == "keep":
        labels = torch.where(low, g_dev, labels)
    if chk.below == "ignore":
        labels = torch.where(low, torch.full_like(labels, chk.ignore_index), labels)
    for i in range(p.shape[0]):
        if not bool(finite[i]):
            labels[i] = g_dev[i] if g_dev is not None else chk.ignore_index
    return labels, conf, finite, pf


def _summarise(
    chk: _Checked,
    labels: torch.Tensor,
    conf: torch.Tensor,
    finite: torch.Tensor,
    pf: torch.Tensor,
    *,
    probs: Any,
    given: Any,
) -> PseudoLabelResult:
    """Step 3: the reasons (logged), fractions changed and confidences, and the labels in the caller's type."""
    batch = int(chk.p.shape[0])
    reasons: list[str | None] = [None] * batch
    for i in range(batch):
        if not bool(finite[i]):
            reasons[i] = _nonfinite_reason(pf[i])
            logger.warning("build_pseudo_labels: sample %d of the batch: %s", i, reasons[i])
    finite_np = finite.cpu().numpy().astype(bool)
    if chk.g is not None:
        changed = (labels != chk.g.to(labels.device)).flatten(1).double().mean(1).cpu().numpy()
    else:
        changed = np.full(batch, np.nan)
    changed = np.where(finite_np, changed, 0.0 if chk.g is not None else np.nan)
    confidence = np.where(finite_np, conf.flatten(1).double().mean(1).cpu().numpy(), np.nan)
    if chk.g is not None:
        out = convert_to_dst_type(labels, dst=given, dtype=given.dtype)[0]
    elif isinstance(probs, np.ndarray):
        out = labels.cpu().numpy()
    else:
        out = convert_to_dst_type(labels, dst=probs, dtype=torch.int64)[0]
    return PseudoLabelResult(
        labels=out,
        refurbished=finite_np,
        fraction_changed=changed.astype(np.float64),
        mean_confidence=confidence.astype(np.float64),
        reasons=tuple(reasons),
    )


def build_pseudo_labels(
    probs: Any,
    given: Any = None,
    *,
    delta: float = 0.0,
    below: str = "keep",
    ignore_index: int = 255,
    largest_component: bool = True,
    applied_labels: Sequence[int] | None = None,
    connectivity: int | None = None,
    activation: str | None = None,
    ignore_value: int | None = None,
) -> PseudoLabelResult:
    """Hard pseudo-labels for a batch of 2D or 3D model outputs.

    Per sample: ``argmax`` over classes; then, when ``largest_component``, only the largest connected
    component of each foreground class is kept (MONAI's
    :class:`~monai.transforms.KeepLargestConnectedComponent`, ``independent=True``; removed voxels
    become background 0); then the confidence gate: where the maximum class probability is below
    ``delta`` the voxel keeps its given label (``below="keep"``) or gets ``ignore_index``
    (``below="ignore"``, for losses that skip it: the package's losses and transforms use the same name and
    default, 255). The gate comes last so a voxel the
    model is unsure of is never rewritten.

    A sample whose output holds NaN or inf is not refurbished: its entry keeps the given label, its
    reason is returned in :attr:`PseudoLabelResult.reasons` and logged at WARNING level. A corrupted
    label is never produced.

    Args:
        probs: ``(B, C, H, W[, D])`` class probabilities (or logits with ``activation``), torch or numpy.
            ``C == 1`` is a binary foreground probability (treated as the two classes ``1 - p, p``).
        given: optional ``(B, 1, H, W[, D])`` given (possibly noisy) label maps; required when
            ``below="keep"`` and ``delta > 0``. The output takes its type, dtype and device.
        delta: confidence gate in [0, 1]; 0 disables it.
        below: ``"keep"`` or ``"ignore"``: what a voxel under the gate gets.
        ignore_index: the value written by ``below="ignore"``; must fit the label dtype.
        largest_component: keep only the largest connected component per foreground class.
        applied_labels: classes to clean (default: every foreground class ``1..C-1``).
        connectivity: passed to MONAI (``None``: full connectivity).
        activation: ``None`` (``probs`` are probabilities), ``"softmax"`` or ``"sigmoid"``.
        ignore_value: deprecated name of ``ignore_index`` (its old default was -1).

    Returns:
        A :class:`PseudoLabelResult`.

    Raises:
        ValueError: on a wrong shape, logits passed as probabilities, or an invalid option.

    Example:
        >>> import torch
        >>> probs = torch.zeros(1, 2, 4, 4); probs[:, 0] = 0.9; probs[:, 1] = 0.1
        >>> probs[0, :, 1:3, 1:3] = torch.tensor([0.2, 0.8]).view(2, 1, 1)
        >>> res = build_pseudo_labels(probs, torch.zeros(1, 1, 4, 4, dtype=torch.long), delta=0.6)
        >>> int(res.labels.sum()), float(res.fraction_changed[0])
        (4, 0.25)
    """
    if ignore_value is not None:
        warnings.warn(
            "build_pseudo_labels: 'ignore_value' is deprecated; use 'ignore_index' (MONAI's name).",
            DeprecationWarning,
            stacklevel=2,
        )
        ignore_index = ignore_value
    chk = _check_inputs(
        probs,
        given,
        delta=delta,
        below=below,
        ignore_index=ignore_index,
        largest_component=largest_component,
        applied_labels=applied_labels,
        connectivity=connectivity,
        activation=activation,
    )
    labels, conf, finite, pf = _compute_labels(chk)
    return _summarise(chk, labels, conf, finite, pf, probs=probs, given=given)
