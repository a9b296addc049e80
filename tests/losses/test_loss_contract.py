"""Shared contract of every exported loss: shapes, reductions, ignore/weight/mask, stability, MONAI integration."""

from __future__ import annotations

import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor

import monai_noisylabel.losses as losses_module
from monai_noisylabel.losses import (
    MeanAbsoluteErrorLoss,
    NormalizedActivePassiveLoss,
    NormalizedCrossEntropyLoss,
    NormalizedFocalLoss,
    ReverseCrossEntropyLoss,
    ThresholdBinarizedBCELoss,
)

# name -> (class, extra kwargs); the activation kwarg is added per test (the BCE loss always takes logits).
LOSSES = {
    "nce": (NormalizedCrossEntropyLoss, {}),
    "nfl": (NormalizedFocalLoss, {"gamma": 0.5}),
    "rce": (ReverseCrossEntropyLoss, {}),
    "mae": (MeanAbsoluteErrorLoss, {}),
    "nap_nce_rce": (NormalizedActivePassiveLoss, {"active": "nce", "passive": "rce", "alpha": 1.0, "beta": 0.5}),
    "nap_nfl_mae": (NormalizedActivePassiveLoss, {"active": "nfl", "passive": "mae", "alpha": 2.0, "beta": 1.0}),
    "tbce": (ThresholdBinarizedBCELoss, {"threshold": 0.6}),
}
NAMES = list(LOSSES)
APL = [n for n in NAMES if n != "tbce"]


def make(name: str, act: str = "softmax", **kw):
    cls, extra = LOSSES[name]
    args = {**extra, **kw}
    if cls is not ThresholdBinarizedBCELoss and act in ("softmax", "sigmoid"):
        args[act] = True
    return cls(**args)


def per_channel(name: str, act: str) -> bool:
    """True when the unreduced loss has one value per channel (sigmoid / BCE) rather than per voxel."""
    return name == "tbce" or act == "sigmoid"


def data(shape=(2, 3, 5, 6), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(shape, generator=g, dtype=dtype)
    labels = torch.randint(0, shape[1], (shape[0], 1, *shape[2:]), generator=g)
    soft = torch.softmax(2 * torch.randn(shape, generator=g, dtype=dtype), dim=1)
    return logits, labels, soft


NAME_ACT = [(n, a) for n in NAMES for a in ("softmax", "sigmoid") if not (n == "tbce" and a == "sigmoid")]


@pytest.mark.parametrize(("name", "act"), NAME_ACT)
@pytest.mark.parametrize("spatial", [(5, 6), (3, 4, 5)])
def test_reductions_and_shapes(name, act, spatial):
    logits, _, soft = data((2, 3, *spatial))
    none = make(name, act, reduction="none")(logits, soft)
    channels = 3 if per_channel(name, act) else 1
    assert none.shape == (2, channels, *spatial)
    assert torch.isfinite(none).all() and (none >= 0).all()
    mean, total = make(name, act)(logits, soft), make(name, act, reduction="sum")(logits, soft)
    assert mean.ndim == 0 and total.ndim == 0
    torch.testing.assert_close(mean, none.mean())
    torch.testing.assert_close(total, none.sum())
    per = make(name, act).per_sample(logits, soft)
    assert per.shape == (2,)
    for b in range(2):
        torch.testing.assert_close(per[b], make(name, act)(logits[b : b + 1], soft[b : b + 1]))


@pytest.mark.parametrize("name", NAMES)
def test_hard_one_hot_and_index_targets_agree(name):
    logits, labels, _ = data()
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).float()
    torch.testing.assert_close(make(name, to_onehot_y=True)(logits, labels), make(name)(logits, one_hot))
    torch.testing.assert_close(make(name, to_onehot_y=True)(logits, labels.float()), make(name)(logits, one_hot))


@pytest.mark.parametrize("name", NAMES)
def test_ignore_index_and_mask(name):
    logits, labels, soft = data()
    ignore = torch.zeros_like(labels, dtype=torch.bool)
    ignore[0, 0, :2] = True
    ignore[1, 0, 3:, 2:] = True
    with_ignore = torch.where(ignore, torch.full_like(labels, 255), labels)
    loss = make(name, to_onehot_y=True, ignore_index=255)
    x = logits.clone().requires_grad_()
    value = loss(x, with_ignore)
    value.backward()
    assert (x.grad[ignore.expand_as(x)] == 0).all() and (x.grad[~ignore.expand_as(x)] != 0).any()
    # the ignored voxels' logits do not matter, and the mean runs over valid voxels only
    other = torch.where(ignore, 50 * torch.ones_like(logits), logits)
    torch.testing.assert_close(loss(other, with_ignore), value.detach())
    none = make(name, to_onehot_y=True, reduction="none")(logits, labels)
    valid = (~ignore).expand_as(none)
    torch.testing.assert_close(value.detach(), none[valid].mean())
    # an explicit mask does the same
    torch.testing.assert_close(make(name, to_onehot_y=True)(logits, labels, mask=~ignore), value.detach())
    # per sample: mean over each sample's valid voxels
    per = loss.per_sample(logits, with_ignore)
    for b in range(2):
        torch.testing.assert_close(per[b], none[b][valid[b]].mean())
    # a soft target with a sentinel outside [0, 1]
    sentinel = torch.where(ignore.expand_as(soft), torch.full_like(soft, -1.0), soft)
    soft_loss = make(name, ignore_index=-1)
    soft_none = make(name, reduction="none")(logits, soft)
    torch.testing.assert_close(soft_loss(logits, sentinel), soft_none[(~ignore).expand_as(soft_none)].mean())


@pytest.mark.parametrize("name", NAMES)
def test_everything_ignored_gives_zero_with_zero_gradient(name):
    logits, labels, _ = data()
    x = logits.clone().requires_grad_()
    value = make(name, to_onehot_y=True, ignore_index=7)(x, torch.full_like(labels, 7))
    value.backward()
    assert value.item() == 0.0 and (x.grad == 0).all()


@pytest.mark.parametrize("name", NAMES)
def test_weight_map(name):
    logits, _, soft = data()
    weight = torch.rand(2, 1, 5, 6, generator=torch.Generator().manual_seed(3))
    none = make(name, reduction="none")(logits, soft)
    torch.testing.assert_close(make(name)(logits, soft, weight=weight), (none * weight).mean())
    torch.testing.assert_close(make(name)(logits, soft, weight=torch.ones_like(weight)), none.mean())
    torch.testing.assert_close(make(name, reduction="none")(logits, soft, weight=2 * weight), 2 * none * weight)
    x = logits.clone().requires_grad_()
    zero = torch.ones_like(weight)
    zero[:, :, 0] = 0
    make(name)(x, soft, weight=zero).backward()
    assert (x.grad[:, :, 0] == 0).all()
    per = make(name).per_sample(logits, soft, weight=weight)
    torch.testing.assert_close(per, (none * weight).flatten(1).mean(1))
    with pytest.raises(ValueError, match=r"The 'weight' parameter of \w+ must be a finite map with values >= 0"):
        make(name)(logits, soft, weight=-weight)
    with pytest.raises(ValueError, match=r"The 'weight' parameter of \w+ must be a map of shape \(2, 1, 5, 6\)"):
        make(name)(logits, soft, weight=weight[:1])


@pytest.mark.parametrize("name", ["nce", "nap_nfl_mae", "tbce"])
def test_per_channel_weight_with_sigmoid(name):
    logits, _, soft = data()
    weight = torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(4))
    loss = make(name, "sigmoid", reduction="none", include_background=False)
    torch.testing.assert_close(loss(logits, soft, weight=weight), loss(logits, soft) * weight[:, 1:])


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
def test_saturated_logits_are_finite(name, act):
    _, labels, soft = data()
    sign = torch.where(torch.rand(2, 3, 5, 6, generator=torch.Generator().manual_seed(5)) > 0.5, 1.0, -1.0)
    for scale in (1e4, 1e3, 30.0):
        x = (scale * sign).requires_grad_()
        value = make(name, act, to_onehot_y=True)(x, labels) + make(name, act)(x, soft)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(x.grad).all(), (scale, value)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("act", ["softmax", "sigmoid"])
def test_saturated_correct_prediction_gives_zero_loss(name, act):
    _, labels, _ = data()
    one_hot = torch.nn.functional.one_hot(labels[:, 0], 3).permute(0, 3, 1, 2).float()
    x = (1e4 * (2 * one_hot - 1)).requires_grad_()
    value = make(name, act)(x, one_hot)
    value.backward()
    assert value.item() == pytest.approx(0.0, abs=1e-6)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_and_autocast(name, dtype):
    logits, labels, soft = data()
    net = torch.nn.Conv2d(3, 3, 1)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net.reset_parameters()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(logits)
        assert out.dtype == torch.bfloat16
        value = make(name, to_onehot_y=True)(out, labels)
    value.backward()
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())
    torch.testing.assert_close(value.detach(), make(name, to_onehot_y=True)(out.detach().float(), labels))
    # half-precision logits without autocast are computed in float32 too
    low = make(name)(logits.to(dtype), soft)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, make(name)(logits.to(dtype).float(), soft))


GRADCHECK_KW = [
    {"act": "softmax"},
    {"act": "sigmoid"},
    {"act": "softmax", "include_background": False},
    {"act": "neither"},
]


@pytest.mark.parametrize(
    ("name", "kw"),
    [(n, kw) for n in NAMES for kw in GRADCHECK_KW if n != "tbce" or kw["act"] == "softmax"],
)
def test_gradcheck_float64(name, kw):
    kw = dict(kw)
    act = kw.pop("act")
    logits, _, soft = data((2, 3, 3, 4), seed=7, dtype=torch.float64)
    loss = make(name, act, **kw)
    x = (torch.softmax(logits, 1) if act == "neither" else logits).clone().requires_grad_()
    weight = torch.rand(2, 1, 3, 4, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: loss(a, soft, weight=weight), (x,))
    assert loss(x, soft).dtype == torch.float64


@pytest.mark.parametrize("name", NAMES)
def test_inputs_untouched_rng_untouched_and_metatensor(name, global_rng_guard):
    logits, labels, soft = data()
    copies = [t.clone() for t in (logits, labels, soft)]
    weight = torch.rand(2, 1, 5, 6, generator=torch.Generator().manual_seed(9))
    w_copy = weight.clone()
    make(name, to_onehot_y=True, ignore_index=255)(logits, labels, weight=weight)
    make(name, ignore_index=-1)(logits, soft, weight=weight)
    for a, b in zip((logits, labels, soft, weight), (*copies, w_copy)):
        assert torch.equal(a, b)
    meta = make(name, to_onehot_y=True)(MetaTensor(logits), MetaTensor(labels))
    assert type(meta) is torch.Tensor
    torch.testing.assert_close(meta, make(name, to_onehot_y=True)(logits, labels))


@pytest.mark.parametrize("name", APL)
def test_probability_inputs(name):
    logits, _, soft = data()
    probs = torch.softmax(logits, 1)
    torch.testing.assert_close(make(name, "neither")(probs, soft), make(name, "softmax")(logits, soft))
    fg = torch.sigmoid(logits[:, :1])
    torch.testing.assert_close(
        make(name, "neither")(fg, soft[:, :1]), make(name, "sigmoid")(logits[:, :1], soft[:, :1])
    )
    with pytest.raises(ValueError, match=r"The 'input' parameter of \w+ must be probabilities in \[0, 1\] when"):
        make(name, "neither")(logits, soft)


@pytest.mark.parametrize("name", NAMES)
def test_bad_input(name):
    logits, labels, soft = data()
    owner = LOSSES[name][0].__name__
    with pytest.raises(ValueError, match=rf"The 'reduction' parameter of {owner} must be one of 'mean', 'sum', 'none'"):
        make(name, reduction="batch")
    with pytest.raises(ValueError, match=rf"The 'target' parameter of {owner} must be a probability map of shape"):
        make(name)(logits, soft[:, :2])
    with pytest.raises(
        ValueError, match=rf"'target' parameter of {owner} must be an index map of shape \(2, 1, 5, 6\)"
    ):
        make(name, to_onehot_y=True)(logits, soft)
    with pytest.raises(
        ValueError, match=r"must be probabilities in \[0, 1\] \(or ignore_index\). Got 'values in \[-0.5, 0.4998\]'"
    ):
        make(name)(logits, soft - 0.5)
    with pytest.raises(ValueError, match=r"must be probabilities in \[0, 1\] \(or ignore_index\). Got 'NaN values'"):
        make(name)(logits, soft.masked_fill(soft > 0.9, float("nan")))
    with pytest.raises(ValueError, match=r"must be an index map with labels in \[0, 2\] \(or ignore_index\)"):
        make(name, to_onehot_y=True)(logits, labels + 1)
    with pytest.raises(ValueError, match=r"must be an index map of integer labels"):
        make(name, to_onehot_y=True)(logits, labels + 0.5 * (labels == 0))
    with pytest.raises(
        ValueError, match=rf"The 'ignore_index' parameter of {owner} must be a sentinel outside \[0, 1\]"
    ):
        make(name, ignore_index=1)
    with pytest.raises(ValueError, match=rf"The 'input' parameter of {owner} must be a tensor of shape BNH\[WD\]"):
        make(name)(logits[0, 0], soft[0, 0])
    with pytest.raises(ValueError, match=r"'mask' parameter"):
        make(name)(logits, soft, mask=torch.ones(2, 5, 6))


@pytest.mark.parametrize("name", APL)
def test_bad_activation(name):
    owner = LOSSES[name][0].__name__
    logits, _, soft = data()
    with pytest.raises(ValueError, match=rf"The 'softmax' parameter of {owner} must be False when 'sigmoid' is True"):
        make(name, sigmoid=True, softmax=True)
    with pytest.raises(ValueError, match=rf"The 'softmax' parameter of {owner} must be False for a one-channel input"):
        make(name, "softmax")(logits[:, :1], soft[:, :1])


@pytest.mark.parametrize("name", NAMES)
def test_single_channel_warnings_follow_monai(name):
    logits, _, soft = data()
    with pytest.warns(UserWarning, match="single channel prediction, `to_onehot_y=True` ignored"):
        make(name, "sigmoid", to_onehot_y=True)(logits[:, :1], soft[:, :1])
    with pytest.warns(UserWarning, match="single channel prediction, `include_background=False` ignored"):
        make(name, "sigmoid", include_background=False)(logits[:, :1], soft[:, :1])


def _tiny_trainer(loss, soft_targets: bool):
    from monai.engines import SupervisedTrainer

    g = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    data_list = []
    for _ in range(4):
        label = torch.randint(0, 3, (1, 8, 8), generator=g)
        if soft_targets:
            label = torch.softmax(3 * torch.nn.functional.one_hot(label[0], 3).permute(2, 0, 1).float(), dim=0)
        data_list.append({"image": torch.randn(1, 8, 8, generator=g), "label": label})
    loader = torch.utils.data.DataLoader(data_list, batch_size=2, shuffle=False)
    before = [p.detach().clone() for p in net.parameters()]
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=2,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=0.1),
        loss_function=loss,
        decollate=False,
    )
    trainer.run()
    return trainer, before, net


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("soft_targets", [False, True])
def test_supervised_trainer(name, soft_targets):
    loss = make(name, to_onehot_y=not soft_targets)
    trainer, before, net = _tiny_trainer(loss, soft_targets)
    assert trainer.state.iteration == 4
    assert torch.isfinite(torch.as_tensor(trainer.state.output["loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.parametrize(
    "config",
    [
        {"_target_": "monai_noisylabel.losses.NormalizedCrossEntropyLoss", "softmax": True, "to_onehot_y": True},
        {"_target_": "monai_noisylabel.losses.NormalizedFocalLoss", "gamma": 1.0, "softmax": True, "to_onehot_y": True},
        {"_target_": "monai_noisylabel.losses.ReverseCrossEntropyLoss", "softmax": True, "to_onehot_y": True},
        {"_target_": "monai_noisylabel.losses.MeanAbsoluteErrorLoss", "softmax": True, "to_onehot_y": True},
        {
            "_target_": "monai_noisylabel.losses.NormalizedActivePassiveLoss",
            "active": "nfl",
            "passive": "mae",
            "alpha": 10.0,
            "beta": 0.1,
            "gamma": 0.5,
            "softmax": True,
            "to_onehot_y": True,
            "ignore_index": 255,
        },
        {
            "_target_": "monai_noisylabel.losses.ThresholdBinarizedBCELoss",
            "threshold": 0.6,
            "ignore_band": [0.4, 0.6],
            "pos_weight": 2.0,
            "to_onehot_y": True,
        },
    ],
    ids=lambda c: c["_target_"].rsplit(".", 1)[1],
)
def test_bundle_config(config):
    loss = ConfigParser({"loss": config}).get_parsed_content("loss")
    cls = getattr(losses_module, config["_target_"].rsplit(".", 1)[1])
    assert type(loss) is cls
    for key, value in config.items():
        if key != "_target_" and key != "pos_weight":
            expected = tuple(value) if isinstance(value, list) else value
            assert getattr(loss, key) == expected, key
    logits, labels, _ = data()
    direct = cls(**{k: v for k, v in config.items() if k != "_target_"})
    torch.testing.assert_close(loss(logits, labels), direct(logits, labels))


def test_every_exported_loss_is_covered():
    # SampleDiceCELoss takes class-index targets only (no soft targets, activations or masks): its own test file
    exported = {getattr(losses_module, n) for n in losses_module.__all__} - {losses_module.SampleDiceCELoss}
    assert exported == {cls for cls, _ in LOSSES.values()}


@pytest.mark.gpu
@pytest.mark.parametrize("name", NAMES)
def test_cuda_matches_cpu(name):
    logits, labels, soft = data()
    cpu = make(name, to_onehot_y=True)(logits, labels)
    cuda = make(name, to_onehot_y=True)(logits.cuda(), labels.cuda())
    assert cuda.device.type == "cuda"
    torch.testing.assert_close(cuda.cpu(), cpu)
    with torch.autocast("cuda", dtype=torch.float16):
        value = make(name)(logits.cuda().half(), soft.cuda())
    assert value.dtype == torch.float32 and torch.isfinite(value)
