"""Scores referenced to a trusted clean set: conformal p-values, the excess of small p-values, and a flag rule.

A score only means something next to what a clean label's score looks like under the same model. The
curated validation set gives that reference: compute the same score on its images and labels, with the
same model, at the same epochs. A training sample's conformal p-value is the fraction of reference scores
at least as suspicious as its own (:func:`conformal_pvalues`); for a clean training label exchangeable
with the reference it is (super-)uniform, whatever the data, the network or the score's scale.

- :func:`reference_excess` is how many more training samples than expected fall in the reference's upper
  tail: an estimate of the fraction of training labels that the score sees as wrong. Squared, it is the
  weight :func:`~monai_noisylabel.detection.combine_scores` gives a score with ``weights="reference"``: a
  score that splits the training set in two but splits the reference the same way (bimodal for another
  reason, e.g. two views) earns nothing. Only the tail counts, not the bulk: a shift of the whole
  training distribution (memorization, or a model that predicts its training images better) is no
  evidence of wrong labels.
- :func:`reference_flags` flags the ``round(excess * N)`` most suspicious samples: the number of flags
  comes from the data and is about 0 when the training labels look like the reference; when the data
  clearly put more training scores beyond every reference score than clean labels would, at least that
  excess. The handlers flag the top of ``combined`` against the reference's combined values, as many as
  the largest excess of its referenced scores or the combined score's own excess beyond the reference.

Memorization: the network fits its own training labels, so clean training samples score lower than the
reference (lower loss, smaller offsets) and their p-values are larger than uniform: they rarely reach
the tail, so the excess counts wrong labels, and subtracting the tail's share makes it a slight
underestimate. The opposite shift (the model predicts unseen reference images better than its training
images) is rare. Scores averaged over a window of epochs (before the wrong labels are memorized too)
keep the wrong labels in the tail.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import betabinom

from monai_noisylabel.utils import as_float_array, check_number, param_error

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["conformal_pvalues", "reference_excess", "reference_flags"]


def _reference(owner: str, reference: Any) -> np.ndarray:
    ref = as_float_array(owner, "reference", reference, ndim=1)
    ref = ref[~np.isnan(ref)]
    if ref.size == 0:
        raise param_error(owner, "reference", "at least one non-NaN reference score", "none")
    return ref


def conformal_pvalues(
    scores: NdarrayOrTensor | Sequence[float], reference: NdarrayOrTensor | Sequence[float]
) -> np.ndarray:
    """Conformal p-value of each score against clean reference scores: ``(1 + #{ref >= s}) / (M + 1)``.

    Args:
        scores: ``(N,)`` scores to test (higher = more suspicious); NaN stays NaN, ``+inf`` gets the smallest
            p-value ``1 / (M + 1)``.
        reference: ``(M,)`` the same score on trusted clean samples (NaN entries are dropped).

    Returns:
        ``(N,)`` float64 p-values in ``[1 / (M + 1), 1]``.

    Raises:
        ValueError: no non-NaN reference score.

    Example:
        >>> conformal_pvalues([0.5, 2.0, 9.0], [1.0, 2.0, 3.0]).tolist()
        [1.0, 0.75, 0.25]
    """
    owner = "conformal_pvalues"
    s = as_float_array(owner, "scores", scores, ndim=1)
    ref = np.sort(_reference(owner, reference))
    at_least = ref.size - np.searchsorted(ref, np.where(np.isnan(s), 0.0, s), side="left")
    out = (1.0 + at_least) / (ref.size + 1.0)
    return np.where(np.isnan(s), np.nan, out)


def reference_excess(
    scores: NdarrayOrTensor | Sequence[float], reference: NdarrayOrTensor | Sequence[float], *, level: float = 0.1
) -> float:
    """Estimated fraction of samples whose score lies beyond the clean reference: the excess of small p-values.

    ``(F(t) - t) / (1 - t)`` clipped to [0, 1], where ``F(t)`` is the fraction of the (non-NaN) training
    p-values ``<= t`` and ``t`` is ``level`` rounded up to the p-value grid ``k / (M + 1)`` (so with a small
    reference the tail is never just "beyond the largest reference score", which one hard reference
    sample would decide); ``t`` is the share of clean samples expected in the tail (Storey's estimator).
    For a score unrelated to the corruption it is about 0; for one that puts every wrong label in the
    reference's upper tail it estimates the wrong fraction, slightly under it when the network has
    memorized its clean training samples (fewer than ``t`` of them reach the tail) and under it when some
    wrong labels score within the clean spread (they are not counted: the flags favour precision).

    Args:
        scores: ``(N,)`` training scores (higher = more suspicious).
        reference: ``(M,)`` the same score on trusted clean samples.
        level: the tail ``t`` of the reference that counts as "beyond", in (0, 1).

    Returns:
        a float in [0, 1] (0 when no training score is finite).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.normal(0, 1, 200)
        >>> train = np.r_[rng.normal(0, 1, 70), rng.normal(6, 1, 30)]  # 30 % beyond the reference
        >>> round(reference_excess(train, ref), 2)
        0.31
        >>> round(reference_excess(rng.normal(0, 1, 100), ref), 2)
        0.0
    """
    owner = "reference_excess"
    level = check_number(owner, "level", level, 0.0, 1.0, open_min=True, open_max=True)
    ref = _reference(owner, reference)
    p = conformal_pvalues(scores, ref)
    p = p[~np.isnan(p)]
    if p.size == 0:
        return 0.0
    m = ref.size + 1.0
    t = max(np.ceil(level * m - 1e-9), 1.0) / m
    return float(np.clip((np.mean(p <= t + 1e-12) - t) / (1.0 - t), 0.0, 1.0))


def reference_flags(
    scores: NdarrayOrTensor | Sequence[float],
    reference: NdarrayOrTensor | Sequence[float] | None,
    *,
    level: float = 0.1,
    fraction: float | None = None,
    alpha: float = 0.05,
) -> np.ndarray:
    """Flag the ``round(excess * N)`` highest scores, ``excess`` the share of scores the data put beyond the reference.

    ``excess`` is ``fraction`` (default: :func:`reference_excess` of ``scores`` at ``level``): the excess of
    training scores in the reference's upper tail ``t`` over the ``t`` share clean labels put there. It is
    about 0 when the training labels look like the reference. Once the network has memorized its clean
    training labels they no longer reach the tail, so subtracting their expected share makes it an
    underestimate, by up to ``t * N`` labels. So when the data show clearly that more training scores than
    clean labels give lie in the tail, or beyond every reference score, the count is at least the excess in
    that finest tail (``level = 1 / (M + 1)``), whose subtraction is only ``N / (M + 1)``. "Clearly" is a
    one-sided test at ``alpha`` (Bonferroni over the two tails) of ``#{p <= t}`` against its law for labels
    exchangeable with the reference, ``BetaBinomial(N, k, M + 1 - k)`` with ``t = k / (M + 1)``: the share
    of clean labels above the ``k``-th largest of ``M`` reference scores is ``Beta(k, M + 1 - k)``, and the
    p-values share one small reference, so a binomial test would be far too eager.

    Without ``reference`` (``fraction`` required) the ``round(fraction * N)`` highest scores are flagged.

    Args:
        scores: ``(N,)`` scores (higher = more suspicious); NaN entries are never flagged.
        reference: ``(M,)`` the same score on trusted clean samples, or None.
        level: as in :func:`reference_excess`.
        fraction: the excess to use instead of :func:`reference_excess` of ``scores`` at ``level`` (e.g. the
            largest excess among the scores that ``scores`` combines).
        alpha: the level of the test for "more training scores beyond the reference than clean labels give",
            in (0, 1).

    Returns:
        ``(N,)`` booleans.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> ref = rng.normal(0, 1, 24)  # 24 clean validation labels
        >>> _ = rng.normal(0, 1, 160)
        >>> # 40 wrong labels of 160; the network has fitted the clean ones (lower scores than the reference)
        >>> memorized = np.r_[rng.normal(-1, 0.5, 120), rng.normal(6, 1, 40)]
        >>> flags = reference_flags(memorized, ref)
        >>> int(flags.sum()), int(flags[120:].sum()), round(reference_excess(memorized, ref) * 160)
        (35, 35, 24)
        >>> int(reference_flags(rng.normal(-1, 0.5, 160), ref).sum())  # no wrong label
        0
    """
    owner = "reference_flags"
    s = as_float_array(owner, "scores", scores, ndim=1)
    ok = ~np.isnan(s)
    n = int(ok.sum())
    if reference is None:
        if fraction is None:
            raise param_error(owner, "reference", "the reference scores when fraction is None", None)
        k = round(check_number(owner, "fraction", fraction, 0.0, 1.0) * n)
    else:
        level = check_number(owner, "level", level, 0.0, 1.0, open_min=True, open_max=True)
        alpha = check_number(owner, "alpha", alpha, 0.0, 1.0, open_min=True, open_max=True)
        ref = _reference(owner, reference)
        if fraction is None:
            fraction = reference_excess(s, ref, level=level)
        fraction = check_number(owner, "fraction", fraction, 0.0, 1.0)
        p = conformal_pvalues(s, ref)[ok]
        m = ref.size + 1.0
        tails = sorted({1, max(round(np.ceil(level * m - 1e-9)), 1)})  # beyond every reference score, and level
        shares = {j: float(np.mean(p <= j / m + 1e-12)) if n else 0.0 for j in tails}
        evidence = min(float(betabinom.sf(round(shares[j] * n) - 1, n, j, m - j)) for j in tails) if n else 1.0
        if evidence <= alpha / len(tails):
            fraction = max(fraction, (shares[1] - 1.0 / m) / (1.0 - 1.0 / m))
        k = round(fraction * n)
    measured = np.flatnonzero(ok)  # a NaN never takes the place of a -inf score
    order = measured[np.argsort(-s[measured], kind="stable")[:k]]
    out = np.zeros(s.shape[0], bool)
    out[order] = True
    return out
