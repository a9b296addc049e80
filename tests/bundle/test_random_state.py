"""TrainingRandomState: the random state of the training transforms and loaders, through a weights_only checkpoint."""

from __future__ import annotations

import io

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.transforms import Compose, RandAffined, RandGaussianNoised

from monai_noisylabel.bundle import TrainingRandomState


def _pipeline():
    return Compose([
        RandAffined("img", prob=1.0, rotate_range=0.5),
        RandGaussianNoised("img", prob=1.0),
    ]).set_random_state(seed=3)  # fmt: skip


def _epoch(loader):
    return torch.cat([b["img"].as_tensor() if hasattr(b["img"], "as_tensor") else b["img"] for b in loader])


def test_resumed_state_draws_what_the_uninterrupted_run_draws(global_rng_guard):
    data = [{"img": torch.full((1, 6, 6), float(i))} for i in range(6)]
    pipeline = _pipeline()
    loader = DataLoader(Dataset(data, pipeline), batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    state = TrainingRandomState(pipeline, [loader])
    assert len(state.states) >= 3  # RandAffined's own array transform and its grid are searched too
    _epoch(loader)
    buffer = io.BytesIO()
    torch.save({"random_state": state.state_dict()}, buffer)
    expected = _epoch(loader)  # epoch 2 of the uninterrupted run

    fresh = _pipeline()  # a new process: the pipeline and the loader start from their seeds again
    loader2 = DataLoader(Dataset(data, fresh), batch_size=2, shuffle=True, generator=torch.Generator().manual_seed(0))
    restored = TrainingRandomState(fresh, [loader2])
    assert not torch.equal(_epoch(loader2), expected)  # without the state: epoch 1's draws again
    buffer.seek(0)
    restored.load_state_dict(torch.load(buffer, weights_only=True)["random_state"])
    torch.testing.assert_close(_epoch(loader2), expected)


def test_a_checkpoint_of_another_pipeline_is_named():
    state = TrainingRandomState(_pipeline())
    with pytest.raises(ValueError, match="random state has 0 transform and 0 loader states"):
        state.load_state_dict({"transforms": [], "generators": []})


def test_a_checkpoint_without_the_random_state_still_resumes(tmp_path, caplog):
    from ignite.engine import Engine

    from monai_noisylabel.bundle import ResumeFromLatestCheckpoint

    net = torch.nn.Linear(2, 2)
    torch.save({"model": net.state_dict()}, tmp_path / "checkpoint_epoch=1.pt")  # written before the entry existed
    engine = Engine(lambda e, b: None)
    resume = ResumeFromLatestCheckpoint(tmp_path, {"model": net, "random_state": TrainingRandomState(_pipeline())})
    resume.attach(engine)
    with caplog.at_level("WARNING"):
        engine.run([0], max_epochs=1)
    assert "has no ['random_state']" in caplog.text


def test_best_model_record_survives_a_resume(tmp_path):
    from ignite.engine import Engine, Events
    from monai.handlers import CheckpointSaver

    from monai_noisylabel.bundle import BestModelState

    scores = iter([0.5, 0.9, 0.7])

    def _saver():
        evaluator = Engine(lambda e, b: None)
        evaluator.state.best_metric, evaluator.state.best_metric_epoch = -1, -1
        evaluator.add_event_handler(Events.EPOCH_COMPLETED, lambda e: e.state.metrics.update(dice=next(scores)))
        saver = CheckpointSaver(
            str(tmp_path), {"model": torch.nn.Linear(1, 1)}, save_key_metric=True, key_metric_filename="model.pt"
        )
        saver.attach(evaluator)
        evaluator.state.key_metric_name = "dice"
        return evaluator, saver

    evaluator, saver = _saver()
    state = BestModelState(saver, evaluator)
    evaluator.run([0], max_epochs=2)  # 0.5, then 0.9: the record holds 0.9
    evaluator.state.best_metric, evaluator.state.best_metric_epoch = 0.9, 2
    saved = state.state_dict()
    assert saved["saved"][0][0] == pytest.approx(0.9) and saved["best_metric"] == pytest.approx(0.9)
    before = (tmp_path / "model.pt").stat().st_mtime_ns
    resumed, saver2 = _saver()  # a new process
    BestModelState(saver2, resumed).load_state_dict(saved)
    assert resumed.state.best_metric == pytest.approx(0.9) and resumed.state.best_metric_epoch == 2
    resumed.run([0], max_epochs=1)  # 0.7 < 0.9: model.pt is not replaced
    assert (tmp_path / "model.pt").stat().st_mtime_ns == before
