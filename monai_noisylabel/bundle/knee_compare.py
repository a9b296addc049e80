"""``python -m monai_noisylabel knee-compare``: soft labels + NAP against BCE on the majority vote, over seeds.

Both arms run the knee bundle exactly as a user would (``configs/train.json``, plus ``configs/train_bce.json`` for
the baseline, then ``configs/evaluate.json``) through MONAI's ``ConfigWorkflow``, on the same data, patches,
schedule and class balancing; only the target and the voxel loss differ.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_noisylabel.bundle.knee_eval import SCORE_NAMES, rater_scores
from monai_noisylabel.utils import atomic_write_bytes, atomic_write_text, check_int, param_error

__all__ = ["ARMS", "knee_compare", "default_bundle_root", "format_table"]

logger = logging.getLogger(__name__)

ARMS = {"soft + NAP": [], "BCE on majority vote": ["train_bce.json"]}
_BUNDLE = "knee_bml_softlabel_segmentation"


def default_bundle_root() -> Path | None:
    """The knee bundle next to the package (source checkout or editable install), or ``None``."""
    root = Path(__file__).resolve().parents[2] / "bundles" / _BUNDLE
    return root if (root / "configs" / "train.json").is_file() else None


def _workflow(root: Path, files: Sequence[str], overrides: Mapping[str, Any]) -> Any:
    from monai.bundle import ConfigWorkflow

    configs = [str(root / "configs" / f) for f in files]
    wf = ConfigWorkflow(
        config_file=configs,
        meta_file=str(root / "configs" / "metadata.json"),
        logging_file=str(root / "configs" / "logging.conf"),
        workflow_type="train",
        **overrides,
    )
    wf.initialize()
    return wf


def _overlay(wf: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Image, reference and prediction on the axial slice with the most reference voxels of the first eval case."""
    data = wf.parser.get_parsed_content("eval_data")
    if not data:
        return None
    item = wf.parser.get_parsed_content("eval_preprocessing")(dict(data[0]))
    network = wf.parser.get_parsed_content("network")
    inferer = wf.parser.get_parsed_content("validate#inferer")
    device = wf.parser.get_parsed_content("device")
    network.eval()
    with torch.no_grad():
        prob = torch.sigmoid(inferer(torch.as_tensor(item["image"])[None].to(device), network).float())
    image = torch.as_tensor(item["image"])[0].cpu().numpy()
    ref = torch.as_tensor(item["reference"])[0].cpu().numpy() > 0.5
    pred = prob[0, 0].cpu().numpy() > float(wf.parser.get_parsed_content("threshold"))
    k = int(np.argmax(ref.sum(axis=(1, 2)))) if ref.any() else image.shape[0] // 2
    return image[k], ref[k], pred[k]


def format_table(results: Mapping[str, Any]) -> str:
    """The comparison as a Markdown table: mean ± std over seeds per arm, the raters, and the margins.

    The margins are the mean over seeds of the per-seed difference (soft + NAP minus BCE, the same seed's runs)
    and, when ``results`` has ``margins_std``, that difference's std over the seeds.
    """
    head = "| | " + " | ".join(n.replace("_", " ") for n in SCORE_NAMES) + " |"
    lines = [head, "|" + "---|" * (len(SCORE_NAMES) + 1)]
    for arm, stats in results["arms"].items():
        cells = [f"{stats[n]['mean']:.3f} ± {stats[n]['std']:.3f}" for n in SCORE_NAMES]
        lines.append(f"| {arm} ({len(stats['seeds'])} seeds) | " + " | ".join(cells) + " |")
    for name, stats in results["raters"].items():
        lines.append(f"| {name} (vs truth) | " + " | ".join(f"{stats[n + '_mean']:.3f}" for n in SCORE_NAMES) + " |")
    margins, spread = results.get("margins"), results.get("margins_std") or {}
    if margins:
        cells = [f"{100 * margins[n]:+.1f}" + (f" ± {100 * spread[n]:.1f}" if n in spread else "") for n in SCORE_NAMES]
        lines.append("| soft + NAP minus BCE, paired by seed (points) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot(results: Mapping[str, Any], overlays: Mapping[str, Any], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(results["arms"])
    fig, axes = plt.subplots(1, 1 + len(overlays), figsize=(6 + 3 * len(overlays), 3.6))
    axes = np.atleast_1d(axes)
    x = np.arange(len(SCORE_NAMES))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        stats = results["arms"][arm]
        axes[0].bar(x + i * width, [stats[n]["mean"] for n in SCORE_NAMES], width,
                    yerr=[stats[n]["std"] for n in SCORE_NAMES], capsize=3, label=arm)  # fmt: skip
    axes[0].set_xticks(x + width * (len(arms) - 1) / 2, [n.replace("_", "\n") for n in SCORE_NAMES], fontsize=8)
    axes[0].set_ylim(0, 1.05)
    axes[0].legend(fontsize=8)
    axes[0].set_title("mean ± std over seeds")
    for ax, (arm, (image, ref, pred)) in zip(axes[1:], overlays.items()):
        ax.imshow(image, cmap="gray")
        ax.contour(ref, levels=[0.5], colors="lime", linewidths=1)
        ax.contour(pred, levels=[0.5], colors="red", linewidths=1) if pred.any() else None
        ax.set_title(f"{arm}\nreference green, prediction red", fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def knee_compare(
    out_dir: str | Path,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    bundle_root: str | Path | None = None,
    num_synthetic: int = 24,
    image_size: Sequence[int] = (64, 64, 64),
    max_epochs: int = 40,
    datalist: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train and evaluate both arms for every seed; write ``comparison.json``, ``comparison.md`` and ``comparison.png``.

    Every run lives in ``<out_dir>/<arm>/seed<k>/`` (outputs, ``models/model.pt``, ``eval/``); the data are
    generated once into ``<out_dir>/data`` (or come from ``datalist``). A finished run (its ``eval/summary.json``
    exists) is reused, so a killed comparison resumes; a finished training without ``eval/`` is only evaluated
    (delete the ``eval`` folders to score the same models with other evaluation settings, e.g.
    ``{"eval_threshold": "validation"}``). ``overrides`` go to both arms (e.g. ``{"patch_size": [32,
    32, 32]}``). Returns the results: per arm, each score's mean and std over the seeds' means; the raters' own
    scores against the truth; and the margins of soft + NAP over BCE.
    """
    owner = "knee_compare"
    seeds = [check_int(owner, "seeds", s, 0) for s in seeds]
    if not seeds:
        raise param_error(owner, "seeds", "a non-empty list of ints >= 0", seeds)
    root = Path(bundle_root) if bundle_root is not None else default_bundle_root()
    if root is None or not (root / "configs" / "train.json").is_file():
        raise param_error(owner, "bundle_root", f"the {_BUNDLE} bundle folder (has configs/train.json)", str(root))
    out = Path(out_dir)
    base = {
        "bundle_root": str(root),
        "dataset_dir": str(out / "data"),
        "datalist": None if datalist is None else str(datalist),
        "num_synthetic": check_int(owner, "num_synthetic", num_synthetic, 3),
        "image_size": [int(s) for s in image_size],
        "max_epochs": check_int(owner, "max_epochs", max_epochs, 1),
        **dict(overrides or {}),
    }
    per_seed: dict[str, list[dict[str, Any]]] = {}
    overlays: dict[str, Any] = {}
    eval_data = None
    for arm, extra in ARMS.items():
        for seed in seeds:
            run = out / arm.split()[0].lower().replace("+", "") / f"seed{seed}"
            paths = {"output_dir": str(run / "outputs"), "ckpt_dir": str(run / "models"), "seed": seed}
            summary_path = run / "outputs" / "eval" / "summary.json"
            # a finished training wrote its model and, last, its report: evaluate it again without retraining
            trained = (run / "models" / "model.pt").is_file() and (run / "outputs" / "report" / "index.html").is_file()
            if not summary_path.is_file() and not trained:
                print(f"knee-compare: training {arm}, seed {seed} -> {run}")
                wf = _workflow(root, ["train.json", *extra], {**base, **paths})
                wf.run()
                wf.finalize()
            wf = _workflow(root, ["train.json", *extra, "evaluate.json"], {**base, **paths})
            if not summary_path.is_file():
                wf.run()
            summary = json.loads(summary_path.read_text())
            per_seed.setdefault(arm, []).append({"seed": seed, **summary})
            if seed == seeds[0]:
                wf.parser.get_parsed_content("network").load_state_dict(
                    torch.load(str(run / "models" / "model.pt"), map_location="cpu", weights_only=True)
                )
                overlays[arm] = _overlay(wf)
                eval_data = wf.parser.get_parsed_content("eval_data")
            wf.finalize()
    arms: dict[str, Any] = {}
    for arm, rows in per_seed.items():
        arms[arm] = {"seeds": [r["seed"] for r in rows], "reference": rows[0].get("reference")}
        for n in SCORE_NAMES:
            values = np.array([r[f"{n}_mean"] for r in rows], np.float64)
            arms[arm][n] = {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
                            "per_seed": values.round(4).tolist()}  # fmt: skip
    names = list(ARMS)
    margins = {n: round(arms[names[0]][n]["mean"] - arms[names[1]][n]["mean"], 4) for n in SCORE_NAMES}
    # paired by seed: the same seed gives both arms the same initialization, patches and batch order
    paired = {n: np.subtract(arms[names[0]][n]["per_seed"], arms[names[1]][n]["per_seed"]) for n in SCORE_NAMES}
    margins_std = {n: round(float(d.std()), 4) for n, d in paired.items()}
    results = {"arms": arms, "raters": rater_scores(eval_data or []), "margins": margins, "margins_std": margins_std,
               "settings": base}  # fmt: skip
    table = format_table(results)
    atomic_write_text(out / "comparison.json", json.dumps(results, indent=1) + "\n")
    atomic_write_text(out / "comparison.md", table + "\n")
    _plot(results, {k: v for k, v in overlays.items() if v is not None}, out / "comparison.png")
    print(table)
    print(f"written: {out / 'comparison.md'}, {out / 'comparison.json'}, {out / 'comparison.png'}")
    return results
