"""Which score finds corrupted segmentation labels? A side-by-side benchmark on synthetic echo phantoms.

For every noise kind (random, systematic, omission) and rate (default 0.25, 0.5) it corrupts exactly
``round(rate * N)`` training labels, trains a small MONAI UNet from the same initialization on the noisy
set, and after every epoch measures in eval mode, without augmentation, each training sample's loss,
its volume-offset distance from the clean validation set's offsets (the trusted reference), and its
input gradients for VoG (both targets). It then prints AUROC and average precision against
the known corrupted set for every score of :mod:`monai_noisylabel.detection`, next to cleanlab's
``segmentation.rank.get_label_quality_scores`` on the same final model (column ``cleanlab``; NaN unless the
``cleanlab`` extra is installed) and the same softmin of per-pixel self-confidence computed with
:func:`~monai_noisylabel.detection.image_label_quality` (column ``selfconf``).

Corruption (implemented here with MONAI's ``utils_morphological_ops``; square structuring elements):

- ``random``: every structure (LV cavity, myocardium, LA) is dilated or eroded with equal probability
  by a radius drawn from ``1..--radius``;
- ``systematic``: the LV cavity of every corrupted label is dilated by ``--bias-radius`` (it overwrites
  the myocardium);
- ``omission``: the left atrium is set to background.

Dilation overwrites neighbouring classes; voxels removed by erosion take the class of the nearest voxel
outside the eroded structure, so label maps stay consistent.

Score names: ``*_window`` = mean over the last two thirds of the epochs, ``*_last`` = last epoch,
``comb_loss_offset`` = ``combine_scores`` default (loss window + offset window).

Run (CPU, about a minute; ``--num-train 200 --num-val 40 --epochs 30`` takes about 9 minutes)::

    OMP_NUM_THREADS=1 python benchmarks/bench_detection.py --size 64 --num-train 60 --num-val 20 --epochs 10

The issue's full grid is ``--size 256 --num-train 600 --epochs 40`` on a GPU (``--device cuda``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss, DiceLoss
from monai.networks.nets import UNet
from monai.transforms.utils_morphological_ops import dilate, erode
from scipy import ndimage

from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.detection import (
    SampleLossAccumulator,
    VoGAccumulator,
    combine_scores,
    detection_metrics,
    gmm_noisy_probability,
    image_label_quality,
    input_gradients,
    offset_scores,
    pixel_label_quality,
    volume_offsets,
)

KINDS = ("random", "systematic", "omission")
NUM_CLASSES = 4
LA = 3
LV = 1


def make_data(seed: int, start: int, num: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, 1, H, W)`` float32 in [0, 1] and labels ``(N, 1, H, W)`` int64."""
    cases = [make_echo_case(seed, i, size=(size, size)) for i in range(start, start + num)]
    images = np.stack([c["image"] for c in cases])[:, None].astype(np.float32) / 255.0
    labels = np.stack([c["label"] for c in cases])[:, None].astype(np.int64)
    return images, labels


def resize_class(label: np.ndarray, cls: int, radius: int, grow: bool) -> np.ndarray:
    """Dilate (``grow``) or erode class ``cls`` of a 2D label map by ``radius`` voxels, keeping classes consistent."""
    mask = label == cls
    if not mask.any() or radius < 1:
        return label
    out = label.copy()
    m = mask[None, None].astype(np.float32)
    if grow:
        new = dilate(m, 2 * radius + 1)[0, 0] > 0.5
        out[new & ~mask] = cls
        return out
    removed = mask & ~(erode(m, 2 * radius + 1)[0, 0] > 0.5)
    if (~mask).any():
        # nearest voxel outside the structure gives the class that fills the removed rim
        nearest = ndimage.distance_transform_edt(mask, return_distances=False, return_indices=True)
        out[removed] = label[tuple(idx[removed] for idx in nearest)]
    else:
        out[removed] = 0
    return out


def corrupt(
    labels: np.ndarray, kind: str, rate: float, rng: np.random.Generator, radius: int, bias_radius: int
) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt exactly ``round(rate * N)`` labels; returns the noisy labels and the corrupted mask."""
    n = labels.shape[0]
    chosen = rng.choice(n, size=round(rate * n), replace=False)
    noisy, corrupted = labels.copy(), np.zeros(n, bool)
    corrupted[chosen] = True
    for i in chosen:
        lab = labels[i, 0]
        if kind == "systematic":
            lab = resize_class(lab, LV, bias_radius, grow=True)
        elif kind == "omission":
            lab = np.where(lab == LA, 0, lab)
        else:
            for cls in range(1, NUM_CLASSES):
                lab = resize_class(lab, cls, int(rng.integers(1, radius + 1)), grow=bool(rng.random() < 0.5))
        noisy[i, 0] = lab
    return noisy, corrupted


def make_score_loss() -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Per-sample Dice + cross-entropy, the training loss without the batch reduction."""
    ce = torch.nn.CrossEntropyLoss(reduction="none")
    dice = DiceLoss(to_onehot_y=True, softmax=True, reduction="none")

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return ce(logits, labels[:, 0]).flatten(1).mean(1) + dice(logits, labels).flatten(1).mean(1)

    return loss


def batches(n: int, size: int):
    for start in range(0, n, size):
        yield np.arange(start, min(start + size, n))


@torch.no_grad()
def predict(net: torch.nn.Module, images: np.ndarray, batch: int, device: str) -> np.ndarray:
    net.eval()
    out = [
        torch.softmax(net(torch.as_tensor(images[b], device=device)), 1).cpu().numpy()
        for b in batches(len(images), batch)
    ]
    return np.concatenate(out)


def dice_per_class(pred: np.ndarray, label: np.ndarray) -> list[float]:
    out = []
    for c in range(1, NUM_CLASSES):
        p, y = pred == c, label == c
        out.append(float(2 * (p & y).sum() / max(p.sum() + y.sum(), 1)))
    return out


def cleanlab_scores(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """cleanlab's ``segmentation.rank.get_label_quality_scores`` (softmin) on the final model, as suspicion
    (``1 - quality``); NaN when cleanlab is not installed (``pip install ".[cleanlab]"``)."""
    try:
        from cleanlab.segmentation.rank import get_label_quality_scores
    except ImportError:
        return np.full(len(labels), np.nan)
    quality, _ = get_label_quality_scores(labels[:, 0].astype(np.int64), probs, method="softmin", verbose=False)
    return 1.0 - np.asarray(quality, dtype=np.float64)


def run_cell(args: argparse.Namespace, data: dict[str, np.ndarray], kind: str, rate: float) -> dict[str, object]:
    device = args.device
    rng = np.random.default_rng([args.seed, KINDS.index(kind), round(rate * 1000)])
    noisy, corrupted = corrupt(data["train_labels"], kind, rate, rng, args.radius, args.bias_radius)
    images, n = data["train_images"], len(noisy)
    ids = [str(i) for i in range(n)]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = UNet(2, 1, NUM_CLASSES, channels=args.channels, strides=(2,) * (len(args.channels) - 1), num_res_units=1)
    net = net.to(device)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    train_loss = DiceCELoss(to_onehot_y=True, softmax=True)
    score_loss = make_score_loss()
    losses = SampleLossAccumulator()
    # per-epoch offset distances, kept in the same per-epoch table type as the losses and averaged over the
    # same window: on training samples the final model has memorized wrong labels, earlier models have not
    offsets_ref, offsets_noref = SampleLossAccumulator(), SampleLossAccumulator()
    vog = {t: VoGAccumulator(num_checkpoints=args.epochs, pool=args.pool) for t in ("logit", "loss")}
    t_train = t_eval = t_vog = 0.0
    val_images, val_labels = data["val_images"], data["val_labels"][:, 0]
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        net.train()
        order = rng.permutation(n)
        for b in batches(n, args.batch_size):
            idx = order[b]
            x = torch.as_tensor(images[idx], device=device)
            y = torch.as_tensor(noisy[idx], device=device)
            opt.zero_grad()
            train_loss(net(x), y).backward()
            opt.step()
        t1 = time.perf_counter()
        train_offsets = np.zeros((n, NUM_CLASSES - 1))
        net.eval()
        for b in batches(n, args.batch_size):
            x = torch.as_tensor(images[b], device=device)
            y = torch.as_tensor(noisy[b], device=device)
            with torch.no_grad():
                logits = net(x)
                losses.update([ids[i] for i in b], score_loss(logits, y), epoch)
            train_offsets[b] = volume_offsets(logits.argmax(1).cpu().numpy(), noisy[b, 0], num_classes=NUM_CLASSES)
        val_pred = predict(net, val_images, args.batch_size, device).argmax(1)
        val_offsets = volume_offsets(val_pred, val_labels, num_classes=NUM_CLASSES)
        offsets_ref.update(ids, offset_scores(train_offsets, reference=val_offsets), epoch)
        offsets_noref.update(ids, offset_scores(train_offsets), epoch)
        t2 = time.perf_counter()
        for b in batches(n, args.batch_size):
            x = torch.as_tensor(images[b], device=device)
            y = torch.as_tensor(noisy[b], device=device)
            vog["logit"].update([ids[i] for i in b], input_gradients(net, x, y, target="logit"), epoch)
        t3 = time.perf_counter()
        for b in batches(n, args.batch_size):
            x = torch.as_tensor(images[b], device=device)
            y = torch.as_tensor(noisy[b], device=device)
            vog["loss"].update(
                [ids[i] for i in b], input_gradients(net, x, y, target="loss", loss_fn=score_loss), epoch
            )
        t_train, t_eval, t_vog = t_train + t1 - t0, t_eval + t2 - t1, t_vog + t3 - t2

    probs = predict(net, images, args.batch_size, device)
    loss_window = losses.scores()
    offset_window = offsets_ref.scores()
    scores: dict[str, np.ndarray] = {
        "vog_logit": vog["logit"].scores(),
        "vog_loss": vog["loss"].scores(),
        "vog_loss_late": vog["loss"].scores(stage="late"),
        "loss_last": losses.scores(window="last"),
        "loss_window": loss_window,
        "gmm": gmm_noisy_probability(loss_window, random_state=args.seed),
        "offset_last": offsets_ref.scores(window="last"),
        "offset_window": offset_window,
        "offset_window_noref": offsets_noref.scores(),
        "selfconf": 1.0 - image_label_quality(pixel_label_quality(probs, noisy)),
    }
    scores["cleanlab"] = cleanlab_scores(probs, noisy)
    scores["comb_loss_offset"] = combine_scores({"loss": loss_window, "offset": offset_window})
    scores["comb_sep_loss_offset"] = combine_scores(
        {"loss": loss_window, "offset": offset_window}, weights="separation"
    )
    # an alternative to the default rank MEAN: the rank MAX (a sample is suspect when either score says so)
    scores["comb_max_loss_offset"] = np.maximum(combine_scores([loss_window]), combine_scores([offset_window]))
    scores["comb_loss_offset_vog"] = combine_scores(
        {"loss": loss_window, "offset": offset_window, "vog": scores["vog_loss"]}, include=["loss", "offset", "vog"]
    )
    scores["comb_loss_vog"] = combine_scores({"loss": loss_window, "vog": scores["vog_loss"]}, include=["loss", "vog"])
    if args.save_scores:
        out = Path(args.save_scores)
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / f"{kind}_{rate:g}.npz", corrupted=corrupted, **scores)
    nan = dict.fromkeys(("auroc", "average_precision", "precision_at_k", "recall_at_k"), float("nan"))
    # a stage with fewer than 2 checkpoints has no variance yet (NaN): report NaN rather than fail
    metrics = {name: nan if np.isnan(s).any() else detection_metrics(s, corrupted) for name, s in scores.items()}
    return {
        "metrics": metrics,
        "val_dice": dice_per_class(val_pred, data["val_labels"][:, 0]),
        "t_train": t_train / args.epochs,
        "t_eval": t_eval / args.epochs,
        "t_vog": t_vog / args.epochs,
    }


def print_table(results: dict[tuple[str, float], dict[str, object]], key: str, title: str) -> None:
    names = list(next(iter(results.values()))["metrics"])  # type: ignore[call-overload]
    print(f"\n### {title}\n")
    print("| kind | rate | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for (kind, rate), res in results.items():
        m = res["metrics"]
        print(f"| {kind} | {rate:g} | " + " | ".join(f"{m[n][key]:.2f}" for n in names) + " |")  # type: ignore[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels (issue grid: 256)")
    parser.add_argument("--num-train", type=int, default=60)
    parser.add_argument("--num-val", type=int, default=20, help="clean, trusted reference set for offset_scores")
    parser.add_argument("--epochs", type=int, default=10, help="VoG checkpoints are taken after every epoch")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--rates", type=float, nargs="+", default=[0.25, 0.5])
    parser.add_argument(
        "--radius", type=int, default=None, help="max radius of random errors (default size // 32, >= 2)"
    )
    parser.add_argument("--bias-radius", type=int, default=None, help="systematic dilation (default size // 64, >= 1)")
    parser.add_argument("--pool", type=int, default=None, help="VoG pooling factor (default: automatic)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save-scores", default=None, help="also save every cell's per-sample scores (npz) here")
    args = parser.parse_args()
    args.radius = args.radius or max(2, args.size // 32)
    args.bias_radius = args.bias_radius or max(1, args.size // 64)
    args.channels = tuple(args.channels)
    torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    train_images, train_labels = make_data(args.seed, 0, args.num_train, args.size)
    val_images, val_labels = make_data(args.seed, args.num_train, args.num_val, args.size)
    data = {
        "train_images": train_images,
        "train_labels": train_labels,
        "val_images": val_images,
        "val_labels": val_labels,
    }
    print(
        f"echo phantoms {args.size}x{args.size}, {args.num_train} train / {args.num_val} val, {args.epochs} epochs, "
        f"UNet channels {args.channels}, radius {args.radius}, bias radius {args.bias_radius}, device {args.device}",
        flush=True,
    )
    results: dict[tuple[str, float], dict[str, object]] = {}
    for kind in args.kinds:
        for rate in args.rates:
            res = results[(kind, rate)] = run_cell(args, data, kind, rate)
            dice = ", ".join(f"{d:.2f}" for d in res["val_dice"])  # type: ignore[attr-defined]
            print(
                f"{kind:>10} {rate:.2f}: val Dice (LV, myo, LA) {dice}; per epoch: train {res['t_train']:.1f} s, "
                f"loss + offset pass {res['t_eval']:.1f} s, one VoG pass (logit) {res['t_vog']:.1f} s",
                flush=True,
            )
    print_table(results, "auroc", "AUROC")
    print_table(results, "average_precision", "Average precision")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
