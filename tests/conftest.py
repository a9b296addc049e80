"""Shared fixtures: keep torch to the 2 CI cores and make GPU tests skip cleanly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not "gpu" in keywords: a checkout folder named gpu
            item.add_marker(skip)


@pytest.fixture
def global_rng_guard():
    """Fail a test that changes the global numpy or torch RNG state."""
    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    yield
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:], (
        "the global numpy RNG was touched"
    )
    assert torch.equal(torch_state, torch.random.get_rng_state()), "the global torch RNG was touched"
