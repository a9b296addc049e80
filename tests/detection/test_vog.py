from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from monai_noisylabel.detection import VoGAccumulator, input_gradients, vog_scores
from monai_noisylabel.detection.vog import _stage_bounds


def _maps(k=6, n=5, shape=(6, 7), seed=0):
    return np.random.default_rng(seed).normal(size=(k, n, *shape))


def _two_pass(maps):
    """Population std over checkpoints per voxel, mean over voxels (the textbook formula)."""
    centred = maps - maps.mean(axis=0)
    return np.sqrt((centred**2).mean(axis=0)).reshape(maps.shape[1], -1).mean(axis=1)


@pytest.mark.parametrize("shape", [(9,), (6, 7), (3, 4, 5)])
def test_identical_gradients_give_zero(shape):
    one = np.random.default_rng(1).normal(size=(4, *shape))
    scores = vog_scores([one] * 6)
    np.testing.assert_allclose(scores, 0.0, atol=1e-6)
    for stage in ("early", "middle", "late"):
        np.testing.assert_allclose(vog_scores([one] * 6, stage=stage), 0.0, atol=1e-6)


@pytest.mark.parametrize("c", [-3.0, 0.5, 2.0])
def test_scaling(c):
    s = _maps()
    np.testing.assert_allclose(vog_scores(c * s), abs(c) * vog_scores(s), rtol=1e-5)


@pytest.mark.parametrize("pool", [1, 2, 3])
def test_constant_map_shift_changes_nothing(pool):
    s = _maps()
    shift = np.random.default_rng(7).normal(scale=10.0, size=s.shape[1:])  # one fixed map per sample
    np.testing.assert_allclose(vog_scores(s + shift, pool=pool), vog_scores(s, pool=pool), rtol=1e-4, atol=1e-6)


def test_welford_equals_two_pass_for_every_stage():
    s = _maps(k=7)
    np.testing.assert_allclose(vog_scores(s), _two_pass(s), rtol=1e-5)
    bounds = _stage_bounds(7)
    assert bounds == [0, 3, 5, 7]  # numpy.array_split(range(7), 3) sizes 3, 2, 2
    for i, stage in enumerate(("early", "middle", "late")):
        np.testing.assert_allclose(vog_scores(s, stage=stage), _two_pass(s[bounds[i] : bounds[i + 1]]), rtol=1e-5)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 10, 11])
def test_stage_bounds_match_array_split(k):
    sizes = [len(part) for part in np.array_split(np.arange(k), 3)]
    assert np.diff(_stage_bounds(k)).tolist() == sizes


def test_pooling_equals_two_pass_on_pooled_maps():
    s = _maps(shape=(6, 7))
    # ceil-mode 2x2 average pooling: partial windows at the edge average the voxels they cover
    pooled = np.zeros((*s.shape[:2], 3, 4))
    for i in range(3):
        for j in range(4):
            pooled[..., i, j] = s[..., 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean(axis=(-2, -1))
    np.testing.assert_allclose(vog_scores(s, pool=2), _two_pass(pooled), rtol=1e-5)


def test_streaming_in_any_batches_equals_one_shot(global_rng_guard):
    s = _maps(k=5, n=6)
    acc = VoGAccumulator(num_checkpoints=5, pool=1)
    rng = np.random.default_rng(3)
    for t in range(5):
        order = rng.permutation(6)
        for part in np.array_split(order, 3):
            acc.update([f"s{i}" for i in part], torch.as_tensor(s[t, part]), checkpoint=t)
    order = [int(i[1:]) for i in acc.ids]
    np.testing.assert_allclose(acc.scores(), vog_scores(s)[order], rtol=1e-5)
    assert acc.state_bytes_per_sample == 3 * 2 * 6 * 7 * 4


def test_resume_from_state_dict_is_exact():
    s = _maps(k=6)
    ids = ["a", "b", "c", "d", "e"]
    full = VoGAccumulator(num_checkpoints=6)
    first = VoGAccumulator(num_checkpoints=6)
    for t in range(6):
        full.update(ids, s[t], t)
        if t < 3:
            first.update(ids, s[t], t)
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    buf.seek(0)
    resumed = VoGAccumulator(num_checkpoints=6)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    for t in range(3, 6):
        resumed.update(ids, s[t], t)
    for stage in ("all", "early", "late"):
        np.testing.assert_array_equal(resumed.scores(stage=stage), full.scores(stage=stage))
    with pytest.raises(ValueError, match="num_checkpoints=4"):
        VoGAccumulator(num_checkpoints=4).load_state_dict(first.state_dict())
    with pytest.raises(ValueError, match="ids not yet updated at checkpoint 2"):
        resumed.update(["a"], s[2, :1], 2)


def test_merge_like_ddp_ranks():
    s = _maps(k=4, n=6)
    ids = [str(i) for i in range(6)]
    ref, r0, r1 = (VoGAccumulator(num_checkpoints=4) for _ in range(3))
    for t in range(4):
        ref.update(ids, s[t], t)
        r0.update(ids[:3], s[t, :3], t)
        r1.update(ids[3:], s[t, 3:], t)
    r0.merge(r1)
    assert r0.ids == ids
    np.testing.assert_array_equal(r0.scores(), ref.scores())
    with pytest.raises(ValueError, match="free of ids this accumulator already holds"):
        r0.merge(r1)
    r0.merge(r1, on_duplicate="first")
    np.testing.assert_array_equal(r0.scores(), ref.scores())


def test_normalizations_and_groups():
    s = _maps(k=4, n=4)
    acc = VoGAccumulator()
    for t in range(4):
        acc.update(["a", "b", "c", "d"], s[t], t)
    raw = acc.scores()
    z = (raw - raw.mean()) / raw.std()
    np.testing.assert_allclose(acc.scores(normalize="zscore"), z)
    np.testing.assert_allclose(acc.scores(normalize="abs_zscore"), np.abs(z))
    by_map = acc.scores(normalize="group_zscore", groups={"a": 0, "b": 0, "c": 1, "d": 1})
    np.testing.assert_allclose(np.abs(by_map), 1.0)
    assert by_map[0] == -by_map[1] and by_map[2] == -by_map[3]
    with pytest.raises(ValueError, match="a mapping with a group for every sample id"):
        acc.scores(normalize="group_zscore", groups={"a": 0})
    with pytest.raises(ValueError, match="'stage' parameter of VoGAccumulator must be 'all' unless num_checkpoints"):
        acc.scores(stage="late")


def test_too_few_checkpoints_and_nonfinite():
    acc = VoGAccumulator(num_checkpoints=6, pool=1)
    g = np.ones((2, 4, 4))
    acc.update(["a", "b"], g, 0)
    assert np.isnan(acc.scores()).all()  # one checkpoint: no variance yet
    bad = g.copy()
    bad[1, 0, 0] = np.nan
    acc.update(["a", "b"], 2 * bad, 1)
    scores = acc.scores()
    assert scores[0] == pytest.approx(0.5) and scores[1] == np.inf
    assert acc.nonfinite_ids() == ["b"]
    middle = acc.scores(stage="middle")
    assert np.isnan(middle[0]) and middle[1] == np.inf


def test_auto_pool_bounds_the_state():
    big = np.zeros((1, 256, 256), np.float32)
    with_stages = VoGAccumulator(num_checkpoints=10)
    with_stages.update(["a"], big, 0)
    assert with_stages.pool == 3 and with_stages.state_bytes_per_sample <= 256 * 1024
    all_only = VoGAccumulator()
    all_only.update(["a"], big, 0)
    assert all_only.pool == 2 and all_only.state_bytes_per_sample == 128 * 1024
    small = VoGAccumulator(num_checkpoints=10)
    small.update(["a"], np.zeros((1, 64, 64)), 0)
    assert small.pool == 1


def test_bad_input_messages():
    acc = VoGAccumulator(num_checkpoints=3, pool=1)
    g = np.zeros((2, 4, 4))
    with pytest.raises(ValueError, match=r"'ids' parameter of VoGAccumulator must be unique within one call.*'x'"):
        acc.update(["x", "x"], g, 0)
    with pytest.raises(ValueError, match=r"'ids' .* must be a sequence of 2 ids"):
        acc.update(["x"], g, 0)
    with pytest.raises(ValueError, match=r"'checkpoint' .* must be an int >= 0 and <= 2. Got 3 instead"):
        acc.update(["x", "y"], g, 3)
    acc.update(["x", "y"], g, 0)
    with pytest.raises(ValueError, match=r"do two samples share an id\?\). Got 'y' instead"):
        acc.update(["y", "z"], g, 0)
    with pytest.raises(ValueError, match=r"maps of spatial shape \(4, 4\)"):
        acc.update(["x", "y"], np.zeros((2, 5, 4)), 1)
    with pytest.raises(ValueError, match="'stage' parameter"):
        acc.scores(stage="final")
    with pytest.raises(ValueError, match="'pool' parameter of VoGAccumulator must be an int >= 1"):
        VoGAccumulator(pool=0)
    with pytest.raises(ValueError, match="maps of one shape at every checkpoint"):
        vog_scores([np.zeros((2, 4)), np.zeros((3, 4))])


def test_vog_scores_inputs_untouched_and_types():
    s = _maps(k=3).astype(np.float32)
    before = s.copy()
    out = vog_scores(torch.as_tensor(s))
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    np.testing.assert_allclose(out, vog_scores(list(s)), rtol=1e-6)
    np.testing.assert_array_equal(s, before)


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.drop = torch.nn.Dropout(0.5)
        self.head = torch.nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.head(self.drop(torch.relu(self.bn(self.conv(x)))))


def test_input_gradients_logit_target_is_analytic():
    net = torch.nn.Conv2d(2, 3, 1)
    x = torch.rand(2, 2, 4, 5)
    y = torch.randint(0, 3, (2, 1, 4, 5), generator=torch.Generator().manual_seed(0))
    g = input_gradients(net, x, y)
    w = net.weight.detach()[:, :, 0, 0]  # (C_out, C_in): d logit_c / d x_in = w[c, in]
    expected = w[y[:, 0]].mean(dim=-1).numpy()  # averaged over the 2 input channels
    assert g.shape == (2, 4, 5) and g.dtype == np.float32
    np.testing.assert_allclose(g, expected, rtol=1e-5)
    onehot = torch.nn.functional.one_hot(y[:, 0], 3).permute(0, 3, 1, 2).float()
    np.testing.assert_allclose(input_gradients(net, x, onehot), g, rtol=1e-5)
    np.testing.assert_allclose(input_gradients(net, x.numpy(), y[:, 0].numpy()), g, rtol=1e-5)


def test_input_gradients_eval_mode_per_sample_and_restores(global_rng_guard):
    with torch.random.fork_rng():  # building the net draws from the global RNG; the call under test must not
        torch.manual_seed(0)
        net = _Net()
    net.train()
    net.head.eval()  # a submodule the user froze must stay frozen
    x = torch.rand(3, 2, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 3, (3, 1, 8, 8), generator=torch.Generator().manual_seed(2))
    running = net.bn.running_mean.clone()
    ce = torch.nn.CrossEntropyLoss(reduction="none")
    loss_fn = lambda logits, labels: ce(logits, labels[:, 0])  # noqa: E731
    batch = input_gradients(net, x, y, target="loss", loss_fn=loss_fn)
    alone = input_gradients(net, x[1:2], y[1:2], target="loss", loss_fn=loss_fn)
    np.testing.assert_allclose(batch[1:2], alone, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(input_gradients(net, x, y), input_gradients(net, x, y))  # no dropout
    assert net.training and net.conv.training and not net.head.training
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(net.bn.running_mean, running)


def test_input_gradients_errors():
    net = torch.nn.Conv2d(1, 3, 1)
    x = torch.rand(2, 1, 4, 4)
    y = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="'target' parameter of input_gradients must be one of 'logit', 'loss'"):
        input_gradients(net, x, y, target="prob")
    with pytest.raises(ValueError, match="'loss_fn' parameter of input_gradients must be a per-sample loss"):
        input_gradients(net, x, y, target="loss")
    with pytest.raises(ValueError, match=r"'labels' parameter of input_gradients must be class indices in \[0, 2\]"):
        input_gradients(net, x, y + 3)
    with pytest.raises(ValueError, match=r"'labels' .* of shape \(2, 1, 4, 4\)"):
        input_gradients(net, x, torch.zeros(2, 1, 4, 3, dtype=torch.long))
    mean_loss = torch.nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match="keeps the batch dimension"):
        input_gradients(net, x, y[:, 0], target="loss", loss_fn=mean_loss)
