"""Pure kernels of the soft-label transforms: torch tensors in, torch tensors out, no side effects.

Every function takes channel-first plain ``torch.Tensor`` data (``(C, H, W)`` or ``(C, H, W, D)``),
never modifies its inputs, and runs on the inputs' device. The array and dictionary transforms in
:mod:`.array` and :mod:`.dictionary` only convert types and carry metadata around these kernels.
``owner`` names the caller in error messages (the transform a user called).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.transforms import MeanEnsemble
from monai.transforms.utils import distance_transform_edt

from monai_noisylabel.utils import param_error

__all__ = [
    "CONFIDENCE_SCALES",
    "SOFT_METHODS",
    "NORMALIZE_MODES",
    "COMBINE_MODES",
    "OVERLAP_MODES",
    "check_unit_range",
    "rater_mean",
    "rater_reliability",
    "staple",
    "normalize_in_region",
    "anatomical_prior",
    "confidence_to_soft",
    "threshold_binarize",
]

CONFIDENCE_SCALES: dict[str, float] = {"0-1": 1.0, "0-10": 10.0, "0-100": 100.0}
"""Declared confidence scales and the value that means "certain"."""

SOFT_METHODS = ("mean", "weighted", "staple")
NORMALIZE_MODES = ("zscore", "percentile")
COMBINE_MODES = ("multiply", "mean")
OVERLAP_MODES = ("independent", "normalize")

_TOL = 1e-6  # float rounding allowed when checking that values lie in [0, upper]
_EPS = 1e-6  # keeps STAPLE's probabilities away from 0 and 1 inside the logs


class _Desc(str):
    """A description shown without quotes in :func:`param_error` messages."""

    def __repr__(self) -> str:
        return str(self)


def check_unit_range(owner: str, name: str, x: torch.Tensor, upper: float = 1.0) -> None:
    """Raise ``ValueError`` unless every value of ``x`` is a number in ``[0, upper]`` (NaN is rejected).

    Example:
        >>> check_unit_range("ThresholdBinarize", "img", torch.tensor([0.0, 1.5]))
        Traceback (most recent call last):
        ...
        monai_noisylabel.utils.ParameterError: The 'img' parameter of ThresholdBinarize must be values in [0, 1] without NaN. Got values in [0, 1.5] instead.
    """
    if x.numel() == 0 or x.dtype == torch.bool:
        return
    expected = f"values in [0, {upper:g}] without NaN"
    if x.is_floating_point() or x.is_complex():
        nan = torch.isnan(x)
        if bool(nan.any()):
            raise param_error(owner, name, expected, _Desc(f"{int(nan.sum())} NaN value(s)"))
    lo, hi = float(x.min()), float(x.max())
    if lo < -_TOL or hi > upper * (1 + _TOL):
        raise param_error(owner, name, expected, _Desc(f"values in [{lo:.6g}, {hi:.6g}]"))


def _float_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.is_floating_point() else torch.float32


def rater_mean(raters: torch.Tensor, weights: torch.Tensor | Sequence[float] | None = None) -> torch.Tensor:
    """(Weighted) mean of rater masks, through :class:`monai.transforms.MeanEnsemble`.

    Args:
        raters: ``(R, *spatial)`` masks (or soft masks) in [0, 1], one channel per rater.
        weights: ``R`` non-negative reliability weights, or ``None`` for the plain mean. The result is
            ``sum_r w_r x_r / sum_r w_r`` (``MeanEnsemble`` scales by ``w / mean(w)``, the same thing).

    Returns:
        ``(1, *spatial)`` floating tensor in [0, 1] (the raters' dtype if floating, else float32).

    Example:
        >>> rater_mean(torch.tensor([[1.0, 0.0], [1.0, 1.0]])).tolist()
        [[1.0, 0.5]]
        >>> rater_mean(torch.tensor([[1.0, 0.0], [1.0, 1.0]]), weights=[3.0, 1.0]).tolist()
        [[1.0, 0.25]]
    """
    x = raters.to(_float_dtype(raters)).unsqueeze(1)  # (R, 1, *spatial): MeanEnsemble's (E, C, ...)
    out = MeanEnsemble(weights=None if weights is None else torch.as_tensor(weights, dtype=torch.float64))(x)
    return torch.as_tensor(out).to(x.dtype).clamp(0.0, 1.0)


def rater_reliability(raters: torch.Tensor) -> torch.Tensor:
    """Estimate one reliability weight per rater: soft Dice of the rater against the mean of the others.

    A rater who agrees with the rest of the panel gets a weight near 1, an outlier near 0. Two empty
    masks agree perfectly (weight 1). With a single rater, or when every weight is 0, all weights are 1.

    Args:
        raters: ``(R, *spatial)`` masks in [0, 1].

    Returns:
        ``(R,)`` float64 tensor of weights in [0, 1], on the raters' device.

    Example:
        >>> r = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1]])
        >>> [round(w, 3) for w in rater_reliability(r).tolist()]
        [0.5, 0.5, 0.0]
    """
    num = raters.shape[0]
    if num == 1:
        return torch.ones(1, dtype=torch.float64, device=raters.device)
    flat = raters.reshape(num, -1).to(torch.float64)
    others = (flat.sum(0, keepdim=True) - flat) / (num - 1)  # leave-one-out mean of the panel
    inter = (flat * others).sum(1)
    denom = flat.sum(1) + others.sum(1)
    dice = torch.where(denom > 0, 2.0 * inter / denom.clamp_min(1e-12), torch.ones_like(denom))
    if float(dice.sum()) <= 0.0:
        return torch.ones_like(dice)
    return dice


def _staple_log_odds(patterns: torch.Tensor, p: torch.Tensor, q: torch.Tensor, f: torch.Tensor | float) -> torch.Tensor:
    """Log-odds of "truly foreground" for each decision pattern (rows of ``patterns``)."""
    f_t = torch.as_tensor(f, dtype=torch.float64, device=patterns.device)
    log_fg = torch.log(f_t) + patterns @ torch.log(p) + (1 - patterns) @ torch.log1p(-p)
    log_bg = torch.log1p(-f_t) + (1 - patterns) @ torch.log(q) + patterns @ torch.log1p(-q)
    return log_fg - log_bg


def _decision_patterns(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Distinct columns of the ``(R, N)`` 0/1 matrix: ``(patterns (P, R) float64, inverse (N,), counts (P,))``.

    Up to 62 raters, each column is packed into one int64 code so a 1D ``torch.unique`` does the work.
    """
    num = flat.shape[0]
    if num > 62:
        patterns, inverse, counts = torch.unique(flat.T, dim=0, return_inverse=True, return_counts=True)
        return patterns.to(torch.float64), inverse, counts
    bits = torch.arange(num, dtype=torch.int64, device=flat.device)
    codes = (flat.to(torch.int64) << bits[:, None]).sum(0)
    unique, inverse, counts = torch.unique(codes, return_inverse=True, return_counts=True)
    patterns = ((unique[:, None] >> bits[None, :]) & 1).to(torch.float64)
    return patterns, inverse, counts


def staple(
    raters: torch.Tensor,
    *,
    prior: float | None = None,
    max_iter: int = 100,
    tol: float = 1e-6,
    owner: str = "staple",
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Binary STAPLE: EM estimate of the hidden truth and of each rater's sensitivity and specificity.

    Warfield, Zou and Wells, "Simultaneous truth and performance level estimation (STAPLE)", IEEE TMI
    23(7), 2004, https://doi.org/10.1109/TMI.2004.828354. Rater ``r`` marks a truly foreground voxel
    with probability ``p_r`` (sensitivity) and leaves a truly background voxel empty with probability
    ``q_r`` (specificity); voxels are independent given the truth, which is foreground with probability
    ``f`` (the prior).

    - E-step: ``W_i = f prod_r p_r^D_ri (1-p_r)^(1-D_ri) / (that + (1-f) prod_r q_r^(1-D_ri) (1-q_r)^D_ri)``.
    - M-step: ``p_r = sum_i W_i D_ri / sum_i W_i``, ``q_r = sum_i (1-W_i)(1-D_ri) / sum_i (1-W_i)``
      and, when ``prior`` is ``None``, ``f = mean_i W_i``.

    It starts from ``p = q = 0.9`` (raters better than chance), stops when no parameter moves by more
    than ``tol`` or after ``max_iter`` iterations, and returns the posterior computed with the final
    estimates. Voxels with the same decision pattern share one posterior, so EM runs over the (at most
    ``2^R``) distinct patterns instead of every voxel.

    Args:
        raters: ``(R, *spatial)`` binary masks (values 0 and 1).
        prior: fixed foreground prior ``f`` in (0, 1), as in the original paper (ITK uses the mean rater
            decision); ``None`` estimates it with the other parameters, starting from that mean.
        max_iter: the most EM iterations.
        tol: convergence threshold on the largest parameter change.
        owner: name used in error messages.

    Returns:
        ``(posterior, info)``: the ``(1, *spatial)`` probability of foreground (float, the raters' dtype
        if floating, else float32) and ``{"sensitivity": [...], "specificity": [...], "prior": f,
        "iterations": n, "converged": bool}``.

    Raises:
        ValueError: when the raters are not binary.

    Example:
        >>> r = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0]])
        >>> post, info = staple(r)
        >>> post.round().tolist(), [round(s, 2) for s in info["sensitivity"]]
        ([[1.0, 1.0, 0.0, 0.0, 0.0, 0.0]], [1.0, 1.0, 1.0])
    """
    num = raters.shape[0]
    binary = (raters == 0) | (raters == 1)
    if not bool(binary.all()):
        bad = raters[~binary]
        raise param_error(
            owner, "raters", "binary masks (0/1) for method 'staple'", _Desc(f"value {float(bad[0]):.6g}")
        )
    flat = raters.reshape(num, -1).to(torch.uint8)
    device = raters.device
    patterns, inverse, counts = _decision_patterns(flat)
    counts = counts.to(torch.float64)
    total = counts.sum()
    p = torch.full((num,), 0.9, dtype=torch.float64, device=device)
    q = p.clone()
    mean_decision = float((counts[:, None] * patterns).sum() / (total * num)) if total > 0 else 0.5
    f = min(max(mean_decision, _EPS), 1 - _EPS) if prior is None else float(prior)
    converged, iterations = False, 0
    for iterations in range(1, max_iter + 1):  # noqa: B007 (the last value is reported)
        w = torch.sigmoid(_staple_log_odds(patterns, p, q, f))
        cw, cb = counts * w, counts * (1 - w)
        sw, sb = cw.sum(), cb.sum()
        p_new = ((cw @ patterns) / sw).clamp(_EPS, 1 - _EPS) if sw > 0 else p
        q_new = ((cb @ (1 - patterns)) / sb).clamp(_EPS, 1 - _EPS) if sb > 0 else q
        f_new = f if prior is not None else min(max(float(sw / total), _EPS), 1 - _EPS)
        delta = max(float((p_new - p).abs().max()), float((q_new - q).abs().max()), abs(f_new - f))
        p, q, f = p_new, q_new, f_new
        if delta < tol:
            converged = True
            break
    w = torch.sigmoid(_staple_log_odds(patterns, p, q, f))
    posterior = w[inverse].reshape((1, *raters.shape[1:])).to(_float_dtype(raters))
    info = {
        "sensitivity": [float(v) for v in p.tolist()],
        "specificity": [float(v) for v in q.tolist()],
        "prior": float(f),
        "iterations": int(iterations),
        "converged": converged,
    }
    return posterior, info


def normalize_in_region(image: torch.Tensor, region: torch.Tensor, mode: str = "zscore") -> torch.Tensor:
    """Normalize ``image`` with statistics of the voxels inside ``region``.

    - ``"zscore"``: ``(I - mean) / std`` of the region's intensities (std floored at 1e-8).
    - ``"percentile"``: the empirical CDF of the region's intensities, i.e. the fraction of region
      voxels at or below ``I``, in [0, 1]; robust to the intensity scale and to outliers.

    Args:
        image: ``(1, *spatial)`` intensities.
        region: ``(1, *spatial)`` mask; ``> 0`` is inside.
        mode: ``"zscore"`` or ``"percentile"``.

    Returns:
        float64 tensor shaped like ``image`` (zeros when the region is empty).

    Example:
        >>> img = torch.tensor([[0.0, 1.0, 2.0, 3.0]])
        >>> normalize_in_region(img, torch.tensor([[0, 1, 1, 1]]), "percentile").tolist()
        [[0.0, 0.3333333333333333, 0.6666666666666666, 1.0]]
    """
    x = image.to(torch.float64)
    values = x[(region > 0).expand_as(x)]
    if values.numel() == 0:
        return torch.zeros_like(x)
    if mode == "zscore":
        std = values.std(unbiased=False) if values.numel() > 1 else torch.zeros((), dtype=x.dtype, device=x.device)
        return (x - values.mean()) / std.clamp_min(1e-8)
    if mode == "percentile":
        ordered = torch.sort(values).values
        ranks = torch.searchsorted(ordered, x.reshape(-1).contiguous(), right=True)
        return (ranks.to(torch.float64) / values.numel()).reshape(x.shape)
    raise param_error("normalize_in_region", "mode", "one of " + ", ".join(map(repr, NORMALIZE_MODES)), mode)


def _distance_to_core(core: torch.Tensor, spacing: float | Sequence[float] | None) -> torch.Tensor:
    """Per channel, the Euclidean distance of every voxel to the nearest ``core`` voxel (MONAI's EDT)."""
    sampling = [float(v) for v in spacing] if isinstance(spacing, Sequence) else spacing
    dist = distance_transform_edt((~core).to(torch.uint8), sampling=sampling)  # distance to nearest zero
    return torch.as_tensor(dist, device=core.device).to(torch.float64)


def anatomical_prior(
    label: torch.Tensor,
    region: torch.Tensor,
    image: torch.Tensor,
    *,
    centre: float = 1.0,
    width: float = 0.5,
    normalize: str = "zscore",
    combine: str = "multiply",
    decay: float | None = None,
    core_threshold: float = 0.5,
    spacing: float | Sequence[float] | None = None,
) -> torch.Tensor:
    """Shape a soft label with anatomy: region mask, intensity term and optional distance decay.

    With ``p`` the soft label (e.g. the rater mean; a hard rater union works too), ``U = {p > 0}`` the
    raters' union, ``B`` the region, ``n`` the image normalized within ``B`` (:func:`normalize_in_region`)
    and ``t = sigmoid((n - centre) / width)``:

    - ``combine="multiply"``: ``q = p * t`` (both must agree: a bright voxel few raters marked stays low);
    - ``combine="mean"``: ``q = (p + t) / 2`` (a bright voxel marked by one rater can reach 2/3 with
      three raters);

    then ``q = 0`` outside ``B`` and outside ``U``, and with ``decay`` set, ``q *= exp(-d / decay)``
    where ``d`` is the distance to the lesion core ``{p >= core_threshold} ∩ B`` computed with
    :func:`monai.transforms.utils.distance_transform_edt` (SciPy, or cuCIM on GPU; in ``spacing`` units).
    A channel without a core voxel is not decayed. Channels of ``label`` are shaped independently.

    Args:
        label: ``(C, *spatial)`` soft label in [0, 1].
        region: ``(1, *spatial)`` region mask (``> 0`` inside), e.g. bone.
        image: ``(1, *spatial)`` intensities (e.g. fat-suppressed fluid-sensitive MRI).
        centre: normalized intensity where ``t = 0.5``.
        width: > 0, how fast ``t`` rises around ``centre`` (in normalized units).
        normalize: ``"zscore"`` or ``"percentile"``.
        combine: ``"multiply"`` or ``"mean"``.
        decay: > 0 length scale of the distance decay, or ``None`` for none.
        core_threshold: soft-label level in (0, 1] that defines the lesion core.
        spacing: voxel spacing for the distance (a number or one per spatial axis); ``None`` means 1.

    Returns:
        ``(C, *spatial)`` soft label in [0, 1], in ``label``'s dtype if floating, else float32.

    Example:
        >>> p = torch.tensor([[[0.0, 1 / 3, 1.0, 1.0]]])
        >>> bone = torch.tensor([[[1, 1, 1, 0]]])
        >>> img = torch.tensor([[[0.1, 0.2, 0.9, 0.9]]])
        >>> q = anatomical_prior(p, bone, img, centre=0.5, width=0.1, normalize="percentile")
        >>> [round(v, 3) for v in q.flatten().tolist()]
        [0.0, 0.28, 0.993, 0.0]
    """
    if combine not in COMBINE_MODES:
        raise param_error("anatomical_prior", "combine", "one of " + ", ".join(map(repr, COMBINE_MODES)), combine)
    inside = region > 0
    n = normalize_in_region(image, inside, normalize)
    term = torch.sigmoid((n - centre) / width)
    p = label.to(torch.float64)
    q = p * term if combine == "multiply" else 0.5 * (p + term)
    q = q * (inside & (label > 0))
    if decay is not None:
        core = (p >= core_threshold) & inside
        has_core = core.reshape(core.shape[0], -1).any(1)
        if bool(has_core.any()):
            factor = torch.exp(-_distance_to_core(core, spacing) / decay)
            view = (-1,) + (1,) * (label.ndim - 1)
            q = q * torch.where(has_core.reshape(view), factor, torch.ones_like(factor))
    return q.clamp(0.0, 1.0).to(_float_dtype(label))


def confidence_to_soft(
    confidence: torch.Tensor, *, scale: str = "0-1", overlap: str = "independent", owner: str = "confidence_to_soft"
) -> torch.Tensor:
    """Map per-class expert confidence on a declared scale to soft labels in [0, 1].

    The confidence is divided by the scale's top value (1, 10 or 100). Classes can overlap (the same
    pixel can be B-line and pleural line); the rule is chosen by ``overlap``:

    - ``"independent"``: keep ``C`` independent (multi-label, sigmoid-style) channels.
    - ``"normalize"``: a categorical distribution with ``C + 1`` channels; where the class confidences
      sum to more than 1 they are divided by their sum, and channel 0 is background ``1 - sum``.

    Args:
        confidence: ``(C, *spatial)`` confidences on ``scale``.
        scale: ``"0-1"``, ``"0-10"`` or ``"0-100"``.
        overlap: ``"independent"`` or ``"normalize"``.
        owner: name used in error messages.

    Returns:
        ``(C, *spatial)`` or ``(C + 1, *spatial)`` soft labels (``confidence``'s dtype if floating,
        else float32).

    Raises:
        ValueError: unknown scale or overlap, or confidence outside ``[0, top]`` or NaN.

    Example:
        >>> c = torch.tensor([[[80.0]], [[60.0]]])
        >>> [round(v, 4) for v in confidence_to_soft(c, scale="0-100").flatten().tolist()]
        [0.8, 0.6]
        >>> [round(v, 4) for v in confidence_to_soft(c, scale="0-100", overlap="normalize").flatten().tolist()]
        [0.0, 0.5714, 0.4286]
    """
    if scale not in CONFIDENCE_SCALES:
        raise param_error(owner, "scale", "one of " + ", ".join(map(repr, CONFIDENCE_SCALES)), scale)
    if overlap not in OVERLAP_MODES:
        raise param_error(owner, "overlap", "one of " + ", ".join(map(repr, OVERLAP_MODES)), overlap)
    top = CONFIDENCE_SCALES[scale]
    check_unit_range(owner, "img", confidence, upper=top)
    dtype = _float_dtype(confidence)
    soft = (confidence.to(torch.float64) / top).clamp(0.0, 1.0)
    if overlap == "normalize":
        total = soft.sum(0, keepdim=True)
        soft = torch.where(total > 1.0, soft / total.clamp_min(1e-12), soft)
        soft = torch.cat([(1.0 - soft.sum(0, keepdim=True)).clamp(0.0, 1.0), soft], dim=0)
    return soft.to(dtype)


def threshold_binarize(
    soft: torch.Tensor,
    *,
    threshold: float = 0.6,
    low: float | None = None,
    ignore_index: int = 255,
    background_channel: bool = False,
    owner: str = "threshold_binarize",
) -> torch.Tensor:
    """Hard labels from soft or confidence maps in [0, 1].

    - One channel: ``1`` where ``x >= threshold`` else ``0`` (as ``AsDiscrete(threshold=threshold)``).
    - ``C`` channels: ``k`` (1-based) for the most confident class among those at or above
      ``threshold`` (ties: the lowest index), else ``0`` (background).
    - With ``low``, a voxel that got no class but whose highest confidence lies in ``[low, threshold)``
      gets ``ignore_index`` (an ``ignore_index`` for the losses).

    Args:
        soft: ``(C, *spatial)`` maps in [0, 1].
        threshold: in (0, 1).
        low: start of the ignore band, in (0, threshold), or ``None`` for no band.
        ignore_index: label of the ignore band; must not be a class value ``0..C``.
        background_channel: channel 0 of ``soft`` is background and is left out of the vote (class
            values stay the channel indices 1..C-1), e.g. after ``confidence_to_soft(overlap="normalize")``.
        owner: name used in error messages.

    Returns:
        ``(1, *spatial)`` int64 label map.

    Example:
        >>> x = torch.tensor([[[0.7, 0.55, 0.2, 0.9]], [[0.65, 0.1, 0.3, 0.95]]])
        >>> threshold_binarize(x, threshold=0.6, low=0.5).tolist()
        [[[1, 255, 0, 2]]]
    """
    check_unit_range(owner, "img", soft)
    x = soft
    if background_channel:
        if x.shape[0] < 2:
            raise param_error(owner, "background_channel", "False for an input with one channel", background_channel)
        x = x[1:]
    num_classes = x.shape[0]
    if 0 <= ignore_index <= num_classes:
        raise param_error(owner, "ignore_index", f"an int outside the class values 0..{num_classes}", ignore_index)
    x = x.to(torch.float64)
    if num_classes == 1:
        conf = x[0]
        cls = torch.ones(conf.shape, dtype=torch.int64, device=x.device)
    else:
        conf, idx = x.max(0)
        cls = idx + 1
    out = torch.where(conf >= threshold, cls, torch.zeros_like(cls))
    if low is not None:
        band = (conf >= low) & (conf < threshold)
        out = torch.where(band, torch.full_like(cls, int(ignore_index)), out)
    return out.unsqueeze(0)
