"""Soft and confidence label transforms on channel-first arrays (numpy, torch, MetaTensor; CPU or CUDA).

- :class:`MultiRaterSoftLabel`: R rater masks to a per-voxel probability (mean, weighted mean, STAPLE).
- :class:`AnatomicalPrior`: shape a soft label with a region mask, an intensity term and distance decay.
- :class:`ConfidenceToSoftLabel`: per-class expert confidence on a declared scale to soft labels.
- :class:`ThresholdBinarize`: soft or confidence maps to hard labels, with an optional ignore band.

Each transform validates its parameters once, in ``__init__``, converts its input with
``convert_to_tensor(..., track_meta=get_track_meta())``, runs a pure kernel from :mod:`.functional`
and returns the caller's type and device with ``convert_to_dst_type``. A MetaTensor keeps its meta and
applied operations (in a new dict: the input is never modified). The computations are deterministic.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from monai.config import DtypeLike, NdarrayOrTensor
from monai.data import MetaTensor
from monai.transforms import Transform
from monai.utils import TransformBackends, convert_to_dst_type, convert_to_tensor, get_equivalent_dtype

from monai_noisylabel.transforms.soft_label import functional as F
from monai_noisylabel.utils import check_choice, check_int, check_number, param_error, split_meta

__all__ = [
    "STAPLE_META_KEY",
    "RATER_WEIGHTS_META_KEY",
    "MultiRaterSoftLabel",
    "AnatomicalPrior",
    "ConfidenceToSoftLabel",
    "ThresholdBinarize",
]

STAPLE_META_KEY = "staple"
"""Output meta key of the STAPLE estimates: ``{"sensitivity", "specificity", "prior", "iterations", "converged"}``."""

RATER_WEIGHTS_META_KEY = "rater_weights"
"""Output meta key of the normalized rater weights used by ``method="weighted"``."""


def _torch_dtype(dtype: Any) -> torch.dtype:
    return get_equivalent_dtype(dtype, torch.Tensor)


def _out_dtype(owner: str, dtype: Any) -> torch.dtype | None:
    """Validate a user ``dtype`` argument (``None`` allowed) and return it as a torch dtype."""
    if dtype is None:
        return None
    try:
        return _torch_dtype(dtype)
    except (TypeError, ValueError, KeyError) as err:
        raise param_error(owner, "dtype", "a numpy or torch dtype, or None", dtype) from err


def _soft_dtype(dst: Any, dtype: torch.dtype | None) -> torch.dtype:
    """The output dtype of a soft label: ``dtype`` if given, else ``dst``'s if floating, else float32."""
    if dtype is not None:
        return dtype
    d = _torch_dtype(dst.dtype)
    return d if d.is_floating_point else torch.float32


def _restore(out: torch.Tensor, dst: Any, meta_src: MetaTensor | None, dtype: Any, extra: dict | None = None) -> Any:
    """``out`` in ``dst``'s type and device with ``dtype``; meta (plus ``extra``) copied from ``meta_src``."""
    if meta_src is not None:
        meta = dict(meta_src.meta)
        meta.update(extra or {})
        out = MetaTensor(out, meta=meta, applied_operations=list(meta_src.applied_operations))
    return convert_to_dst_type(out, dst=dst, dtype=dtype)[0]


def _check_spatial(owner: str, name: str, x: torch.Tensor, ref: torch.Tensor, channels: int | None = 1) -> None:
    """Raise unless ``x`` is channel-first with ``ref``'s spatial shape (and ``channels`` channels if given)."""
    ok = x.ndim == ref.ndim and tuple(x.shape[1:]) == tuple(ref.shape[1:])
    if channels is not None:
        ok = ok and x.shape[0] == channels
    if not ok:
        c = "C" if channels is None else str(channels)
        expected = f"a channel-first array of shape ({c}, {', '.join(map(str, ref.shape[1:]))})"
        raise param_error(owner, name, expected, F._Desc(f"shape {tuple(x.shape)}"))


def _per_slot(values: Sequence[float], idx: torch.Tensor, num_slots: int) -> list[float]:
    """Per-rater ``values`` spread over ``num_slots`` rater slots at positions ``idx``; NaN for missing raters."""
    full = [float("nan")] * num_slots
    for value, i in zip(values, idx.tolist()):
        full[i] = float(value)
    return full


def _check_ndim(owner: str, name: str, x: torch.Tensor) -> None:
    if x.ndim not in (3, 4):
        expected = "a channel-first 2D or 3D array, (C, H, W) or (C, H, W, D)"
        raise param_error(owner, name, expected, F._Desc(f"shape {tuple(x.shape)}"))


class MultiRaterSoftLabel(Transform):
    """Combine R binary rater masks into a per-voxel probability of foreground.

    ``"mean"`` and ``"weighted"`` also accept soft masks in [0, 1]; ``"staple"`` needs 0/1 masks.
    Multi-class rater maps are out of scope: one-hot them and combine one class at a time.

    Methods:

    - ``"mean"``: the fraction of raters who marked the voxel (:class:`monai.transforms.MeanEnsemble`).
    - ``"weighted"``: ``sum_r w_r x_r / sum_r w_r`` (also ``MeanEnsemble``) with reliability weights
      given in ``weights`` or, when ``None``, estimated per case as each rater's soft Dice against the
      mean of the other raters (:func:`.functional.rater_reliability`). The normalized weights are
      written to the output's ``meta["rater_weights"]``.
    - ``"staple"``: binary STAPLE (Warfield et al., IEEE TMI 2004,
      https://doi.org/10.1109/TMI.2004.828354), see :func:`.functional.staple`; the output is the
      posterior probability of foreground and ``meta["staple"]`` holds the estimated per-rater
      ``sensitivity`` and ``specificity``, the ``prior``, ``iterations`` and ``converged``.

    Meta is written only where the output is a MetaTensor (MetaTensor input with meta tracking on).
    Per-rater lists have one entry per rater slot; ``present`` marks raters missing from a case, whose
    entries are NaN, so the lists keep their length and batches collate.

    Args:
        method: ``"mean"``, ``"weighted"`` or ``"staple"``.
        weights: per-rater non-negative weights with a positive sum, only for ``"weighted"``.
        prior: STAPLE's fixed foreground prior in (0, 1), or ``None`` to estimate it.
        max_iter: STAPLE's most EM iterations (>= 1).
        tol: STAPLE's convergence threshold (> 0).
        dtype: output dtype; default the input's if floating, else float32.

    Raises:
        ValueError: bad parameters; at call time, raters that are not in [0, 1] or NaN, raters of
            different shapes, non-binary raters for STAPLE, or a wrong number of weights.

    Example:
        >>> import numpy as np
        >>> raters = np.array([[[1, 1, 0, 0]], [[1, 0, 0, 0]], [[1, 1, 1, 0]]], dtype=np.uint8)  # (R=3, 1, 4)
        >>> out = MultiRaterSoftLabel("mean")(raters)  # integer masks give float32 soft labels
        >>> out.dtype, out.shape
        (dtype('float32'), (1, 1, 4))
        >>> MultiRaterSoftLabel("mean", dtype=np.float64)(raters).round(3).tolist()
        [[[1.0, 0.667, 0.333, 0.0]]]
        >>> MultiRaterSoftLabel("weighted", weights=[2, 1, 1])(raters).tolist()
        [[[1.0, 0.75, 0.25, 0.0]]]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]  # noqa: RUF012 (MONAI convention)

    def __init__(
        self,
        method: str = "mean",
        weights: Sequence[float] | NdarrayOrTensor | None = None,
        prior: float | None = None,
        max_iter: int = 100,
        tol: float = 1e-6,
        dtype: DtypeLike | torch.dtype | None = None,
    ) -> None:
        name = type(self).__name__
        self.method = check_choice(name, "method", method, F.SOFT_METHODS)
        self.weights = None if weights is None else self._check_weights(weights)
        if self.weights is not None and method != "weighted":
            raise param_error(name, "weights", "None unless method='weighted'", weights)
        self.prior = (
            None if prior is None else check_number(name, "prior", prior, 0.0, 1.0, open_min=True, open_max=True)
        )
        self.max_iter = check_int(name, "max_iter", max_iter, minimum=1)
        self.tol = check_number(name, "tol", tol, 0.0, open_min=True)
        self.dtype = _out_dtype(name, dtype)

    def _check_weights(self, weights: Any) -> torch.Tensor:
        name = type(self).__name__
        try:
            values = weights.detach().cpu().numpy() if isinstance(weights, torch.Tensor) else weights
            w = torch.as_tensor(np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError, RuntimeError) as err:
            raise param_error(
                name, "weights", "a 1D sequence of non-negative numbers with a positive sum", weights
            ) from err
        if (
            w.ndim != 1
            or w.numel() == 0
            or not bool(torch.isfinite(w).all())
            or bool((w < 0).any())
            or float(w.sum()) <= 0
        ):
            raise param_error(name, "weights", "a 1D sequence of non-negative numbers with a positive sum", weights)
        return w

    def _stack(self, raters: Any) -> tuple[torch.Tensor, Any, MetaTensor | None]:
        """Raters as one ``(R, *spatial)`` tensor, the object whose type to return, and the meta source."""
        name = type(self).__name__
        if isinstance(raters, (list, tuple)):
            if len(raters) == 0:
                raise param_error(name, "raters", "at least one rater mask", raters)
            parts = [split_meta(r) for r in raters]
            shapes = [tuple(p[0].shape) for p in parts]
            if len(set(shapes)) > 1:
                raise param_error(name, "raters", "masks of one shape", F._Desc(f"shapes {shapes}"))
            if any(s[0] != 1 for s in shapes):
                raise param_error(
                    name, "raters", "channel-first masks with one channel each", F._Desc(f"shapes {shapes}")
                )
            stacked = torch.cat([p[0].to(parts[0][0].device) for p in parts], dim=0)
            _check_ndim(name, "raters", stacked)
            return stacked, raters[0], parts[0][1]
        t, meta_src = split_meta(raters)
        _check_ndim(name, "raters", t)
        return t, raters, meta_src

    def __call__(
        self,
        raters: Sequence[NdarrayOrTensor] | NdarrayOrTensor,
        weights: Sequence[float] | NdarrayOrTensor | None = None,
        present: Sequence[bool] | None = None,
    ) -> NdarrayOrTensor:
        """Combine the raters.

        Args:
            raters: a stacked ``(R, *spatial)`` array (one channel per rater), or a sequence of R
                channel-first ``(1, *spatial)`` masks of one shape.
            weights: override ``self.weights`` for this call (``"weighted"`` only).
            present: one bool per rater slot, ``True`` for the raters given here (used by the
                dictionary version when raters are missing). The weights then have one entry per slot
                and the meta lists one entry per slot, NaN for missing raters.

        Returns:
            ``(1, *spatial)`` soft label in [0, 1], in the type and on the device of the (first) input.
        """
        name = type(self).__name__
        x, dst, meta_src = self._stack(raters)
        F.check_unit_range(name, "raters", x)
        num = x.shape[0]
        slots = [True] * num if present is None else [bool(v) for v in present]
        if sum(slots) != num:
            raise param_error(name, "present", f"{num} True entries, one per rater given", present)
        idx = torch.as_tensor([i for i, v in enumerate(slots) if v], dtype=torch.long)
        dtype = _soft_dtype(dst, self.dtype)
        extra: dict[str, Any] = {}
        if self.method == "mean":
            if weights is not None:
                raise param_error(name, "weights", "None unless method='weighted'", weights)
            out = F.rater_mean(x)
        elif self.method == "weighted":
            w = self._check_weights(weights) if weights is not None else self.weights
            if w is not None and w.numel() != len(slots):
                raise param_error(
                    name, "weights", f"{len(slots)} weights, one per rater", F._Desc(f"{w.numel()} weights")
                )
            used = F.rater_reliability(x).cpu() if w is None else w[idx]
            if float(used.sum()) <= 0:  # only zero-weight raters are present: fall back to the mean
                used = torch.ones_like(used)
            out = F.rater_mean(x, weights=used.to(x.device))
            extra[RATER_WEIGHTS_META_KEY] = _per_slot((used.to(torch.float64) / used.sum()).tolist(), idx, len(slots))
        else:
            if weights is not None:
                raise param_error(name, "weights", "None unless method='weighted'", weights)
            out, info = F.staple(x, prior=self.prior, max_iter=self.max_iter, tol=self.tol, owner=name)
            for key in ("sensitivity", "specificity"):
                info[key] = _per_slot(info[key], idx, len(slots))
            extra[STAPLE_META_KEY] = info
        return _restore(out, dst, meta_src, dtype, extra)


class AnatomicalPrior(Transform):
    """Shape a soft label with anatomy: zero outside a region, an intensity term, optional distance decay.

    Inside the region and the raters' union (``label > 0``) the soft label ``p`` is combined with
    ``t = sigmoid((n - centre) / width)``, where ``n`` is the image normalized within the region
    (``"zscore"``: mean and std of the region's intensities; ``"percentile"``: the empirical CDF of the
    region's intensities, in [0, 1]). ``combine="multiply"`` gives ``p * t``, ``"mean"`` gives
    ``(p + t) / 2``. With ``decay``, the result is multiplied by ``exp(-d / decay)``, ``d`` the distance
    (in ``spacing`` units) to the lesion core ``{p >= core_threshold}``, computed with MONAI's
    :func:`~monai.transforms.utils.distance_transform_edt` (the kernel of ``DistanceTransformEDT``).
    Everything outside the region or the union is 0. See :func:`.functional.anatomical_prior`.

    Knee BML recipe (bone marrow lesions lie in subchondral bone and are bright on fat-suppressed
    fluid-sensitive MRI): average the raters, then keep the average only inside bone, scaled by how
    bright the voxel is relative to the rest of the bone (z-score, centre 1 std, width 0.5 std), with a
    gentle decay away from voxels most raters marked.

    Args:
        centre: normalized intensity at which the intensity term is 0.5.
        width: > 0, the sigmoid's scale in normalized units.
        normalize: ``"zscore"`` or ``"percentile"``.
        combine: ``"multiply"`` or ``"mean"``.
        decay: > 0 decay length, or ``None`` for no distance decay.
        core_threshold: in (0, 1], the soft-label level of the lesion core.
        spacing: voxel spacing for the distance (a positive number or one per spatial axis), ``None`` for 1.
        dtype: output dtype; default the label's if floating, else float32.

    Raises:
        ValueError: bad parameters; at call time, a label outside [0, 1] or NaN, a NaN image, or a
            region or image whose shape does not match the label.

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from monai_noisylabel.data.synthetic import make_knee_case
        >>> case = make_knee_case(0, 0, size=(32, 32, 32))
        >>> raters = torch.as_tensor(np.stack(case["raters"]))  # (R, D, H, W)
        >>> soft = MultiRaterSoftLabel("mean")(raters)  # (1, D, H, W) fraction of raters
        >>> prior = AnatomicalPrior(centre=1.0, width=0.5, normalize="zscore", decay=4.0)
        >>> q = prior(soft, region=case["bone"][None], image=case["image"][None])
        >>> bool(q[torch.as_tensor(case["bone"][None]) == 0].max() == 0), bool(q.max() <= 1)
        (True, True)
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]  # noqa: RUF012 (MONAI convention)

    def __init__(
        self,
        centre: float = 1.0,
        width: float = 0.5,
        normalize: str = "zscore",
        combine: str = "multiply",
        decay: float | None = None,
        core_threshold: float = 0.5,
        spacing: float | Sequence[float] | None = None,
        dtype: DtypeLike | torch.dtype | None = None,
    ) -> None:
        name = type(self).__name__
        self.centre = check_number(name, "centre", centre)
        self.width = check_number(name, "width", width, 0.0, open_min=True)
        self.normalize = check_choice(name, "normalize", normalize, F.NORMALIZE_MODES)
        self.combine = check_choice(name, "combine", combine, F.COMBINE_MODES)
        self.decay = None if decay is None else check_number(name, "decay", decay, 0.0, open_min=True)
        self.core_threshold = check_number(name, "core_threshold", core_threshold, 0.0, 1.0, open_min=True)
        self.spacing = self._check_spacing(spacing)
        self.dtype = _out_dtype(name, dtype)

    def _check_spacing(self, spacing: Any) -> float | list[float] | None:
        if spacing is None:
            return None
        expected = "None, a number > 0 or a sequence of numbers > 0"
        values = [spacing] if not isinstance(spacing, (list, tuple)) else list(spacing)
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not np.isfinite(v) or v <= 0:
                raise param_error(type(self).__name__, "spacing", expected, spacing)
        return [float(v) for v in values] if isinstance(spacing, (list, tuple)) else float(spacing)

    def __call__(
        self, img: NdarrayOrTensor, region: NdarrayOrTensor | None = None, image: NdarrayOrTensor | None = None
    ) -> NdarrayOrTensor:
        """Apply the prior.

        Args:
            img: ``(C, *spatial)`` soft label in [0, 1] (e.g. :class:`MultiRaterSoftLabel`'s output).
            region: ``(1, *spatial)`` region mask (``> 0`` inside), e.g. bone.
            image: ``(1, *spatial)`` intensities.

        Returns:
            ``(C, *spatial)`` soft label in [0, 1], in ``img``'s type and on its device.
        """
        name = type(self).__name__
        if region is None or image is None:
            which = "region" if region is None else "image"
            raise param_error(name, which, "a channel-first array", None)
        x, meta_src = split_meta(img)
        _check_ndim(name, "img", x)
        F.check_unit_range(name, "img", x)
        r = convert_to_tensor(region, track_meta=False, device=x.device)
        im = convert_to_tensor(image, track_meta=False, device=x.device)
        _check_spatial(name, "region", r, x)
        _check_spatial(name, "image", im, x)
        if im.is_floating_point() and not bool(torch.isfinite(im).all()):
            n_bad = int((~torch.isfinite(im)).sum())
            raise param_error(name, "image", "intensities without NaN or inf", F._Desc(f"{n_bad} NaN/inf value(s)"))
        spacing = self.spacing
        if isinstance(spacing, list) and len(spacing) != x.ndim - 1:
            raise param_error(name, "spacing", f"one value per spatial axis ({x.ndim - 1})", spacing)
        out = F.anatomical_prior(
            x,
            r,
            im,
            centre=self.centre,
            width=self.width,
            normalize=self.normalize,
            combine=self.combine,
            decay=self.decay,
            core_threshold=self.core_threshold,
            spacing=spacing,
        )
        return _restore(out, img, meta_src, _soft_dtype(img, self.dtype))


class ConfidenceToSoftLabel(Transform):
    """Per-class expert confidence maps on a declared scale to soft labels in [0, 1].

    The confidence is divided by the top of ``scale`` (1, 10 or 100). Overlapping classes:

    - ``overlap="independent"`` (default): ``C`` independent multi-label channels, each in [0, 1]
      (e.g. for sigmoid/BCE heads; lung ultrasound findings can overlap).
    - ``overlap="normalize"``: ``C + 1`` channels forming a distribution: where the class confidences
      sum to more than 1 they are divided by their sum; channel 0 is background ``1 - sum``
      (e.g. for a softmax head with soft-target cross-entropy).

    See :func:`.functional.confidence_to_soft`.

    Args:
        scale: ``"0-1"``, ``"0-10"`` or ``"0-100"``.
        overlap: ``"independent"`` or ``"normalize"``.
        dtype: output dtype; default the input's if floating, else float32.

    Raises:
        ValueError: unknown scale or overlap; at call time, values outside the scale or NaN.

    Example:
        >>> import numpy as np
        >>> conf = np.array([[[90, 40]], [[30, 0]]], dtype=np.float64)  # (C=2, 1, 2) on a 0-100 scale
        >>> ConfidenceToSoftLabel(scale="0-100")(conf).round(2).tolist()
        [[[0.9, 0.4]], [[0.3, 0.0]]]
        >>> ConfidenceToSoftLabel(scale="0-100", overlap="normalize")(conf).round(2).tolist()
        [[[0.0, 0.6]], [[0.75, 0.4]], [[0.25, 0.0]]]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]  # noqa: RUF012 (MONAI convention)

    def __init__(
        self, scale: str = "0-1", overlap: str = "independent", dtype: DtypeLike | torch.dtype | None = None
    ) -> None:
        name = type(self).__name__
        self.scale = check_choice(name, "scale", scale, F.CONFIDENCE_SCALES)
        self.overlap = check_choice(name, "overlap", overlap, F.OVERLAP_MODES)
        self.dtype = _out_dtype(name, dtype)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """``img``: ``(C, *spatial)`` confidences on ``scale``; returns ``(C, ...)`` or ``(C + 1, ...)`` soft labels."""
        name = type(self).__name__
        x, meta_src = split_meta(img)
        _check_ndim(name, "img", x)
        out = F.confidence_to_soft(x, scale=self.scale, overlap=self.overlap, owner=name)
        return _restore(out, img, meta_src, _soft_dtype(img, self.dtype))


class ThresholdBinarize(Transform):
    """Soft or confidence maps in [0, 1] to hard labels at ``threshold``, with an optional ignore band.

    - One channel: ``x >= threshold`` gives 1, else 0 (the rule of ``AsDiscrete(threshold=...)``).
    - ``C`` channels: the most confident class among those at or above ``threshold``, as values
      ``1..C`` (ties: the lowest index), else 0 (background). With ``background_channel=True`` channel 0
      is background (e.g. after ``ConfidenceToSoftLabel(overlap="normalize")``) and does not vote.
    - With ``low``: voxels that got no class but whose highest confidence lies in ``[low, threshold)``
      get ``ignore_index`` (default 255), to be skipped by the losses (``ignore_index=255``, e.g.
      ``monai.losses.DiceLoss(ignore_index=255)``).

    The lung ultrasound paper found 60% expert confidence a better cut than 50%, hence the default 0.6.

    Args:
        threshold: in (0, 1).
        low: start of the ignore band, in (0, threshold), or ``None`` for no band.
        ignore_index: the ignore band's label, an int that is not a class value ``0..C``.
        background_channel: channel 0 is background and does not vote.
        dtype: output dtype; default the input's (a float soft map gives a float label map, as MONAI's
            ``AsDiscrete``). ``ignore_index`` and the class values must fit in it.
        ignore_value: deprecated name of ``ignore_index``.

    Raises:
        ValueError: bad parameters; at call time, values outside [0, 1] or NaN, an ``ignore_index``
            that collides with a class or does not fit the output dtype.

    Example:
        >>> import torch
        >>> conf = torch.tensor([[[0.7, 0.55, 0.2, 0.9]], [[0.65, 0.1, 0.3, 0.95]]])  # (C=2, 1, 4)
        >>> ThresholdBinarize(threshold=0.6)(conf).tolist()
        [[[1.0, 0.0, 0.0, 2.0]]]
        >>> ThresholdBinarize(threshold=0.6, low=0.5, dtype=torch.uint8)(conf).tolist()
        [[[1, 255, 0, 2]]]
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]  # noqa: RUF012 (MONAI convention)

    def __init__(
        self,
        threshold: float = 0.6,
        low: float | None = None,
        ignore_index: int = 255,
        background_channel: bool = False,
        dtype: DtypeLike | torch.dtype | None = None,
        ignore_value: int | None = None,
    ) -> None:
        name = type(self).__name__
        if ignore_value is not None:
            warnings.warn(
                f"{name}: 'ignore_value' is deprecated; use 'ignore_index' (MONAI's name).",
                DeprecationWarning,
                stacklevel=2,
            )
            ignore_index = ignore_value
        self.threshold = check_number(name, "threshold", threshold, 0.0, 1.0, open_min=True, open_max=True)
        if low is not None:
            low = check_number(name, "low", low, 0.0, self.threshold, open_min=True, open_max=True)
        self.low = low
        self.ignore_index = check_int(name, "ignore_index", ignore_index)
        if not isinstance(background_channel, bool):
            raise param_error(name, "background_channel", "a bool", background_channel)
        self.background_channel = background_channel
        self.dtype = _out_dtype(name, dtype)

    def _check_fits(self, dtype: torch.dtype, top: int) -> None:
        name = type(self).__name__
        values = [top] + ([self.ignore_index] if self.low is not None else [])
        if dtype.is_floating_point:
            limit = torch.finfo(dtype).max
            bad = [v for v in values if abs(v) > limit]
        elif dtype == torch.bool:
            bad = [v for v in values if v not in (0, 1)]
        else:
            info = torch.iinfo(dtype)
            bad = [v for v in values if not info.min <= v <= info.max]
        if bad:
            which = "ignore_index" if self.low is not None and self.ignore_index in bad else "dtype"
            value = self.ignore_index if which == "ignore_index" else dtype
            raise param_error(name, which, f"values that fit the output dtype {dtype} (labels 0..{top})", value)

    def __call__(self, img: NdarrayOrTensor) -> NdarrayOrTensor:
        """``img``: ``(C, *spatial)`` maps in [0, 1]; returns the ``(1, *spatial)`` label map."""
        name = type(self).__name__
        x, meta_src = split_meta(img)
        _check_ndim(name, "img", x)
        out = F.threshold_binarize(
            x,
            threshold=self.threshold,
            low=self.low,
            ignore_index=self.ignore_index,
            background_channel=self.background_channel,
            owner=name,
        )
        dtype = self.dtype if self.dtype is not None else _torch_dtype(img.dtype)
        self._check_fits(dtype, x.shape[0] - int(self.background_channel))
        return _restore(out, img, meta_src, dtype)
