"""VarianceOfGradientsHandler: checkpoint and online modes against the detection core, schedules, ids, errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from handler_testlib import HistogramRecorder, ce_per_sample, make_loader, make_net, make_samples, make_trainer
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents

from monai_noisylabel.detection import input_gradients, vog_scores
from monai_noisylabel.handlers import VarianceOfGradientsHandler, read_label_scores
from monai_noisylabel.handlers.variance_of_gradients import per_sample_cross_entropy

OWNER = "The {!r} parameter of VarianceOfGradientsHandler must be"


def _stacked(samples):
    return torch.stack([s["image"] for s in samples]), torch.stack([s["label"] for s in samples])


def _record_checkpoint_maps(trainer, net, samples, target, epochs=None):
    """Gradient maps of every sample after each (selected) epoch, computed directly with the core."""
    maps = []
    x, y = _stacked(samples)

    @trainer.on(Events.EPOCH_COMPLETED)
    def _record(engine):
        if epochs is None or engine.state.epoch in epochs:
            maps.append(input_gradients(net, x, y, target=target, loss_fn=ce_per_sample))

    return maps


@pytest.mark.parametrize("target", ["loss", "logit"])
def test_checkpoint_mode_matches_core(target, global_rng_guard):
    samples = make_samples(6)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2, shuffle=True), max_epochs=4)
    maps = _record_checkpoint_maps(trainer, net, samples, target)
    handler = VarianceOfGradientsHandler(make_loader(samples, 4), target=target)
    handler.attach(trainer)
    trainer.run()
    ids = [s["id"] for s in samples]
    assert handler.ids == ids and handler.pool_used == 1
    want = vog_scores(np.stack(maps))
    np.testing.assert_allclose(handler.scores_array(), want, rtol=1e-5)
    assert np.all(want > 0)
    table = trainer.state.label_scores
    assert sorted(table) == ids
    np.testing.assert_allclose([table[i]["vog"] for i in ids], want, rtol=1e-5)
    assert all(table[i]["loss"] is None and table[i]["combined"] is not None for i in ids)


def test_default_loss_is_per_sample_cross_entropy():
    logits = torch.randn(3, 4, 5, 5, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 4, (3, 1, 5, 5), generator=torch.Generator().manual_seed(1))
    np.testing.assert_allclose(per_sample_cross_entropy(logits, labels), ce_per_sample(logits, labels), rtol=1e-6)
    onehot = torch.nn.functional.one_hot(labels[:, 0], 4).permute(0, 3, 1, 2).float()
    np.testing.assert_allclose(per_sample_cross_entropy(logits, onehot), ce_per_sample(logits, labels), rtol=1e-5)


def test_schedule_every_nth_epoch_and_stages():
    samples = make_samples(4)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=6)
    maps = _record_checkpoint_maps(trainer, net, samples, "loss", epochs={2, 4, 6})
    handler = VarianceOfGradientsHandler(make_loader(samples, 2), every=2, stage="late", normalize="zscore")
    handler.attach(trainer)
    trainer.run()
    assert handler.state_dict()["vog"]["num_checkpoints"] == 3
    # "late" third of K=3 checkpoints holds one map: no variance yet
    assert np.isnan(handler.scores_array()).all()
    handler.stage = "all"
    np.testing.assert_allclose(handler.scores_array(), vog_scores(np.stack(maps), normalize="zscore"), rtol=1e-4)


def test_group_zscore():
    samples = make_samples(4)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=3)
    maps = _record_checkpoint_maps(trainer, net, samples, "loss")
    groups = {"s00": "a", "s01": "a", "s02": "b", "s03": "b"}
    handler = VarianceOfGradientsHandler(make_loader(samples, 2), normalize="group_zscore", groups=groups)
    handler.attach(trainer)
    trainer.run()
    want = vog_scores(np.stack(maps), normalize="group_zscore", groups=["a", "a", "b", "b"])
    np.testing.assert_allclose(handler.scores_array(), want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_online_mode_matches_per_sample_training_gradients(accumulation_steps, global_rng_guard):
    samples = make_samples(6)
    net = make_net()
    trainer = make_trainer(
        net, make_loader(samples, 3, shuffle=True), max_epochs=4, accumulation_steps=accumulation_steps
    )
    steps = []

    @trainer.on(Events.ITERATION_STARTED)
    def _record(engine):  # weights and batch of every step, to recompute the per-sample gradients afterwards
        if engine.state.epoch >= 2:
            steps.append((engine.state.epoch, copy.deepcopy(net.state_dict()), engine.state.batch))

    handler = VarianceOfGradientsHandler(mode="online", epochs=[2, 3, 4])
    handler.attach(trainer)
    trainer.run()

    probe = make_net()
    expected: dict[str, list[np.ndarray]] = {}
    for _, weights, batch in steps:
        probe.load_state_dict(weights)
        x = batch["image"].clone().requires_grad_(True)
        ce_per_sample(probe(x), batch["label"]).sum().backward()
        for i, g in zip(batch["id"], x.grad[:, 0].numpy()):
            expected.setdefault(i, []).append(g)
    ids = handler.ids
    assert sorted(ids) == [s["id"] for s in samples]
    want = vog_scores(np.stack([np.stack(expected[i]) for i in ids], axis=1))
    np.testing.assert_allclose(handler.scores_array(), want, rtol=1e-4)
    assert handler.state_dict()["vog"]["num_checkpoints"] == 3


def test_online_mode_leaves_the_batch_alone_outside_the_schedule():
    samples = make_samples(4)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=2)
    seen = []

    @trainer.on(IterationEvents.FORWARD_COMPLETED)
    def _check(engine):
        seen.append((engine.state.epoch, engine.state.output["image"].requires_grad))

    VarianceOfGradientsHandler(mode="online", epochs=[2]).attach(trainer)
    trainer.run()
    assert seen == [(1, False), (1, False), (2, True), (2, True)]
    assert not any(s["image"].requires_grad for s in samples)


def test_nonfinite_gradient_is_flagged_and_written(tmp_path):
    samples = make_samples(4)
    probe_samples = [dict(s) for s in samples]
    probe_samples[1]["image"] = samples[1]["image"].clone()
    probe_samples[1]["image"][0, 0, 0] = float("nan")
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=3)
    writer = HistogramRecorder()
    handler = VarianceOfGradientsHandler(make_loader(probe_samples, 2), output_dir=tmp_path, summary_writer=writer)
    handler.attach(trainer)
    trainer.run()
    scores = handler.scores()
    assert scores["s01"] == np.inf and np.isfinite([scores[k] for k in ("s00", "s02", "s03")]).all()
    assert trainer.state.label_scores["s01"]["flagged"] and not trainer.state.label_scores["s00"]["flagged"]
    rows = {r["id"]: r for r in read_label_scores(tmp_path / "label_scores.csv")}
    assert rows["s01"]["vog"] == np.inf and rows["s01"]["flagged"] and rows["s00"]["loss"] is None
    # histograms: one per checkpoint plus the final one, finite values only, NaN (1 checkpoint) left out
    assert [(tag, step) for tag, _, step in writer.calls] == [("label_scores/vog", e) for e in (2, 3, 3)]
    assert all(values.size == 3 for _, values, _ in writer.calls)


def test_state_bytes_at_256_by_default():
    samples = make_samples(1, size=256)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 1), max_epochs=1)
    handler = VarianceOfGradientsHandler(make_loader(samples, 1))
    handler.attach(trainer)
    trainer.run()
    assert handler.pool_used == 3
    assert 0 < handler.state_bytes_per_sample <= 256 * 1024


def test_missing_and_colliding_ids():
    samples = make_samples(4)
    no_ids = [{k: v for k, v in s.items() if k != "id"} for s in samples]
    trainer = make_trainer(make_net(), make_loader(samples, 2), max_epochs=1)
    VarianceOfGradientsHandler(make_loader(no_ids, 2)).attach(trainer)
    with pytest.raises(ValueError, match=OWNER.format("id_key") + " a key of every batch dict holding one id"):
        trainer.run()
    clash = [dict(s, id="same" if i in (0, 3) else s["id"]) for i, s in enumerate(samples)]
    trainer = make_trainer(make_net(), make_loader(samples, 2), max_epochs=1)
    VarianceOfGradientsHandler(make_loader(clash, 2)).attach(trainer)
    with pytest.raises(ValueError, match=r"do two samples share an id\?\). Got 'same' instead"):
        trainer.run()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({}, "probe_loader"),
        ({"probe_loader": [], "mode": "online"}, "probe_loader"),
        ({"mode": "online", "target": "logit"}, "target"),
        ({"mode": "online", "loss_fn": ce_per_sample}, "loss_fn"),
        ({"probe_loader": [], "mode": "eval"}, "mode"),
        ({"probe_loader": [], "target": "grad"}, "target"),
        ({"probe_loader": [], "epochs": 0}, "epochs"),
        ({"probe_loader": [], "epochs": [1, 1]}, "epochs"),
        ({"probe_loader": [], "epochs": "3"}, "epochs"),
        ({"probe_loader": [], "epochs": []}, "epochs"),
        ({"probe_loader": [], "every": 0}, "every"),
        ({"probe_loader": [], "warmup": -1}, "warmup"),
        ({"probe_loader": [], "pool": 0}, "pool"),
        ({"probe_loader": [], "stage": "final"}, "stage"),
        ({"probe_loader": [], "normalize": "group_zscore"}, "groups"),
        ({"probe_loader": [], "groups": {"a": 1}}, "groups"),
    ],
)
def test_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=OWNER.format(name)):
        VarianceOfGradientsHandler(**kwargs)


def test_epochs_int_is_every_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match="pass every=3 instead"):
        old = VarianceOfGradientsHandler([], epochs=3)
    new = VarianceOfGradientsHandler([], every=3)
    assert old.schedule == new.schedule and new.schedule.until(9) == [3, 6, 9]
    assert VarianceOfGradientsHandler([], warmup=4, every=2).schedule.until(9) == [6, 8]


def test_bad_engines():
    plain = Engine(lambda e, b: None)
    VarianceOfGradientsHandler([]).attach(plain)  # checked when the run starts (SupervisedTrainer sets it late)
    with pytest.raises(ValueError, match=OWNER.format("engine") + " a MONAI SupervisedTrainer"):
        plain.run([0])
    plain = Engine(lambda e, b: None)
    plain.network = make_net()
    with pytest.raises(ValueError, match=OWNER.format("mode") + " 'checkpoint' unless the engine is a MONAI"):
        VarianceOfGradientsHandler(mode="online").attach(plain)
    trainer = make_trainer(make_net(), make_loader(make_samples(2), 2), max_epochs=2)
    VarianceOfGradientsHandler([], epochs=3).attach(trainer)
    with pytest.raises(ValueError, match=OWNER.format("epochs") + " at most max_epochs=2. Got 3 instead"):
        trainer.run()
