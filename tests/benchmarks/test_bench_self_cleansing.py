"""``benchmarks/bench_self_cleansing.py`` at its smallest: every run measured against its baseline, the state per
sample reported (so the benchmark behind the documented cost figures cannot rot)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_self_cleansing.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_self_cleansing", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_run_times_every_mode_against_its_baseline(capsys):
    bench = _load()
    results = bench.main(["--size", "32", "--num-train", "8", "--batch-size", "4", "--epochs", "4", "--warmup", "1"])
    assert set(results) == set(bench.RUNS) and set(bench.BASELINE) == set(bench.RUNS)
    assert all(bench.BASELINE[name] in results for name in results)
    for r in results.values():
        assert 0 < r["step"] <= r["epoch"] < r["run"]
    # the LCM runs keep P(clean) and an epoch per noisy sample, never a soft target
    for name in ("lcm, train losses", "lcm, loss pass"):
        assert results[name]["affected"] > 0 and 0 < float(results[name]["state"]) < 200
    out = capsys.readouterr().out
    assert "lcm, train losses" in out and "plain + loss pass" in out and "a soft target as uint8" in out
