from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from monai.losses import DiceLoss

from monai_noisylabel.detection import SampleLossAccumulator, per_sample_loss, sample_loss_scores


def test_per_sample_loss_reduces_non_batch_dims():
    logits = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 2, (3, 1, 4, 4), generator=torch.Generator().manual_seed(1))
    dice = DiceLoss(to_onehot_y=True, softmax=True, reduction="none")  # (B, C, 1, 1)
    out = per_sample_loss(dice, logits, labels)
    assert out.shape == (3,)
    np.testing.assert_allclose(out[1].item(), dice(logits[1:2], labels[1:2]).mean().item(), rtol=1e-6)
    ce = torch.nn.CrossEntropyLoss()
    assert per_sample_loss(ce, logits[:1], labels[:1, 0]).shape == (1,)  # a scalar is fine for one sample
    with pytest.raises(ValueError, match=r"'loss_fn' parameter of per_sample_loss must be a loss that keeps the batch"):
        per_sample_loss(ce, logits, labels[:, 0])
    with pytest.raises(ValueError, match="whose first dimension is the batch size 3"):
        per_sample_loss(lambda a, b: torch.zeros(2), logits, labels)


def test_window_mean_hand_values(global_rng_guard):
    table = np.array(
        [
            [5.0, 5.0, 5.0],
            [4.0, 1.0, 2.0],
            [3.0, 2.0, np.nan],  # sample 2 not measured at epoch 3
            [2.0, 3.0, 4.0],
            [1.0, 4.0, 6.0],
            [0.0, 5.0, 8.0],
        ]
    )
    # default (1/3, 1): rows 2..5
    np.testing.assert_allclose(sample_loss_scores(table), [1.5, 3.5, 6.0])
    np.testing.assert_allclose(sample_loss_scores(table, window="last"), [0.0, 5.0, 8.0])
    np.testing.assert_allclose(sample_loss_scores(table, window=(0.0, 1.0)), [2.5, 3.33333333, 5.0])
    np.testing.assert_allclose(sample_loss_scores(table, window=(0.0, 0.1)), [5.0, 5.0, 5.0])  # at least one row
    np.testing.assert_allclose(sample_loss_scores(table[0]), [5.0, 5.0, 5.0])  # one epoch as (N,)


def test_missing_and_nonfinite():
    table = np.array([[1.0, np.nan, 1.0], [1.0, np.nan, np.inf]])
    out = sample_loss_scores(table, window=(0.0, 1.0))
    assert out[0] == 1.0 and np.isnan(out[1]) and out[2] == np.inf
    with pytest.raises(ValueError, match=r"'losses' parameter of sample_loss_scores must be free of -inf"):
        sample_loss_scores([[-np.inf]])


@pytest.mark.parametrize("window", [(0.5, 0.5), (0.8, 0.2), (-0.1, 1.0), (0.0, 1.5), "first", (0.1,)])
def test_bad_window(window):
    with pytest.raises(ValueError, match="'window' parameter of sample_loss_scores"):
        sample_loss_scores(np.ones((3, 2)), window=window)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"must be a 1-D or 2-D array. Got 'an array of shape \(1, 2, 3\)'"):
        sample_loss_scores(np.ones((1, 2, 3)))


def test_accumulator_table_scores_and_flags():
    acc = SampleLossAccumulator()
    acc.update(["a", "b"], torch.tensor([1.0, 2.0]), epoch=2)
    acc.update(["c"], np.array([3.0]), epoch=2)
    acc.update(["b", "a"], [float("nan"), 0.5], epoch=1)  # out of order: rows are sorted by epoch
    assert acc.ids == ["a", "b", "c"] and acc.epochs == [1, 2]
    np.testing.assert_array_equal(acc.table(), [[0.5, np.inf, np.nan], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(acc.scores(window=(0.0, 1.0)), [0.75, np.inf, 3.0])
    np.testing.assert_array_equal(acc.nonfinite_counts(), [0, 1, 0])
    with pytest.raises(ValueError, match=r"ids not already recorded at epoch 2 \(do two samples share an id\?\)"):
        acc.update(["d", "c"], [1.0, 1.0], epoch=2)
    assert acc.ids == ["a", "b", "c"]  # the failed call recorded nothing
    with pytest.raises(ValueError, match="must be unique within one call"):
        acc.update([7, 7], [1.0, 1.0], epoch=3)
    with pytest.raises(ValueError, match="a sequence of 2 ids"):
        acc.update(["x"], [1.0, 1.0], epoch=3)


def test_accumulator_resume_and_merge():
    rng = np.random.default_rng(0)
    table = rng.random((4, 6))
    ids = [f"s{i}" for i in range(6)]
    full, first = SampleLossAccumulator(), SampleLossAccumulator()
    for e in range(4):
        full.update(ids, table[e], e)
        if e < 2:
            first.update(ids, table[e], e)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = SampleLossAccumulator()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    for e in range(2, 4):
        resumed.update(ids, table[e], e)
    np.testing.assert_array_equal(resumed.table(), full.table())
    np.testing.assert_array_equal(resumed.scores(), full.scores())

    r0, r1 = SampleLossAccumulator(), SampleLossAccumulator()
    for e in range(4):
        r0.update(ids[:3], table[e, :3], e)
        r1.update(ids[3:], table[e, 3:], e)
    r0.merge(r1)
    np.testing.assert_array_equal(r0.table(), full.table())
    with pytest.raises(ValueError, match="free of ids already recorded at epoch 0"):
        r0.merge(r1)
    r0.merge(r1, on_duplicate="first")
    np.testing.assert_array_equal(r0.table(), full.table())


def test_empty_accumulator():
    acc = SampleLossAccumulator()
    assert acc.scores().shape == (0,) and acc.table().shape == (0, 0) and acc.nonfinite_counts().shape == (0,)
