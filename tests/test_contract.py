"""The shared contract every exported transform and loss keeps (in the spirit of sklearn's estimator checks).

Transforms: same seed same output; ``prob=0`` is the identity; the caller gets back the container type
and device it gave (numpy, torch, MetaTensor with its affine); array and dictionary versions agree;
2D and 3D; the input is never mutated; the global RNGs are never touched; labels stay in range and soft
labels in [0, 1]. Losses: finite, deterministic, finite gradients, inputs untouched, global RNG untouched,
2D and 3D, ``reduction="none"`` keeps the batch first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

import monai_noisylabel as nl
from monai_noisylabel.data import make_echo_case


def _label(ndim: int) -> np.ndarray:
    lab = make_echo_case(5, 0, size=(32, 32))["label"]
    if ndim == 3:
        lab = np.stack([lab] * 12, axis=-1)
    return lab[None].astype(np.int64)


def _soft(ndim: int) -> np.ndarray:
    lab = _label(ndim)[0]
    rng = np.random.default_rng(0)
    soft = np.stack([(lab == 1) * 0.8, (lab == 3) * 0.7]).astype(np.float32)
    return np.clip(soft + 0.2 * rng.random(soft.shape, dtype=np.float32), 0, 1)


def _raters(ndim: int) -> np.ndarray:
    lab = _label(ndim)[0]
    return np.stack(
        [lab == 1, (lab == 1) | (lab == 2), (lab == 1) & (np.arange(lab.shape[0])[:, None] % 7 > 0)]
    ).astype(np.uint8)


@dataclass
class Case:
    name: str
    array: Callable[..., Any]
    dict_: Callable[..., Any]
    data: Callable[[int], np.ndarray]
    kind: str  # "label" (values within the input's classes), "soft" ([0, 1]), "index" (small ints)
    random: bool = False
    in_key: str = "label"
    out_key: str = "label"


CASES = [
    Case("RandLabelNoise", nl.RandLabelNoise, lambda **k: nl.RandLabelNoised("label", **k), _label, "label", True),
    Case("RandLabelBias", nl.RandLabelBias, lambda **k: nl.RandLabelBiasd("label", **k), _label, "label", True),
    Case(
        "RandLabelOmission",
        nl.RandLabelOmission,
        lambda **k: nl.RandLabelOmissiond("label", **k),
        _label,
        "label",
        True,
    ),
    Case("ThresholdBinarize", nl.ThresholdBinarize, lambda **k: nl.ThresholdBinarized("label", **k), _soft, "index"),
    Case(
        "ConfidenceToSoftLabel",
        nl.ConfidenceToSoftLabel,
        lambda **k: nl.ConfidenceToSoftLabeld("label", **k),
        _soft,
        "soft",
    ),
    Case(
        "MultiRaterSoftLabel",
        nl.MultiRaterSoftLabel,
        lambda **k: nl.MultiRaterSoftLabeld("raters", output_key="soft", **k),
        _raters,
        "soft",
        in_key="raters",
        out_key="soft",
    ),
]
BACKENDS = {
    "numpy": lambda a: a.copy(),
    "torch": lambda a: torch.as_tensor(a.copy()),
    "meta": lambda a: MetaTensor(torch.as_tensor(a.copy()), affine=torch.diag(torch.tensor([0.5, 0.5, 2.0, 1.0]))),
}
IDS = [c.name for c in CASES]


def _build(case: Case, dict_version: bool = False, **kwargs: Any) -> Any:
    if case.random:
        kwargs.setdefault("prob", 1.0)
    t = case.dict_(**kwargs) if dict_version else case.array(**kwargs)
    if case.random:
        t.set_random_state(seed=7)
    return t


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_transform_contract(case, ndim, backend, global_rng_guard):
    data = BACKENDS[backend](case.data(ndim))
    before = _np(data).copy()
    out1 = _build(case)(data)
    out2 = _build(case)(BACKENDS[backend](case.data(ndim)))
    np.testing.assert_array_equal(_np(out1), _np(out2))  # same seed, same output
    np.testing.assert_array_equal(_np(data), before)  # input not mutated
    assert type(out1) is type(data)  # numpy in, numpy out; torch in, torch out; MetaTensor kept
    if isinstance(data, torch.Tensor):
        assert out1.device == data.device
    if isinstance(data, MetaTensor):
        assert torch.allclose(out1.affine, data.affine)
    assert out1.shape[1:] == data.shape[1:]
    values = _np(out1)
    if case.kind == "label":
        assert out1.dtype == data.dtype
        assert set(np.unique(values)) <= set(np.unique(before)) | {0}
    elif case.kind == "soft":
        assert values.min() >= 0 and values.max() <= 1
    else:
        assert np.array_equal(values, np.round(values)) and values.min() >= 0


@pytest.mark.parametrize("case", [c for c in CASES if c.random], ids=[c.name for c in CASES if c.random])
def test_prob_zero_is_identity(case):
    data = torch.as_tensor(case.data(2))
    t = case.array(prob=0.0)
    t.set_random_state(seed=1)
    assert torch.equal(t(data), data)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_array_and_dict_agree(case):
    data = torch.as_tensor(case.data(2))
    expected = _build(case)(data)
    out = _build(case, dict_version=True)({case.in_key: data, "id": "case0"})
    np.testing.assert_array_equal(_np(out[case.out_key]), _np(expected))


LOSSES = [
    ("NCE", lambda **k: nl.NormalizedCrossEntropyLoss(softmax=True, to_onehot_y=True, **k)),
    ("NFL", lambda **k: nl.NormalizedFocalLoss(softmax=True, to_onehot_y=True, **k)),
    ("RCE", lambda **k: nl.ReverseCrossEntropyLoss(softmax=True, to_onehot_y=True, **k)),
    ("MAE", lambda **k: nl.MeanAbsoluteErrorLoss(softmax=True, to_onehot_y=True, **k)),
    ("NAP", lambda **k: nl.NormalizedActivePassiveLoss(softmax=True, to_onehot_y=True, **k)),
]


@pytest.mark.parametrize("name, make", LOSSES, ids=[n for n, _ in LOSSES])
@pytest.mark.parametrize("ndim", [2, 3])
def test_loss_contract(name, make, ndim, global_rng_guard):
    gen = torch.Generator().manual_seed(0)
    spatial = (12, 10) if ndim == 2 else (8, 6, 5)
    logits = torch.randn(2, 4, *spatial, generator=gen)
    target = torch.randint(0, 4, (2, 1, *spatial), generator=gen)
    x, y = logits.clone().requires_grad_(True), target.clone()
    loss = make()(x, y)
    loss.backward()
    assert loss.ndim == 0 and torch.isfinite(loss) and torch.isfinite(x.grad).all()
    assert torch.equal(x.detach(), logits) and torch.equal(y, target)
    assert torch.equal(make()(logits, target), loss.detach())  # deterministic
    none = make(reduction="none")(logits, target)
    assert none.shape[0] == 2 and torch.isfinite(none).all()


@pytest.mark.parametrize("ndim", [2, 3])
def test_threshold_bce_contract(ndim, global_rng_guard):
    gen = torch.Generator().manual_seed(0)
    spatial = (12, 10) if ndim == 2 else (8, 6, 5)
    logits = torch.randn(2, 1, *spatial, generator=gen).requires_grad_(True)
    conf = torch.rand(2, 1, *spatial, generator=gen)
    loss = nl.ThresholdBinarizedBCELoss(threshold=0.6)(logits, conf)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert nl.ThresholdBinarizedBCELoss(reduction="none")(logits, conf).shape[0] == 2
