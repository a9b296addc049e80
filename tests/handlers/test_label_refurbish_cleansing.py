"""LabelRefurbishHandler's self-cleansing (lcm) and small-loss selection (select) modes: the soft targets, clean
samples untouched, dropped samples, the logged GMM skip, resume, and the outputs."""

from __future__ import annotations

import logging

import pytest
import torch
from handler_testlib import make_loader, make_net, make_samples, make_trainer
from ignite.engine import Events
from monai.handlers import CheckpointLoader, CheckpointSaver

from monai_noisylabel.bundle import SampleDiceCELoss
from monai_noisylabel.handlers import LabelRefurbishHandler, PseudoLabelWeightedLoss, SampleLossHandler
from monai_noisylabel.refurbish import EMATeacher, LabelStore, read_refurbish_manifest

LOSS = SampleDiceCELoss(reduction="none")
NOISY = ("s01", "s04")


def _setup(tmp_path=None, *, mode="lcm", max_epochs=3, teacher=True, net=None, **kwargs):
    samples = make_samples(6)
    net = net if net is not None else make_net()
    kwargs.setdefault("flags", NOISY)
    handler = LabelRefurbishHandler(
        make_loader(samples, 3),
        LabelStore(),
        mode=mode,
        epochs=[1, 2],
        rampup_epochs=1,
        teacher=EMATeacher(net) if teacher else None,
        output_dir=tmp_path,
        **kwargs,
    )
    trainer = make_trainer(net, make_loader(samples, 3), max_epochs=max_epochs, lr=0.1)
    trainer.loss_function = PseudoLabelWeightedLoss(LOSS, handler)
    return samples, handler, trainer


def _record_targets(trainer, handler):
    """Per iteration: (epoch, ids, given labels, (rows, soft targets) or None, prediction, wrapped loss)."""
    seen = []

    def record(engine):
        b = engine.state.batch
        x, y = b["image"], b["label"]
        net = engine.network
        with torch.no_grad():
            pred = net(x)
        soft = handler.batch_soft_targets(pred, y)
        loss = PseudoLabelWeightedLoss(LOSS, handler)(pred, y)  # what the trainer's loss gives this batch
        seen.append((engine.state.epoch, list(b["id"]), y.clone(), soft, pred, loss))

    trainer.add_event_handler(Events.ITERATION_STARTED, record)  # after the handler's own ITERATION_STARTED
    return seen


@pytest.mark.parametrize("teacher", [True, False])
def test_lcm_soft_targets_are_distributions_and_clean_labels_untouched(tmp_path, teacher):
    samples, handler, trainer = _setup(tmp_path, teacher=teacher)
    handler.attach(trainer)
    seen = _record_targets(trainer, handler)
    trainer.run()
    assert set(handler.noisy) == set(NOISY) and all(v["clean_prob"] == 0.0 for v in handler.noisy.values())
    checked = 0
    for epoch, ids, given, soft, pred, loss in seen:
        noisy_rows = [j for j, i in enumerate(ids) if i in NOISY]
        if epoch == 1:
            assert soft is None
            continue
        rows, q = soft
        assert rows == noisy_rows
        assert q.shape == (len(rows), 2, 8, 8) and float(q.min()) >= 0.0 and float(q.max()) <= 1.0
        assert torch.allclose(q.sum(1), torch.ones(len(rows), 8, 8), atol=1e-5)
        # the per-sample loss of the clean rows is the plain loss on their given labels
        clean = [j for j in range(len(ids)) if j not in rows]
        per = torch.zeros(len(ids))
        per[clean] = LOSS(pred[clean], given[clean])
        per[rows] = LOSS(pred[rows], q)
        assert torch.allclose(loss, per.mean(), atol=1e-6)
        checked += 1
    assert checked == 4
    # original labels in memory never changed
    assert all(torch.equal(s["label"], make_samples(6)[k]["label"]) for k, s in enumerate(samples))
    manifest = read_refurbish_manifest(tmp_path)  # the hard labels of the LCM targets
    assert sorted(r["id"] for r in manifest) == sorted(NOISY)
    assert handler.history["s01"]["path"].endswith("s01.nii.gz") and handler.history["s01"]["clean_prob"] == 0.0


def test_lcm_target_starts_at_the_given_label_and_follows_p_clean():
    _, handler, trainer = _setup(None, teacher=False, max_epochs=1)
    handler.noisy = {"s01": {"clean_prob": 1.0, "epoch": 0, "fraction_changed": None, "label_path": ""}}
    handler.attach(trainer)
    seen = _record_targets(trainer, handler)
    trainer.run()
    rows, q = seen[0][3]
    given = seen[0][2][rows]
    assert torch.equal(q.argmax(1, keepdim=True), given)  # P(clean) = 1: the (sharpened) given label


def test_select_mode_drops_the_noisy_samples(tmp_path):
    _, handler, trainer = _setup(None, mode="select", teacher=False, select_weight=0.0)
    handler.attach(trainer)
    weights = []
    trainer.add_event_handler(
        Events.ITERATION_STARTED,
        lambda e: weights.append((e.state.epoch, list(e.state.batch["id"]), handler.batch_weights(3))),
    )
    trainer.run()
    for epoch, ids, w in weights:
        if epoch == 1:
            assert w is None
        else:
            assert w.tolist() == [0.0 if i in NOISY else 1.0 for i in ids]
    pred, y = torch.randn(3, 2, 8, 8), torch.zeros(3, 1, 8, 8, dtype=torch.long)
    handler._batch_weights = torch.tensor([1.0, 0.0, 1.0])
    per = LOSS(pred, y)
    assert torch.allclose(PseudoLabelWeightedLoss(LOSS, handler)(pred, y), (per[0] + per[2]) / 3)
    assert len(handler.store) == 0 and not (handler.output_dir or tmp_path / "x").exists()


def test_gmm_split_and_logged_skip(caplog):
    samples = make_samples(6)
    net = make_net()
    handler = LabelRefurbishHandler(
        make_loader(samples, 3), LabelStore(), mode="select", epochs=[1, 2], min_split_samples=4
    )
    trainer = make_trainer(net, make_loader(samples, 3), max_epochs=2)
    trainer.loss_function = PseudoLabelWeightedLoss(LOSS, handler)
    equal = {f"s{i:02d}": {"loss": 0.5, "gmm_noisy_prob": 0.0} for i in range(6)}
    split = {f"s{i:02d}": {"loss": 0.1 * i, "gmm_noisy_prob": 0.9 if i == 5 else 0.1} for i in range(6)}
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED, lambda e: setattr(e.state, "label_scores", equal if e.state.epoch == 1 else split)
    )
    handler.attach(trainer)
    with caplog.at_level(logging.WARNING):
        trainer.run()
    assert handler.skipped_epochs == {1: "all 6 per-sample losses are equal: the GMM cannot split them"}
    assert "epoch 1: cleansing skipped" in caplog.text
    assert set(handler.noisy) == {"s05"} and handler.noisy["s05"]["clean_prob"] == pytest.approx(0.1)


def test_with_the_sample_loss_handler_end_to_end(tmp_path):
    samples = make_samples(8)
    net = make_net()
    handler = LabelRefurbishHandler(
        make_loader(samples, 4), LabelStore(), mode="lcm", warmup=1, teacher=EMATeacher(net), output_dir=tmp_path
    )
    trainer = make_trainer(net, make_loader(samples, 4), max_epochs=3)
    trainer.loss_function = PseudoLabelWeightedLoss(LOSS, handler)
    SampleLossHandler(make_loader(samples, 4), loss_fn=LOSS, window="last").attach(trainer)
    handler.attach(trainer)
    trainer.run()
    assert handler.split == "gmm" and handler.noisy  # the GMM called some samples noisy
    scores = trainer.state.label_scores
    assert all(scores[i]["gmm_noisy_prob"] > 0.5 for i in handler.noisy)
    assert {i for i, r in scores.items() if r["refurbished_label"]} == set(handler.noisy)


def test_resume_gives_the_same_split_and_targets(tmp_path):
    net = make_net()
    _, first, trainer = _setup(tmp_path / "a", net=net, max_epochs=3)
    first.attach(trainer)
    saver = CheckpointSaver(
        str(tmp_path / "ckpt"), {"model": net, "trainer": trainer, "handler": first}, save_interval=1, n_saved=None
    )
    saver.attach(trainer)
    seen = _record_targets(trainer, first)
    trainer.run()
    net2 = make_net(seed=5)
    _, second, trainer2 = _setup(tmp_path / "b", net=net2, max_epochs=3)
    second.attach(trainer2)
    ckpt = tmp_path / "ckpt" / "checkpoint_epoch=2.pt"
    CheckpointLoader(str(ckpt), {"model": net2, "trainer": trainer2, "handler": second}).attach(trainer2)
    seen2 = _record_targets(trainer2, second)
    trainer2.run()
    assert second.noisy == first.noisy
    last = [s for s in seen if s[0] == 3]
    assert len(last) == len(seen2) == 2
    for (_, ids, _, (rows, q), _, _), (_, ids2, _, (rows2, q2), _, _) in zip(last, seen2):
        assert ids == ids2 and rows == rows2 and torch.allclose(q, q2, atol=1e-6)


def test_bad_parameters():
    with pytest.raises(ValueError, match="'mode' parameter of LabelRefurbishHandler"):
        LabelRefurbishHandler([], LabelStore(), mode="soft")
    with pytest.raises(ValueError, match="'select_weight' parameter of LabelRefurbishHandler"):
        LabelRefurbishHandler([], LabelStore(), mode="select", select_weight=2)
    with pytest.raises(ValueError, match="'split' parameter of LabelRefurbishHandler"):
        LabelRefurbishHandler([], LabelStore(), split="loss")
    for bad in ("never", None):
        with pytest.raises(ValueError, match="'write_labels' parameter of LabelRefurbishHandler.*never|None"):
            LabelRefurbishHandler([], LabelStore(), mode="lcm", write_labels=bad)
    with pytest.raises(ValueError, match="'restart_teacher' parameter of LabelRefurbishHandler.*yes"):
        LabelRefurbishHandler([], LabelStore(), mode="lcm", restart_teacher="yes")


def test_lcm_select_first_holds_newly_noisy_samples_out_until_the_next_cleansing_epoch():
    _, handler, trainer = _setup(select_first=True, split="flagged")
    handler.attach(trainer)
    weights: dict[int, dict[str, float]] = {}

    def record(engine):
        w = handler.batch_weights(3)
        weights.setdefault(engine.state.epoch, {}).update(
            zip(engine.state.batch["id"], [1.0] * 3 if w is None else w.tolist())
        )

    trainer.add_event_handler(Events.ITERATION_STARTED, record)
    trainer.run()
    # called noisy after epoch 1: weight 0 in epoch 2, then on its soft target with weight 1 from epoch 3
    assert all(weights[2][i] == 0.0 for i in NOISY) and all(weights[3][i] == 1.0 for i in NOISY)
    assert all(w == 1.0 for e in (1, 2, 3) for i, w in weights[e].items() if i not in NOISY)
    assert handler.pending == {} and set(handler.noisy) == set(NOISY)


@pytest.mark.parametrize("restart", [True, False])
def test_lcm_teacher_restarts_from_the_network_when_held_out_samples_are_released(restart):
    """select_first: at each cleansing epoch that releases held-out samples the teacher becomes the network
    (which trained without their labels), not an average reaching back to before the hold-out."""
    flags = {1: ["s01", "s04"], 2: ["s01", "s04", "s05"], 3: ["s01", "s04", "s05"]}
    _, handler, trainer = _setup(
        select_first=True,
        split="flagged",
        flags=lambda e: flags[e.state.epoch],
        max_epochs=4,
        restart_teacher=restart,
    )
    handler.schedule = type(handler.schedule).checked("test", epochs=[1, 2, 3])
    handler.attach(trainer)
    after: dict[int, tuple[int, bool]] = {}

    def check(engine):
        same = all(
            torch.equal(t, s)
            for t, s in zip(handler.teacher.module.parameters(), engine.network.parameters(), strict=True)
        )
        after[engine.state.epoch] = (handler.teacher.step, same)

    trainer.add_event_handler(Events.EPOCH_COMPLETED, check)  # after the handler's cleansing
    trainer.run()
    n = 2  # steps per epoch
    if not restart:
        assert [after[e] for e in (1, 2, 3, 4)] == [(n, False), (2 * n, False), (3 * n, False), (4 * n, False)]
        return
    assert after[1] == (n, False)  # epoch 1: s01, s04 called noisy and held out; the teacher keeps averaging
    assert after[2] == (1, True)  # epoch 2: s01, s04 released, the teacher restarts; s05 newly held out
    assert after[3] == (1, True)  # epoch 3: s05 (a second, smaller release) restarts it again
    assert after[4] == (1 + n, False)  # nothing released: the average goes on


@pytest.mark.parametrize("write_labels", ["end", "split"])
def test_lcm_label_files_written_at_the_end_or_at_each_split(tmp_path, write_labels):
    _, handler, trainer = _setup(tmp_path, write_labels=write_labels)
    handler.attach(trainer)
    during: dict[int, list[str]] = {}
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED,
        lambda e: during.update({e.state.epoch: sorted(r["id"] for r in read_refurbish_manifest(tmp_path))}),
    )
    trainer.run()
    expected_during = [] if write_labels == "end" else sorted(NOISY)
    assert during[1] == during[2] == expected_during
    assert sorted(r["id"] for r in read_refurbish_manifest(tmp_path)) == sorted(NOISY)
    assert all(handler.history[i]["path"].endswith(f"{i}.nii.gz") for i in NOISY)
    assert {i for i, r in trainer.state.label_scores.items() if r["refurbished_label"]} == set(NOISY)


def test_lcm_end_write_removes_files_of_samples_no_longer_noisy(tmp_path):
    flags = {1: ["s01", "s04"], 2: ["s01"]}
    _, handler, trainer = _setup(tmp_path, flags=lambda e: flags[e.state.epoch], write_labels="split", max_epochs=2)
    handler.attach(trainer)
    trainer.run()
    assert sorted(r["id"] for r in read_refurbish_manifest(tmp_path)) == ["s01"]
    assert not (tmp_path / "refurbished" / "s04.nii.gz").exists()
    # a new run into the same output_dir removes the files an earlier run left there (found via the manifest)
    _, again, trainer2 = _setup(tmp_path, flags=lambda e: ["s04"], write_labels="end", max_epochs=1)
    again.attach(trainer2)
    trainer2.run()
    assert sorted(r["id"] for r in read_refurbish_manifest(tmp_path)) == ["s04"]
    assert not (tmp_path / "refurbished" / "s01.nii.gz").exists()
