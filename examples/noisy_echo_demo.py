"""Main job (README command 1) until the echo bundle lands: find corrupted echo labels while training.

1. generate synthetic echo phantoms (NIfTI + datalist) with ``monai_noisylabel.data``;
2. corrupt a known fraction of the training labels into a NEW folder with ``corrupt_datalist``
   (the originals are never opened for writing);
3. train a MONAI U-Net with the normalized active-passive loss (NCE + RCE);
4. every epoch, score each training label in eval mode (per-sample loss, and the signed volume
   offset against the clean validation set), keep the windowed means, combine them;
5. write ``label_scores.csv`` and print the detection AUROC / AP against the known corrupted set and
   the Dice of the model on clean validation labels.

Run ``python examples/noisy_echo_demo.py --help`` for the options; the defaults take a few minutes
on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from monai.data import CacheDataset, DataLoader
from monai.metrics import DiceMetric
from monai.networks.nets import UNet
from monai.networks.utils import one_hot
from monai.transforms import Compose, EnsureChannelFirstd, EnsureTyped, LoadImaged, RandFlipd, ScaleIntensityd

from monai_noisylabel.data import generate_echo_dataset, load_datalist
from monai_noisylabel.detection import (
    SampleLossAccumulator,
    combine_scores,
    detection_metrics,
    offset_scores,
    per_sample_loss,
    volume_offsets,
)
from monai_noisylabel.handlers import write_label_scores
from monai_noisylabel.losses import NormalizedActivePassiveLoss
from monai_noisylabel.transforms import corrupt_datalist


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("demo_output"), help="output folder (default demo_output/)")
    p.add_argument("--num", type=int, default=120, help="synthetic images (default 120)")
    p.add_argument("--size", type=int, default=96, help="image side in pixels (default 96; the bundle uses 256)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--noise", default="bias", help="random | bias (systematic) | omission (default bias)")
    p.add_argument("--rate", type=float, default=0.25, help="fraction of training labels corrupted")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    t0 = time.time()
    out: Path = args.out
    data_dir = out / "data"
    if not (data_dir / "datalist.json").exists():
        generate_echo_dataset(data_dir, num=args.num, seed=args.seed, size=(args.size, args.size), progress=True)
    noisy = corrupt_datalist(
        data_dir / "datalist.json", args.noise, args.rate, seed=args.seed, out_dir=out / "corrupted"
    )
    manifest = json.loads((out / "corrupted" / "manifest.json").read_text())
    corrupted = {m["id"] for m in manifest["samples"] if m["corrupted"]}
    train = load_datalist(out / "corrupted" / "datalist.json", "training")
    val = load_datalist(data_dir / "datalist.json", "validation")
    print(
        f"[demo] {len(train)} training labels, {len(corrupted)} corrupted ({args.noise}), {len(val)} clean validation"
    )
    del noisy

    load = [LoadImaged(["image", "label"]), EnsureChannelFirstd(["image", "label"]), ScaleIntensityd("image")]
    load.append(EnsureTyped(["image", "label"], track_meta=False))
    train_aug = Compose([*load, RandFlipd(["image", "label"], prob=0.5, spatial_axis=1)])
    train_aug.set_random_state(seed=args.seed)
    train_ds = CacheDataset(train, train_aug, progress=False)
    probe_ds = CacheDataset(train, Compose(load), progress=False)
    val_ds = CacheDataset(val, Compose(load), progress=False)
    g = torch.Generator().manual_seed(args.seed)
    train_loader = DataLoader(train_ds, batch_size=8, shuffle=True, generator=g)
    probe_loader = DataLoader(probe_ds, batch_size=16)
    val_loader = DataLoader(val_ds, batch_size=16)

    device = torch.device(args.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        net = UNet(2, 1, 4, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1).to(device)
    opt = torch.optim.Adam(net.parameters(), 2e-3)
    loss_fn = NormalizedActivePassiveLoss(
        active="nce", passive="rce", alpha=1.0, beta=1.0, to_onehot_y=True, softmax=True
    )
    sample_loss_fn = NormalizedActivePassiveLoss(
        active="nce", passive="rce", alpha=1.0, beta=1.0, to_onehot_y=True, softmax=True, reduction="none"
    )
    losses, offsets = SampleLossAccumulator(), SampleLossAccumulator()

    def predict(loader):
        ids, preds, labels = [], [], []
        net.eval()
        with torch.no_grad():
            for batch in loader:
                logits = net(batch["image"].to(device))
                ids += list(batch["id"])
                preds.append(logits.cpu())
                labels.append(batch["label"])
        return ids, torch.cat(preds), torch.cat(labels)

    for epoch in range(args.epochs):
        net.train()
        for batch in train_loader:
            opt.zero_grad()
            loss = loss_fn(net(batch["image"].to(device)), batch["label"].to(device))
            loss.backward()
            opt.step()
        # Score every training label in eval mode, without augmentation.
        ids, logits, labels = predict(probe_loader)
        with torch.no_grad():
            losses.update(ids, per_sample_loss(sample_loss_fn, logits, labels), epoch)
        _, vlogits, vlabels = predict(val_loader)
        feats = volume_offsets(logits.argmax(1), labels[:, 0], num_classes=4)
        ref = volume_offsets(vlogits.argmax(1), vlabels[:, 0], num_classes=4)
        offsets.update(ids, offset_scores(feats, reference=ref), epoch)
        print(f"[demo] epoch {epoch + 1}/{args.epochs} done, {time.time() - t0:.0f} s elapsed", flush=True)

    _, vlogits, vlabels = predict(val_loader)
    dice = DiceMetric(include_background=False, reduction="mean_batch")
    dice(one_hot(vlogits.argmax(1, keepdim=True), 4), one_hot(vlabels.long(), 4))
    per_class = dice.aggregate().numpy()

    ids = losses.ids
    scores = {"loss": losses.scores(), "offset": offsets.scores()}
    combined = combine_scores(scores)
    truth = np.array([i in corrupted for i in ids])
    order = np.argsort(-combined)
    flagged = set(np.array(ids)[order[: len(corrupted)]])  # the demo flags as many as it corrupted
    by_id = {e["id"]: e for e in train}
    rows = [
        {
            "id": sid,
            "image": by_id[sid]["image"],
            "label": by_id[sid]["label"],
            "loss": scores["loss"][i],
            "offset": scores["offset"][i],
            "combined": combined[i],
            "flagged": sid in flagged,
        }
        for i, sid in enumerate(ids)
    ]
    write_label_scores(out / "label_scores.csv", rows)
    print(f"[demo] clean validation Dice (LV, myocardium, LA): {', '.join(f'{d:.3f}' for d in per_class)}")
    for name, s in {**scores, "combined": combined}.items():
        m = detection_metrics(s, truth)
        print(f"[demo] detection {name:>8}: AUROC {m['auroc']:.3f}  AP {m['average_precision']:.3f}")
    print(f"[demo] label scores: {out / 'label_scores.csv'}  ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
