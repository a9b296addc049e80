"""How much of the noisy-to-clean Dice gap the echo bundle's refurbishment recovers, and what it costs on clean labels.

Four real ``python -m monai.bundle run`` calls of the echo bundle (train, then evaluate on the clean test labels),
same data, seed and settings (default ``configs/demo_cpu.json``), side by side with their baselines:

- ``clean``: clean labels, refurbishment off (the ceiling);
- ``clean+refurbish``: clean labels, refurbishment on (must not cost more than 0.5 Dice points);
- ``noisy``: ``--noise-rate`` of the training labels with the LV cavity dilated (systematic bias), refurbishment
  off (the floor);
- ``noisy+refurbish``: the same labels, the bundle's default refurbishment;
- ``clean+self_cleansing``, ``noisy+self_cleansing`` (optional, ``--runs``): the same with
  ``configs/self_cleansing.json`` layered on top (self-cleansing instead of hard pseudo-labels).

Printed per run: test and final validation Dice per structure, the flags (and their precision/recall against
the recorded corruption), the fraction of the gap recovered ``(refurbished - noisy) / (clean - noisy)`` and the
difference to ``clean`` in Dice points. Finished runs are read back from ``--work-dir``, so a partial call can be
completed later.

    python benchmarks/bench_refurbish_gap.py --work-dir /tmp/gap              # CPU demo, 50 % bias (~4 x 15 min)
    python benchmarks/bench_refurbish_gap.py --full --work-dir /tmp/gap       # full-size defaults (GPU)
    python benchmarks/bench_refurbish_gap.py --runs noisy+refurbish --set refurbish_warmup=6
    python benchmarks/bench_refurbish_gap.py --runs clean noisy noisy+self_cleansing clean+self_cleansing
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_echo_bundle import run_bundle

RUNS = {
    "clean": {"noise_kind": "none", "refurbish": "false"},
    "clean+refurbish": {"noise_kind": "none"},
    "noisy": {"refurbish": "false"},
    "noisy+refurbish": {},
    "clean+self_cleansing": {"noise_kind": "none"},
    "noisy+self_cleansing": {},
}
#: the methods, each with the config layered on train.json (and the demo settings)
METHODS = {"refurbish": [], "self_cleansing": ["self_cleansing.json"]}
STRUCTURES = ("LV", "myocardium", "LA")


def _metrics(out: Path) -> dict:
    ev = dict(line.split(",", 1) for line in (out / "eval" / "metrics.csv").read_text().splitlines() if line)
    det = json.loads((out / "detection_metrics.json").read_text())
    test = {k[5:]: float(v) for k, v in ev.items() if k.startswith("dice_")}
    val = {s: det.get(f"final_val_dice_{s}") for s in STRUCTURES}
    return {
        "test": {**test, "mean": sum(test[s] for s in STRUCTURES) / len(STRUCTURES)},
        "val": {**val, "mean": det.get("final_val_mean_dice")},
        "flags": (det.get("num_flagged"), det.get("flag_precision"), det.get("flag_recall")),
    }


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def run(name: str, args: argparse.Namespace, work: Path) -> dict:
    out = work / name.replace("+", "_and_")
    done = out / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    method = name.partition("+")[2]
    files = ["train.json"] + ([] if args.full else ["demo_cpu.json"]) + METHODS.get(method, [])
    overrides = {
        "dataset_dir": str(work / "data"),
        "output_dir": str(out),
        "ckpt_dir": str(out / "models"),
        "noise_rate": json.dumps(args.noise_rate),
        **dict(s.split("=", 1) for s in args.set),
        **RUNS[name],
    }
    t0 = time.perf_counter()
    log = work / f"{out.name}.log"
    run_bundle(files, overrides, log)
    run_bundle([*files, "evaluate.json"], overrides, log)
    result = {**_metrics(out), "seconds": time.perf_counter() - t0}
    done.write_text(json.dumps(result))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--full", action="store_true", help="the bundle's full-size defaults instead of the CPU demo")
    p.add_argument("--noise-rate", type=float, default=0.5)
    p.add_argument("--runs", nargs="+", default=list(RUNS)[:4], choices=list(RUNS))
    p.add_argument("--set", action="append", default=[], help="a config override key=JSON value, for every run")
    p.add_argument("--work-dir", default=None, help="keeps the runs (default: a temporary folder)")
    args = p.parse_args()
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench_refurbish_gap_"))
    work.mkdir(parents=True, exist_ok=True)
    results = {name: run(name, args, work) for name in args.runs}
    print(
        f"echo bundle, {'full-size defaults' if args.full else 'configs/demo_cpu.json'}, {args.noise_rate:.0%} of "
        f"the training labels LV-biased; Dice on clean labels (test split | final validation)"
    )
    print(
        f"{'run':<21} {'LV':>6} {'myo':>6} {'LA':>6} {'mean':>6} | {'val':>6} {'flags (prec, rec)':>18} {'time s':>7}"
    )
    for name, r in results.items():
        t, n = r["test"], r["flags"]
        flags = "n/a" if n[0] is None else f"{n[0]} ({_num(n[1])}, {_num(n[2])})"
        val = "n/a" if r["val"]["mean"] is None else f"{r['val']['mean']:.3f}"
        print(
            f"{name:<21} {t['LV']:6.3f} {t['myocardium']:6.3f} {t['LA']:6.3f} {t['mean']:6.3f} | {val:>6} "
            f"{flags:>18} {r['seconds']:7.0f}"
        )
    for split in ("test", "val"):
        mean = {k: r[split]["mean"] for k, r in results.items()}
        if mean.get("clean") is None or mean.get("noisy") is None:
            continue
        gap = mean["clean"] - mean["noisy"]
        for method in METHODS:
            fixed, clean = mean.get(f"noisy+{method}"), mean.get(f"clean+{method}")
            rec = "n/a" if fixed is None or gap <= 1e-6 else f"{(fixed - mean['noisy']) / gap:.0%}"
            cost = "n/a" if clean is None else f"{(clean - mean['clean']) * 100:+.2f}"
            print(f"{split}: gap {gap:.3f}; {method}: recovered {rec}, on clean labels {cost} Dice points")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
