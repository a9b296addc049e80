"""Cost of self-cleansing (and the other LabelRefurbishHandler modes) against plain training, side by side.

The same U-Net, data, data order and seed in every run. Half the training labels are biased so the split has
noisy samples. Every run but ``plain`` has a :class:`~monai_noisylabel.handlers.SampleLossHandler` for the GMM
split (every ``--loss-every`` epochs) and, but ``plain + loss pass``, a
:class:`~monai_noisylabel.handlers.LabelRefurbishHandler` whose split acts from epoch ``--warmup + 1``:

- ``... train losses``: the split's per-sample losses are those of the training steps (``source="train"``), so
  nothing is added but the method itself; compared with ``plain``;
- ``... loss pass``: an eval loss pass over the training set (``source="probe"``, what the echo bundle's
  detection runs in every mode); compared with ``plain + loss pass``, plain training with the same pass.

Columns (``x``: against the run named in ``against``):

- ``step s``: the training iterations of an epoch (the LCM targets, the EMA teacher's forward and update live here);
- ``epoch s``: the whole epoch, with the end-of-epoch work (loss pass, split, pseudo-labels), both averaged over
  the epochs after the warm-up;
- ``run s``: the whole training run, warm-up and the LCM label files written when it completes included;
- ``state B/sample``: what the handler keeps per affected sample: the stored label (``hard``), or P(clean) and the
  epoch (``lcm``, ``select``: the soft targets are recomputed from the teacher on the fly, never stored), next to
  what a uint8 and a float32 copy of a soft target would take.

    python benchmarks/bench_self_cleansing.py                      # 64x64, 64 images, 8 epochs (CPU: ~1 min)
    python benchmarks/bench_self_cleansing.py --size 128 --num-train 128 --epochs 12 --warmup 4 --repeats 3 --clock process
    python benchmarks/bench_self_cleansing.py --size 256 --num-train 600 --batch-size 32 --device cuda
"""

from __future__ import annotations

import argparse
import pickle
import tempfile
import time

import numpy as np
import torch
from ignite.engine import Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.networks.nets import UNet
from monai.transforms import Compose

from monai_noisylabel.bundle import SampleDiceCELoss, seeded_init
from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.handlers import LabelRefurbishHandler, PseudoLabelWeightedLoss, SampleLossHandler
from monai_noisylabel.refurbish import ApplyStoredLabeld, EMATeacher, LabelStore
from monai_noisylabel.transforms import RandLabelBias

#: name -> None (plain) or (mode, EMA teacher, where the split's per-sample losses come from)
RUNS = {
    "plain": None,
    "lcm, train losses": ("lcm", True, "train"),
    "select, train losses": ("select", False, "train"),
    "plain + loss pass": ("none", False, "probe"),
    "lcm, loss pass": ("lcm", True, "probe"),
    "lcm, own pred., loss pass": ("lcm", False, "probe"),
    "select, loss pass": ("select", False, "probe"),
    "hard, loss pass": ("hard", False, "probe"),
}
#: ``wall``: elapsed time (GPU: synchronized); ``process``: this process's CPU time, which a shared CPU's other
#: jobs do not inflate
CLOCK = {"wall": time.perf_counter, "process": time.process_time}
#: what each run is compared with: the plain run, or plain training with the same eval loss pass
BASELINE = {name: "plain + loss pass" if spec and spec[2] == "probe" else "plain" for name, spec in RUNS.items()}
BASELINE["plain + loss pass"] = "plain"


def make_data(args: argparse.Namespace) -> list[dict]:
    bias = RandLabelBias(label_class=1, mode="dilate", radius=max(1, args.size // 24))
    out = []
    for i in range(args.num_train):
        c = make_echo_case(0, i, size=(args.size, args.size))
        label = torch.as_tensor(c["label"].astype(np.int64))[None]
        image = torch.as_tensor(np.asarray(c["image"], dtype=np.float32))[None] / 255.0
        out.append(
            {"image": image, "label": torch.as_tensor(bias(label)).long() if i % 2 else label, "id": f"e{i:03d}"}
        )
    return out


def run(name: str, samples: list[dict], args: argparse.Namespace, out_dir: str) -> dict:
    device = torch.device(args.device)
    store = LabelStore()
    loader = DataLoader(
        Dataset(samples, Compose([ApplyStoredLabeld("label", store=store)])),
        batch_size=args.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    probe = DataLoader(Dataset(samples), batch_size=args.batch_size)
    net = seeded_init(UNet(2, 1, 4, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1), 0).to(device)
    loss = SampleDiceCELoss(reduction="none")
    loss_fn: object = lambda p, y: loss(p, y).mean()  # noqa: E731
    handlers: list = []
    handler = None
    if RUNS[name] is not None:
        mode, teacher, source = RUNS[name]  # type: ignore[misc]
        handlers.append(
            SampleLossHandler(probe if source == "probe" else None, loss_fn=loss, every=args.loss_every, source=source)
        )
        if mode != "none":
            handler = LabelRefurbishHandler(
                probe,
                store,
                mode=mode,
                split="gmm",
                warmup=args.warmup,
                every=args.every,
                teacher=EMATeacher(net) if teacher else None,
                output_dir=f"{out_dir}/{mode}{int(teacher)}{source}",
            )
            handlers.append(handler)
            loss_fn = PseudoLabelWeightedLoss(loss, handler)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=args.epochs,
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 1e-3),
        loss_function=loss_fn,
    )
    for h in handlers:
        h.attach(trainer)
    times: dict[str, list[float]] = {"step": [], "epoch": []}
    marks: dict[str, float] = {}

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def started(_):
        sync()
        marks["t0"] = CLOCK[args.clock]()

    def iterated(_):
        sync()
        marks["t1"] = CLOCK[args.clock]()

    def completed(engine):
        sync()
        if engine.state.epoch > args.warmup:
            times["step"].append(marks["t1"] - marks["t0"])
            times["epoch"].append(CLOCK[args.clock]() - marks["t0"])

    trainer.add_event_handler(Events.EPOCH_STARTED, started)
    trainer.add_event_handler(Events.ITERATION_COMPLETED, iterated)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, completed)  # attached last: after every handler's work
    sync()
    t_run = CLOCK[args.clock]()
    trainer.run()  # the whole run: warm-up epochs, every pass, and the LCM label files written at the end
    sync()
    t_run = CLOCK[args.clock]() - t_run
    state = ""
    if handler is not None and handler.mode == "hard" and len(store):
        state = f"{np.mean([store.get(i).label.numel() * store.get(i).label.element_size() for i in store.ids()]):.0f}"
    elif handler is not None and handler.noisy:
        state = f"{len(pickle.dumps(handler.noisy)) / len(handler.noisy):.0f}"
    affected = len(store) if handler is not None and handler.mode == "hard" else len(handler.noisy) if handler else 0
    return {
        "step": float(np.mean(times["step"])),
        "epoch": float(np.mean(times["epoch"])),
        "run": t_run,
        "state": state,
        "affected": affected,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--num-train", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--warmup", type=int, default=3, help="the split acts from the epoch after this; timed after it")
    p.add_argument("--every", type=int, default=2, help="split / relabelling every N epochs")
    p.add_argument("--loss-every", type=int, default=2, help="loss pass every N epochs (the echo bundle's default)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--clock", choices=list(CLOCK), default="wall", help="wall time, or process CPU time")
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS), help="a subset (with its baselines)")
    p.add_argument(
        "--repeats", type=int, default=1, help="runs of each mode, interleaved; the median is reported (default 1)"
    )
    args = p.parse_args(argv)
    samples = make_data(args)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        wanted = set(args.runs) | {BASELINE[n] for n in args.runs} | {BASELINE[BASELINE[n]] for n in args.runs}
        repeats: dict[str, list[dict]] = {name: [] for name in RUNS if name in wanted}
        for _ in range(max(1, args.repeats)):  # round-robin, so a slow phase of the machine hits every mode
            for name in repeats:
                repeats[name].append(run(name, samples, args, tmp))
        for name, rs in repeats.items():
            results[name] = {**rs[0], **{k: float(np.median([r[k] for r in rs])) for k in ("step", "epoch", "run")}}
    soft = 4 * args.size * args.size  # 4 classes
    print(
        f"echo {args.size}x{args.size}, {args.num_train} images (half LV-biased), batch {args.batch_size}, "
        f"{args.epochs} epochs (epochs {args.warmup + 1}..{args.epochs} timed), split every {args.every} from epoch "
        f"{args.warmup + 1}, per-sample losses every {args.loss_every}, device {args.device}, {args.clock} time, "
        f"median of {max(1, args.repeats)} interleaved run(s)"
    )
    print(
        f"{'run':<26} {'against':<18} {'step s':>7} {'x':>5} {'epoch s':>8} {'x':>5} {'run s':>7} {'x':>5} "
        f"{'affected':>9} {'state B/sample':>15}"
    )
    for name, r in results.items():
        base = results[BASELINE[name]]
        print(
            f"{name:<26} {BASELINE[name]:<18} {r['step']:7.2f} {r['step'] / base['step']:5.2f} {r['epoch']:8.2f} "
            f"{r['epoch'] / base['epoch']:5.2f} {r['run']:7.1f} {r['run'] / base['run']:5.2f} {r['affected']:9d} "
            f"{r['state'] or '-':>15}"
        )
    print(f"a soft target as uint8: {soft} B/sample; as float32: {4 * soft} B/sample")
    return results


if __name__ == "__main__":
    main()
