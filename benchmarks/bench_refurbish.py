"""Refurbishment with oracle flags: how much of the Dice gap between noisy and clean training it recovers.

Synthetic echo (monai_noisylabel.data.synthetic), a fraction ``--rate`` of the training labels systematically
biased (``RandLabelBias``: the LV cavity dilated by ``--radius`` px, overwriting the wall), validation labels
clean. Three runs of the same U-Net with the same seed, side by side:

- ``clean``: trained on the clean labels (the ceiling);
- ``noisy``: trained on the noisy labels (the floor);
- ``refurbished``: noisy labels, plus :class:`~monai_noisylabel.handlers.LabelRefurbishHandler` with the known
  corrupted ids as oracle flags, from epoch ``--warmup`` on, every ``--every`` epochs (``refresh=True``);
  pseudo-labels are gated at ``--delta``: voxels the model is less sure of are ignored by the loss
  (``below="ignore"``, cross-entropy ``ignore_index``), so the clean samples decide the contested boundary.

Prints per-structure validation Dice for each run and the recovered fraction of the gap
``(refurbished - noisy) / (clean - noisy)``; ``--json`` also writes them to a file (used by the test).

    python benchmarks/bench_refurbish.py                      # 64x64, 96 training images, 24 epochs (CPU: ~3 min)
    python benchmarks/bench_refurbish.py --size 256 --num-train 600 --epochs 40 --device cuda
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.metrics import DiceMetric
from monai.networks.nets import UNet
from monai.networks.utils import one_hot
from monai.transforms import Compose

from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.handlers import LabelRefurbishHandler, PseudoLabelWeightedLoss
from monai_noisylabel.refurbish import ApplyStoredLabeld, LabelStore
from monai_noisylabel.transforms import RandLabelBias

STRUCTURES = ("LV", "myocardium", "LA")
IGNORE = 255


def make_data(args: argparse.Namespace) -> tuple[list[dict], list[dict], list[dict], np.ndarray]:
    """Clean training samples, their noisy twins, clean validation samples, and the corrupted mask."""
    rng = np.random.default_rng(args.seed)
    corrupted = np.zeros(args.num_train, bool)
    corrupted[rng.choice(args.num_train, round(args.rate * args.num_train), replace=False)] = True
    bias = RandLabelBias(label_class=1, mode="dilate", radius=args.radius)

    def case(i: int) -> dict:
        c = make_echo_case(args.seed, i, size=(args.size, args.size))
        image = torch.as_tensor(c["image"], dtype=torch.float32)[None] / 255.0
        return {"image": image, "label": torch.as_tensor(c["label"].astype(np.int64))[None], "id": f"echo{i:04d}"}

    clean = [case(i) for i in range(args.num_train)]
    noisy = [dict(s, label=bias(s["label"]) if corrupted[k] else s["label"]) for k, s in enumerate(clean)]
    val = [case(i) for i in range(args.num_train, args.num_train + args.num_val)]
    return clean, noisy, val, corrupted


def train(args: argparse.Namespace, samples: list[dict], val: list[dict], oracle: list[str] | None) -> np.ndarray:
    """Train one U-Net; return the per-structure validation Dice."""
    device = torch.device(args.device)
    store = LabelStore()
    ds = Dataset(samples, Compose([ApplyStoredLabeld("label", store=store)]))
    loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = UNet(2, 1, 4, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1).to(device)
    ce = torch.nn.CrossEntropyLoss(reduction="none", ignore_index=IGNORE)

    def per_sample(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return ce(logits, labels[:, 0].long()).flatten(1).mean(1)

    handler = None
    loss: object = lambda p, y: per_sample(p, y).mean()  # noqa: E731
    if oracle is not None:
        handler = LabelRefurbishHandler(
            DataLoader(Dataset(samples), batch_size=args.batch_size),
            store,
            flags=oracle,
            warmup=args.warmup - 1,
            every=args.every,
            refresh=True,
            delta=args.delta,
            below="ignore",
            ignore_value=IGNORE,
            rampup_epochs=args.rampup,
        )
        loss = PseudoLabelWeightedLoss(per_sample, handler)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=args.epochs,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), args.lr),
        loss_function=loss,
    )
    if handler is not None:
        handler.attach(trainer)
    trainer.run()
    metric = DiceMetric(include_background=False, reduction="mean_batch")
    net.eval()
    with torch.no_grad():
        for b in DataLoader(Dataset(val), batch_size=args.batch_size):
            pred = net(b["image"].to(device)).argmax(1, keepdim=True)
            metric(one_hot(pred, 4), one_hot(b["label"].to(device), 4))
    return metric.aggregate().cpu().numpy()


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--num-train", type=int, default=96)
    p.add_argument("--num-val", type=int, default=32)
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--rate", type=float, default=0.5)
    p.add_argument("--radius", type=int, default=4)
    p.add_argument("--warmup", type=int, default=8, help="first refurbishment after this epoch")
    p.add_argument("--every", type=int, default=2)
    p.add_argument("--delta", type=float, default=0.9)
    p.add_argument("--rampup", type=float, default=2.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)

    clean, noisy, val, corrupted = make_data(args)
    oracle = [s["id"] for s, c in zip(noisy, corrupted) if c]
    results = {}
    for name, samples, flags in (("clean", clean, None), ("noisy", noisy, None), ("refurbished", noisy, oracle)):
        t0 = time.perf_counter()
        dice = train(args, samples, val, flags)
        results[name] = {"dice": dict(zip(STRUCTURES, map(float, dice))), "mean": float(dice.mean())}
        results[name]["seconds"] = round(time.perf_counter() - t0, 1)
    gap = results["clean"]["mean"] - results["noisy"]["mean"]
    results["recovered"] = (
        (results["refurbished"]["mean"] - results["noisy"]["mean"]) / gap if gap > 0 else float("nan")
    )
    results["lv_recovered"] = (results["refurbished"]["dice"]["LV"] - results["noisy"]["dice"]["LV"]) / max(
        results["clean"]["dice"]["LV"] - results["noisy"]["dice"]["LV"], 1e-9
    )

    print(
        f"echo {args.size}x{args.size}, {args.num_train} training images, {args.rate:.0%} LV dilated by "
        f"{args.radius} px, {args.epochs} epochs, refurbish from epoch {args.warmup} every {args.every} "
        f"(delta {args.delta}), device {args.device}"
    )
    print(f"{'run':<12} {'LV':>6} {'myo':>6} {'LA':>6} {'mean':>6} {'time s':>7}")
    for name in ("clean", "noisy", "refurbished"):
        r = results[name]
        d = r["dice"]
        print(f"{name:<12} {d['LV']:6.3f} {d['myocardium']:6.3f} {d['LA']:6.3f} {r['mean']:6.3f} {r['seconds']:7.1f}")
    print(f"gap recovered: mean Dice {results['recovered']:.0%}, LV Dice {results['lv_recovered']:.0%}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
