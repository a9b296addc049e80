"""The handlers' one schedule vocabulary: warmup, every, epochs ([] = never), and its checks."""

from __future__ import annotations

import pytest
import torch

from monai_noisylabel.handlers import EpochSchedule, LabelRefurbishHandler, SampleLossHandler
from monai_noisylabel.handlers.schedule import check_epochs
from monai_noisylabel.refurbish import LabelStore


@pytest.mark.parametrize(
    "kwargs, selected",
    [
        ({}, [1, 2, 3, 4, 5, 6]),
        ({"warmup": 2}, [3, 4, 5, 6]),
        ({"every": 2}, [2, 4, 6]),
        ({"warmup": 2, "every": 3}, [3, 6]),
        ({"warmup": 5, "every": 3, "epochs": [1, 4]}, [1, 4]),
        ({"epochs": []}, []),
    ],
)
def test_selected_epochs(kwargs, selected):
    schedule = EpochSchedule.checked("demo", **kwargs)
    assert [e for e in range(1, 7) if schedule(e)] == selected == schedule.until(6)


@pytest.mark.parametrize(
    "kwargs, name, got",
    [
        ({"warmup": -1}, "warmup", "-1"),
        ({"every": 0}, "every", "0"),
        ({"every": 1.5}, "every", "1.5"),
        ({"epochs": 3}, "epochs", "3"),
        ({"epochs": "3"}, "epochs", "'3'"),
        ({"epochs": [0, 2]}, "epochs", r"\[0, 2\]"),
        ({"epochs": [2, 2]}, "epochs", r"\[2, 2\]"),
        ({"epochs": [True]}, "epochs", r"\[True\]"),
    ],
)
def test_bad_schedules_name_the_parameter(kwargs, name, got):
    with pytest.raises(ValueError, match=rf"The '{name}' parameter of demo must .* Got {got} instead\."):
        EpochSchedule.checked("demo", **kwargs)


def test_every_handler_takes_the_same_words():
    loss = torch.nn.CrossEntropyLoss(reduction="none")
    a = SampleLossHandler([], loss_fn=loss, warmup=1, every=2, epochs=[3])
    b = LabelRefurbishHandler([], LabelStore(), warmup=1, every=2, epochs=[3])
    assert a.schedule == b.schedule == EpochSchedule(1, 2, (3,))
    assert check_epochs("demo", {4, 2}) == [2, 4]
    assert SampleLossHandler([], loss_fn=loss, epochs=[]).schedule.until(10) == []
