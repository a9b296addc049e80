from __future__ import annotations

import io

import pytest
import torch
from monai.inferers import SimpleInferer
from torch import nn

from monai_noisylabel.refurbish import EMATeacher, build_pseudo_labels, ema_decay, predict_probabilities


def _net(seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():  # layer init draws from the global RNG: keep the guard's state intact
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net


class _CompiledLike(nn.Module):
    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self._orig_mod = net


def _params(m: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def test_ema_decay_formula():
    assert ema_decay(0) == 0.0
    assert ema_decay(1) == 0.5
    assert ema_decay(3) == 0.75
    assert ema_decay(99) == pytest.approx(0.99)
    assert ema_decay(10_000) == 0.99
    assert ema_decay(10_000, decay=0.9) == 0.9
    with pytest.raises(ValueError, match=r"The 'step' parameter of ema_decay must be an int >= 0\. Got -1 instead\."):
        ema_decay(-1)
    with pytest.raises(ValueError, match=r"'decay' parameter of ema_decay .* Got 1\.5 instead"):
        ema_decay(1, 1.5)


def test_teacher_is_a_frozen_deep_copy():
    net = _net()
    teacher = EMATeacher(net)
    assert teacher.module is not net and teacher.step == 0
    assert not teacher.module.training
    assert all(not p.requires_grad for p in teacher.module.parameters())
    assert all(p.requires_grad for p in net.parameters())
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert not torch.equal(teacher.module[0].weight, net[0].weight)  # independent until update
    out = teacher(torch.zeros(1, 1, 4, 4))
    assert out.grad_fn is None


def test_update_rule_matches_formula(global_rng_guard):
    net = _net(0)
    teacher = EMATeacher(net, decay=0.99)
    expected = _params(teacher.module)
    gen = torch.Generator().manual_seed(5)
    for step in range(4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
        a = min(1 - 1 / (step + 1), 0.99)
        student = _params(net)
        for k in expected:
            if expected[k].is_floating_point() and k in dict(net.named_parameters()):
                expected[k] = a * expected[k] + (1 - a) * student[k]
            else:
                expected[k] = student[k]  # buffers are copied
        teacher.update(net)
        got = _params(teacher.module)
        for k in expected:
            torch.testing.assert_close(got[k], expected[k])
    assert teacher.step == 4
    # the first update copied the student outright (a = 0); the cap applies later
    teacher.step = 10_000
    before = _params(teacher.module)["3.bias"]
    teacher.update(net)
    torch.testing.assert_close(teacher.module[3].bias, 0.99 * before + 0.01 * net[3].bias.detach())


def test_buffers_copied_and_student_untouched():
    net = _net()
    teacher = EMATeacher(net)
    net.train()
    net(torch.randn(4, 1, 6, 6, generator=torch.Generator().manual_seed(0)))  # moves BN running stats
    student_before = _params(net)
    teacher.update(net)
    torch.testing.assert_close(teacher.module[1].running_mean, net[1].running_mean)
    torch.testing.assert_close(teacher.module[1].running_var, net[1].running_var)
    assert int(teacher.module[1].num_batches_tracked) == int(net[1].num_batches_tracked) == 1
    for k, v in _params(net).items():
        assert torch.equal(v, student_before[k])


def test_wrappers_are_unwrapped():
    net = _net()
    teacher = EMATeacher(nn.DataParallel(net))
    assert isinstance(teacher.module, nn.Sequential)
    teacher.update(nn.DataParallel(net))
    compiled = _CompiledLike(net)  # torch.compile's OptimizedModule keeps the network as `_orig_mod`
    teacher.update(compiled)
    assert isinstance(EMATeacher(compiled).module, nn.Sequential)
    assert teacher.step == 2


def test_state_dict_round_trip_weights_only(tmp_path):
    net = _net(1)
    teacher = EMATeacher(net, decay=0.95)
    for _ in range(3):
        with torch.no_grad():
            net[0].weight.mul_(1.1)
        teacher.update(net)
    buf = io.BytesIO()
    torch.save(teacher.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    other = EMATeacher(_net(2))
    other.load_state_dict(state)
    assert other.step == 3 and other.decay == 0.95
    for k, v in _params(teacher.module).items():
        assert torch.equal(v, _params(other.module)[k])
    teacher.update(net)
    other.update(net)
    assert torch.equal(teacher.module[0].weight, other.module[0].weight)  # resumed runs stay identical
    assert all(not p.requires_grad for p in other.module.parameters())
    with pytest.raises(ValueError, match=r"'state' parameter of EMATeacher.load_state_dict"):
        other.load_state_dict({"model": {}})


def test_bad_inputs():
    with pytest.raises(
        ValueError, match=r"The 'model' parameter of EMATeacher must be a torch.nn.Module\. Got 'int' instead\."
    ):
        EMATeacher(3)  # type: ignore[arg-type]
    teacher = EMATeacher(_net())
    with pytest.raises(ValueError, match=r"'model' parameter of EMATeacher.update must be the architecture"):
        teacher.update(nn.Linear(2, 2))
    wide = nn.Sequential(nn.Conv2d(1, 5, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 3, 1))
    with pytest.raises(
        ValueError, match=r"a parameter '0.weight' of shape \(4, 1, 3, 3\)\. Got \(5, 1, 3, 3\) instead"
    ):
        teacher.update(wide)


def test_predict_probabilities_restores_mode_and_feeds_pseudo_labels(global_rng_guard):
    net = _net()
    net.train()
    x = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    probs = predict_probabilities(net, x)
    assert net.training  # restored
    assert probs.shape == (2, 3, 8, 8) and probs.grad_fn is None
    torch.testing.assert_close(probs.sum(1), torch.ones(2, 8, 8))
    net.eval()
    torch.testing.assert_close(probs, torch.softmax(net(x), 1).detach())
    net.train()
    torch.testing.assert_close(predict_probabilities(net, x, inferer=SimpleInferer()), probs)
    teacher = EMATeacher(net)
    teacher.update(net)
    t_probs = predict_probabilities(teacher, x)
    torch.testing.assert_close(t_probs, probs)  # after one update the teacher equals the student
    res = build_pseudo_labels(t_probs, torch.zeros(2, 1, 8, 8, dtype=torch.long), delta=0.5)
    assert res.refurbished.all() and res.labels.shape == (2, 1, 8, 8)
    sig = predict_probabilities(lambda t: (t * 0, t), x, activation="sigmoid")
    torch.testing.assert_close(sig, torch.full_like(x, 0.5))  # tuple output: first element used
    with pytest.raises(ValueError, match=r"'activation' parameter of predict_probabilities"):
        predict_probabilities(net, x, activation="relu")
