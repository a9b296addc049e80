from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from monai_noisylabel.detection import (
    combine_scores,
    combine_with_reference,
    conformal_pvalues,
    reference_excess,
    reference_flags,
)


def test_conformal_pvalues_hand_values(global_rng_guard):
    ref = [1.0, 2.0, 3.0, np.nan]  # NaN reference entries are dropped: M = 3
    p = conformal_pvalues([0.5, 2.0, 2.5, 9.0, np.inf, np.nan], ref)
    np.testing.assert_allclose(p[:5], [1.0, 0.75, 0.5, 0.25, 0.25])
    assert np.isnan(p[5])
    with pytest.raises(ValueError, match="'reference' parameter of conformal_pvalues"):
        conformal_pvalues([1.0], [np.nan])


def test_pvalues_of_exchangeable_scores_are_uniform():
    rng = np.random.default_rng(0)
    p = conformal_pvalues(rng.normal(size=4000), rng.normal(size=99))
    # super-uniform by construction; close to uniform for exchangeable draws
    assert abs(np.mean(p <= 0.1) - 0.1) < 0.04 and abs(np.mean(p <= 0.5) - 0.5) < 0.1


def test_reference_excess_estimates_the_fraction_beyond_the_reference():
    rng = np.random.default_rng(2)
    ref = rng.normal(0, 1, 1000)
    for frac in (0.1, 0.25, 0.5):
        n_bad = int(frac * 200)
        train = np.r_[rng.normal(0, 1, 200 - n_bad), rng.normal(8, 1, n_bad)]
        assert reference_excess(train, ref) == pytest.approx(frac, abs=0.05)
    # memorized clean samples (scores below the reference) do not count
    assert reference_excess(rng.normal(-2, 0.5, 200), ref) == 0.0
    with pytest.raises(ValueError, match="'level' parameter of reference_excess"):
        reference_excess([1.0], [1.0], level=1.0)


def test_no_corruption_flags_almost_nothing():
    """Training scores drawn like the reference (clean labels): the data-driven rule flags (almost) none."""
    flagged = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        flagged.append(reference_flags(rng.gamma(2.0, 1.0, 160), rng.gamma(2.0, 1.0, 24)).sum())
    assert np.mean(flagged) <= 0.02 * 160
    # and with the usual memorization shift (clean training scores below the reference): none at all
    rng = np.random.default_rng(0)
    assert reference_flags(0.7 * rng.gamma(2.0, 1.0, 160), rng.gamma(2.0, 1.0, 24)).sum() == 0


def test_bimodal_score_unrelated_to_corruption_does_not_outweigh_the_separating_one():
    rng = np.random.default_rng(0)
    n, m = 200, 30
    wrong = rng.random(n) < 0.3
    view = rng.random(n) < 0.5  # two views: a score that is strongly bimodal for a reason unrelated to the labels
    bimodal = rng.normal(0, 1, n) + 10 * view
    separating = rng.normal(0, 1, n) + 2.5 * wrong  # overlaps, not bimodal
    ref_view = rng.random(m) < 0.5
    reference = {"bimodal": rng.normal(0, 1, m) + 10 * ref_view, "separating": rng.normal(0, 1, m)}
    scores = {"bimodal": bimodal, "separating": separating}
    combined, ref_combined, weights = combine_with_reference(scores, reference, include=["bimodal", "separating"])
    assert weights["bimodal"] < 0.1 * weights["separating"]
    auc = roc_auc_score(wrong, combined)
    assert auc > 0.9 and auc >= roc_auc_score(wrong, separating) - 0.02
    # the bimodality weighting is fooled by the same data: the reason the reference is the default
    by_split = roc_auc_score(wrong, combine_scores(scores, include=["bimodal", "separating"], weights="separation"))
    assert by_split < auc - 0.1
    same = combine_scores(scores, include=["bimodal", "separating"], weights="reference", reference=reference)
    np.testing.assert_allclose(same, combined)
    # the reference's combined values are the clean distribution: flags land on the wrong labels
    flags = reference_flags(combined, ref_combined)
    assert wrong[flags].mean() > 0.65 and flags[wrong].mean() > 0.6  # precision and recall


def test_reference_weights_edge_cases():
    a, b = np.arange(10.0), np.arange(10.0)[::-1]
    # no score exceeds its reference: equal weights over the referenced scores, 0 for the others
    out = combine_scores([a, b], weights="reference", reference=[np.full(5, 100.0), None])
    np.testing.assert_allclose(out, combine_scores([a]))
    with pytest.raises(ValueError, match="'reference' parameter of combine_scores must be reference scores"):
        combine_scores([a, b], weights="reference")
    with pytest.raises(ValueError, match="'reference' parameter of combine_with_reference must be arrays of one"):
        combine_with_reference({"a": a, "b": b}, {"a": np.zeros(3), "b": np.zeros(4)}, include=["a", "b"])
