"""Mask features and their pooling."""

from __future__ import annotations

import numpy as np
import pytest

from monai_noisylabel.data.synthetic import make_lus_case
from monai_noisylabel.downstream import LUS_FEATURES, lus_mask_features, pool_features


def test_known_features():
    m = np.zeros((40, 20), np.uint8)
    m[10, :] = 1  # a flat pleural line, 1 px thick
    m[11:, 3:5] = 3  # two B-lines, 2 px wide
    m[11:, 12:14] = 3
    m[20:30, 8:11] = 4
    f = lus_mask_features(m)
    assert list(f) == list(LUS_FEATURES)
    assert f["b_line_count"] == 2 and f["b_line_coverage"] == pytest.approx(4 / 20)
    assert f["pleural_coverage"] == 1.0 and f["pleural_thickness"] == pytest.approx(1 / 40)
    assert f["pleural_irregularity"] == pytest.approx(0.0, abs=1e-12)
    assert f["consolidation_count"] == 1 and f["consolidation_depth"] == pytest.approx(30 / 40)
    assert f["consolidation_area"] == pytest.approx(30 / 800)
    wavy = m.copy()
    wavy[10, ::2] = 0
    wavy[13, ::2] = 1
    assert lus_mask_features(wavy)["pleural_irregularity"] > 0.01


def test_empty_mask_and_channel_axis():
    f = lus_mask_features(np.zeros((1, 16, 16), int))
    assert all(v == 0.0 for v in f.values())


def test_features_follow_severity():
    cases = [make_lus_case(2, i, (64, 64)) for i in range(16)]
    sev = np.array([c["severity"] for c in cases])
    b = np.array([lus_mask_features(c["truth"])["b_line_area"] for c in cases])
    assert np.corrcoef(sev, b)[0, 1] > 0.5


@pytest.mark.parametrize(
    ("mask", "match"), [(np.zeros((4, 4, 4)), "an \\(H, W\\) label map"), (np.full((4, 4), 7), "0..4")]
)
def test_bad_masks(mask, match):
    with pytest.raises(ValueError, match=match):
        lus_mask_features(mask)


def test_pool_features():
    out = pool_features([{"a": 1.0}, {"a": 3.0}], [("p", 0), ("p", 0)], names=["a"], ops=("mean", "max"))
    assert out == {("p", 0): {"a_mean": 2.0, "a_max": 3.0}}
    with pytest.raises(ValueError, match="'ops' parameter"):
        pool_features([{"a": 1.0}], ["x"], names=["a"], ops=("median",))
