"""SampleLossHandler: per-epoch eval losses, window mean, GMM, offsets, non-finite losses, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from handler_testlib import HistogramRecorder, ce_per_sample, make_loader, make_net, make_samples, make_trainer
from ignite.engine import Engine, Events
from monai.engines.utils import IterationEvents
from monai.transforms import AsDiscreted

from monai_noisylabel.detection import gmm_noisy_probability, offset_scores, sample_loss_scores, volume_offsets
from monai_noisylabel.handlers import SampleLossHandler, read_label_scores

OWNER = "The {!r} parameter of SampleLossHandler must be"


def _record_losses(trainer, net, samples, epochs):
    """Eval-mode per-sample losses and predictions of every sample after the given epochs, computed directly."""
    x = torch.stack([s["image"] for s in samples])
    y = torch.stack([s["label"] for s in samples])
    table, preds = [], []

    @trainer.on(Events.EPOCH_COMPLETED)
    def _record(engine):
        if engine.state.epoch in epochs:
            with torch.no_grad():
                logits = net(x)
            table.append(ce_per_sample(logits, y).double().numpy())
            preds.append(logits.argmax(1).numpy())

    return table, preds


def test_losses_window_and_gmm_match_core(global_rng_guard, tmp_path):
    samples = make_samples(8)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 4, shuffle=True), max_epochs=6)
    table, _ = _record_losses(trainer, net, samples, epochs={2, 4, 6})
    writer = HistogramRecorder()
    handler = SampleLossHandler(
        make_loader(samples, 3), loss_fn=ce_per_sample, warmup=1, every=2, output_dir=tmp_path, summary_writer=writer
    )
    handler.attach(trainer)
    trainer.run()
    ids = [s["id"] for s in samples]
    assert handler.state_dict()["loss"]["epochs"] == [2, 4, 6]
    np.testing.assert_allclose(handler.state_dict()["loss"]["table"].numpy(), np.stack(table), rtol=1e-6)
    loss = sample_loss_scores(np.stack(table))  # window: last two thirds = epochs 4 and 6
    np.testing.assert_allclose(loss, np.stack(table)[1:].mean(0), rtol=1e-12)
    scores = handler.scores()
    np.testing.assert_allclose([scores[i]["loss"] for i in ids], loss, rtol=1e-6)
    np.testing.assert_allclose([scores[i]["gmm_noisy_prob"] for i in ids], gmm_noisy_probability(loss), atol=1e-6)
    rows = {r["id"]: r for r in read_label_scores(tmp_path / "label_scores.csv")}
    assert sorted(rows) == ids
    assert all(rows[i]["vog"] is None and rows[i]["offset"] is None for i in ids)
    np.testing.assert_allclose([rows[i]["loss"] for i in ids], loss, rtol=1e-6)
    np.testing.assert_allclose([rows[i]["combined"] for i in ids], (np.argsort(np.argsort(loss))) / 7, atol=1e-12)
    tags = {tag for tag, _, _ in writer.calls}
    assert tags == {"label_scores/loss", "label_scores/gmm_noisy_prob"}


def test_offsets_against_a_reference_loader():
    samples, reference = make_samples(6, seed=0), make_samples(4, seed=1)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=2)
    _, preds = _record_losses(trainer, net, samples, epochs={2})
    _, ref_preds = _record_losses(trainer, net, reference, epochs={2})
    handler = SampleLossHandler(
        make_loader(samples, 4), loss_fn=ce_per_sample, window="last", reference_loader=make_loader(reference, 3)
    )
    handler.attach(trainer)
    trainer.run()
    labels = np.stack([s["label"][0].numpy() for s in samples])
    ref_labels = np.stack([s["label"][0].numpy() for s in reference])
    want = offset_scores(
        volume_offsets(preds[0], labels, num_classes=2),
        reference=volume_offsets(ref_preds[0], ref_labels, num_classes=2),
    )
    scores = handler.scores()
    np.testing.assert_allclose([scores[s["id"]]["offset"] for s in samples], want, rtol=1e-9)
    assert all(trainer.state.label_scores[s["id"]]["offset"] is not None for s in samples)


def test_nan_loss_is_flagged_and_training_goes_on():
    samples = make_samples(6)
    ids_bad = {"s02"}

    class BadLoss:
        def __init__(self):
            self.ids = None

        def __call__(self, logits, labels):
            out = ce_per_sample(logits, labels)
            bad = torch.tensor([i in ids_bad for i in self.ids])
            return torch.where(bad, torch.full_like(out, float("nan")), out)

    bad_loss = BadLoss()
    probe = make_loader(samples, 3)

    class TrackIds:
        def __iter__(self):
            for batch in probe:
                bad_loss.ids = batch["id"]
                yield batch

    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=3)
    handler = SampleLossHandler(TrackIds(), loss_fn=bad_loss)
    handler.attach(trainer)
    trainer.run()
    assert trainer.state.epoch == 3
    scores = handler.scores()
    assert scores["s02"]["loss"] == np.inf and scores["s02"]["gmm_noisy_prob"] == 1.0
    assert handler.nonfinite_ids() == ["s02"]
    assert trainer.state.label_scores["s02"]["flagged"] and trainer.state.label_scores["s02"]["nonfinite"] == {"loss"}
    assert np.isfinite([scores[i]["loss"] for i in scores if i != "s02"]).all()


def test_one_hot_labels_for_offsets():
    samples = make_samples(4)
    onehot = [dict(s, label=torch.cat([1 - s["label"], s["label"]]).float()) for s in samples]

    def soft_ce(logits, labels):
        return -(labels * torch.log_softmax(logits, 1)).sum(1).flatten(1).mean(1)

    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=1)
    handler = SampleLossHandler(make_loader(onehot, 2), loss_fn=soft_ce, reference_loader=make_loader(onehot, 4))
    handler.attach(trainer)
    trainer.run()
    assert np.isfinite([v["offset"] for v in handler.scores().values()]).all()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"probe_loader": None}, "probe_loader"),
        ({"loss_fn": "ce"}, "loss_fn"),
        ({"warmup": -1}, "warmup"),
        ({"every": 0}, "every"),
        ({"window": (0.5, 0.2)}, "window"),
        ({"window": "first"}, "window"),
        ({"num_classes": 1}, "num_classes"),
        ({"gmm_random_state": -1}, "gmm_random_state"),
    ],
)
def test_bad_arguments(kwargs, name):
    args = {"probe_loader": [], "loss_fn": ce_per_sample, **kwargs}
    with pytest.raises(ValueError, match=OWNER.format(name)):
        SampleLossHandler(args.pop("probe_loader"), **args)


def test_source_train_records_the_training_steps_losses_without_a_pass():
    """source="train": each sample's loss is that of its training step's forward pass (raw output, before the
    trainer's postprocessing), no probe pass, the GMM over the window as usual."""
    samples = make_samples(6)
    net = make_net()
    expected: dict[int, dict[str, float]] = {}

    def record(engine):  # the loss of the step, computed from the same raw output the handler sees
        out = engine.state.output
        ids = list(engine.state.batch["id"])
        per = ce_per_sample(out["pred"].detach(), out["label"])
        expected.setdefault(engine.state.epoch, {}).update(zip(ids, per.tolist()))

    trainer = make_trainer(
        net, make_loader(samples, 3, shuffle=True), max_epochs=3, postprocessing=AsDiscreted("pred", argmax=True)
    )
    handler = SampleLossHandler(None, loss_fn=ce_per_sample, source="train", window="last")
    handler.attach(trainer)
    trainer.add_event_handler(IterationEvents.FORWARD_COMPLETED, record)
    trainer.run()
    scores = trainer.state.label_scores
    assert set(scores) == {s["id"] for s in samples}
    for i, row in scores.items():
        assert row["loss"] == pytest.approx(expected[3][i], rel=1e-6)  # window "last": epoch 3's step loss
        assert 0.0 <= row["gmm_noisy_prob"] <= 1.0


def test_source_train_bad_input():
    with pytest.raises(ValueError, match="'source' parameter of SampleLossHandler"):
        SampleLossHandler(None, loss_fn=ce_per_sample, source="steps")
    with pytest.raises(ValueError, match="'reference_loader' parameter of SampleLossHandler"):
        SampleLossHandler(None, loss_fn=ce_per_sample, source="train", reference_loader=[{}])
    with pytest.raises(ValueError, match="'probe_loader' parameter of SampleLossHandler"):
        SampleLossHandler(None, loss_fn=ce_per_sample)
    # a MONAI trainer whose custom iteration never fires FORWARD_COMPLETED: named at the first scored epoch
    samples = make_samples(4)
    trainer = make_trainer(make_net(), make_loader(samples, 2), max_epochs=1, iteration_update=lambda e, b: {})
    SampleLossHandler(None, loss_fn=ce_per_sample, source="train").attach(trainer)
    with pytest.raises(ValueError, match="'source' parameter of SampleLossHandler.*no training-step loss"):
        trainer.run()
    plain = Engine(lambda e, b: None)
    plain.state.network = make_net()  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="'source' parameter of SampleLossHandler.*SupervisedTrainer"):
        SampleLossHandler(None, loss_fn=ce_per_sample, source="train").attach(plain)
