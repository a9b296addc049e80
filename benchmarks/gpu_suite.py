"""Every speed and scale figure the project promises, measured on one CUDA device in one command.

The suite runs a registry of parts (label-noise kernels, losses, detection handlers, the echo bundle, the
multi-GPU bundle config), each with a time budget, and prints one table of measured figure vs target with
pass / FAIL, which it also writes as JSON. A part whose budget no longer fits in what is left of ``--budget``
is skipped and the table says so. The parts reuse the measuring code of the other scripts in ``benchmarks/``.

Run on a GPU machine (the part budgets add up to 560 s, within 10 minutes; ``--budget`` caps it, default 580 s)::

    python benchmarks/gpu_suite.py --json gpu_suite.json
    bash scripts/gpu_suite.sh                                  # the same, after installing --wheels if given

On a machine whose Python has torch, numpy, scikit-learn and pyyaml but not MONAI, ignite or nibabel, first
print the download command on the development machine, run it there, copy the folder over, then::

    python benchmarks/gpu_suite.py --print-download-command --target-python 3.12   # development machine
    python benchmarks/gpu_suite.py --wheels wheels/                                  # GPU machine, offline

``--smoke`` runs every part at tiny sizes on the CPU (under 3 minutes on 2 cores; CI runs it through
``tests/benchmarks/test_gpu_suite.py``). Device-bound targets are not judged in the smoke run; the checks that
do not depend on the device (VoG state size, outputs identical to scipy, scores gathered across ranks, the
bundle command finishing) are. Add a part with the :func:`part` decorator: a function of a :class:`Context`
that returns :class:`Row` s.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:  # the sibling benchmark scripts, also when this file is loaded by path
    sys.path.insert(0, str(HERE))

from suite_wheels import download_command, install_wheels, missing_modules  # noqa: E402

# ------------------------------------------------------------------------------------------------
# rows, parts, context
# ------------------------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: a measured figure, its target (``op`` and ``threshold``) and the verdict."""

    part: str
    name: str
    value: float | None
    unit: str = ""
    op: str = ""
    threshold: float | None = None
    status: str = "-"
    note: str = ""

    @property
    def target(self) -> str:
        return "" if self.threshold is None else f"{self.op} {self.threshold:g}"


@dataclass(frozen=True)
class Part:
    """A registered part: ``run(ctx)`` returns rows; ``budget_s`` / ``smoke_budget_s`` are its time estimates."""

    name: str
    title: str
    budget_s: float
    smoke_budget_s: float
    run: Callable[[Context], list[Row]]


PARTS: dict[str, Part] = {}


def part(name: str, title: str, budget_s: float, smoke_budget_s: float) -> Callable[[Callable], Callable]:
    """Register ``fn(ctx) -> list[Row]`` as a suite part (runs in registration order)."""

    def register(fn: Callable[[Context], list[Row]]) -> Callable[[Context], list[Row]]:
        PARTS[name] = Part(name, title, budget_s, smoke_budget_s, fn)
        return fn

    return register


@dataclass
class Context:
    """What a part needs: the device, the mode, a scratch folder and the part name for its rows."""

    device: Any
    smoke: bool
    work: Path
    part: str = ""

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def info(self, name: str, value: float | None, unit: str = "", note: str = "") -> Row:
        return Row(self.part, name, value, unit, note=note)

    def check(
        self,
        name: str,
        value: float,
        unit: str,
        op: str,
        threshold: float,
        *,
        device_bound: bool = True,
        note: str = "",
    ) -> Row:
        """A row judged against ``op threshold``; a device-bound target is not judged in the CPU smoke run."""
        if op not in (">=", "<="):
            raise ValueError(f"The 'op' parameter of Context.check must be '>=' or '<='. Got {op!r} instead.")
        met = value >= threshold if op == ">=" else value <= threshold
        status = "not judged (smoke)" if self.smoke and device_bound else ("pass" if met else "FAIL")
        return Row(self.part, name, value, unit, op, threshold, status, note)


def _bench(name: str) -> Any:
    """Import a sibling benchmark script (``benchmarks/bench_*.py``; its folder is on ``sys.path``) as a module."""
    return importlib.import_module(name)


# ------------------------------------------------------------------------------------------------
# parts
# ------------------------------------------------------------------------------------------------


@part("label_noise", "label-noise kernels vs scipy.ndimage on the CPU", budget_s=45, smoke_budget_s=20)
def label_noise_part(ctx: Context) -> list[Row]:
    import numpy as np
    import torch

    from monai_noisylabel.data.synthetic import make_echo_case
    from monai_noisylabel.transforms.label_noise import functional as F

    bln = _bench("bench_label_noise")
    size2d, size3d, repeats = (64, 32, 2) if ctx.smoke else (256, 128, 7)
    echo = make_echo_case(0, 0, size=(size2d, size2d))["label"]
    blob = bln.binary_blob(size3d)
    rows = []
    for name, op_name, label_name, lab, ops in bln.cases(echo, blob):
        title = f"{name} {op_name}, {label_name}"
        ref = bln.scipy_apply_ops(lab, ops)
        t_scipy = bln.time_ms(lambda lab=lab, ops=ops: bln.scipy_apply_ops(lab, ops), repeats, False)
        x = torch.from_numpy(lab[None]).to(ctx.device)
        if ops[0]["op"] != "jitter" and not np.array_equal(F.apply_ops(x, ops)[0].cpu().numpy(), ref):
            rows.append(Row(ctx.part, title, None, status="FAIL", note="output differs from scipy.ndimage"))
            continue
        t_dev = bln.time_ms(lambda x=x, ops=ops: F.apply_ops(x, ops), repeats, ctx.cuda)
        note = f"{t_dev:.2f} ms vs scipy {t_scipy:.2f} ms"
        if ctx.cuda:
            x_cpu = x.cpu()
            t_cpu = bln.time_ms(lambda x=x_cpu, ops=ops: F.apply_ops(x, ops), repeats, False)
            note += f"; {t_cpu / t_dev:.1f}x its own CPU run"
        rows.append(ctx.check(f"{title}: x scipy", t_scipy / t_dev, "x", ">=", 10, note=note))
    return rows


@part("losses", "every loss fwd+bwd vs MONAI DiceCELoss, bf16 logits", budget_s=60, smoke_budget_s=15)
def losses_part(ctx: Context) -> list[Row]:
    import torch

    bl = _bench("bench_losses")
    shape = (2, 4, 32, 32) if ctx.smoke else (32, 4, 256, 256)
    repeats, warmup = (2, 1) if ctx.smoke else (9, 2)
    rows = []
    for kind, name, seconds, ratio in bl.bench(ctx.device, shape, repeats, warmup, dtype=torch.bfloat16):
        title = f"{name}, {kind} targets {'x'.join(map(str, shape))}"
        if name.startswith("DiceCELoss"):
            rows.append(ctx.info(title, seconds * 1e3, "ms"))
        else:
            rows.append(ctx.check(f"{title}: x DiceCE", ratio, "x", "<=", 1.5, note=f"{seconds * 1e3:.2f} ms"))
    return rows


@part("handlers", "detection handlers vs a plain SupervisedTrainer epoch", budget_s=120, smoke_budget_s=25)
def handlers_part(ctx: Context) -> list[Row]:
    bh = _bench("bench_handlers")
    # smoke: tiny UNet at 32x32; full: the MONAI tutorial UNet (16..256, 2 residual units) at 256x256, batch 32
    size, num, epochs, repeats, batch = (32, 16, 2, 1, 8) if ctx.smoke else (256, 256, 3, 3, 32)
    channels: tuple[int, ...] = (4, 8, 16) if ctx.smoke else (16, 32, 64, 128, 256)
    args = argparse.Namespace(
        size=size,
        batch_size=batch,
        probe_batch_size=batch,
        channels=channels,
        res_units=1 if ctx.smoke else 2,
        device=str(ctx.device),
        epochs=epochs,
        amp=ctx.cuda,
    )
    samples = bh.make_samples(num, size)
    times: dict[str, dict[str, list[float]]] = {k: {"epoch": [], "pass": []} for k in bh.KINDS}
    for _ in range(repeats):
        for kind in bh.KINDS:
            for key, values in bh.run_once(kind, samples, args).items():
                times[kind].setdefault(key, []).extend(values)
    plain = statistics.median(times["plain"]["epoch"])
    online = statistics.median([e + p for e, p in zip(times["online"]["epoch"], times["online"]["pass"])])
    ckpt = statistics.median(times["checkpoint"]["pass"])
    loss = statistics.median(times["loss"]["pass"])
    state, pool = bh.state_bytes_at(256)
    setting = f"{size}x{size}, batch {args.batch_size}, {num} samples{', AMP bf16' if args.amp else ''}"
    return [
        ctx.info(f"plain epoch ({setting})", plain, "s"),
        ctx.check("epoch with online VoG / plain epoch", online / plain, "x", "<=", 1.05),
        ctx.check("one checkpoint VoG pass / plain epoch", ckpt / plain, "x", "<=", 0.6),
        ctx.info("one per-sample loss pass / plain epoch", loss / plain, "x"),
        ctx.check(
            "VoG state per 256x256 sample", state / 1024, "KiB", "<=", 256, device_bound=False, note=f"pool {pool}"
        ),
    ]


@part("self_cleansing", "self-cleansing epoch vs a plain epoch (no eval pass)", budget_s=50, smoke_budget_s=25)
def self_cleansing_part(ctx: Context) -> list[Row]:
    bsc = _bench("bench_self_cleansing")
    # full: 256x256, 256 images (half LV-biased), batch 32, split every 2nd epoch from epoch 3, 8 epochs, 2 repeats
    size, num, batch, epochs, repeats = (32, 8, 4, 4, 1) if ctx.smoke else (256, 256, 32, 8, 2)
    args = argparse.Namespace(
        size=size,
        num_train=num,
        batch_size=batch,
        epochs=epochs,
        warmup=1 if ctx.smoke else 2,
        every=2,
        loss_every=2,
        device=str(ctx.device),
        clock="wall",
    )
    samples = bsc.make_data(args)
    names = ("plain", "lcm, train losses", "plain + loss pass", "lcm, loss pass")
    times: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    for _ in range(repeats):  # interleaved, so a slow phase of the device hits every run
        for name in names:
            times[name].append(bsc.run(name, samples, args, str(ctx.work / "self_cleansing")))

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in times[name])

    lcm = times["lcm, train losses"][0]
    setting = f"{size}x{size}, batch {batch}, {num} samples, fp32"
    return [
        ctx.info(f"plain epoch ({setting})", med("plain", "epoch"), "s"),
        ctx.check(
            "self-cleansing epoch (GMM on the training losses) / plain epoch",
            med("lcm, train losses", "epoch") / med("plain", "epoch"),
            "x",
            "<=",
            1.15,
        ),
        ctx.info(
            "self-cleansing epoch with the eval loss pass / plain epoch with it",
            med("lcm, loss pass", "epoch") / med("plain + loss pass", "epoch"),
            "x",
        ),
        ctx.check(
            "self-cleansing state per noisy sample",
            float(lcm["state"] or 0),
            "B",
            "<=",
            256,
            device_bound=False,
            note=f"{lcm['affected']} noisy; a uint8 soft target: {4 * size * size} B",
        ),
    ]


SMOKE_BUNDLE = {
    "image_size": [32, 32],
    "num_synthetic": 24,
    "batch_size": 8,
    "num_workers": 0,
    "network_def#channels": [4, 8, 16, 32, 64],
    "network_def#num_res_units": 1,
    "vog_epochs": 1,
    "loss_every": 1,
    "detection_warmup": 0,
    "refurbish_warmup": 1,
    "refurbish_every": 1,
    "refurbish_max_change": 1.0,
}


@part(
    "echo_bundle", "echo bundle at its defaults: epoch throughput, memory, bundle run", budget_s=210, smoke_budget_s=60
)
def echo_bundle_part(ctx: Context) -> list[Row]:
    beb = _bench("bench_echo_bundle")
    sets = [f"{k}={json.dumps(v)}" for k, v in SMOKE_BUNDLE.items()] if ctx.smoke else []
    sets += [f"device=\"$torch.device('{ctx.device}')\"", f"amp={json.dumps(ctx.cuda)}"]
    args = argparse.Namespace(full=not ctx.smoke, set=sets, epochs=5 if ctx.smoke else 9, batch_size=None)
    r = beb.measure_throughput(args, ctx.work)
    setting = f"{r['size'][0]}x{r['size'][1]}, batch {r['batch_size']}, {r['num_train']} images, AMP {r['amp']}"
    rows = [
        ctx.info(f"model-only training step ({setting})", r["model_only"], "img/s"),
        ctx.info("bundle epoch, every handler", r["bundle"], "img/s"),
        ctx.check("bundle epoch / model-only step", r["ratio"], "x", ">=", 0.8),
    ]
    if r["peak_memory_bytes"] is not None:
        rows.append(ctx.info("peak GPU memory of the bundle epoch", r["peak_memory_bytes"] / 2**30, "GiB"))
    epochs = 2 if ctx.smoke else 4
    overrides: dict[str, Any] = {
        **(SMOKE_BUNDLE if ctx.smoke else {}),
        "dataset_dir": str(ctx.work / "data"),
        "output_dir": str(ctx.work / "bundle_run"),
        "ckpt_dir": str(ctx.work / "bundle_run" / "models"),
        "max_epochs": epochs,
        "device": f"$torch.device('{ctx.device}')",
        "amp": ctx.cuda,
    }
    start = time.perf_counter()
    beb.run_bundle(["train.json"], overrides, ctx.work / "bundle_run.log", timeout=600)
    took = time.perf_counter() - start
    done = (ctx.work / "bundle_run" / "report" / "index.html").is_file()
    rows.append(
        Row(ctx.part, f"python -m monai.bundle run, {epochs} epochs", took, "s", status="pass" if done else "FAIL")
    )
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@part("multi_gpu", "multi_gpu_train.json with torchrun", budget_s=75, smoke_budget_s=60)
def multi_gpu_part(ctx: Context) -> list[Row]:
    import torch

    from monai_noisylabel.handlers import read_label_scores

    beb = _bench("bench_echo_bundle")
    out = ctx.work / "multi_gpu"
    nproc = 2 if ctx.smoke else max(1, torch.cuda.device_count())
    backend = "gloo" if ctx.smoke else "nccl"
    files = [str(beb.CONFIGS / "train.json"), str(beb.CONFIGS / "multi_gpu_train.json")]
    args = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", f"--master_port={_free_port()}"]
    args += ["-m", "monai.bundle", "run", "--config_file", json.dumps(files)]
    args += ["--logging_file", str(beb.CONFIGS / "logging.conf"), "--bundle_root", str(beb.BUNDLE)]
    settings = {
        **SMOKE_BUNDLE,
        **({} if ctx.smoke else {"image_size": [128, 128], "num_synthetic": 96, "batch_size": 16}),
        "max_epochs": 2,
        "dist_backend": backend,
        "dataset_dir": str(out / "data"),
        "output_dir": str(out / "out"),
        "ckpt_dir": str(out / "models"),
    }
    for k, v in settings.items():
        args += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    if ctx.smoke:
        env["CUDA_VISIBLE_DEVICES"] = ""
    start = time.perf_counter()
    with open(ctx.work / "multi_gpu.log", "w") as log:
        res = subprocess.run(args, cwd=ctx.work, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=600)
    took = time.perf_counter() - start
    where = f"{nproc} x {'cpu' if ctx.smoke else 'cuda'} ({backend})"
    if res.returncode != 0:
        tail = (ctx.work / "multi_gpu.log").read_text()[-600:]
        return [Row(ctx.part, f"torchrun {where}", None, status="FAIL", note=f"exit {res.returncode}: {tail}")]
    rows = read_label_scores(out / "out" / "label_scores.csv")
    expected = {e["id"] for e in json.loads((out / "out" / "noisy_labels" / "datalist.json").read_text())["training"]}
    scored = {r["id"] for r in rows if r["loss"] is not None and r["vog"] is not None}
    return [
        ctx.info(f"torchrun {where}, 2 epochs", took, "s"),
        ctx.check(
            "training images scored and gathered on rank 0",
            len(scored & expected) / max(1, len(expected)),
            "fraction",
            ">=",
            1.0,
            device_bound=False,
            note=f"{len(scored & expected)} of {len(expected)}",
        ),
    ]


# ------------------------------------------------------------------------------------------------
# run, table, JSON
# ------------------------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def format_table(rows: list[Row]) -> str:
    """The rows as one Markdown table: part, measurement, measured, target, result."""
    lines = ["| part | measurement | measured | target | result |", "|---|---|---|---|---|"]
    for r in rows:
        measured = f"{_fmt(r.value)} {r.unit}".strip()
        status = r.status + (f" ({r.note})" if r.note else "")
        lines.append(f"| {r.part} | {r.name} | {measured} | {r.target} | {status} |")
    return "\n".join(lines)


def _release(device: Any) -> None:
    """Free what a part left behind, so the next part's peak memory is its own."""
    import gc

    gc.collect()
    if device.type == "cuda":
        import torch

        torch.cuda.empty_cache()


def run_suite(names: list[str], ctx: Context, budget_s: float) -> tuple[list[Row], dict[str, dict[str, Any]]]:
    """Run the parts in order within ``budget_s``; a part that would not fit, or fails, becomes one row saying so."""
    start = time.perf_counter()
    rows: list[Row] = []
    report: dict[str, dict[str, Any]] = {}
    for name in names:
        p = PARTS[name]
        estimate = p.smoke_budget_s if ctx.smoke else p.budget_s
        left = budget_s - (time.perf_counter() - start)
        if estimate > left:
            why = f"needs about {estimate:.0f} s, {max(left, 0):.0f} s of --budget left"
            rows.append(Row(name, p.title, None, status="skipped", note=why))
            report[name] = {"status": "skipped", "seconds": 0.0, "note": why}
            print(f"[gpu_suite] {name}: skipped ({why})", flush=True)
            continue
        print(f"[gpu_suite] {name}: {p.title} ...", flush=True)
        t0 = time.perf_counter()
        ctx.part = name
        work = ctx.work / name
        work.mkdir(parents=True, exist_ok=True)
        try:
            part_rows = p.run(Context(ctx.device, ctx.smoke, work, name))
            status = "FAIL" if any(r.status == "FAIL" for r in part_rows) else "ok"
        except Exception as exc:  # one broken part must not hide the others' figures
            traceback.print_exc()
            part_rows = [Row(name, p.title, None, status="error", note=f"{type(exc).__name__}: {exc}"[:300])]
            status = "error"
        took = time.perf_counter() - t0
        _release(ctx.device)
        rows += part_rows
        report[name] = {"status": status, "seconds": took}
        print(f"[gpu_suite] {name}: {status} in {took:.1f} s", flush=True)
    return rows, report


def device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def write_json(path: Path, payload: dict[str, Any]) -> None:
    from monai_noisylabel.utils import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="every part at tiny sizes on the CPU")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --smoke)")
    parser.add_argument("--parts", nargs="+", default=None, help=f"a subset of: {', '.join(PARTS)}")
    parser.add_argument("--budget", type=float, default=None, help="seconds for all parts (default 580; smoke 210)")
    parser.add_argument("--json", default=None, help="where to write the results (default gpu_suite[_smoke].json)")
    parser.add_argument("--work-dir", default=None, help="scratch folder (default: a new temporary folder)")
    parser.add_argument("--wheels", default=None, help="install the pure-Python dependencies from this wheel folder")
    parser.add_argument("--print-download-command", action="store_true", help="print the pip download for --wheels")
    parser.add_argument("--target-python", default=f"{sys.version_info.major}.{sys.version_info.minor}")
    args = parser.parse_args(argv)

    if args.print_download_command:
        print(download_command(args.target_python))
        return 0
    names = list(PARTS) if args.parts is None else args.parts
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        parser.error(f"The '--parts' parameter of gpu_suite must name parts of {list(PARTS)}. Got {unknown} instead.")
    budget = args.budget if args.budget is not None else (210.0 if args.smoke else 580.0)
    if budget <= 0:
        parser.error(f"The '--budget' parameter of gpu_suite must be a number > 0. Got {budget} instead.")
    if args.wheels:
        install_wheels(Path(args.wheels))
    # the package from this checkout, also in the bundle and torchrun subprocesses
    sys.path.insert(0, str(REPO))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    if missing_modules():
        parser.error(f"missing modules {missing_modules()}: install them or pass --wheels DIR (see --help)")

    import torch

    device = torch.device(args.device or ("cpu" if args.smoke else "cuda"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("The '--device' parameter of gpu_suite is cuda but no CUDA device is visible; use --smoke on CPU.")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="gpu_suite_"))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    t0 = time.perf_counter()
    rows, report = run_suite(names, Context(device, args.smoke, work), budget)
    total = time.perf_counter() - t0
    header = (
        f"gpu_suite {'smoke' if args.smoke else 'full'}: {device_name(device)}, torch {torch.__version__}, "
        f"{total:.0f} s of {budget:.0f} s budget"
    )
    print("\n" + header)
    print(format_table(rows))
    out = Path(args.json or f"gpu_suite{'_smoke' if args.smoke else ''}.json")
    write_json(
        out,
        {
            "mode": "smoke" if args.smoke else "full",
            "device": device_name(device),
            "torch": torch.__version__,
            "started": started,
            "seconds": total,
            "budget_s": budget,
            "parts": report,
            "rows": [{**asdict(r), "target": r.target} for r in rows],
        },
    )
    print(f"results written to {out}")
    bad = [r for r in rows if r.status in ("FAIL", "error")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
