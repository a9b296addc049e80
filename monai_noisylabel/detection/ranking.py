"""Combine detection scores into one ranking, normalize them, and evaluate them against known corruption.

Every score in :mod:`monai_noisylabel.detection` follows one convention: **higher means the label is
more likely wrong**. Quality-like values (e.g. :func:`~monai_noisylabel.detection.image_label_quality`)
must be flipped (``1 - q``) before they are combined.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.stats import rankdata
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.mixture import GaussianMixture

from monai_noisylabel.detection.reference import reference_excess
from monai_noisylabel.utils import as_float_array, as_int_array, check_choice, check_int, param_error

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = [
    "DEFAULT_COMBINED_SCORES",
    "normalize_scores",
    "separation_weight",
    "combine_scores",
    "combine_with_reference",
    "detection_metrics",
]

#: Scores that :func:`combine_scores` averages when it is given a mapping and no ``include``.
#: The per-sample loss averaged over a window of epochs is the strongest single score for omissions and random
#: errors but falls on a 50 % systematic bias (the model learns the biased boundary); the directional offset
#: against the clean reference sees the bias. Neither wins every cell of ``benchmarks/bench_detection.py``; the
#: handlers weigh them by how far each exceeds the same score on the clean validation set
#: (``weights="reference"``, :func:`combine_with_reference`), which held on a second, independently written
#: phantom that the defaults were never tuned on (``benchmarks/README.md``).
DEFAULT_COMBINED_SCORES: tuple[str, ...] = ("loss", "offset")


def separation_weight(
    values: NdarrayOrTensor | Sequence[float], *, cap: float = 5.0, min_fraction: float = 0.02, random_state: int = 0
) -> float:
    """How cleanly a score splits the samples into two groups: Ashman's D of a 2-Gaussian fit, squared.

    The finite values are min-max normalized and fitted with scikit-learn's ``GaussianMixture(2)``;
    ``D = sqrt(2) |m1 - m2| / sqrt(v1 + v2)`` (D > 2: two well separated groups). It is capped at ``cap``
    (a few outliers fitted as their own tight component would otherwise get all the weight) and set to 0
    when the smaller component holds less than ``min_fraction`` of the samples or there are fewer than 4
    distinct values. Returns ``D ** 2``, the weight :func:`combine_scores` gives the score with
    ``weights="separation"``: a score whose noisy group stands apart counts more than one the network's
    memorization has blurred (on a 50 % systematic bias the loss window splits weakly, D = 2.0, while the
    offset splits cleanly, D = 4.2; see ``benchmarks/README.md``).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> two = np.r_[rng.normal(0, 1, 80), rng.normal(8, 1, 20)]
        >>> separation_weight(two) > separation_weight(rng.normal(0, 1, 100))
        True
    """
    x = as_float_array("separation_weight", "values", values, ndim=1)
    x = x[np.isfinite(x)]
    if np.unique(x).size < 4:
        return 0.0
    x = (x - x.min()) / (x.max() - x.min())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm = GaussianMixture(2, reg_covar=5e-4, random_state=random_state).fit(x[:, None])
    if float(gmm.weights_.min()) < min_fraction:
        return 0.0
    m, v = gmm.means_.ravel(), gmm.covariances_.ravel()
    d = float(np.sqrt(2.0) * abs(m[0] - m[1]) / np.sqrt(v[0] + v[1]))
    return min(d, cap) ** 2


_NORMALIZE = ("raw", "zscore", "abs_zscore", "group_zscore")


def _zscore(values: np.ndarray) -> np.ndarray:
    """Population z-score over the finite entries; NaN stays NaN; a constant set maps to 0."""
    out = np.full_like(values, np.nan)
    ok = np.isfinite(values)
    if not ok.any():
        return out
    mean, std = values[ok].mean(), values[ok].std()
    out[ok] = (values[ok] - mean) / std if std > 0 else 0.0
    return out


def normalize_scores(
    scores: NdarrayOrTensor | Sequence[float],
    *,
    method: str = "zscore",
    groups: Sequence[Hashable] | np.ndarray | None = None,
) -> np.ndarray:
    """Normalize per-sample scores over the dataset or within groups.

    Args:
        scores: ``(N,)`` scores; NaN entries (unscored samples) stay NaN and are left out of the statistics.
        method: ``"raw"`` (a copy), ``"zscore"`` ((s - mean) / std over the dataset, population std),
            ``"abs_zscore"`` (its absolute value, as the VoG paper ranks both tails) or ``"group_zscore"``
            (z-score within each group, e.g. view or set of classes present, so that groups with larger
            typical scores do not dominate the ranking). A set with zero spread maps to 0.
        groups: ``(N,)`` group keys; required by ``"group_zscore"`` and only allowed there.

    Returns:
        ``(N,)`` float64 array.

    Raises:
        ValueError: a bad ``method``, a missing or misaligned ``groups``, or ``+-inf`` in the scores.

    Example:
        >>> normalize_scores([1.0, 2.0, 3.0]).round(3).tolist()
        [-1.225, 0.0, 1.225]
        >>> normalize_scores([1.0, 3.0, 10.0, 30.0], method="group_zscore", groups=["a", "a", "b", "b"]).tolist()
        [-1.0, 1.0, -1.0, 1.0]
    """
    owner = "normalize_scores"
    check_choice(owner, "method", method, _NORMALIZE)
    values = as_float_array(owner, "scores", scores, ndim=1)
    if np.isinf(values).any():
        raise param_error(owner, "scores", "finite or NaN (inf cannot be normalized)", "an array with inf")
    if method != "group_zscore":
        if groups is not None:
            raise param_error(owner, "groups", "None unless method='group_zscore'", "a sequence of groups")
        if method == "raw":
            return values
        z = _zscore(values)
        return np.abs(z) if method == "abs_zscore" else z
    if groups is None:
        raise param_error(owner, "groups", "a sequence of N group keys when method='group_zscore'", None)
    keys = list(groups.tolist() if isinstance(groups, np.ndarray) else groups)
    if len(keys) != values.shape[0]:
        raise param_error(owner, "groups", f"a sequence of {values.shape[0]} group keys", f"{len(keys)} keys")
    out = np.full_like(values, np.nan)
    index: dict[Hashable, list[int]] = {}
    for i, key in enumerate(keys):
        index.setdefault(key, []).append(i)
    for members in index.values():
        out[members] = _zscore(values[members])
    return out


def _fractional_ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks of the non-NaN entries scaled to [0, 1] (0 = least suspicious); NaN stays NaN."""
    out = np.full_like(values, np.nan)
    ok = ~np.isnan(values)
    n = int(ok.sum())
    if n == 1:
        out[ok] = 0.5
    elif n > 1:
        out[ok] = (rankdata(values[ok], method="average") - 1.0) / (n - 1.0)
    return out


#: exponent of :func:`~monai_noisylabel.detection.reference_excess` in the ``"reference"`` weights: a score that
#: puts twice as many training labels beyond the clean reference counts four times as much.
REFERENCE_WEIGHT_POWER = 2.0


def _named_weights(
    owner: str, weights: str, arrays: list[np.ndarray], refs: list[np.ndarray | None] | None = None
) -> np.ndarray:
    check_choice(owner, "weights", weights, ("equal", "separation", "reference"))
    if weights == "reference":
        if refs is None or all(r is None for r in refs):
            raise param_error(owner, "reference", "reference scores when weights='reference'", None)
        w = np.array(
            [0.0 if r is None else reference_excess(a, r) ** REFERENCE_WEIGHT_POWER for a, r in zip(arrays, refs)]
        )
        return w if np.any(w > 0) else np.array([0.0 if r is None else 1.0 for r in refs])
    if weights == "equal" or len(arrays) == 1:
        return np.ones(len(arrays))
    w = np.array([separation_weight(a) for a in arrays])
    return w if np.any(w > 0) else np.ones(len(arrays))  # no score splits: fall back to equal weights


def _references(owner: str, names: list[str], reference: Any) -> list[np.ndarray | None] | None:
    """Reference arrays aligned with ``names`` (``None`` for a score without one)."""
    if reference is None:
        return None
    if isinstance(reference, Mapping):
        refs = [reference.get(k) for k in names]
    elif isinstance(reference, Sequence) and not isinstance(reference, (str, bytes)) and len(reference) == len(names):
        refs = list(reference)
    else:
        raise param_error(owner, "reference", "None, a mapping by score name or one entry per score", reference)
    return [None if r is None else as_float_array(owner, "reference", r, ndim=1) for r in refs]


def _resolve_combination(
    scores: Any, weights: Any, include: Sequence[str] | None, reference: Any = None
) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """The input checks of :func:`combine_scores`: names, float arrays of one length, and weights."""
    owner = "combine_scores"
    if isinstance(scores, Mapping):
        if not scores:
            raise param_error(owner, "scores", "a non-empty mapping or sequence of score arrays", scores)
        if include is None:
            names = [k for k in DEFAULT_COMBINED_SCORES if k in scores] or [str(k) for k in scores]
        else:
            names = [str(k) for k in include]
            missing = [k for k in names if k not in scores]
            if missing or not names:
                raise param_error(owner, "include", f"a non-empty subset of {sorted(scores)}", include)
        arrays = [as_float_array(owner, f"scores[{k!r}]", scores[k], ndim=1) for k in names]
        if isinstance(weights, str):
            w = _named_weights(owner, weights, arrays, _references(owner, names, reference))
        elif weights is None:
            w = np.ones(len(names))
        elif isinstance(weights, Mapping):
            w = np.array([float(weights.get(k, 1.0)) for k in names])
        else:
            raise param_error(
                owner,
                "weights",
                "None, 'equal', 'separation', 'reference' or a mapping from score name to weight",
                weights,
            )
    else:
        if include is not None:
            raise param_error(owner, "include", "None when scores is a sequence", include)
        if isinstance(scores, np.ndarray) and scores.ndim == 2:
            scores = list(scores)
        if isinstance(scores, (str, bytes)) or not isinstance(scores, Sequence) or len(scores) == 0:
            raise param_error(owner, "scores", "a non-empty mapping or sequence of score arrays", scores)
        names = [str(i) for i in range(len(scores))]
        arrays = [as_float_array(owner, f"scores[{i}]", s, ndim=1) for i, s in enumerate(scores)]
        if isinstance(weights, str):
            w = _named_weights(owner, weights, arrays, _references(owner, names, reference))
        else:
            w = np.ones(len(arrays)) if weights is None else as_float_array(owner, "weights", weights, ndim=1)
        if w.shape[0] != len(arrays):
            raise param_error(owner, "weights", f"{len(arrays)} weights (one per score)", f"{w.shape[0]} weights")
    if len({a.shape[0] for a in arrays}) != 1:
        raise param_error(owner, "scores", "arrays of one length", [a.shape[0] for a in arrays])
    if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
        raise param_error(owner, "weights", "finite, >= 0 and not all 0", w.tolist())
    return names, arrays, w


def combine_scores(
    scores: Mapping[str, Any] | Sequence[Any],
    *,
    weights: Mapping[str, float] | Sequence[float] | str | None = None,
    include: Sequence[str] | None = None,
    reference: Mapping[str, Any] | Sequence[Any] | None = None,
) -> np.ndarray:
    """Rank-average several per-sample suspicion scores into one.

    Each score is turned into average ranks (``scipy.stats.rankdata``) scaled to [0, 1], so scores on
    different scales (a gradient variance, a loss, a probability, a distance) weigh equally; the
    result is the weighted mean of those fractional ranks. A NaN entry means "not scored" and is
    left out for that sample (its remaining scores are averaged); ``+inf`` (e.g. a non-finite loss)
    ranks as most suspicious.

    Args:
        scores: a mapping from name to ``(N,)`` scores (higher = more suspicious), or a sequence of them.
        weights: non-negative weights, a mapping by name (missing names weigh 1) when ``scores`` is a
            mapping, a sequence otherwise; or ``"equal"``; or ``"separation"``: each score weighs
            :func:`separation_weight` (how cleanly it splits the samples in two), equal weights when none
            splits; or ``"reference"``: each score weighs the square of
            :func:`~monai_noisylabel.detection.reference_excess` (how many more training samples than expected
            lie beyond the same score on a trusted clean set, ``reference``), a score without reference 0,
            equal weights (over the referenced scores) when none exceeds its reference. Default: equal weights.
        include: names to combine when ``scores`` is a mapping. Default: the names of
            :data:`DEFAULT_COMBINED_SCORES` (``loss`` and ``offset``) that are present, or every given
            score when none of them is.
        reference: the same scores on trusted clean samples (a mapping by name, or one array per score,
            ``None`` where a score has none); used by ``weights="reference"``.

    Returns:
        ``(N,)`` float64 scores in [0, 1]; NaN only where a sample has no score at all.

    Raises:
        ValueError: empty input, arrays of different lengths, unknown ``include`` names, bad weights.

    Example:
        >>> combine_scores({"loss": [0.1, 0.9, 0.5], "offset": [1.0, 3.0, 2.0], "vog": [9.0, 0.0, 0.0]}).tolist()
        [0.0, 1.0, 0.5]
        >>> combine_scores([[0.1, 0.9, 0.5], [9.0, 0.0, 0.0]], weights=[3, 1]).round(3).tolist()
        [0.25, 0.812, 0.438]
    """
    _, arrays, w = _resolve_combination(scores, weights, include, reference)
    return _weighted_rank_mean([_fractional_ranks(a) for a in arrays], w)


def _weighted_rank_mean(rank_list: list[np.ndarray], w: np.ndarray) -> np.ndarray:
    ranks = np.stack(rank_list)  # (S, N)
    valid = ~np.isnan(ranks)
    wsum = (w[:, None] * valid).sum(axis=0)
    total = (w[:, None] * np.where(valid, ranks, 0.0)).sum(axis=0)
    out = np.full(ranks.shape[1], np.nan)
    np.divide(total, wsum, out=out, where=wsum > 0)
    return out


def _positions(train: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Where ``values`` fall among the training scores, on the scale of :func:`_fractional_ranks` (NaN stays)."""
    t = np.sort(train[~np.isnan(train)])
    if t.size < 2:
        return np.where(np.isnan(values), np.nan, 0.5)
    v = np.where(np.isnan(values), 0.0, values)
    below = np.searchsorted(t, v, side="left")
    equal = np.searchsorted(t, v, side="right") - below
    pos = np.clip((below + 0.5 * equal - 0.5) / (t.size - 1.0), 0.0, 1.0)
    return np.where(np.isnan(values), np.nan, pos)


def combine_with_reference(
    scores: Mapping[str, Any], reference: Mapping[str, Any], *, include: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Combine scores weighted by how far each exceeds its clean reference, and the same combination of the reference.

    The training combination is :func:`combine_scores` with ``weights="reference"``. Each reference sample
    gets the same weighted mean, of where its scores fall among the training scores (the training scores'
    fractional ranks, interpolated), so the reference's combined values are the clean distribution of the
    combined score: feed both to :func:`~monai_noisylabel.detection.reference_flags` or
    :func:`~monai_noisylabel.detection.conformal_pvalues`.

    Args:
        scores: name -> ``(N,)`` training scores (higher = more suspicious).
        reference: name -> ``(M,)`` the same scores on the same ``M`` trusted clean samples (aligned: entry
            ``j`` of every array is reference sample ``j``); a score without one weighs 0.
        include: names to combine; default as in :func:`combine_scores`.

    Returns:
        ``(combined (N,), combined reference (M,), weights by name)``.

    Raises:
        ValueError: the inputs of :func:`combine_scores`, or reference arrays of different lengths.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> wrong = np.arange(100) < 30
        >>> separating = rng.normal(0, 1, 100) + 5 * wrong
        >>> bimodal = np.r_[rng.normal(0, 1, 50), rng.normal(9, 1, 50)]  # two views, nothing to do with `wrong`
        >>> ref = {"sep": rng.normal(0, 1, 40), "bi": np.r_[rng.normal(0, 1, 20), rng.normal(9, 1, 20)]}
        >>> combined, ref_combined, w = combine_with_reference({"sep": separating, "bi": bimodal}, ref)
        >>> w["bi"] < 0.1 * w["sep"], ref_combined.shape
        (True, (40,))
    """
    owner = "combine_with_reference"
    if not isinstance(scores, Mapping) or not isinstance(reference, Mapping):
        raise param_error(owner, "scores", "mappings from score name to arrays (scores and reference)", scores)
    names, arrays, w = _resolve_combination(scores, "reference", include, reference)
    refs = _references(owner, names, reference) or []
    lengths = {r.shape[0] for r in refs if r is not None}
    if len(lengths) > 1:
        raise param_error(owner, "reference", "arrays of one length (one entry per reference sample)", sorted(lengths))
    m = lengths.pop() if lengths else 0
    combined = _weighted_rank_mean([_fractional_ranks(a) for a in arrays], w)
    ref_pos = [np.full(m, np.nan) if r is None else _positions(a, r) for a, r in zip(arrays, refs)]
    ref_combined = _weighted_rank_mean(ref_pos, w) if m else np.zeros(0)
    return combined, ref_combined, {k: float(v) for k, v in zip(names, w)}


def detection_metrics(
    scores: NdarrayOrTensor | Sequence[float], is_corrupted: NdarrayOrTensor | Sequence[bool], *, k: int | None = None
) -> dict[str, float]:
    """How well a suspicion score finds the known corrupted labels.

    Uses scikit-learn's ``roc_auc_score`` and ``average_precision_score``. Precision and recall at
    ``k`` look at the ``k`` highest scores; ties at the cut are broken by sample order (a stable sort),
    so a constant score gives the first ``k`` samples.

    Args:
        scores: ``(N,)`` scores, higher = more suspicious; ``+inf`` allowed, NaN not.
        is_corrupted: ``(N,)`` booleans (or 0/1), True where the label was corrupted.
        k: how many top-ranked samples to inspect; default: the number of corrupted samples (then
            precision and recall at k are equal, the "R-precision").

    Returns:
        dict with ``auroc``, ``average_precision``, ``precision_at_k``, ``recall_at_k`` (floats; AUROC and
        AP are NaN when ``is_corrupted`` holds a single class, recall NaN without corrupted samples,
        precision NaN when ``k == 0``) and ``k``.

    Raises:
        ValueError: shapes that differ, NaN scores, non-binary ``is_corrupted``, ``k`` outside [0, N].

    Example:
        >>> m = detection_metrics([0.9, 0.8, 0.1, 0.7], [1, 0, 0, 1])
        >>> round(m["auroc"], 3), round(m["average_precision"], 3), m["precision_at_k"], m["recall_at_k"]
        (0.75, 0.833, 0.5, 0.5)
    """
    owner = "detection_metrics"
    s = as_float_array(owner, "scores", scores, ndim=1)
    if np.isnan(s).any():
        raise param_error(owner, "scores", "free of NaN (score every sample or drop the unscored ones)", "NaN")
    y = as_int_array(owner, "is_corrupted", is_corrupted)
    if y.shape != s.shape:
        raise param_error(owner, "is_corrupted", f"an array of shape {s.shape} like scores", f"shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise param_error(owner, "is_corrupted", "booleans or 0/1", sorted(set(y.tolist()))[:5])
    n, n_pos = s.shape[0], int(y.sum())
    k = n_pos if k is None else check_int(owner, "k", k, minimum=0, maximum=n)
    # sklearn metrics need finite inputs: map +-inf just beyond the finite range, keeping the order.
    finite = s[np.isfinite(s)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    s_metric = np.where(s == np.inf, hi + 1.0, np.where(s == -np.inf, lo - 1.0, s))
    two_classes = 0 < n_pos < n
    auroc = float(roc_auc_score(y, s_metric)) if two_classes else float("nan")
    ap = float(average_precision_score(y, s_metric)) if two_classes else float("nan")
    top = np.argsort(-s_metric, kind="stable")[:k]
    hits = float(y[top].sum())
    return {
        "auroc": auroc,
        "average_precision": ap,
        "precision_at_k": hits / k if k > 0 else float("nan"),
        "recall_at_k": hits / n_pos if n_pos > 0 else float("nan"),
        "k": k,
    }
