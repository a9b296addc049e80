"""Patient bootstrap: intervals, paired differences, weights."""

from __future__ import annotations

import numpy as np
import pytest

from monai_noisylabel.downstream import patient_bootstrap, row_metric


def test_paired_difference_is_tight_when_arms_move_together(global_rng_guard):
    rng = np.random.default_rng(0)
    pts = [f"p{i}" for i in range(40)]
    base = rng.normal(0.6, 0.2, 40)
    arms = {
        "ref": [row_metric("mean", pts, pts, base)],
        "better": [row_metric("mean", pts, pts, base + 0.02)],
        "same": [row_metric("mean", pts, pts, base + rng.normal(0, 0.01, 40))],
    }
    out = patient_bootstrap(arms, pts, reference="ref", n_boot=300)
    assert out["better"]["diff_excludes_zero"] and out["better"]["diff"] == pytest.approx(0.02)
    assert not out["same"]["diff_excludes_zero"]
    assert out["ref"]["diff"] is None
    # the arms' own intervals overlap widely, the paired difference does not include 0
    assert out["better"]["low"] < out["ref"]["high"]


def test_rows_follow_their_patient():
    f = row_metric("auc", ["a", "a", "b", "b"], ["a", "b"], [0, 1, 0, 1], [0.1, 0.9, 0.8, 0.2])
    assert f(np.array([1, 0])) == 1.0 and f(np.array([0, 1])) == 0.0
    r = row_metric("pearson_r", list("abcd"), list("abcd"), [1, 2, 3, 4], [2, 4, 6, 8])
    assert r(np.ones(4)) == pytest.approx(1.0)


def test_seeds_average_and_bad_reference():
    pts = list(range(10))
    arms = {"a": [row_metric("mean", pts, pts, np.zeros(10)), row_metric("mean", pts, pts, np.ones(10))]}
    assert patient_bootstrap(arms, pts, n_boot=10)["a"]["value"] == 0.5
    with pytest.raises(ValueError, match="'reference' parameter"):
        patient_bootstrap(arms, pts, reference="b")
