"""A run interrupted after epoch k and resumed with MONAI CheckpointSaver/CheckpointLoader gives the same scores."""

from __future__ import annotations

import numpy as np
import pytest
from handler_testlib import ce_per_sample, make_loader, make_net, make_samples, make_trainer
from ignite.engine import Events
from monai.handlers import CheckpointLoader, CheckpointSaver

from monai_noisylabel.handlers import SampleLossHandler, VarianceOfGradientsHandler

MAX_EPOCHS = 5


def _run(out_dir, *, stop_after=None, resume_from=None, loader_first=False):
    samples = make_samples(6)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=MAX_EPOCHS)
    handlers = {
        "vog": VarianceOfGradientsHandler(make_loader(samples, 4), output_dir=out_dir),
        "vog_online": VarianceOfGradientsHandler(mode="online", epochs=[2, 3, 4, 5]),
        "loss": SampleLossHandler(make_loader(samples, 4), loss_fn=ce_per_sample, output_dir=out_dir),
    }
    save_dict = {"net": net, "opt": trainer.optimizer, "trainer": trainer, **handlers}
    loader = None if resume_from is None else CheckpointLoader(resume_from, load_dict=save_dict)
    if loader is not None and loader_first:
        loader.attach(trainer)
    for h in handlers.values():
        h.attach(trainer)
    if loader is not None and not loader_first:
        loader.attach(trainer)  # after the handlers: they have resolved their schedule when the state arrives
    CheckpointSaver(str(out_dir / "ckpt"), save_dict, save_interval=1, epoch_level=True, n_saved=None).attach(trainer)
    if stop_after is not None:
        trainer.add_event_handler(Events.EPOCH_COMPLETED(once=stop_after), lambda e: e.terminate())
    trainer.run()
    return trainer, handlers


@pytest.mark.parametrize("loader_first", [False, True])
def test_resume_gives_the_same_scores(tmp_path, loader_first):
    full_trainer, full = _run(tmp_path / "full")
    first, _ = _run(tmp_path / "part", stop_after=2)
    assert first.state.epoch == 2
    ckpt = tmp_path / "part" / "ckpt" / "checkpoint_epoch=2.pt"
    assert ckpt.exists()
    resumed_trainer, resumed = _run(tmp_path / "part", resume_from=str(ckpt), loader_first=loader_first)
    assert resumed_trainer.state.epoch == MAX_EPOCHS
    for name in full:
        assert full[name].scores() == resumed[name].scores(), name
    assert np.isfinite(list(full["vog"].scores().values())).all()
    assert np.isfinite(list(full["vog_online"].scores().values())).all()
    assert (tmp_path / "full" / "label_scores.csv").read_text() == (tmp_path / "part" / "label_scores.csv").read_text()
    assert full_trainer.state.label_scores.keys() == resumed_trainer.state.label_scores.keys()


def test_resume_with_another_schedule_is_refused(tmp_path):
    _run(tmp_path / "part", stop_after=1)
    samples = make_samples(6)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=MAX_EPOCHS)
    vog = VarianceOfGradientsHandler(make_loader(samples, 4), every=2)
    vog.attach(trainer)
    CheckpointLoader(str(tmp_path / "part" / "ckpt" / "checkpoint_epoch=1.pt"), {"net": net, "vog": vog}).attach(
        trainer
    )
    with pytest.raises(
        ValueError, match=r"The 'state' parameter of VarianceOfGradientsHandler must be a state recorded"
    ):
        trainer.run()
