"""LabelRefurbishHandler: oracle and score flags, store updates seen by the training pipeline (also through a
CacheDataset), files and manifest, re-scored clean samples, NaN outputs, the loss ramp, the EMA teacher, resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from handler_testlib import ce_per_sample, make_loader, make_net, make_samples, make_trainer
from ignite.engine import Events
from monai.data import CacheDataset, Dataset
from monai.handlers import CheckpointLoader, CheckpointSaver
from monai.transforms import Compose, Identityd

from monai_noisylabel.handlers import (
    LabelRefurbishHandler,
    PseudoLabelWeightedLoss,
    SampleLossHandler,
    read_label_scores,
)
from monai_noisylabel.refurbish import ApplyStoredLabeld, EMATeacher, LabelStore, read_refurbish_manifest


def _setup(tmp_path=None, *, flags=("s01", "s03"), cache=False, max_epochs=3, net=None, before=(), **kwargs):
    samples = make_samples(6)
    store = LabelStore()
    transform = Compose([Identityd(["image", "label"]), ApplyStoredLabeld("label", store=store)])
    ds = CacheDataset(samples, transform, progress=False) if cache else Dataset(samples, transform)
    net = net if net is not None else make_net()
    handler = LabelRefurbishHandler(
        make_loader(samples, 4),
        store,
        flags=flags,
        output_dir=tmp_path,
        largest_component=False,
        **kwargs,
    )
    trainer = make_trainer(net, make_loader(ds, 2), max_epochs=max_epochs)
    trainer.loss_function = PseudoLabelWeightedLoss(ce_per_sample, handler)
    for h in before:  # score handlers first: the refurbish handler reads their flags on the same event
        h.attach(trainer)
    handler.attach(trainer)
    return samples, store, handler, trainer


def _seen_batches(trainer):
    seen: list[tuple[int, list[str], list[bool], torch.Tensor]] = []

    def record(engine):
        b = engine.state.batch
        seen.append((engine.state.epoch, list(b["id"]), b["refurbished"].tolist(), b["label"].clone()))

    trainer.add_event_handler(Events.ITERATION_STARTED, record)
    return seen


@pytest.mark.parametrize("cache", [False, True])
def test_oracle_flags_reach_the_training_pipeline(tmp_path, cache):
    samples, store, handler, trainer = _setup(tmp_path, cache=cache, epochs=[1])
    seen = _seen_batches(trainer)
    trainer.run()
    assert store.ids() == ["s01", "s03"]
    for epoch, ids, flags, labels in seen:
        for i, f, lab in zip(ids, flags, labels):
            assert f == (epoch > 1 and i in ("s01", "s03")), (epoch, i)
            if f:
                assert torch.equal(lab.long(), store.get(i).label.long())
    # the originals in memory are unchanged
    assert all(torch.equal(s["label"], make_samples(6)[k]["label"]) for k, s in enumerate(samples))
    manifest = read_refurbish_manifest(tmp_path)
    assert sorted(r["id"] for r in manifest) == ["s01", "s03"]
    assert all(r["epoch"] == "1" for r in manifest)
    assert all((tmp_path / "refurbished" / f"{i}.nii.gz").exists() for i in ("s01", "s03"))
    rows = {r["id"]: r for r in read_label_scores(tmp_path / "label_scores.csv")}
    assert rows["s01"]["refurbished_label"].endswith("s01.nii.gz")
    assert handler.history["s03"]["epoch"] == 1


def test_pseudo_label_is_the_model_prediction(tmp_path):
    samples, store, handler, trainer = _setup(tmp_path, epochs=[2], max_epochs=2)
    trainer.run()
    net = trainer.network.eval()
    with torch.no_grad():
        pred = net(samples[1]["image"][None]).argmax(1)
    assert torch.equal(store.get("s01").label.long(), pred)
    frac = handler.history["s01"]["fraction_changed"]
    assert frac == pytest.approx((pred != samples[1]["label"]).float().mean().item())


def test_unknown_oracle_id_is_a_clear_error():
    _, _, _, trainer = _setup(flags=["s01", "nope"], epochs=[1])
    with pytest.raises(ValueError, match=r"'flags'.*nope"):
        trainer.run()


def test_rescored_clean_samples_leave_the_store(tmp_path):
    schedule = {1: {"s00", "s01"}, 2: {"s01"}, 3: {"s01", "s02"}}
    _, store, _, trainer = _setup(tmp_path, flags=lambda e: schedule[e.state.epoch], every=1)
    trainer.run()
    assert store.ids() == ["s01", "s02"]
    assert store.get("s01").epoch == 1  # reused, not rebuilt
    assert not (tmp_path / "refurbished" / "s00.nii.gz").exists()
    assert sorted(r["id"] for r in read_refurbish_manifest(tmp_path)) == ["s01", "s02"]
    rows = {r["id"]: r for r in read_label_scores(tmp_path / "label_scores.csv")}
    assert rows["s00"]["refurbished_label"] in (None, "")


def test_flags_from_the_detection_handlers(tmp_path):
    scorer = SampleLossHandler(make_loader(make_samples(6), 4), loss_fn=ce_per_sample)
    _, store, _, trainer = _setup(tmp_path, flags=None, warmup=1, before=[scorer])
    flagged_after: dict[int, set[str]] = {}
    trainer.add_event_handler(
        Events.EPOCH_COMPLETED,
        lambda e: flagged_after.update({e.state.epoch: {i for i, r in e.state.label_scores.items() if r["flagged"]}}),
    )
    trainer.run()
    assert flagged_after[3], "the GMM split flagged nothing"
    assert set(store.ids()) == flagged_after[3]


def test_nan_output_leaves_the_sample_unrefurbished(tmp_path, caplog):
    class NaNNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = make_net()

        def forward(self, x):
            out = self.conv(x)
            return out if self.training else out * float("nan")

    _, store, handler, trainer = _setup(tmp_path, epochs=[1], net=NaNNet(), max_epochs=1)
    trainer.run()
    assert len(store) == 0
    assert set(handler.skipped) == {"s01", "s03"} and "NaN" in handler.skipped["s01"]
    assert not (tmp_path / "refurbished").exists() or not list((tmp_path / "refurbished").glob("*.nii.gz"))


def test_pseudo_labels_that_change_too_much_are_refused(tmp_path):
    _, store, handler, trainer = _setup(tmp_path, epochs=[1], max_epochs=1, max_fraction_changed=0.0)
    trainer.run()
    assert len(store) == 0 or all(h["fraction_changed"] == 0.0 for h in handler.history.values())
    assert set(handler.skipped) | set(store.ids()) == {"s01", "s03"}
    assert all("max_fraction_changed" in r for r in handler.skipped.values())


def test_loss_weight_ramps_up():
    _, _, handler, trainer = _setup(epochs=[1], rampup_epochs=2, max_epochs=4)
    weights: dict[int, dict[str, float]] = {}

    def record(engine):
        w = handler.batch_weights(2)
        w = [1.0, 1.0] if w is None else w.tolist()
        weights.setdefault(engine.state.epoch, {}).update(zip(engine.state.batch["id"], w))

    trainer.add_event_handler(Events.ITERATION_STARTED, record)
    trainer.run()
    ramp = {1: 1.0, 2: np.exp(-5.0), 3: np.exp(-5.0 * 0.25), 4: 1.0}  # made after epoch 1: the ramp starts at 2
    for epoch, w in ramp.items():
        assert weights[epoch]["s01"] == pytest.approx(w) and weights[epoch]["s03"] == pytest.approx(w)
        assert all(v == 1.0 for i, v in weights[epoch].items() if i not in ("s01", "s03"))


def test_weighted_loss_downweights_pseudo_labelled_samples():
    _, _, handler, _ = _setup(flags=[])
    loss = PseudoLabelWeightedLoss(ce_per_sample, handler)
    logits, labels = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(0)), make_samples(2)
    y = torch.stack([s["label"] for s in labels])
    plain = ce_per_sample(logits, y)
    handler._batch_weights = torch.tensor([1.0, 0.0])
    assert float(loss(logits, y)) == pytest.approx(float(plain[0]) / 2)
    with pytest.raises(ValueError, match="loss"):
        PseudoLabelWeightedLoss(lambda p, y: ce_per_sample(p, y).mean(), handler)(logits, y)


def test_teacher_is_updated_and_used(tmp_path):
    net = make_net()
    teacher = EMATeacher(net, decay=0.5)
    _, store, _, trainer = _setup(tmp_path, epochs=[2], teacher=teacher, max_epochs=2, net=net)
    trainer.run()
    assert teacher.step == 6  # 3 iterations x 2 epochs
    with torch.no_grad():
        pred = teacher.module(make_samples(6)[1]["image"][None]).argmax(1)
    assert torch.equal(store.get("s01").label.long(), pred)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"store": {}}, "'store'"),
        ({"flags": "s01"}, "'flags'"),
        ({"delta": 2.0}, "'delta'"),
        ({"below": "drop"}, "'below'"),
        ({"epochs": [0]}, "'epochs'"),
        ({"teacher": object()}, "'teacher'"),
        ({"activation": "relu"}, "'activation'"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"store": LabelStore(), **kwargs}
    store = args.pop("store")
    with pytest.raises(ValueError, match=match):
        LabelRefurbishHandler([], store, **args)


def _resumable_run(out_dir, *, stop_after=None, resume_from=None):
    net = make_net()
    teacher = EMATeacher(net)
    _, store, handler, trainer = _setup(out_dir, net=net, teacher=teacher, epochs=[1, 3], max_epochs=4)
    save_dict = {"net": net, "opt": trainer.optimizer, "trainer": trainer, "refurbish": handler}
    if resume_from is not None:
        CheckpointLoader(resume_from, load_dict=save_dict).attach(trainer)
    CheckpointSaver(str(out_dir / "ckpt"), save_dict, save_interval=1, epoch_level=True, n_saved=None).attach(trainer)
    if stop_after is not None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), lambda e: e.terminate())
    trainer.run()
    return store, handler, net


def test_resume_keeps_the_store(tmp_path):
    full_store, full, full_net = _resumable_run(tmp_path / "full")
    _resumable_run(tmp_path / "part", stop_after=2)
    ckpt = tmp_path / "part" / "ckpt" / "checkpoint_epoch=2.pt"
    store, resumed, net = _resumable_run(tmp_path / "part", resume_from=str(ckpt))
    assert store.ids() == full_store.ids() == ["s01", "s03"]
    for i in store.ids():
        assert torch.equal(store.get(i).label, full_store.get(i).label)
    assert resumed.history == {i: {**h, "path": h["path"].replace("full", "part")} for i, h in full.history.items()}
    for a, b in zip(net.parameters(), full_net.parameters()):
        assert torch.allclose(a, b)
    assert resumed.teacher.step == full.teacher.step


def test_bad_state_is_refused():
    handler = LabelRefurbishHandler([], LabelStore(), flags=[])
    with pytest.raises(ValueError, match="'state'"):
        handler.load_state_dict({"store": {}})


def _hash_tree(root) -> dict[str, str]:
    import hashlib

    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()
    }


def test_original_label_files_are_never_changed(tmp_path):
    """NIfTI labels on disk, read by LoadImaged in a CacheDataset; a refurbishing run leaves every byte as it was."""
    from monai.data import DataLoader
    from monai.transforms import EnsureChannelFirstd, LoadImaged

    from monai_noisylabel.data import generate_echo_dataset, load_datalist

    data_dir = tmp_path / "data"
    datalist = load_datalist(generate_echo_dataset(data_dir, num=8, size=(24, 24)), "training")
    before = _hash_tree(data_dir)
    store = LabelStore()
    load = [LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"])]
    train = CacheDataset(datalist, Compose([*load, ApplyStoredLabeld("label", store=store)]), progress=False)
    probe = DataLoader(Dataset(datalist, Compose(load)), batch_size=4)
    ids = [d["id"] for d in datalist]
    out = tmp_path / "run"
    handler = LabelRefurbishHandler(probe, store, flags=ids[:3], epochs=[1, 2], refresh=True, output_dir=out)
    net = make_net(num_classes=4)
    trainer = make_trainer(net, DataLoader(train, batch_size=2), max_epochs=3, lr=0.01)
    trainer.loss_function = PseudoLabelWeightedLoss(ce_per_sample, handler)
    handler.attach(trainer)
    trainer.run()
    assert sorted(store.ids()) == sorted(ids[:3])
    assert _hash_tree(data_dir) == before
    manifest = {r["id"]: r for r in read_refurbish_manifest(out)}
    assert sorted(manifest) == sorted(ids[:3])
    for row in manifest.values():
        assert row["original_path"].startswith(str(data_dir)) and not row["refurbished_path"].startswith(str(data_dir))
        assert row["epoch"] == "2"
        import nibabel as nib

        img = nib.load(row["refurbished_path"])
        orig = nib.load(row["original_path"])
        assert img.shape == orig.shape and np.allclose(img.affine, orig.affine)


@pytest.mark.slow
def test_oracle_refurbishment_recovers_the_dice_gap(tmp_path):
    """50 % of training labels systematically biased: refurbishment with oracle flags recovers most of the gap."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_refurbish.py"
    out = tmp_path / "figures.json"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    subprocess.run([sys.executable, str(script), "--device", "cpu", "--json", str(out)], check=True, env=env)
    r = json.loads(out.read_text())
    print(json.dumps(r, indent=1))
    assert r["clean"]["mean"] - r["noisy"]["mean"] > 0.1, "the bias must open a gap for the test to mean anything"
    assert r["recovered"] > 0.6
    assert r["lv_recovered"] > 0.7


def test_select_first_holds_flagged_samples_out_then_relabels_them():
    _, store, handler, trainer = _setup(epochs=[1, 2], rampup_epochs=0, max_epochs=3, select_first=True)
    weights: dict[int, dict[str, float]] = {}
    stored_at: dict[int, list[str]] = {}

    def record(engine):
        w = handler.batch_weights(2)
        w = [1.0, 1.0] if w is None else w.tolist()
        weights.setdefault(engine.state.epoch, {}).update(zip(engine.state.batch["id"], w))

    trainer.add_event_handler(Events.ITERATION_STARTED, record)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: stored_at.update({e.state.epoch: store.ids()}))
    trainer.run()
    # flagged after epoch 1: held out (weight 0) through epoch 2, pseudo-labelled after it, weight 1 in epoch 3
    assert stored_at[1] == [] and sorted(stored_at[2]) == ["s01", "s03"]
    assert weights[1]["s01"] == 1.0 and weights[2]["s01"] == 0.0 and weights[2]["s03"] == 0.0
    assert weights[3]["s01"] == 1.0 and all(v == 1.0 for i, v in weights[2].items() if i not in ("s01", "s03"))
    assert handler.pending == {} and handler.history["s01"]["epoch"] == 2


def test_select_first_state_resumes_and_the_last_epoch_relabels_at_once():
    _, store, handler, trainer = _setup(epochs=[1], max_epochs=2, select_first=True)
    trainer.run()
    assert handler.pending == {"s01": 1, "s03": 1} and len(store) == 0  # held out, never relabelled before the end
    state = handler.state_dict()
    _, _, again, _ = _setup(flags=[], select_first=True)
    again.load_state_dict(state)
    assert again.pending == {"s01": 1, "s03": 1} and again.sample_weight("s01", 2) == 0.0
    _, store, handler, trainer = _setup(epochs=[1], max_epochs=1, select_first=True)
    trainer.run()
    assert sorted(store.ids()) == ["s01", "s03"] and handler.pending == {}
    with pytest.raises(ValueError, match="'select_first' parameter of LabelRefurbishHandler must be a bool"):
        _setup(select_first="yes")
