"""split_noisy (GMM / flagged / offset split, logged skips), lcm_mix_weight, lcm_pseudo_labels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from monai_noisylabel.refurbish import lcm_mix_weight, lcm_pseudo_labels, split_noisy


def _table(losses, noisy_prob, **extra):
    return {
        f"s{i}": {"loss": loss, "gmm_noisy_prob": p, **{k: v[i] for k, v in extra.items()}}
        for i, (loss, p) in enumerate(zip(losses, noisy_prob))
    }


def test_gmm_split_keeps_posteriors():
    table = _table([0.1, 0.2, 0.9, 0.15], [0.01, 0.3, 0.96, 0.6])
    noisy, reason = split_noisy(table)
    assert reason == "" and set(noisy) == {"s2", "s3"}
    assert noisy["s2"] == pytest.approx(0.04) and noisy["s3"] == pytest.approx(0.4)
    assert set(split_noisy(table, threshold=0.9)[0]) == {"s2"}


def test_flagged_split_is_a_hard_decision():
    table = _table([0.1, 0.2, 0.9, 0.15], [0.01, 0.3, 0.96, 0.6], flagged=[True, False, False, True])
    assert split_noisy(table, source="flagged") == ({"s0": 0.0, "s3": 0.0}, "")


def test_offset_split_uses_a_gmm_over_the_offset_column():
    rng = np.random.default_rng(0)
    offset = np.concatenate([rng.normal(0.1, 0.02, 12), rng.normal(2.0, 0.1, 4)])
    table = _table([0.5] * 16, [0.0] * 16, offset=offset.tolist())
    noisy, _ = split_noisy(table, source="offset")
    assert set(noisy) == {f"s{i}" for i in range(12, 16)}


@pytest.mark.parametrize(
    ("table", "reason"),
    [
        (_table([0.3] * 6, [0.0] * 6), "all 6 per-sample losses are equal"),
        (_table([0.1, 0.9], [0.0, 1.0]), "only 2 samples have a loss"),
        (_table([None] * 5, [None] * 5), "only 0 samples"),
        (_table([0.1] * 5, [0.0] * 5, offset=[1.0] * 5), None),
    ],
)
def test_a_gmm_that_cannot_split_is_skipped_with_the_reason(table, reason):
    if reason is None:  # equal offsets
        noisy, why = split_noisy(table, source="offset")
        assert noisy is None and "offset scores are equal" in why
        return
    noisy, why = split_noisy(table)
    assert noisy is None and reason in why


def test_bad_parameters():
    with pytest.raises(ValueError, match="'source' parameter of split_noisy"):
        split_noisy({}, source="loss")
    with pytest.raises(
        ValueError, match="'threshold' parameter of split_noisy must be a finite number >= 0.0 and < 1.0"
    ):
        split_noisy({}, threshold=1.0)


def test_mix_weight_ramps_from_the_given_label_to_p_clean():
    assert lcm_mix_weight(0.3, 2, start=4, rampup_epochs=3) == 1.0  # before the sample was called noisy
    ws = [lcm_mix_weight(0.3, e, start=4, rampup_epochs=3) for e in range(4, 9)]
    assert all(a >= b for a, b in itertools.pairwise(ws)) and ws[-1] == pytest.approx(0.3)


def test_lcm_pseudo_labels_and_nan_rows():
    given = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    probs = torch.zeros(2, 3, 4, 4)
    probs[:, 2] = 1.0
    probs[1, 0, 0, 0] = float("nan")
    r = lcm_pseudo_labels(probs, given, [0.0, 0.0])
    assert r.refurbished.tolist() == [True, False] and "non-finite" in r.reasons[1]
    assert torch.equal(r.labels[0], torch.full((1, 4, 4), 2)) and torch.equal(r.labels[1], given[1])
    assert r.fraction_changed.tolist() == [1.0, 0.0] and r.labels.dtype == given.dtype
    keep = lcm_pseudo_labels(probs[:1], given[:1], 1.0)  # P(clean) = 1: the given label
    assert torch.equal(keep.labels, given[:1])
