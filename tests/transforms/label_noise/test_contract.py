"""The shared contract of every exported label-noise transform (array and dictionary), 2D and 3D.

Same seed same output; prob=0 is identity; type, dtype and device kept; array and dict agree; input
never mutated; global RNG untouched; no label value that was not in the input (or background); the
recorded parameters replay the output exactly; fixed_per_sample ignores set_random_state.
"""

from __future__ import annotations

import numpy as np
import pytest

from monai_noisylabel.transforms.label_noise import apply_label_noise, read_label_noise

from ._label_noise_helpers import (
    PAIRS,
    assert_kind,
    assert_unchanged,
    echo_label,
    kinds,
    label_3d,
    snapshot,
    to_numpy,
)

LABELS = {"2d": echo_label(0), "3d": label_3d(16)}
KINDS = list(kinds())
CASES = [
    pytest.param(arr, dic, kw, dim, make, id=f"{arr.__name__}-{dim}-{name}")
    for arr, dic, kw in PAIRS
    for dim in LABELS
    for name, make in KINDS
]


@pytest.mark.parametrize("arr, dic, kw, dim, make", CASES)
def test_contract(arr, dic, kw, dim, make, global_rng_guard):
    x = make(LABELS[dim])
    before = snapshot(x)

    t = arr(**kw).set_random_state(3)
    out = t(x)
    assert_kind(out, x)
    assert_unchanged(before, x)
    record = t.last_record
    assert record["applied"] and record["corrupted"], record  # the PAIRS settings always change these labels
    assert record["changed_voxels"] == int((to_numpy(out) != to_numpy(x)).sum())

    # same seed, same output
    again = arr(**kw).set_random_state(3)(x)
    np.testing.assert_array_equal(to_numpy(again), to_numpy(out))

    # no stray values
    assert set(np.unique(to_numpy(out))) <= set(np.unique(to_numpy(x))) | {0}

    # replay from the record, also from the JSON stored in meta
    replay = apply_label_noise(x, record)
    assert_kind(replay, x)
    np.testing.assert_array_equal(to_numpy(replay), to_numpy(out))
    if hasattr(out, "meta"):
        (stored,) = read_label_noise(out)
        assert stored == [record]
        np.testing.assert_array_equal(to_numpy(apply_label_noise(x, out.meta["label_noise"])), to_numpy(out))

    # the dictionary twin agrees and keeps the input dict
    data = {"label": x, "other": 1}
    data_before = snapshot(data)
    d_out = dic("label", **kw).set_random_state(3)(data)
    assert_unchanged(data_before, data)
    assert_kind(d_out["label"], x)
    np.testing.assert_array_equal(to_numpy(d_out["label"]), to_numpy(out))
    assert d_out["other"] == 1

    # prob=0 is identity, and says so
    ident = arr(prob=0.0, **kw)
    same = ident(x)
    assert_kind(same, x)
    np.testing.assert_array_equal(to_numpy(same), to_numpy(x))
    assert not ident.last_record["applied"] and not ident.last_record["corrupted"]
    assert ident.last_record["params"] == {"ops": []}
    np.testing.assert_array_equal(to_numpy(dic("label", prob=0.0, **kw)(data)["label"]), to_numpy(x))


@pytest.mark.parametrize("arr, dic, kw", PAIRS, ids=[p[0].__name__ for p in PAIRS])
@pytest.mark.parametrize("dim", list(LABELS))
def test_fixed_per_sample_ignores_set_random_state(arr, dic, kw, dim, global_rng_guard):
    x = LABELS[dim]
    outs = [arr(prob=0.5, fixed_per_sample=True, seed=11, **kw).set_random_state(s) for s in (0, 1, 2)]
    results = [to_numpy(t(x, sample_id="case_7")) for t in outs]
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    records = [t.last_record for t in outs]
    assert all(r == records[0] for r in records) and records[0]["sample_id"] == "case_7"
    # the dictionary twin takes the id from the data and agrees with the array transform
    d = dic("label", prob=0.5, fixed_per_sample=True, seed=11, **kw).set_random_state(99)
    np.testing.assert_array_equal(to_numpy(d({"label": x, "id": "case_7"})["label"]), results[0])


@pytest.mark.parametrize("arr, dic, kw", PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_prob_is_the_corruption_rate(arr, dic, kw):
    """Over many fixed-per-sample draws about ``prob`` of the samples are corrupted."""
    x = LABELS["2d"]
    t = arr(prob=0.3, fixed_per_sample=True, seed=0, **kw)
    applied = []
    for i in range(400):
        t(x, sample_id=f"s{i}")
        applied.append(t.last_record["applied"])
    assert 0.22 < np.mean(applied) < 0.38
