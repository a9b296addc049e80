"""Does the default detection find corrupted labels on data it was never tuned on? Two phantoms, the bundle's handlers.

For each phantom (``a``: :func:`~monai_noisylabel.data.make_echo_case`, the one the defaults were tuned on;
``b``: :func:`~monai_noisylabel.data.echo_phantom_b.make_echo_phantom_b`, an independent generator with its
own corruption code, never tuned on), each noise kind and rate, it corrupts exactly ``round(rate * N)``
training labels, trains a small MONAI UNet with a ``SupervisedTrainer`` and the echo bundle's own detection
handlers (``SampleLossHandler`` with the clean validation set as ``reference_loader``, and
``LabelQualityReportHandler`` with its defaults), and prints per cell: AUROC and average precision of the
default ``combined`` score, precision and recall of its ``flagged`` column (the number of flags comes from
the data), the loss and offset columns alone, the previous default (``weights="separation"``), and
cleanlab's ``segmentation.rank.get_label_quality_scores`` (softmin) on the same final model.

Kinds: ``random`` (every structure grown or shrunk by ``1..radius``), ``systematic`` (the LV cavity of every
corrupted label grown by ``bias`` px), ``omission`` (left atrium removed), ``subtle_systematic`` (a quarter
of the bias, at least 1 px), ``subtle_random`` (radius 1). Phantom ``a`` is corrupted with MONAI's
morphological ops (square elements), phantom ``b`` with its own signed-distance code.

Run (CPU; the README table used these settings, about 20-30 min on 2 shared cores)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_detection.py --size 64 --num-train 120 --num-val 24 --epochs 15
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Any

import numpy as np
import torch
from monai.engines import SupervisedTrainer
from monai.networks.nets import UNet
from monai.transforms.utils_morphological_ops import dilate, erode
from monai.utils import set_determinism
from scipy import ndimage

from monai_noisylabel.bundle import SampleDiceCELoss
from monai_noisylabel.data.echo_phantom_b import corrupt_echo_phantom_b, make_echo_phantom_b
from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.detection import combine_scores, detection_metrics
from monai_noisylabel.handlers import LabelQualityReportHandler, SampleLossHandler

KINDS = ("random", "systematic", "omission", "subtle_systematic", "subtle_random")
NUM_CLASSES = 4
LV, LA = 1, 3


def make_data(phantom: str, seed: int, start: int, num: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 1, H, W)`` float32 in [0, 1] and labels ``(N, 1, H, W)`` int64."""
    make = make_echo_case if phantom == "a" else make_echo_phantom_b
    cases = [make(seed, i, size=(size, size)) for i in range(start, start + num)]
    images = np.stack([c["image"] for c in cases])[:, None].astype(np.float32) / 255.0
    labels = np.stack([c["label"] for c in cases])[:, None].astype(np.int64)
    return images, labels


def resize_class(label: np.ndarray, cls: int, radius: int, grow: bool) -> np.ndarray:
    """Phantom a: dilate or erode class ``cls`` by ``radius`` with MONAI's morphology (square element)."""
    mask = label == cls
    if not mask.any() or radius < 1:
        return label
    out = label.copy()
    m = mask[None, None].astype(np.float32)
    if grow:
        out[(dilate(m, 2 * radius + 1)[0, 0] > 0.5) & ~mask] = cls
        return out
    removed = mask & ~(erode(m, 2 * radius + 1)[0, 0] > 0.5)
    nearest = ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)
    out[removed] = label[tuple(idx[removed] for idx in nearest)]
    return out


def corrupt_one(phantom: str, label: np.ndarray, kind: str, rng: np.random.Generator, args: Any) -> np.ndarray:
    base = kind.replace("subtle_", "")
    if kind == "subtle_systematic":
        radius = max(1, args.bias // 4)
    elif kind == "subtle_random":
        radius = 1
    else:
        radius = args.bias if base == "systematic" else args.radius
    if phantom == "b":
        return corrupt_echo_phantom_b(label, base, radius=radius, rng=rng)
    if base == "systematic":
        return resize_class(label, LV, radius, grow=True)
    if base == "omission":
        return np.where(label == LA, 0, label)
    for cls in range(1, NUM_CLASSES):
        label = resize_class(label, cls, int(rng.integers(1, radius + 1)), grow=bool(rng.random() < 0.5))
    return label


def cleanlab_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's image label-quality score as suspicion (``1 - quality``); NaN when cleanlab is missing."""
    try:
        from cleanlab.segmentation.rank import get_label_quality_scores
    except ImportError:
        return np.full(len(labels), np.nan)
    quality, _ = get_label_quality_scores(labels[:, 0], probs, method="softmin", verbose=False)
    return 1.0 - np.asarray(quality, dtype=np.float64)


def _items(images: np.ndarray, labels: np.ndarray, prefix: str) -> list[dict[str, Any]]:
    return [
        {"image": torch.as_tensor(x), "label": torch.as_tensor(y), "id": f"{prefix}{i:04d}"}
        for i, (x, y) in enumerate(zip(images, labels))
    ]


def run_cell(args: Any, data: dict[str, np.ndarray], phantom: str, kind: str, rate: float) -> dict[str, Any]:
    """Train on one corrupted copy through the bundle's handlers; metrics of every score against the truth."""
    rng = np.random.default_rng([args.seed, KINDS.index(kind), round(rate * 1000), ord(phantom)])
    labels = data["train_labels"]
    n = len(labels)
    corrupted = np.zeros(n, bool)
    corrupted[rng.choice(n, size=round(rate * n), replace=False)] = True
    noisy = labels.copy()
    for i in np.flatnonzero(corrupted):
        noisy[i, 0] = corrupt_one(phantom, labels[i, 0], kind, rng, args)
    train = _items(data["train_images"], noisy, "t")
    g = torch.Generator().manual_seed(args.seed)
    loader = torch.utils.data.DataLoader(train, batch_size=args.batch_size, shuffle=True, generator=g)
    probe = torch.utils.data.DataLoader(train, batch_size=args.batch_size)
    val = torch.utils.data.DataLoader(_items(data["val_images"], data["val_labels"], "v"), batch_size=args.batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = UNet(2, 1, NUM_CLASSES, channels=args.channels, strides=(2,) * (len(args.channels) - 1), num_res_units=1)
    trainer = SupervisedTrainer(
        "cpu",
        args.epochs,
        loader,
        net,
        torch.optim.Adam(net.parameters(), args.lr),
        SampleDiceCELoss(reduction="mean"),
    )
    SampleLossHandler(
        probe, loss_fn=SampleDiceCELoss(reduction="none"), warmup=1, reference_loader=val, name="bench"
    ).attach(trainer)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        LabelQualityReportHandler(out, epoch_level=False, name="bench").attach(trainer)
        trainer.run()
    seconds = time.perf_counter() - t0
    table = trainer.state.label_scores
    ids = [item["id"] for item in train]
    col = {c: np.array([table[i][c] for i in ids], dtype=np.float64) for c in ("loss", "offset", "combined")}
    flagged = np.array([bool(table[i]["flagged"]) for i in ids])
    net.eval()
    with torch.no_grad():
        probs = torch.softmax(net(torch.as_tensor(data["train_images"])), 1).numpy()
    scores = {
        "combined": col["combined"],
        "loss": col["loss"],
        "offset": col["offset"],
        "separation": combine_scores({"loss": col["loss"], "offset": col["offset"]}, weights="separation"),
        "cleanlab": cleanlab_scores(probs, noisy),
    }
    nan = {"auroc": np.nan, "average_precision": np.nan}
    metrics = {k: nan if np.isnan(v).any() else detection_metrics(v, corrupted) for k, v in scores.items()}
    hits = int((flagged & corrupted).sum())
    return {
        "metrics": metrics,
        "flags": int(flagged.sum()),
        "precision": hits / flagged.sum() if flagged.any() else np.nan,
        "recall": hits / corrupted.sum() if corrupted.any() else np.nan,
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phantoms", nargs="+", default=["a", "b"], choices=["a", "b"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--num-train", type=int, default=120)
    parser.add_argument("--num-val", type=int, default=24, help="clean, trusted reference set")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument("--radius", type=int, default=None, help="random errors up to this radius (size // 32, >= 2)")
    parser.add_argument("--bias", type=int, default=None, help="systematic growth in px (size // 16, >= 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.radius = args.radius or max(2, args.size // 32)
    args.bias = args.bias or max(2, args.size // 16)
    args.channels = tuple(args.channels)
    torch.set_num_threads(args.threads)
    set_determinism(None)
    print(
        f"{args.size}x{args.size}, {args.num_train} train / {args.num_val} clean val, {args.epochs} epochs, UNet "
        f"{args.channels}, random radius {args.radius}, bias {args.bias} px (subtle {max(1, args.bias // 4)})",
        flush=True,
    )
    t0 = time.perf_counter()
    head = (
        "| phantom | kind | rate | **combined AUROC** | combined AP | flags | flag precision | flag recall "
        "| loss | offset | previous default (separation) | cleanlab |"
    )
    rows = []
    for phantom in args.phantoms:
        train_images, train_labels = make_data(phantom, args.seed, 0, args.num_train, args.size)
        val_images, val_labels = make_data(phantom, args.seed, args.num_train, args.num_val, args.size)
        data = {"train_images": train_images, "train_labels": train_labels}
        data.update(val_images=val_images, val_labels=val_labels)
        for kind in args.kinds:
            for rate in args.rates:
                r = run_cell(args, data, phantom, kind, rate)
                m = r["metrics"]
                row = (
                    f"| {phantom} | {kind} | {rate:g} | **{m['combined']['auroc']:.2f}** | "
                    f"{m['combined']['average_precision']:.2f} | {r['flags']} | {r['precision']:.2f} | "
                    f"{r['recall']:.2f} | {m['loss']['auroc']:.2f} | {m['offset']['auroc']:.2f} | "
                    f"{m['separation']['auroc']:.2f} | {m['cleanlab']['auroc']:.2f} |"
                )
                rows.append(row)
                print(row, f"({r['seconds']:.0f} s)", flush=True)
    print("\nAUROC unless named; flags: number flagged by the default rule (out of", args.num_train, ")\n")
    print(head)
    print("|---" * 12 + "|")
    print("\n".join(rows))
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
