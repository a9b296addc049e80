"""Speed of the noise-tolerant losses next to MONAI ``DiceCELoss`` on the same tensors.

For every loss of :mod:`monai_noisylabel.losses` it times forward + backward on ``B x 4 x H x W`` logits
(default 32 x 4 x 256 x 256, the issue's size; ``--small`` uses 8 x 4 x 64 x 64) against the same index-map
labels (``to_onehot_y=True``) and, for the losses that take them, the same soft probability maps, and prints
the median time and its ratio to ``DiceCELoss(to_onehot_y=True, softmax=True)`` on the same target kind.
The target is a ratio of at most 1.5.

Run::

    OMP_NUM_THREADS=1 python benchmarks/bench_losses.py            # CPU, and CUDA when available
    OMP_NUM_THREADS=1 python benchmarks/bench_losses.py --small --device cpu

``--robustness`` instead trains the same small 2D MONAI UNet (same initialization, same batch order) on
synthetic echo phantoms (64 x 64) with 40 % of the training labels corrupted, once with cross entropy and
once with :class:`~monai_noisylabel.losses.NormalizedActivePassiveLoss`, and prints the mean Dice
(LV cavity, myocardium, LA; MONAI ``DiceMetric``) on clean validation labels for every noise kind and seed::

    OMP_NUM_THREADS=1 python benchmarks/bench_losses.py --robustness --seeds 0 1 2 3

Noise kinds (applied to exactly ``round(0.4 * N)`` training labels; validation labels stay clean):
``swap`` (LV cavity and left atrium exchanged: the wrong structure named), ``dilate_lv`` (LV cavity dilated
by 3 px with MONAI's ``dilate``, overwriting its neighbours), ``drop_la`` (left atrium set to background),
``none`` (clean reference). ``tests/losses/test_loss_robustness.py`` runs the ``swap`` cell of seed 0.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.nets import UNet
from monai.transforms.utils_morphological_ops import dilate

from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.losses import (
    MeanAbsoluteErrorLoss,
    NormalizedActivePassiveLoss,
    NormalizedCrossEntropyLoss,
    NormalizedFocalLoss,
    ReverseCrossEntropyLoss,
    ThresholdBinarizedBCELoss,
)

NUM_CLASSES = 4
LV, LA = 1, 3
NOISE_KINDS = ("swap", "dilate_lv", "drop_la", "none")


def make_losses(index_targets: bool) -> dict[str, torch.nn.Module]:
    """The losses to time; ``index_targets`` builds them for index maps, else for soft probability maps."""
    kw = {"to_onehot_y": index_targets}
    return {
        "DiceCELoss (MONAI, baseline)": DiceCELoss(softmax=True, **kw),
        "NormalizedCrossEntropyLoss": NormalizedCrossEntropyLoss(softmax=True, **kw),
        "NormalizedFocalLoss": NormalizedFocalLoss(softmax=True, gamma=0.5, **kw),
        "ReverseCrossEntropyLoss": ReverseCrossEntropyLoss(softmax=True, **kw),
        "MeanAbsoluteErrorLoss": MeanAbsoluteErrorLoss(softmax=True, **kw),
        "NAP nce+rce": NormalizedActivePassiveLoss("nce", "rce", softmax=True, **kw),
        "NAP nfl+mae": NormalizedActivePassiveLoss("nfl", "mae", softmax=True, **kw),
        "NAP nce+rce, sigmoid": NormalizedActivePassiveLoss("nce", "rce", sigmoid=True, **kw),
        "ThresholdBinarizedBCELoss": ThresholdBinarizedBCELoss(threshold=0.6, ignore_band=0.4, **kw),
    }


def bench(
    device: torch.device,
    shape: tuple[int, int, int, int],
    repeats: int,
    warmup: int,
    dtype: torch.dtype = torch.float32,
) -> list[tuple]:
    """Rows ``(target kind, loss name, seconds, ratio to DiceCELoss)`` for one device.

    ``dtype`` is the dtype of the logits and soft targets (``torch.bfloat16``: what an AMP network emits). The losses are timed round-robin (one step of each per round, ``repeats`` rounds, median per loss), so a
    change of load on a shared machine hits all of them alike.
    """
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(shape, generator=gen).to(device, dtype).requires_grad_()
    labels = torch.randint(0, NUM_CLASSES, (shape[0], 1, *shape[2:]), generator=gen).float().to(device)
    soft = torch.softmax(3 * torch.randn(shape, generator=gen), dim=1).to(device, dtype)
    rows = []
    for kind, target in (("index", labels), ("soft", soft)):
        losses = make_losses(kind == "index")
        times: dict[str, list[float]] = {name: [] for name in losses}
        for rnd in range(warmup + repeats):
            for name, loss in losses.items():
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                logits.grad = None
                loss(logits, target).backward()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if rnd >= warmup:
                    times[name].append(time.perf_counter() - start)
        base = statistics.median(next(iter(times.values())))
        for name, values in times.items():
            seconds = statistics.median(values)
            rows.append((kind, name, seconds, seconds / base))
    return rows


def echo_data(seed: int, start: int, num: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Images ``(N, 1, H, W)`` float32 in [0, 1] and labels ``(N, 1, H, W)`` int64 of synthetic echo cases."""
    cases = [make_echo_case(seed, i, size=(size, size)) for i in range(start, start + num)]
    images = torch.from_numpy(np.stack([c["image"] for c in cases])[:, None].astype(np.float32) / 255.0)
    labels = torch.from_numpy(np.stack([c["label"] for c in cases])[:, None].astype(np.int64))
    return images, labels


def corrupt_labels(labels: torch.Tensor, kind: str, rate: float, seed: int, radius: int = 3) -> torch.Tensor:
    """A copy of ``labels`` with exactly ``round(rate * N)`` samples corrupted by ``kind`` (see the module doc)."""
    noisy = labels.clone()
    chosen = np.random.default_rng(seed).choice(len(labels), size=round(rate * len(labels)), replace=False)
    for i in chosen.tolist():
        lab = noisy[i]
        if kind == "swap":
            lv, la = lab == LV, lab == LA
            lab[lv], lab[la] = LA, LV
        elif kind == "dilate_lv":
            grown = dilate((lab == LV).float()[None], 2 * radius + 1)[0] > 0.5
            lab[grown] = LV
        elif kind == "drop_la":
            lab[lab == LA] = 0
        elif kind != "none":
            raise ValueError(f"unknown noise kind {kind!r}; expected one of {NOISE_KINDS}")
    return noisy


def train_unet(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    seed: int,
    epochs: int = 40,
    lr: float = 1e-2,
    batch_size: int = 8,
) -> torch.nn.Module:
    """Train a small 2D UNet with Adam and a cosine schedule; initialization and batch order depend on ``seed`` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = UNet(2, 1, NUM_CLASSES, channels=(8, 16, 32), strides=(2, 2), num_res_units=0)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    order = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(len(images), generator=order)
        for start in range(0, len(images), batch_size):
            idx = perm[start : start + batch_size]
            opt.zero_grad()
            loss_fn(net(images[idx]), labels[idx]).backward()
            opt.step()
        sched.step()
    return net.eval()


@torch.no_grad()
def mean_dice(net: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean Dice of the argmax prediction over the foreground classes and images (MONAI ``DiceMetric``)."""
    pred = net(images).argmax(1, keepdim=True)
    metric = DiceMetric(include_background=False, reduction="mean", num_classes=NUM_CLASSES)
    metric(pred, labels)
    return float(metric.aggregate())


def robustness_losses() -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    """Plain cross entropy and NAP (NCE + RCE, the paper's CIFAR-100 weights alpha=10, beta=0.1)."""
    ce = torch.nn.CrossEntropyLoss()
    return {
        "CE": lambda logits, labels: ce(logits, labels[:, 0]),
        "NAP": NormalizedActivePassiveLoss("nce", "rce", alpha=10.0, beta=0.1, softmax=True, to_onehot_y=True),
    }


def robustness_cell(kind: str, seed: int, num_train: int = 96, num_val: int = 32, epochs: int = 40) -> dict[str, float]:
    """Clean-validation mean Dice of each loss of :func:`robustness_losses` after training on noisy labels."""
    images, labels = echo_data(seed, 0, num_train)
    val_images, val_labels = echo_data(seed, 10_000, num_val)
    noisy = corrupt_labels(labels, kind, 0.4, seed + 1)
    return {
        name: mean_dice(train_unet(loss, images, noisy, seed=seed, epochs=epochs), val_images, val_labels)
        for name, loss in robustness_losses().items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="8 x 4 x 64 x 64 instead of 32 x 4 x 256 x 256")
    parser.add_argument("--device", choices=("all", "cpu", "cuda"), default="all")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--robustness", action="store_true", help="train CE vs NAP on noisy labels instead")
    parser.add_argument("--kinds", nargs="+", choices=NOISE_KINDS, default=list(NOISE_KINDS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    args = parser.parse_args()
    if args.robustness:
        print("clean-validation mean Dice after training with 40 % of training labels corrupted")
        print(f"{'noise':<10} {'seed':>4} {'CE':>7} {'NAP':>7} {'NAP-CE':>7} {'s':>6}")
        for kind in args.kinds:
            for seed in args.seeds:
                start = time.perf_counter()
                dice = robustness_cell(kind, seed)
                took = time.perf_counter() - start
                print(
                    f"{kind:<10} {seed:>4} {dice['CE']:7.3f} {dice['NAP']:7.3f} {dice['NAP'] - dice['CE']:+7.3f} {took:6.1f}"
                )
        return
    shape = (8, NUM_CLASSES, 64, 64) if args.small else (32, NUM_CLASSES, 256, 256)
    devices = []
    if args.device in ("all", "cpu"):
        devices.append(torch.device("cpu"))
    if args.device in ("all", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(f"logits {shape}, forward + backward, median of {args.repeats}, torch {torch.__version__}")
    for device in devices:
        label = (
            torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
        )
        print(f"\n{label}")
        print(f"{'target':<7} {'loss':<30} {'ms':>9} {'x DiceCE':>9}")
        for kind, name, seconds, ratio in bench(device, shape, args.repeats, args.warmup):
            print(f"{kind:<7} {name:<30} {seconds * 1e3:9.1f} {ratio:9.2f}")


if __name__ == "__main__":
    main()
