"""The fused kernels of ``active_passive.py`` against plain autograd formulas: values, gradients, gradcheck."""

from __future__ import annotations

import pytest
import torch

from monai_noisylabel.losses.active_passive import active_passive_map, binary_active_passive_map

CASES = [
    {"alpha": 1.0, "active": "nce", "beta": 0.0},
    {"alpha": 1.0, "active": "nfl", "gamma": 0.5, "beta": 0.0},
    {"alpha": 0.0, "beta": 1.0, "passive": "rce"},
    {"alpha": 0.0, "beta": 1.0, "passive": "mae"},
    {"alpha": 10.0, "active": "nce", "beta": 0.1, "passive": "rce"},
    {"alpha": 2.0, "active": "nfl", "gamma": 2.0, "beta": 0.5, "passive": "mae"},
]


def _reference(logp, q, alpha=1.0, active="nce", gamma=0.0, beta=0.0, passive="rce", first=0):
    """The formulas of docs/methods/losses.md with plain autograd over dim 2."""
    p = logp.exp()
    out = 0.0
    if alpha > 0:
        a = logp if active == "nce" else (1 - p) ** gamma * logp
        out = out + alpha * (q[:, :, first:] * a[:, :, first:]).sum(2) / a.sum(2)
    if beta > 0:
        qf, pf = q[:, :, first:], p[:, :, first:]
        term = -(pf * qf.clamp(1e-4, 1).log()).sum(2) if passive == "rce" else (qf * (1 - pf)).sum(2)
        out = out + beta * term
    return out


def _inputs(k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 1, k, 3, 3, generator=g, dtype=torch.float64)
    q = torch.softmax(2 * torch.randn(2, 1, k, 3, 3, generator=g, dtype=torch.float64), dim=2)
    return logits, q


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("first", [0, 1])
def test_class_kernel_matches_reference(case, first):
    logits, q = _inputs()
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    qa, qb = q.clone().requires_grad_(), q.clone().requires_grad_()
    ours = active_passive_map(torch.log_softmax(a, 2), qa, first=first, **case)
    ref = _reference(torch.log_softmax(b, 2), qb, first=first, **case)
    torch.testing.assert_close(ours, ref)
    weights = torch.rand(ours.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (ours * weights).sum().backward()
    (ref * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(qa.grad, qb.grad)
    logp = torch.log_softmax(logits, 2).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, y: active_passive_map(x, y, first=first, **case), (logp, q.requires_grad_())
    )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("logits", [True, False])
def test_binary_kernel_matches_two_class_kernel(case, logits):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64)
    t = torch.rand(2, 3, 4, 4, generator=g, dtype=torch.float64)
    if not logits:
        x = torch.sigmoid(x)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    ta, tb = t.clone().requires_grad_(), t.clone().requires_grad_()
    ours = binary_active_passive_map(a, ta, logits=logits, **case)
    if logits:
        logp = torch.stack([torch.nn.functional.logsigmoid(-b), torch.nn.functional.logsigmoid(b)], dim=2)
    else:
        logp = torch.stack([1 - b, b], dim=2).log()
    ref = _reference(logp, torch.stack([1 - tb, tb], dim=2), **case)
    torch.testing.assert_close(ours, ref)
    (ours * t).sum().backward()
    (ref * t).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)
    torch.testing.assert_close(ta.grad, tb.grad)
    assert torch.autograd.gradcheck(
        lambda u, v: binary_active_passive_map(u, v, logits=logits, **case), (x.requires_grad_(), t.requires_grad_())
    )


@pytest.mark.parametrize("case", CASES)
def test_kernels_are_finite_on_saturated_inputs(case):
    x = torch.tensor([-1e4, -50.0, 0.0, 50.0, 1e4]).reshape(1, 1, 5)
    t = torch.tensor([0.0, 1.0, 0.5, 0.0, 1.0]).reshape(1, 1, 5)
    xa = x.clone().requires_grad_()
    out = binary_active_passive_map(xa, t, **case)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(xa.grad).all()
    logits = torch.tensor([1e4, -1e4, 0.0]).reshape(1, 1, 3, 1).expand(1, 1, 3, 2).contiguous().requires_grad_()
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]).reshape(1, 1, 3, 2)
    out = active_passive_map(torch.log_softmax(logits, 2), q, **case)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(logits.grad).all()


def test_retain_graph_backward_twice_gives_the_same_gradient():
    logits, q = _inputs()
    x = logits.clone().requires_grad_()
    out = active_passive_map(torch.log_softmax(x, 2), q, alpha=1.0, active="nfl", gamma=0.5, beta=1.0).sum()
    out.backward(retain_graph=True)
    first = x.grad.clone()
    x.grad = None
    out.backward()
    torch.testing.assert_close(x.grad, first)
