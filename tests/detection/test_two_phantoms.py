"""The smallest version of ``benchmarks/bench_detection.py``: the bundle's handlers on both phantoms, tiny sizes.

Phantom b (an independent generator and corruption code) was never used to tune the defaults.
"""

from __future__ import annotations

import importlib.util
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_detection.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_detection", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_detection"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("phantom", ["a", "b"])
def test_default_detection_on_both_phantoms(phantom, global_rng_guard):
    bench = _bench()
    args = Namespace(
        size=48,
        num_train=48,
        num_val=16,
        epochs=12,
        batch_size=4,
        lr=3e-3,
        channels=(8, 16, 32),
        radius=2,
        bias=3,
        seed=0,
    )
    train_images, train_labels = bench.make_data(phantom, 0, 0, args.num_train, args.size)
    val_images, val_labels = bench.make_data(phantom, 0, args.num_train, args.num_val, args.size)
    data = {"train_images": train_images, "train_labels": train_labels, "val_images": val_images}
    data["val_labels"] = val_labels
    with torch.random.fork_rng(devices=[]):  # a DataLoader without generator draws its base seed globally
        result = bench.run_cell(args, data, phantom, "systematic", 0.5)
    m = result["metrics"]
    assert m["combined"]["auroc"] >= 0.9, m
    # the data-driven flag rule: it flags some of the 24 biased labels, and (almost) only those
    assert result["flags"] >= 5 and result["precision"] >= 0.8, result
