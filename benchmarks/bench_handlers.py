"""Cost of the detection handlers next to a plain MONAI ``SupervisedTrainer`` epoch, side by side in one run.

Measured on synthetic echo phantoms with the MONAI tutorial UNet (channels 16-256, 2 residual units; DiceCE
training loss, Adam). On CPU the times are process CPU time (``time.process_time``), which other jobs on a shared
machine disturb far less than wall time; on a GPU, wall time after ``torch.cuda.synchronize``.

- ``plain``: the median training epoch without handlers;
- ``online VoG``: the median epoch with ``VarianceOfGradientsHandler(mode="online")`` (target: <= 1.05x plain);
- ``checkpoint VoG pass``: one ``VarianceOfGradientsHandler`` pass over the training set, eval mode, input
  gradients of the per-sample cross-entropy (target: <= 0.6x a plain epoch);
- ``loss pass``: one ``SampleLossHandler`` pass (eval forward only);
- VoG state per sample with the default budget at 256x256 (target: <= 256 KiB).

Configurations are interleaved (plain, online, checkpoint, loss, plain, ...) ``--repeats`` times and the median
is reported, so slow drift of a shared machine affects them alike. Run (CPU, about a minute)::

    OMP_NUM_THREADS=1 python benchmarks/bench_handlers.py --size 128 --num 32 --repeats 3

On a GPU: ``--device cuda --size 256 --num 256 --batch-size 32 --amp``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.losses import DiceCELoss
from monai.networks.nets import UNet

from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.handlers import SampleLossHandler, VarianceOfGradientsHandler

KINDS = ("plain", "online", "checkpoint", "loss")


def make_samples(num: int, size: int) -> list[dict]:
    out = []
    for i in range(num):
        case = make_echo_case(0, i, size=(size, size))
        image = torch.as_tensor(case["image"], dtype=torch.float32)[None] / 255.0
        out.append(
            {"image": image, "label": torch.as_tensor(case["label"].astype(np.int64))[None], "id": f"echo{i:04d}"}
        )
    return out


def per_sample_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, labels[:, 0], reduction="none").flatten(1).mean(1)


def clock_of(device: str) -> Callable[[], float]:
    """Process CPU time on CPU; synchronized wall time on a GPU."""
    if device.startswith("cuda"):

        def wall() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()

        return wall
    return time.process_time


def run_once(kind: str, samples: list[dict], args: argparse.Namespace) -> dict[str, list[float]]:
    """Train ``args.epochs`` epochs with the handler of ``kind``; per-epoch training times and handler pass times."""
    loader = DataLoader(
        Dataset(samples), batch_size=args.batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    probe = DataLoader(Dataset(samples), batch_size=args.probe_batch_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = UNet(
            2, 1, 4, channels=args.channels, strides=(2,) * (len(args.channels) - 1), num_res_units=args.res_units
        )
    net = net.to(args.device)
    trainer = SupervisedTrainer(
        device=torch.device(args.device),
        max_epochs=args.epochs,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        loss_function=DiceCELoss(to_onehot_y=True, softmax=True),
        amp=bool(getattr(args, "amp", False)),
        amp_kwargs={"dtype": torch.bfloat16},
    )
    times: dict[str, list[float]] = {"epoch": [], "pass": []}
    clock: dict[str, float] = {}
    now = clock_of(args.device)

    def mark(name: str) -> Callable[..., None]:
        def _mark(_engine) -> None:
            clock[name] = now()

        return _mark

    trainer.add_event_handler(Events.EPOCH_STARTED, mark("start"))
    trainer.add_event_handler(Events.EPOCH_COMPLETED, mark("trained"))
    handler = None
    if kind == "online":
        handler = VarianceOfGradientsHandler(mode="online")
    elif kind == "checkpoint":
        handler = VarianceOfGradientsHandler(probe, loss_fn=per_sample_ce)
    elif kind == "loss":
        handler = SampleLossHandler(probe, loss_fn=per_sample_ce)
    if handler is not None:
        handler.attach(trainer)

    @trainer.on(Events.EPOCH_COMPLETED)
    def _stop(_engine) -> None:
        end = now()
        times["epoch"].append(clock["trained"] - clock["start"])
        times["pass"].append(end - clock["trained"])

    trainer.run()
    if isinstance(handler, VarianceOfGradientsHandler):
        times["state_bytes"] = [float(handler.state_bytes_per_sample)]
    # the first epoch warms up allocators and caches
    return {k: v[1:] if len(v) > 1 else v for k, v in times.items()}


def state_bytes_at(size: int) -> tuple[int, int | None]:
    """Default VoG state per sample and the pooling it picked, for one ``size`` x ``size`` sample."""
    samples = make_samples(1, size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = torch.nn.Conv2d(1, 4, 3, padding=1)
    loader = DataLoader(Dataset(samples), batch_size=1)
    trainer = SupervisedTrainer(
        torch.device("cpu"), 1, loader, net, torch.optim.SGD(net.parameters(), 0.0), lambda p, y: p.mean()
    )
    handler = VarianceOfGradientsHandler(loader)
    handler.attach(trainer)
    trainer.run()
    return handler.state_bytes_per_sample, handler.pool_used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--num", type=int, default=32, help="training samples")
    parser.add_argument("--epochs", type=int, default=3, help="per run; the first is not timed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--probe-batch-size", type=int, default=8)
    parser.add_argument("--channels", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--res-units", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--amp", action="store_true", help="bf16 autocast in the trainer (GPU)")
    args = parser.parse_args()
    args.channels = tuple(args.channels)
    torch.set_num_threads(args.threads)
    samples = make_samples(args.num, args.size)
    print(
        f"echo {args.size}x{args.size}, {args.num} samples, batch {args.batch_size} (probe {args.probe_batch_size}), "
        f"UNet {args.channels} x{args.res_units} res units, {args.device}, {args.threads} thread(s), {args.repeats} repeats x {args.epochs - 1} "
        "timed epochs",
        flush=True,
    )
    results: dict[str, dict[str, list[float]]] = {k: {"epoch": [], "pass": [], "state_bytes": []} for k in KINDS}
    for _ in range(args.repeats):
        for kind in KINDS:
            for key, values in run_once(kind, samples, args).items():
                results[kind][key] += values
    plain = statistics.median(results["plain"]["epoch"])
    online = statistics.median([e + p for e, p in zip(results["online"]["epoch"], results["online"]["pass"])])
    ckpt = statistics.median(results["checkpoint"]["pass"])
    loss = statistics.median(results["loss"]["pass"])
    state_256, pool_256 = state_bytes_at(256)
    print("\n| measurement | seconds | x plain epoch | target |")
    print("|---|---|---|---|")
    print(f"| plain SupervisedTrainer epoch | {plain:.3f} | 1.00 | |")
    print(f"| epoch with online VoG (incl. its epoch-end update) | {online:.3f} | {online / plain:.3f} | <= 1.05 |")
    print(f"| one checkpoint-mode VoG pass | {ckpt:.3f} | {ckpt / plain:.3f} | <= 0.6 |")
    print(f"| one SampleLossHandler pass | {loss:.3f} | {loss / plain:.3f} | |")
    print(
        f"\nVoG state per sample: {results['checkpoint']['state_bytes'][0] / 1024:.1f} KiB at {args.size}x{args.size}; "
        f"{state_256 / 1024:.1f} KiB at 256x256 with the default budget (pool {pool_256}; target <= 256 KiB)"
    )


if __name__ == "__main__":
    main()
