"""NAP against plain cross entropy on synthetic echo with 40 % of the training labels corrupted.

The training code lives in ``benchmarks/bench_losses.py`` (``--robustness`` prints the whole grid of noise
kinds and seeds); this test runs its ``swap`` cell for seed 0: in 40 % of the training labels the LV cavity
and the left atrium are exchanged (the wrong structure named, a systematic error). The same UNet, from the
same initialization and with the same batch order, is trained with each loss.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_losses.py"


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_losses", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_losses", module)
    spec.loader.exec_module(module)
    return module


def test_corruption_helpers():
    bench = _bench_module()
    _, labels = bench.echo_data(0, 0, 10, size=32)
    swapped = bench.corrupt_labels(labels, "swap", 0.4, seed=1)
    changed = [i for i in range(10) if not torch.equal(swapped[i], labels[i])]
    assert len(changed) == 4
    i = changed[0]
    assert torch.equal(swapped[i] == 3, labels[i] == 1) and torch.equal(swapped[i] == 1, labels[i] == 3)
    grown = bench.corrupt_labels(labels, "dilate_lv", 0.4, seed=1)
    assert all((grown[i] == 1).sum() > (labels[i] == 1).sum() for i in changed)
    dropped = bench.corrupt_labels(labels, "drop_la", 0.4, seed=1)
    assert all(not (dropped[i] == 3).any() for i in changed)
    assert torch.equal(bench.corrupt_labels(labels, "none", 0.4, seed=1), labels)
    with pytest.raises(ValueError, match="unknown noise kind 'flip'"):
        bench.corrupt_labels(labels, "flip", 0.4, seed=1)


@pytest.mark.slow
def test_nap_beats_cross_entropy_under_label_noise(global_rng_guard):
    bench = _bench_module()
    dice = bench.robustness_cell("swap", seed=0)
    print(f"clean-validation mean Dice, 40% LV/LA swapped: CE {dice['CE']:.3f}, NAP {dice['NAP']:.3f}")
    assert dice["CE"] > 0.5, dice  # both models learned the task
    assert dice["NAP"] > dice["CE"] + 0.02, dice
