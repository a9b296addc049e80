"""NonFiniteLossHandler: a NaN loss stops training naming the batch's ids, or the batch is skipped without a trace."""

from __future__ import annotations

import logging

import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer

from monai_noisylabel.handlers import NonFiniteLossHandler


def _trainer(
    handler: NonFiniteLossHandler, bad: set[int], keep: tuple[int, ...] = tuple(range(6))
) -> SupervisedTrainer:
    g = torch.Generator().manual_seed(0)
    data = []
    for i in range(6):
        image = torch.rand(1, 8, 8, generator=g)
        if i in bad:
            image[0, 0, 0] = float("nan")
        if i in keep:
            data.append({"id": f"case{i}", "image": image, "label": (image > 0.5).float()})
    network = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 1, 1)
    )
    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=1,
        train_data_loader=DataLoader(Dataset(data), batch_size=2, shuffle=False),
        network=network,
        optimizer=torch.optim.Adam(network.parameters(), lr=1e-2),
        loss_function=torch.nn.BCEWithLogitsLoss(),
    )
    handler.attach(trainer)
    return trainer


def _weights(trainer: SupervisedTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.network.state_dict().items()}


def test_stop_names_the_batch_and_keeps_the_weights():
    trainer = _trainer(NonFiniteLossHandler("stop"), bad={3})
    seen = []
    from ignite.engine import Events

    trainer.add_event_handler(Events.ITERATION_STARTED, lambda e: seen.append(_weights(e)))
    with pytest.raises(FloatingPointError, match=r"iteration 2; batch ids \['case2', 'case3'\] .*\['case3'\]"):
        trainer.run()
    after = _weights(trainer)
    assert all(torch.equal(after[k], seen[-1][k]) for k in after)  # the NaN batch changed nothing
    assert all(torch.isfinite(v.float()).all() for v in after.values())


def test_skip_trains_on_the_other_batches_only(caplog):
    handler = NonFiniteLossHandler("skip")
    trainer = _trainer(handler, bad={3})
    init = _weights(trainer)
    with caplog.at_level(logging.WARNING):
        trainer.run()
    assert handler.skipped == [{"epoch": 1, "iteration": 2, "ids": ["case2", "case3"]}]
    assert "batch ids ['case2', 'case3']" in caplog.text
    assert all(torch.isfinite(v.float()).all() for v in trainer.network.state_dict().values())
    # the same as training on batches 1 and 3 only
    clean = _trainer(NonFiniteLossHandler("skip"), bad=set(), keep=(0, 1, 4, 5))
    clean.network.load_state_dict(init)
    clean.run()
    for k, v in trainer.network.state_dict().items():
        assert torch.allclose(v.float(), clean.network.state_dict()[k].float(), atol=1e-6), k
    assert handler.state_dict() == {"skipped": handler.skipped}


def test_finite_losses_pass_and_bad_action_is_refused():
    handler = NonFiniteLossHandler("stop")
    _trainer(handler, bad=set()).run()
    assert handler.skipped == []
    with pytest.raises(ValueError, match="'action' parameter of NonFiniteLossHandler must be one of 'stop', 'skip'"):
        NonFiniteLossHandler("ignore")
