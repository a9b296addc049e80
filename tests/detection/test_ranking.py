from __future__ import annotations

import numpy as np
import pytest
import torch

from monai_noisylabel.detection import (
    DEFAULT_COMBINED_SCORES,
    combine_scores,
    detection_metrics,
    normalize_scores,
    separation_weight,
)


def test_normalize_hand_values():
    s = np.array([1.0, 2.0, np.nan, 5.0])
    z = normalize_scores(s)  # mean 8/3, population std sqrt(26/9)
    np.testing.assert_allclose(z[[0, 1, 3]], (np.array([1.0, 2.0, 5.0]) - 8 / 3) / np.sqrt(26 / 9))
    assert np.isnan(z[2])
    np.testing.assert_allclose(normalize_scores(s, method="abs_zscore")[[0, 1, 3]], np.abs(z[[0, 1, 3]]))
    np.testing.assert_array_equal(normalize_scores(s, method="raw"), s)
    g = normalize_scores([1.0, 3.0, 100.0, 7.0], method="group_zscore", groups=np.array([0, 0, 1, 2]))
    np.testing.assert_allclose(g, [-1.0, 1.0, 0.0, 0.0])  # groups of one sample map to 0
    with pytest.raises(ValueError, match="'groups' parameter of normalize_scores must be a sequence of N group keys"):
        normalize_scores(s, method="group_zscore")
    with pytest.raises(ValueError, match="'groups' parameter of normalize_scores must be a sequence of 4 group keys"):
        normalize_scores(s, method="group_zscore", groups=[0, 1])
    with pytest.raises(ValueError, match="'groups' parameter of normalize_scores must be None unless"):
        normalize_scores(s, groups=[0, 0, 0, 0])
    with pytest.raises(ValueError, match="'method' parameter"):
        normalize_scores(s, method="minmax")


def test_combine_rank_average_hand_values(global_rng_guard):
    a = [0.1, 0.4, 0.3, 0.2]  # ranks 1 4 3 2 -> 0, 1, 2/3, 1/3
    b = [5.0, 5.0, 1.0, 9.0]  # ranks 2.5 2.5 1 4 -> 0.5, 0.5, 0, 1
    np.testing.assert_allclose(combine_scores([a, b]), [0.25, 0.75, 1 / 3, 2 / 3])
    np.testing.assert_allclose(combine_scores([a, b], weights=[1, 0]), [0.0, 1.0, 2 / 3, 1 / 3])
    np.testing.assert_allclose(combine_scores([np.array(a), torch.tensor(b)], weights=[3, 1]), [0.125, 0.875, 0.5, 0.5])


def test_combine_nan_inf_and_default_set():
    assert DEFAULT_COMBINED_SCORES == ("loss", "offset")
    scores = {"vog": [3.0, 2.0, 1.0], "loss": [0.1, np.inf, np.nan], "offset": [0.0, 1.0, 2.0]}
    # loss ranks over the 2 scored samples: 0, 1 (inf = most suspicious); offset 0, .5, 1
    np.testing.assert_allclose(combine_scores(scores), [0.0, 0.75, 1.0])
    np.testing.assert_allclose(combine_scores(scores, include=["vog"]), [1.0, 0.5, 0.0])
    np.testing.assert_allclose(combine_scores(scores, include=["vog", "offset"], weights={"vog": 0.0}), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(combine_scores({"vog": [1.0, 2.0]}), [0.0, 1.0])  # none of the defaults: all
    out = combine_scores([[1.0, np.nan], [np.nan, np.nan]])
    assert out[0] == 0.5 and np.isnan(out[1])


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (({},), {}, "'scores' parameter of combine_scores must be a non-empty"),
        (([],), {}, "'scores' parameter of combine_scores must be a non-empty"),
        (([[1.0, 2.0], [1.0]],), {}, "must be arrays of one length"),
        (({"loss": [1.0]},), {"include": ["vog"]}, "'include' parameter of combine_scores must be a non-empty subset"),
        (([[1.0, 2.0]],), {"weights": [1.0, 2.0]}, "must be 1 weights"),
        (([[1.0, 2.0]],), {"weights": [-1.0]}, "'weights' parameter of combine_scores must be finite, >= 0"),
        (([[1.0, 2.0]],), {"include": ["a"]}, "'include' parameter of combine_scores must be None"),
    ],
)
def test_combine_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        combine_scores(*args, **kwargs)


def test_metrics_hand_computed(global_rng_guard):
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    y = np.array([1, 0, 1, 0, 0, 1])
    m = detection_metrics(scores, y)
    # AUROC: positive-negative pairs ordered right: 0.9 beats 3, 0.7 beats 2, 0.4 beats 0 -> 5 of 9
    assert m["auroc"] == pytest.approx(5 / 9)
    # AP: precision at each hit = 1/1, 2/3, 3/6 -> mean
    assert m["average_precision"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    assert m["k"] == 3 and m["precision_at_k"] == pytest.approx(2 / 3) and m["recall_at_k"] == pytest.approx(2 / 3)
    m4 = detection_metrics(scores, y.astype(bool), k=4)
    assert m4["precision_at_k"] == 0.5 and m4["recall_at_k"] == pytest.approx(2 / 3)


def test_metrics_perfect_ties_inf_and_single_class():
    y = [0, 0, 1, 1]
    perfect = detection_metrics([0.1, 0.2, 0.8, np.inf], y)
    assert perfect["auroc"] == 1.0 and perfect["average_precision"] == 1.0 and perfect["precision_at_k"] == 1.0
    inverted = detection_metrics([0.9, 0.8, 0.1, 0.0], y)
    assert inverted["auroc"] == 0.0 and inverted["recall_at_k"] == 0.0
    ties = detection_metrics([1.0, 1.0, 1.0, 1.0], y)
    assert ties["auroc"] == 0.5 and ties["precision_at_k"] == 0.0  # stable sort: the first k samples
    none = detection_metrics([0.1, 0.2], [0, 0])
    assert np.isnan(none["auroc"]) and np.isnan(none["average_precision"]) and np.isnan(none["recall_at_k"])
    assert np.isnan(none["precision_at_k"])  # k defaults to 0


@pytest.mark.parametrize(
    ("scores", "y", "kwargs", "match"),
    [
        ([0.1, np.nan], [0, 1], {}, "'scores' parameter of detection_metrics must be free of NaN"),
        ([0.1, 0.2], [0, 1, 1], {}, r"'is_corrupted' parameter of detection_metrics must be an array of shape \(2,\)"),
        ([0.1, 0.2], [0, 2], {}, "must be booleans or 0/1"),
        ([0.1, 0.2], [0, 1], {"k": 3}, "'k' parameter of detection_metrics must be an int >= 0 and <= 2"),
    ],
)
def test_metrics_bad_input(scores, y, kwargs, match):
    with pytest.raises(ValueError, match=match):
        detection_metrics(scores, y, **kwargs)


def test_separation_weight_prefers_the_score_that_splits():
    rng = np.random.default_rng(0)
    corrupted = np.r_[np.zeros(50, bool), np.ones(50, bool)]
    splits = np.where(corrupted, rng.normal(6, 1, 100), rng.normal(0, 1, 100))  # two clear groups
    blurred = np.where(corrupted, rng.normal(0.6, 1, 100), rng.normal(0, 1, 100))  # mostly overlapping
    w_split, w_blur = separation_weight(splits), separation_weight(blurred)
    assert w_split > 4 * w_blur and w_split <= 25.0  # D capped at 5
    from sklearn.metrics import roc_auc_score

    equal = roc_auc_score(corrupted, combine_scores([splits, blurred]))
    weighted = roc_auc_score(corrupted, combine_scores([splits, blurred], weights="separation"))
    assert weighted > equal and weighted > 0.99


def test_separation_weight_degenerate_inputs():
    assert separation_weight([1.0, 1.0, 2.0]) == 0.0  # fewer than 4 distinct values
    outlier = np.r_[np.linspace(0, 1, 199), 1000.0]  # one outlier is not a group
    assert separation_weight(outlier) == 0.0
    assert separation_weight([np.nan, np.inf, 1, 2, 3, 4, 5]) >= 0.0
    # no score can be weighed (too few distinct values): equal weights
    a, b = np.array([0.0, 1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.0, 0.0])
    assert np.allclose(combine_scores([a, b], weights="separation"), combine_scores([a, b]))


def test_named_weights_are_checked():
    with pytest.raises(ValueError, match="'weights'"):
        combine_scores([[1.0, 2.0], [2.0, 1.0]], weights="best")
