"""Tiny deterministic data, networks and trainers shared by the handler tests (imported by them, not collected)."""

from __future__ import annotations

import numpy as np
import torch
from monai.engines import SupervisedTrainer


def make_samples(num: int = 6, size: int = 8, seed: int = 0, num_classes: int = 2) -> list[dict]:
    """``num`` dict samples with a float image (1, size, size), class-index label (1, size, size) and an id."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num):
        image = rng.random((1, size, size)).astype(np.float32)
        label = (image > 0.5).astype(np.int64) if num_classes == 2 else rng.integers(0, num_classes, (1, size, size))
        out.append({"image": torch.from_numpy(image), "label": torch.from_numpy(label), "id": f"s{i:02d}"})
    return out


def make_loader(samples, batch_size: int = 2, shuffle: bool = False, seed: int = 0):
    """A torch DataLoader with its own generator (so the global torch RNG is never drawn from)."""
    return torch.utils.data.DataLoader(
        samples, batch_size=batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed)
    )


def make_net(in_channels: int = 1, num_classes: int = 2, seed: int = 0) -> torch.nn.Module:
    """A two-layer conv net (no batch norm: samples do not interact), initialized without the global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Sequential(
            torch.nn.Conv2d(in_channels, 4, 3, padding=1),
            torch.nn.Tanh(),
            torch.nn.Conv2d(4, num_classes, 3, padding=1),
        )


def ce_per_sample(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy (mean over voxels), ``(B,)``."""
    return torch.nn.functional.cross_entropy(logits, labels[:, 0].long(), reduction="none").flatten(1).mean(1)


def ce_mean(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The batch mean of :func:`ce_per_sample` (a training loss)."""
    return ce_per_sample(logits, labels).mean()


def make_trainer(net, loader, max_epochs: int = 3, lr: float = 0.5, **kwargs) -> SupervisedTrainer:
    return SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=max_epochs,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.SGD(net.parameters(), lr=lr),
        loss_function=ce_mean,
        **kwargs,
    )


class HistogramRecorder:
    """Stands in for a TensorBoard SummaryWriter: records ``add_histogram`` calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, np.ndarray, int]] = []

    def add_histogram(self, tag, values, global_step=None):
        self.calls.append((tag, np.asarray(values), global_step))
