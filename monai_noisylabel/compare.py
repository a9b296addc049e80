"""One comparison of the ways to train through noisy labels: plain, refurbishment, self-cleansing, small-loss selection.

``python -m monai_noisylabel compare-training --out DIR`` (:func:`compare_training`) trains the same small 2D
U-Net on the same synthetic echo data (:func:`~monai_noisylabel.data.synthetic.make_echo_case`), with the same
seeds and the same schedule, once per method and noise cell, and scores each final model on clean test labels:

- ``plain``: the noisy labels as given (the floor of each cell; at noise rate 0 the clean ceiling);
Every method but ``plain`` splits clean from noisy samples with the echo bundle's detection:
:class:`~monai_noisylabel.handlers.SampleLossHandler` (loss, GMM, offset against the clean validation set) and
:class:`~monai_noisylabel.handlers.LabelQualityReportHandler` flag samples by the reference-based flag rule (the
``flagged`` column, which flags next to nothing on clean labels), and
:class:`~monai_noisylabel.handlers.LabelRefurbishHandler` acts on the flagged ones (``split="flagged"``):

- ``refurbish``: the echo bundle's default: a flagged sample is held out of the loss until the next
  refurbishment epoch, then relabelled with the hard pseudo-label of that model, rebuilt at every later
  refurbishment epoch (``mode="hard"``, ``select_first=True``, ``refresh=True``);
- ``self_cleansing``: flagged samples held out the same way, then on the LCM soft targets of an EMA teacher
  (``mode="lcm"``, ``select_first=True``);
- ``small_loss``: flagged samples dropped from the loss (``mode="select"``), no relabelling.

Options (``methods=``), the splits to use when there is no clean reference set:

- ``self_cleansing_gmm``: the paper's split, the GMM over the windowed per-sample loss (``mode="lcm"``,
  ``split="gmm"``); ``small_loss_gmm``: the same split, noisy samples dropped (``mode="select"``);
- ``offset_select``: samples that a GMM over the directional ``offset`` score calls noisy are dropped
  (``mode="select"``, ``split="offset"``).

Noise cells: ``bias`` (systematic: the LV cavity of every corrupted label dilated by ``bias_radius`` px),
``random`` (each structure eroded or dilated by 1..3 px), ``omission`` (the left atrium removed), each at the
``rates``, plus rate 0 (clean labels, every method). Written to ``out``: ``runs.csv`` (one row per run),
``summary.csv`` and ``summary.md`` (mean and spread over seeds of the clean-test Dice per structure and of the
fraction of the noisy-to-clean Dice gap each method recovers, ``(method - plain) / (clean - plain)``), and
``summary.png``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_noisylabel.utils import (
    atomic_write_bytes,
    atomic_write_text,
    check_choice,
    check_int,
    check_number,
    param_error,
)

__all__ = ["DEFAULT_METHODS", "METHODS", "NOISE_KINDS", "STRUCTURES", "compare_training"]

METHODS = (
    "plain",
    "refurbish",
    "self_cleansing",
    "small_loss",
    "self_cleansing_gmm",
    "small_loss_gmm",
    "offset_select",
)
#: what :func:`compare_training` runs unless told otherwise
DEFAULT_METHODS = METHODS[:4]
#: per method: the LabelRefurbishHandler mode and split source (plain: no handler)
_MODES = {
    "refurbish": ("hard", "flagged"),
    "self_cleansing": ("lcm", "flagged"),
    "small_loss": ("select", "flagged"),
    "self_cleansing_gmm": ("lcm", "gmm"),
    "small_loss_gmm": ("select", "gmm"),
    "offset_select": ("select", "offset"),
}
NOISE_KINDS = ("bias", "random", "omission")
STRUCTURES = ("LV", "myocardium", "LA")
_OWNER = "compare_training"

logger = logging.getLogger(__name__)


def _make_cases(seed: int, start: int, num: int, size: int, phantom: str = "a") -> list[dict[str, Any]]:
    from monai_noisylabel.data.echo_phantom_b import make_echo_phantom_b
    from monai_noisylabel.data.synthetic import make_echo_case

    make = make_echo_case if phantom == "a" else make_echo_phantom_b
    out = []
    for i in range(start, start + num):
        c = make(seed, i, size=(size, size))
        image = torch.as_tensor(np.asarray(c["image"], dtype=np.float32))[None] / 255.0
        out.append({"image": image, "label": torch.as_tensor(c["label"].astype(np.int64))[None], "id": f"echo{i:04d}"})
    return out


def _noise_transform(kind: str, seed: int, bias_radius: int) -> Any:
    from monai_noisylabel.transforms import RandLabelBias, RandLabelNoise, RandLabelOmission

    t: Any
    if kind == "bias":
        t = RandLabelBias(label_class=1, mode="dilate", radius=bias_radius)
    elif kind == "random":
        t = RandLabelNoise(radius=(1, 3))
    else:
        t = RandLabelOmission(classes=3)
    t.set_random_state(seed)
    return t


def _corrupt(
    samples: list[dict[str, Any]], kind: str, rate: float, seed: int, bias_radius: int, phantom: str = "a"
) -> list[dict[str, Any]]:
    """A copy of ``samples`` with ``round(rate * N)`` labels corrupted (which ones drawn from ``seed``).

    Phantom ``a``: the package's noise transforms; phantom ``b``: its own corruption code
    (:func:`~monai_noisylabel.data.echo_phantom_b.corrupt_echo_phantom_b`, signed distance fields)."""
    if rate == 0:
        return [dict(s) for s in samples]
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(len(samples), round(rate * len(samples)), replace=False).tolist())
    if phantom == "b":
        from monai_noisylabel.data.echo_phantom_b import corrupt_echo_phantom_b

        name = {"bias": "systematic"}.get(kind, kind)
        radius = bias_radius if kind == "bias" else 3

        def corrupt(label: torch.Tensor) -> torch.Tensor:
            return torch.as_tensor(corrupt_echo_phantom_b(label[0].numpy(), name, radius=radius, rng=rng))[None]

        return [dict(s, label=corrupt(s["label"]).long()) if k in chosen else dict(s) for k, s in enumerate(samples)]
    t = _noise_transform(kind, seed, bias_radius)
    return [
        dict(s, label=torch.as_tensor(t(s["label"])).long()) if k in chosen else dict(s) for k, s in enumerate(samples)
    ]


def _train(
    method: str,
    train: list[dict[str, Any]],
    val: list[dict[str, Any]],
    test: list[dict[str, Any]],
    settings: dict[str, Any],
    run_dir: Path,
) -> tuple[np.ndarray, float]:
    """Train one U-Net with ``method``; per-structure Dice on ``test`` and seconds taken."""
    from monai.data import DataLoader, Dataset
    from monai.engines import SupervisedTrainer
    from monai.metrics import DiceMetric
    from monai.networks.nets import UNet
    from monai.networks.utils import one_hot
    from monai.transforms import Compose

    from monai_noisylabel.bundle import SampleDiceCELoss, seeded_init
    from monai_noisylabel.handlers import (
        LabelQualityReportHandler,
        LabelRefurbishHandler,
        PseudoLabelWeightedLoss,
        SampleLossHandler,
    )
    from monai_noisylabel.refurbish import ApplyStoredLabeld, EMATeacher, LabelStore

    t0 = time.perf_counter()
    device = torch.device(settings["device"])
    seed, bs = settings["seed"], settings["batch_size"]
    store = LabelStore()
    ds = Dataset(train, Compose([ApplyStoredLabeld("label", store=store)]))
    loader = DataLoader(ds, batch_size=bs, shuffle=True, generator=torch.Generator().manual_seed(seed))
    probe = DataLoader(Dataset(train), batch_size=bs)
    net = seeded_init(UNet(2, 1, 4, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1), seed).to(device)
    loss = SampleDiceCELoss(reduction="none")
    handlers: list[Any] = []
    loss_fn: Callable[..., torch.Tensor] = lambda p, y: loss(p, y).mean()  # noqa: E731
    if method != "plain":
        mode, split = _MODES[method]
        handlers.append(
            SampleLossHandler(
                probe,
                loss_fn=loss,
                warmup=settings["detection_warmup"],
                reference_loader=DataLoader(Dataset(val), batch_size=bs) if split != "gmm" else None,
            )
        )
        if split == "flagged":
            handlers.append(LabelQualityReportHandler(run_dir))
        handler = LabelRefurbishHandler(
            probe,
            store,
            mode=mode,
            split=split,
            warmup=settings["warmup"],
            every=settings["every"],
            rampup_epochs=settings["rampup"],
            teacher=EMATeacher(net) if mode == "lcm" else None,
            max_fraction_changed=settings["max_change"],
            select_first=mode in ("hard", "lcm"),
            refresh=mode == "hard",
            output_dir=run_dir if mode != "select" else None,
        )
        handlers.append(handler)
        loss_fn = PseudoLabelWeightedLoss(loss, handler)
    trainer = SupervisedTrainer(
        device=device,
        max_epochs=settings["epochs"],
        train_data_loader=loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), settings["lr"]),
        loss_function=loss_fn,
    )
    for h in handlers:
        h.attach(trainer)
    trainer.run()
    metric = DiceMetric(include_background=False, reduction="mean_batch")
    net.eval()
    with torch.no_grad():
        for b in DataLoader(Dataset(test), batch_size=bs):
            pred = net(b["image"].to(device)).argmax(1, keepdim=True)
            metric(one_hot(pred, 4), one_hot(b["label"].to(device), 4))
    dice = metric.aggregate()
    assert isinstance(dice, torch.Tensor)
    return dice.cpu().numpy().astype(float), time.perf_counter() - t0


def _summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (kind, rate, method): mean/std over seeds of Dice per structure, mean Dice, and recovered gap."""
    clean = {r["seed"]: r["mean"] for r in rows if r["rate"] == 0 and r["method"] == "plain"}
    plain = {(r["kind"], r["rate"], r["seed"]): r["mean"] for r in rows if r["method"] == "plain"}
    for r in rows:
        floor, ceiling = plain.get((r["kind"], r["rate"], r["seed"])), clean.get(r["seed"])
        gap = None if floor is None or ceiling is None else ceiling - floor
        r["gap"] = gap
        r["recovered"] = (r["mean"] - floor) / gap if gap is not None and floor is not None and gap > 1e-3 else None
        r["vs_clean"] = None if ceiling is None else r["mean"] - ceiling
    out = []
    cells = sorted({(r["kind"], r["rate"]) for r in rows}, key=lambda c: (c[1] > 0, c[0], c[1]))
    for kind, rate in cells:
        for method in METHODS:
            group = [r for r in rows if r["kind"] == kind and r["rate"] == rate and r["method"] == method]
            if not group:
                continue
            s: dict[str, Any] = {"kind": kind, "rate": rate, "method": method, "seeds": len(group)}
            for name in (*STRUCTURES, "mean", "recovered", "vs_clean"):
                values = [r[name] for r in group if r[name] is not None]
                s[name] = float(np.mean(values)) if values else None
                s[f"{name}_std"] = float(np.std(values)) if len(values) > 1 else (0.0 if values else None)
            out.append(s)
    return out


def _fmt(value: Any, std: Any, pct: bool = False) -> str:
    if value is None:
        return "n/a"
    if pct:
        return f"{value:.0%} ± {std:.0%}"
    return f"{value:.3f} ± {std:.3f}"


def _markdown(summary: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| noise | rate | method | Dice LV | Dice myocardium | Dice LA | mean Dice | gap recovered | vs clean plain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        kind = "none" if s["rate"] == 0 else s["kind"]
        cells = [_fmt(s[n], s[f"{n}_std"]) for n in (*STRUCTURES, "mean")]
        rec = _fmt(s["recovered"], s["recovered_std"], pct=True) if s["rate"] > 0 else "n/a"
        vs = "n/a" if s["vs_clean"] is None else f"{s['vs_clean'] * 100:+.2f} pts"
        lines.append(f"| {kind} | {s['rate']:g} | {s['method']} | " + " | ".join(cells) + f" | {rec} | {vs} |")
    return "\n".join(lines) + "\n"


def _plot(summary: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = list(dict.fromkeys((s["kind"] if s["rate"] > 0 else "none", s["rate"]) for s in summary))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(cells) + 4), 4), squeeze=False)
    methods = [m for m in METHODS if any(s["method"] == m for s in summary)]  # only those run
    width = 0.8 / len(methods)
    for m, method in enumerate(methods):
        means, stds, recs, rstd = [], [], [], []
        for kind, rate in cells:
            s = next(
                (
                    x
                    for x in summary
                    if x["method"] == method and x["rate"] == rate and (rate == 0 or x["kind"] == kind)
                ),
                None,
            )
            means.append(np.nan if s is None else s["mean"])
            stds.append(0.0 if s is None else s["mean_std"] or 0.0)
            ok = s is not None and s["recovered"] is not None
            recs.append(s["recovered"] if ok else np.nan)  # type: ignore[index]
            rstd.append(s["recovered_std"] or 0.0 if ok else 0.0)  # type: ignore[index]
        x = np.arange(len(cells)) + (m - (len(methods) - 1) / 2) * width
        axes[0, 0].bar(x, means, width, yerr=stds, label=method)
        axes[0, 1].bar(x, recs, width, yerr=rstd, label=method)
    labels = [f"{k}\n{r:g}" for k, r in cells]
    for ax, title in zip(axes[0], ("clean-test mean Dice", "fraction of the noisy-to-clean gap recovered")):
        ax.set_xticks(np.arange(len(cells)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_title(title, fontsize=10)
    finite = [s["mean"] for s in summary if s["mean"] is not None]
    if finite:
        axes[0, 0].set_ylim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.02))
    axes[0, 1].axhline(0.8, color="gray", lw=0.8, ls="--")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]) if rows else ["method"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def compare_training(
    out_dir: str | Path,
    *,
    kinds: Sequence[str] = NOISE_KINDS,
    rates: Sequence[float] = (0.25, 0.5),
    seeds: Sequence[int] = (0, 1),
    methods: Sequence[str] = DEFAULT_METHODS,
    size: int = 96,
    num_train: int = 160,
    num_val: int = 16,
    num_test: int = 32,
    epochs: int = 20,
    batch_size: int = 16,
    lr: float = 3e-3,
    detection_warmup: int = 2,
    warmup: int = 6,
    every: int = 2,
    rampup: float = 2.0,
    max_change: float = 0.3,
    bias_radius: int = 2,
    phantom: str = "a",
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """Train every method on every noise cell and seed; write the runs, the summary table and the figure.

    Every run of a seed shares the data, the network initialization, the data order and the schedule
    (``warmup``/``every``/``rampup``); only the method differs. Rate 0 (clean labels) is always run, with every
    method: ``plain`` at rate 0 is the clean ceiling of the gap, and the other methods there show what each
    costs on clean labels. Resumable: finished runs are read back from ``runs.csv``.

    ``phantom="b"`` runs on the independently written phantom
    (:func:`~monai_noisylabel.data.echo_phantom_b.make_echo_phantom_b`, its own corruption code) instead of the
    package's synthetic echo data: the methods are tuned on ``"a"`` and reported on both.

    ``progress=True`` prints one line per finished run.

    Returns:
        ``{"runs": [...], "summary": [...], "table": markdown, "paths": {...}}``.

    Raises:
        ValueError: an unknown method or noise kind, a rate outside (0, 1], too few samples.

    Example:
        >>> import tempfile
        >>> r = compare_training(tempfile.mkdtemp(), kinds=["bias"], rates=[0.5], seeds=[0], size=32,
        ...                      num_train=8, num_val=4, num_test=4, epochs=1, methods=["plain"])
        >>> sorted({(x["kind"], x["rate"]) for x in r["runs"]})
        [('bias', 0.5), ('none', 0.0)]
    """
    kinds = list(kinds)
    methods = list(methods)
    for k in kinds:
        if k not in NOISE_KINDS:
            raise param_error(_OWNER, "kinds", f"a subset of {list(NOISE_KINDS)}", kinds)
    if not methods or any(m not in METHODS for m in methods):
        raise param_error(_OWNER, "methods", f"a non-empty subset of {list(METHODS)}", methods)
    if "plain" not in methods:
        methods = ["plain", *methods]
    rates = [check_number(_OWNER, "rates", r, 0.0, 1.0, open_min=True) for r in rates]
    seeds = [check_int(_OWNER, "seeds", s, 0) for s in seeds]
    if not seeds:
        raise param_error(_OWNER, "seeds", "at least one seed", seeds)
    settings: dict[str, Any] = {
        "size": check_int(_OWNER, "size", size, 16),
        "epochs": check_int(_OWNER, "epochs", epochs, 1),
        "batch_size": check_int(_OWNER, "batch_size", batch_size, 1),
        "lr": check_number(_OWNER, "lr", lr, 0.0, open_min=True),
        "detection_warmup": check_int(_OWNER, "detection_warmup", detection_warmup, 0),
        "warmup": check_int(_OWNER, "warmup", warmup, 0),
        "every": check_int(_OWNER, "every", every, 1),
        "rampup": check_number(_OWNER, "rampup", rampup, 0.0),
        "max_change": check_number(_OWNER, "max_change", max_change, 0.0, 1.0),
        "device": str(device),
    }
    num_train = check_int(_OWNER, "num_train", num_train, 4)
    num_val = check_int(_OWNER, "num_val", num_val, 1)
    num_test = check_int(_OWNER, "num_test", num_test, 1)
    bias_radius = check_int(_OWNER, "bias_radius", bias_radius, 1)
    phantom = check_choice(_OWNER, "phantom", phantom, ("a", "b"))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs_path = out / "runs.csv"
    done: dict[tuple[str, float, int, str], dict[str, Any]] = {}
    if runs_path.is_file():
        with runs_path.open(newline="") as f:
            for r in csv.DictReader(f):
                row: dict[str, Any] = {**r, "rate": float(r["rate"]), "seed": int(r["seed"])}
                for name in (*STRUCTURES, "mean", "seconds"):
                    row[name] = float(r[name])
                done[(row["kind"], row["rate"], row["seed"], row["method"])] = row
    cells = [("none", 0.0)] + [(k, r) for k in kinds for r in rates]
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        size_ = settings["size"]
        clean = _make_cases(seed, 0, num_train, size_, phantom)
        val = _make_cases(seed, num_train, num_val, size_, phantom)
        test = _make_cases(seed, num_train + num_val, num_test, size_, phantom)
        for kind, rate in cells:
            data = _corrupt(clean, kind, rate, seed, bias_radius, phantom)
            for method in methods:
                key = (kind, rate, seed, method)
                if key in done:
                    rows.append(done[key])
                    continue
                run_dir = out / "runs" / f"{kind}_{rate:g}" / f"{method}_seed{seed}"
                dice, seconds = _train(method, data, val, test, {**settings, "seed": seed}, run_dir)
                row = {"kind": kind, "rate": rate, "seed": seed, "method": method}
                row.update({n: round(float(d), 5) for n, d in zip(STRUCTURES, dice)})
                row.update(mean=round(float(dice.mean()), 5), seconds=round(seconds, 1))
                rows.append(row)
                done[key] = row
                _write_csv(runs_path, list(done.values()))
                logger.info(f"{_OWNER}: {kind} {rate:g} seed {seed} {method}: mean Dice {row['mean']:.4f}")
                if progress:
                    print(
                        f"{kind:<9} {rate:<5g} seed {seed} {method:<15} mean Dice {row['mean']:.4f} ({seconds:.0f} s)"
                    )
    summary = _summarize([dict(r) for r in rows])
    header = (
        f"Synthetic echo (phantom {phantom}) {settings['size']}x{settings['size']}, {num_train} training / {num_test} clean test images, "
        f"{settings['epochs']} epochs, batch {settings['batch_size']}, detection from epoch "
        f"{settings['detection_warmup'] + 1}, relabelling from epoch {settings['warmup'] + 1} every "
        f"{settings['every']}, ramp {settings['rampup']:g}; seeds {seeds}; device {settings['device']}; "
        f"mean ± std over seeds."
    )
    table = _markdown(summary, header)
    _write_csv(out / "summary.csv", summary)
    atomic_write_text(out / "summary.md", table)
    atomic_write_text(
        out / "settings.json",
        json.dumps({**settings, "seeds": seeds, "num_train": num_train, "phantom": phantom}) + "\n",
    )
    _plot(summary, out / "summary.png")
    paths = {name: str(out / name) for name in ("runs.csv", "summary.csv", "summary.md", "summary.png")}
    return {"runs": rows, "summary": summary, "table": table, "paths": paths}
