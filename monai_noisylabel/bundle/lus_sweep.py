"""The LUS threshold sweep: the bundle trained at several thresholds and label variants, compared with intervals.

Every arm trains through the bundle's own ``train.json`` (``ConfigWorkflow``) on the same data, with the same
initialization, augmentation draws and batch order for a given seed, and is scored by
:func:`~monai_noisylabel.bundle.evaluate_lus`. The table gives, per arm, the segmentation metrics and the three
downstream metrics averaged over the seeds, each with a patient-bootstrap 95 % interval, and the paired
difference to the reference arm (threshold 0.5) with its interval and whether that interval excludes 0.
Finished runs are kept (``runs/<arm>_seed<k>/result.json``), so a killed sweep resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_noisylabel.bundle.lus_eval import ALL_PATIENTS
from monai_noisylabel.data.synthetic import LUS_CLASSES
from monai_noisylabel.downstream import MetricFn, patient_bootstrap, row_metric
from monai_noisylabel.utils import atomic_write_text, check_int, param_error

__all__ = ["SWEEP_METRICS", "SWEEP_VARIANTS", "sweep_arms", "run_lus_sweep", "sweep_table", "plot_sweep"]

logger = logging.getLogger(__name__)

#: metric -> (label, higher is better)
SWEEP_METRICS = {
    "mean_dice": ("mean Dice", True),
    "mean_iou": ("mean IoU", True),
    "sf_mae": ("S/F MAE", False),
    "sf_r": ("S/F Pearson r", True),
    "change_auc": ("S/F change AUC", True),
    "readmission_auc": ("readmission AUC", True),
}
_DOWNSTREAM = {
    "sf_mae": ("sf_regression", "mae"),
    "sf_r": ("sf_regression", "pearson_r"),
    "change_auc": ("sf_change", "auc"),
    "readmission_auc": ("readmission", "auc"),
}
#: label variants trained at the variant threshold besides the hard-label thresholds
SWEEP_VARIANTS = ("soft", "ignore_band", "confidence_weighted")
_REFERENCE_SOURCES = {"true_masks": "true masks", "expert_labels": "expert labels at 0.6"}


def sweep_arms(thresholds: Sequence[float], variants: Sequence[str], variant_threshold: float = 0.6) -> dict[str, dict]:
    """Arm name -> bundle overrides: ``t<threshold>`` hard-label arms, then the variants at ``variant_threshold``.

    Example:
        >>> list(sweep_arms([0.5, 0.6], ["soft"]))
        ['t0.5', 't0.6', 'soft']
    """
    arms: dict[str, dict] = {}
    for t in thresholds:
        if not 0 < float(t) < 1:
            raise param_error("sweep_arms", "thresholds", "numbers in (0, 1)", list(thresholds))
        arms[f"t{float(t):g}"] = {"threshold": float(t), "label_mode": "hard"}
    for v in variants:
        if v not in SWEEP_VARIANTS:
            raise param_error("sweep_arms", "variants", f"a subset of {list(SWEEP_VARIANTS)}", list(variants))
        arms[v] = {"threshold": float(variant_threshold), "label_mode": v}
    return arms


def _train_and_evaluate(bundle_dir: Path, run_dir: Path, overrides: Mapping[str, Any]) -> dict[str, Any]:
    from monai.bundle import ConfigWorkflow

    from monai_noisylabel.bundle.lus_eval import evaluate_lus

    configs = bundle_dir / "configs"
    wf = ConfigWorkflow(
        config_file=str(configs / "train.json"),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        workflow_type="train",
        **{
            "bundle_root": str(bundle_dir),
            "output_dir": str(run_dir),
            "ckpt_dir": str(run_dir / "models"),
            **overrides,
        },
    )
    wf.initialize()
    wf.run()
    wf.finalize()
    p = wf.parser
    return evaluate_lus(
        p.get_parsed_content("network"),
        p.get_parsed_content("data"),
        preprocessing=p.get_parsed_content("validate#preprocessing"),
        image_size=p.get_parsed_content("image_size"),
        eval_dir=run_dir / "eval",
        threshold=p.get_parsed_content("threshold"),
        device=p.get_parsed_content("device"),
        checkpoint=run_dir / "models" / "model.pt",
        cv_repeats=int(overrides.get("cv_repeats", 5)),
        seed=int(overrides["seed"]),
        reference_sections=None,  # the sweep computes the all-patient reference rows once
    )


def _all_patient_reference(bundle_dir: Path, out: Path, common: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`~monai_noisylabel.bundle.reference_downstream` on every patient, at threshold 0.6; cached in ``out``."""
    from monai.bundle import ConfigWorkflow

    from monai_noisylabel.bundle.lus_eval import reference_downstream

    cache = out / "reference_all_patients.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    configs = bundle_dir / "configs"
    run_dir = out / "runs" / "reference"
    wf = ConfigWorkflow(
        config_file=str(configs / "train.json"),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        workflow_type="train",
        **{"bundle_root": str(bundle_dir), "output_dir": str(run_dir), "ckpt_dir": str(run_dir / "models"),
           **common, "threshold": 0.6, "label_mode": "hard", "seed": 0},
    )  # fmt: skip
    wf.initialize()
    p = wf.parser
    result = {
        "downstream": reference_downstream(
            p.get_parsed_content("data"),
            preprocessing=p.get_parsed_content("validate#preprocessing"),
            image_size=p.get_parsed_content("image_size"),
            cv_repeats=int(common.get("cv_repeats", 5)),
        )
    }
    atomic_write_text(cache, json.dumps(result) + "\n")
    return result


def _downstream_fn(task_result: Mapping[str, Any], metric: str, patients: Sequence[str]) -> MetricFn:
    if task_result.get("pred") is None:
        return lambda w: float("nan")
    return row_metric(metric, task_result["patients"], patients, task_result["y"], task_result["pred"])


def _mean_of(fns: Sequence[MetricFn]) -> MetricFn:
    def metric(w: np.ndarray) -> float:
        return float(np.nanmean([f(w) for f in fns]))

    return metric


def _metric_fns(result: Mapping[str, Any], patients: Sequence[str], source: str = "predicted") -> dict[str, MetricFn]:
    """Sweep metric -> a :data:`MetricFn` over patient weights, for one run's result."""
    frames = result["frames"]
    fp = [str(f["patient"]) for f in frames]
    fns: dict[str, MetricFn] = {}
    for key, prefix in (("mean_dice", "dice"), ("mean_iou", "iou")):
        per_class = [row_metric("mean", fp, patients, [f[f"{prefix}_{c}"] for f in frames]) for c in LUS_CLASSES]
        fns[key] = _mean_of(per_class)
    for key, (task, metric) in _DOWNSTREAM.items():
        fns[key] = _downstream_fn(result["downstream"][source][task], metric, patients)
    return fns


def sweep_table(
    results: Mapping[str, Sequence[Mapping[str, Any]]],
    *,
    reference: str,
    n_boot: int = 1000,
    seed: int = 0,
    reference_rows: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Rows ``{arm, metric, n_patients, value, low, high, diff, diff_low, diff_high, diff_excludes_zero}``.

    Args:
        results: arm -> one :func:`~monai_noisylabel.bundle.evaluate_lus` result per seed (same patients).
        reference: the arm differences are taken to.
        n_boot: patient-bootstrap draws.
        seed: seed of the draws.
        reference_rows: extra rows without differences, name -> ``{"result": ..., "source": "true_masks"}``
            (downstream metrics only; the result needs only its ``"downstream"`` entry). The rows are bootstrapped
            over the patients of their own downstream task, which may be more than the arms' (e.g. every patient of
            the dataset for ``true_masks_all_patients``).
    """
    first = next(iter(results.values()))[0]
    patients = sorted({str(f["patient"]) for f in first["frames"]})
    rows: list[dict[str, Any]] = []
    for metric in SWEEP_METRICS:
        arms = {arm: [_metric_fns(r, patients)[metric] for r in runs] for arm, runs in results.items()}
        stats = patient_bootstrap(arms, patients, reference=reference, n_boot=n_boot, seed=seed)
        rows += [{"arm": arm, "metric": metric, "n_patients": len(patients), **s} for arm, s in stats.items()]
        if metric in _DOWNSTREAM:
            task, name_ = _DOWNSTREAM[metric]
            for name, ref in (reference_rows or {}).items():
                task_result = ref["result"]["downstream"][ref["source"]][task]
                own = sorted({str(p) for p in task_result.get("patients") or []}) or patients
                fn = _downstream_fn(task_result, name_, own)
                s = patient_bootstrap({name: [fn]}, own, n_boot=n_boot, seed=seed)[name]
                rows.append({"arm": name, "metric": metric, "n_patients": len(own), **s})
    return rows


def _fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown_table(rows: Sequence[Mapping[str, Any]], reference: str) -> str:
    """The sweep rows as a markdown table: one line per arm, ``value [low, high]`` and the difference to ``reference``."""
    arms = list(dict.fromkeys(r["arm"] for r in rows))
    by = {(r["arm"], r["metric"]): r for r in rows}
    head = "| arm | " + " | ".join(label for label, _ in SWEEP_METRICS.values()) + " |"
    lines = [head, "|" + " --- |" * (len(SWEEP_METRICS) + 1)]
    for arm in arms:
        cells = []
        for metric in SWEEP_METRICS:
            r = by.get((arm, metric))
            if r is None:
                cells.append("")
                continue
            digits = 1 if metric == "sf_mae" else 3
            cell = f"{_fmt(r['value'], digits)} [{_fmt(r['low'], digits)}, {_fmt(r['high'], digits)}]"
            if r.get("diff") is not None:
                mark = "*" if r["diff_excludes_zero"] else ""
                cell += f"<br>Δ {r['diff']:+.{digits}f} [{_fmt(r['diff_low'], digits)}, {_fmt(r['diff_high'], digits)}]{mark}"
            cells.append(cell)
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"Values: mean over seeds [patient-bootstrap 95 % interval]. Δ: paired difference to {reference} "
        "[95 % interval]; * marks an interval that excludes 0."
    )
    return "\n".join(lines) + "\n"


def plot_sweep(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """One panel per metric: each arm's value with its interval (matplotlib, imported here)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(r["arm"] for r in rows))
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, (metric, (label, higher)) in zip(axes.ravel(), SWEEP_METRICS.items()):
        pts = [r for r in rows if r["metric"] == metric]
        names = [r["arm"] for r in pts]
        y = [np.nan if r["value"] is None else r["value"] for r in pts]
        lo = [np.nan if r["low"] is None else r["value"] - r["low"] for r in pts]
        hi = [np.nan if r["high"] is None else r["high"] - r["value"] for r in pts]
        x = [arms.index(n) for n in names]
        ax.errorbar(x, y, yerr=[lo, hi], fmt="o", capsize=4)
        ax.set_xticks(range(len(arms)), arms, rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{label} ({'higher' if higher else 'lower'} is better)", fontsize=10)
        ax.grid(alpha=0.3)
    fig.suptitle("LUS sweep: mean over seeds, patient-bootstrap 95 % intervals")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, out)
    return out


def run_lus_sweep(
    out_dir: str | os.PathLike,
    *,
    bundle_dir: str | os.PathLike,
    thresholds: Sequence[float] = (0.5, 0.6, 0.7, 0.8),
    variants: Sequence[str] = SWEEP_VARIANTS,
    seeds: Sequence[int] = (0, 1, 2),
    image_size: int = 128,
    num_frames: int = 160,
    max_epochs: int = 12,
    n_boot: int = 1000,
    cv_repeats: int = 5,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and evaluate every arm for every seed, then write ``sweep.csv``, ``sweep.json``, ``sweep.md``, ``sweep.png``.

    The synthetic data are generated once under ``<out_dir>/data``; ``overrides`` go to every bundle run (e.g.
    ``{"network_def#channels": [...]}``). The reference arm for the differences is the first threshold.

    Returns:
        ``{"rows", "markdown", "files"}``.
    """
    owner = "run_lus_sweep"
    if not thresholds:
        raise param_error(owner, "thresholds", "at least one threshold", list(thresholds))
    image_size = check_int(owner, "image_size", image_size, minimum=16)
    num_frames = check_int(owner, "num_frames", num_frames, minimum=8)
    max_epochs = check_int(owner, "max_epochs", max_epochs, minimum=1)
    if not seeds:
        raise param_error(owner, "seeds", "at least one seed", list(seeds))
    bundle = Path(bundle_dir)
    if not (bundle / "configs" / "train.json").is_file():
        raise FileNotFoundError(f"{owner}: {str(bundle)!r} is not the LUS bundle (no configs/train.json).")
    out = Path(out_dir)
    arms = sweep_arms(thresholds, variants)
    reference = next(iter(arms))
    common = {
        "dataset_dir": str(out / "data"),
        "image_size": [image_size, image_size],
        "num_synthetic": num_frames,
        "max_epochs": max_epochs,
        "num_workers": 0,
        "cv_repeats": cv_repeats,
        "resume": False,
        **(overrides or {}),
    }
    # models/model.pt is written at validation: validate at least once
    common["val_interval"] = min(int(common.get("val_interval", 1)), max_epochs)
    results: dict[str, list[dict[str, Any]]] = {arm: [] for arm in arms}
    for seed in seeds:
        for arm, arm_overrides in arms.items():
            run_dir = out / "runs" / f"{arm}_seed{seed}"
            done = run_dir / "result.json"
            if done.is_file():
                results[arm].append(json.loads(done.read_text()))
                continue
            logger.info(f"{owner}: training {arm} seed {seed}")
            res = _train_and_evaluate(bundle, run_dir, {**common, **arm_overrides, "seed": int(seed)})
            atomic_write_text(done, json.dumps(res) + "\n")
            results[arm].append(res)
    refs = {}
    anchor = "t0.6" if "t0.6" in results else reference
    for source, name in _REFERENCE_SOURCES.items():
        if source in results[anchor][0]["downstream"]:
            label = name if anchor == "t0.6" or source == "true_masks" else f"expert labels at {anchor[1:]}"
            refs[label] = {"result": results[anchor][0], "source": source}
    everyone = _all_patient_reference(bundle, out, common)
    for source, name in _REFERENCE_SOURCES.items():
        task = everyone["downstream"].get(source + ALL_PATIENTS, {}).get("sf_regression")
        if task:
            n = len(set(task["patients"]))
            refs[f"{name} (all {n} patients)"] = {"result": everyone, "source": source + ALL_PATIENTS}
    rows = sweep_table(results, reference=reference, n_boot=n_boot, reference_rows=refs)
    md = markdown_table(rows, reference)
    header = ["arm", "metric", "value", "low", "high", "diff", "diff_low", "diff_high", "diff_excludes_zero"]
    header.append("n_patients")
    csv_text = (
        ",".join(header)
        + "\n"
        + "".join(",".join("" if r.get(h) is None else str(r[h]) for h in header) + "\n" for r in rows)
    )
    files = {
        "csv": atomic_write_text(out / "sweep.csv", csv_text),
        "json": atomic_write_text(
            out / "sweep.json",
            json.dumps(
                {
                    "reference": reference,
                    "arms": arms,
                    "seeds": list(seeds),
                    "image_size": image_size,
                    "num_frames": num_frames,
                    "max_epochs": max_epochs,
                    "n_boot": n_boot,
                    "test_patients": len({str(f["patient"]) for f in results[reference][0]["frames"]}),
                    "rows": rows,
                },
                indent=2,
            )
            + "\n",
        ),
        "md": atomic_write_text(out / "sweep.md", md),
        "png": plot_sweep(rows, out / "sweep.png"),
    }
    return {"rows": rows, "markdown": md, "files": {k: str(v) for k, v in files.items()}}
