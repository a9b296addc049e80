"""The clean/noisy split of self-cleansing and small-loss selection, and the ramped LCM mixing weight (pure).

Deep self-cleansing (Dong et al., 2024, https://arxiv.org/abs/2409.05024) splits the training samples with a
two-component GMM over their per-sample losses (DivideMix): samples whose posterior of the high-loss component
exceeds a threshold are noisy. Clean samples keep their labels; noisy ones are supervised by the label cleansing
module (LCM) target :func:`~monai_noisylabel.refurbish.lcm_soft_target`, whose weight on the given label here
falls from 1 to ``P(clean)`` along a sigmoid ramp (:func:`lcm_mix_weight`). Small-loss selection (Co-teaching,
DivideMix's labelled set) drops or down-weights the noisy samples instead and relabels nothing.

:func:`split_noisy` reads the per-sample table the detection handlers publish (``engine.state.label_scores``:
``loss``, ``gmm_noisy_prob``, ``flagged``) and says which samples are noisy, with their ``P(clean)``; it returns
the reason instead when the GMM cannot split (too few samples, all losses equal), so the caller logs a skipped
epoch rather than acting on a meaningless split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from monai_noisylabel.refurbish._checks import as_tensor_input
from monai_noisylabel.refurbish.mixing import lcm_soft_target, sigmoid_rampup
from monai_noisylabel.refurbish.pseudo_label import PseudoLabelResult, fraction_changed
from monai_noisylabel.utils import check_choice, check_int, check_number

__all__ = ["SPLIT_SOURCES", "split_noisy", "lcm_mix_weight", "lcm_pseudo_labels"]

SPLIT_SOURCES = ("flagged", "gmm", "offset")
"""Where :func:`split_noisy` reads the noisy samples: the ``flagged`` column, the ``gmm_noisy_prob`` column, or a
two-component GMM over the ``offset`` column (the directional score that sees a systematic bias)."""


def _finite(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _measured(row: Mapping[str, Any]) -> bool:
    """False for a sample whose scores hold a NaN/inf measurement (it is reported and flagged, never relabelled)."""
    if row.get("nonfinite"):
        return False
    return all(_finite(v) is not None for k in _SCORED if (v := row.get(k)) is not None)


_SCORED = ("vog", "loss", "gmm_noisy_prob", "offset")


def split_noisy(
    table: Mapping[str, Mapping[str, Any]],
    *,
    source: str = "gmm",
    threshold: float = 0.5,
    min_samples: int = 4,
) -> tuple[dict[str, float] | None, str]:
    """The noisy samples of a label-scores table with their ``P(clean)``, or ``None`` and why the split is skipped.

    Args:
        table: per sample id, a row with ``loss``, ``gmm_noisy_prob`` and ``flagged`` (the detection handlers'
            ``engine.state.label_scores``; missing or ``None`` cells are allowed).
        source: ``"gmm"``: noisy where ``gmm_noisy_prob > threshold``, ``P(clean) = 1 - gmm_noisy_prob``;
            ``"offset"``: the same with the posterior of :func:`~monai_noisylabel.detection.gmm_noisy_probability`
            fitted to the ``offset`` column instead of the loss;
            ``"flagged"``: noisy where ``flagged`` is true, ``P(clean) = 0`` (a flag is a hard decision: the
            combined score that sets it sees a systematic bias the loss GMM does not).
        threshold: GMM posterior above which a sample is noisy, in [0, 1) (DivideMix: 0.5).
        min_samples: with ``source="gmm"`` or ``"offset"``, fewer scored samples skip the split.

    A sample with a NaN/inf score (its row's ``nonfinite`` set, or a non-finite ``vog``/``loss``/
    ``gmm_noisy_prob``/``offset`` value, e.g. from a NaN image) is never in the split, whatever ``source``:
    ``label_scores.csv`` reports and flags it, but no pseudo-label is built from a model that could not score it.

    Returns:
        ``(noisy, "")`` with ``noisy`` a dict id -> ``P(clean)`` in [0, 1], or ``(None, reason)`` when the GMM
        cannot split: fewer than ``min_samples`` scored samples, or all losses equal.

    Example:
        >>> table = {"a": {"loss": 0.1, "gmm_noisy_prob": 0.02}, "b": {"loss": 0.9, "gmm_noisy_prob": 0.97},
        ...          "c": {"loss": 0.2, "gmm_noisy_prob": 0.1}, "d": {"loss": 0.15, "gmm_noisy_prob": 0.05}}
        >>> noisy, _ = split_noisy(table)
        >>> {k: round(v, 2) for k, v in noisy.items()}
        {'b': 0.03}
        >>> split_noisy({k: {"loss": 1.0, "gmm_noisy_prob": 0.0} for k in "abcd"})
        (None, 'all 4 per-sample losses are equal: the GMM cannot split them')
    """
    owner = "split_noisy"
    check_choice(owner, "source", source, SPLIT_SOURCES)
    threshold = check_number(owner, "threshold", threshold, 0.0, 1.0, open_max=True)
    min_samples = check_int(owner, "min_samples", min_samples, 2)
    table = {i: row for i, row in table.items() if _measured(row)}
    if source == "flagged":
        return {str(i): 0.0 for i, row in table.items() if row.get("flagged")}, ""
    if source == "offset":
        from monai_noisylabel.detection import gmm_noisy_probability

        offsets = {str(i): v for i, row in table.items() if (v := _finite(row.get("offset"))) is not None}
        values = np.array(list(offsets.values()))
        if values.size < min_samples:
            return None, f"only {values.size} samples have an offset score (min_samples={min_samples})"
        if np.ptp(values) <= 1e-12 * max(1.0, float(np.abs(values).max())):
            return None, f"all {values.size} offset scores are equal: the GMM cannot split them"
        noisy_prob = gmm_noisy_probability(values)
        return {i: 1.0 - float(p) for i, p in zip(offsets, noisy_prob) if p > threshold}, ""
    scored = {}
    losses = []
    for i, row in table.items():
        p, loss = _finite(row.get("gmm_noisy_prob")), _finite(row.get("loss"))
        if p is not None and loss is not None:
            scored[str(i)] = p
            losses.append(loss)
    if len(losses) < min_samples:
        return None, f"only {len(losses)} samples have a loss and a GMM posterior (min_samples={min_samples})"
    if max(losses) - min(losses) <= 1e-12 * max(1.0, abs(max(losses))):
        return None, f"all {len(losses)} per-sample losses are equal: the GMM cannot split them"
    return {i: 1.0 - p for i, p in scored.items() if p > threshold}, ""


def lcm_mix_weight(clean_prob: float, epoch: float, *, start: float, rampup_epochs: float) -> float:
    """Weight of the given label in the LCM target: 1 at ``start``, down to ``clean_prob`` along the sigmoid ramp.

    ``w = 1 - sigmoid_rampup(epoch, rampup_epochs, start=start) * (1 - clean_prob)``, so a sample the split has
    just called noisy starts from its own label and moves to the mix ``P(clean) * given + (1 - P(clean)) *
    prediction`` as the ramp completes.

    Example:
        >>> round(lcm_mix_weight(0.0, 3, start=3, rampup_epochs=4), 4), round(lcm_mix_weight(0.2, 7, start=3, rampup_epochs=4), 4)
        (0.9933, 0.2)
    """
    clean_prob = check_number("lcm_mix_weight", "clean_prob", clean_prob, 0.0, 1.0)
    return 1.0 - sigmoid_rampup(epoch, rampup_epochs, start=start) * (1.0 - clean_prob)


def lcm_pseudo_labels(
    probs: Any, given: Any, clean_prob: float | Sequence[float], *, temperature: float = 0.5
) -> PseudoLabelResult:
    """The hard labels (argmax) of the LCM soft targets of a batch, as a :class:`PseudoLabelResult`.

    What the self-cleansing mode writes to ``refurbished/`` and reports: the class each voxel's LCM target
    :func:`~monai_noisylabel.refurbish.lcm_soft_target` ``(given, probs, clean_prob)`` puts first. A sample whose
    probabilities are not finite keeps its given label and is marked not refurbished, with the reason.

    Args:
        probs: ``(B, C, *spatial)`` class probabilities (e.g. of the EMA teacher), ``C >= 2``.
        given: ``(B, 1, *spatial)`` class-index labels.
        clean_prob: ``P(clean)`` per sample (or one number), in [0, 1].
        temperature: sharpening temperature of the LCM target.

    Example:
        >>> import torch
        >>> given = torch.tensor([[[[1, 1]]]])
        >>> probs = torch.tensor([[[[0.9, 0.2]], [[0.1, 0.8]]]])
        >>> r = lcm_pseudo_labels(probs, given, 0.0)
        >>> r.labels.flatten().tolist(), r.fraction_changed.tolist()
        ([0, 1], [0.5])
    """
    p = as_tensor_input("lcm_pseudo_labels", "probs", probs)
    g = as_tensor_input("lcm_pseudo_labels", "given", given)
    batch = int(p.shape[0])
    weights = np.broadcast_to(np.asarray(clean_prob, dtype=np.float64), (batch,)).copy()
    ok = torch.isfinite(p.reshape(batch, -1)).all(dim=1).cpu().numpy() if batch else np.zeros(0, bool)
    labels = g.clone()
    changed = np.zeros(batch)
    confidence = np.full(batch, np.nan)
    reasons: list[str | None] = [None if k else "non-finite model output (NaN or inf)" for k in ok]
    rows = np.flatnonzero(ok)
    if rows.size:
        idx = torch.as_tensor(rows, device=p.device)
        soft = lcm_soft_target(g[idx], p[idx], weights[rows], temperature=temperature)
        hard = soft.argmax(dim=1, keepdim=True).to(device=g.device, dtype=g.dtype)
        labels[torch.as_tensor(rows, device=g.device)] = hard
        confidence[rows] = soft.amax(dim=1).reshape(rows.size, -1).mean(dim=1).double().cpu().numpy()
        for k, r in enumerate(rows):
            changed[r] = fraction_changed(hard[k], g[int(r)])
    return PseudoLabelResult(
        labels=labels,
        refurbished=ok.astype(bool),
        fraction_changed=changed,
        mean_confidence=confidence,
        reasons=tuple(reasons),
    )
