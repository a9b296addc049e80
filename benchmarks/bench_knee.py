"""Knee bundle: the cost of a training epoch with soft labels + NAP against BCE, side by side.

A "training epoch" here is the bundle's training step (its 3D U-Net from ``configs/train.json``, Adam, AMP in
bf16 on CUDA) over ``--steps`` batches of ``--batch`` patches of ``--size``^3 voxels, timed after a warm-up, with
three losses on the same network, data and steps:

- ``plain BCE``: ``torch.nn.BCEWithLogitsLoss`` (the issue's reference: the soft + NAP epoch should cost <= 1.2x);
- ``KneeLesionLoss("bce")``: the baseline arm (majority vote, class-balancing weight map, soft Dice);
- ``KneeLesionLoss("nap")``: the soft-label arm (NCE + RCE, same balancing).

The loss alone (forward + backward of the loss on fixed logits) is timed too, to show where a difference comes from.

    python benchmarks/bench_knee.py                      # 64^3 patches, batch 2, 10 steps (CPU: about a minute)
    python benchmarks/bench_knee.py --batch 8 --steps 50 # GPU
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from monai_noisylabel.bundle import KneeLesionLoss

CONFIG = Path(__file__).resolve().parents[1] / "bundles" / "knee_bml_softlabel_segmentation" / "configs" / "train.json"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="patch side (default 64)")
    parser.add_argument("--batch", type=int, default=2, help="patches per step (default 2)")
    parser.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = device.type == "cuda"
    gen = torch.Generator().manual_seed(0)
    shape = (args.batch, 1, args.size, args.size, args.size)
    image = torch.rand(shape, generator=gen).to(device)
    label = torch.zeros(args.batch, 2, *shape[2:])
    c = args.size // 2
    label[:, 1, c - 4 : c + 4, c - 4 : c + 4, c - 4 : c + 4] = 1
    label[:, 0] = label[:, 1] * torch.rand(shape[2:], generator=gen)  # a soft target inside the marked voxels
    label = label.to(device)
    plain = torch.nn.BCEWithLogitsLoss()
    losses = {
        "plain BCE": lambda p, y: plain(p.float(), (y[:, :1] > 0.5).float()),
        "KneeLesionLoss bce": KneeLesionLoss("bce"),
        "KneeLesionLoss nap": KneeLesionLoss("nap"),
    }
    parser_cfg = ConfigParser()
    parser_cfg.read_config(str(CONFIG))
    results = {}
    for name, loss_fn in losses.items():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            net = parser_cfg.get_parsed_content("network_def", instantiate=True, lazy=False).to(device)
        opt = torch.optim.Adam(net.parameters(), 1e-3)

        def step(net=net, opt=opt, loss_fn=loss_fn) -> None:
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss = loss_fn(net(image), label)
            loss.backward()
            opt.step()

        logits = torch.randn(shape, generator=gen).to(device).requires_grad_(True)

        def loss_only(loss_fn=loss_fn, logits=logits) -> None:
            loss_fn(logits, label).backward()

        results[name] = (
            _time(step, args.steps, args.warmup, device),
            _time(loss_only, args.steps, args.warmup, device),
        )
    base_step, base_loss = results["plain BCE"]
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"batch {args.batch} x {args.size}^3, {args.steps} steps, AMP {amp}")  # fmt: skip
    print(f"{'loss':<22}{'step ms':>10}{'x plain BCE':>13}{'loss-only ms':>15}{'x plain BCE':>13}")
    for name, (step_s, loss_s) in results.items():
        print(
            f"{name:<22}{1000 * step_s:>10.1f}{step_s / base_step:>13.2f}{1000 * loss_s:>15.2f}{loss_s / base_loss:>13.2f}"
        )


if __name__ == "__main__":
    main()
