"""Evaluation of the knee BML bundle: voxel and lesion-level scores, per-case CSV and summary JSON.

- :func:`lesion_scores`: voxel precision, recall and Dice, and lesion recall / precision from connected components.
- :func:`evaluate_knee`: sliding-window predictions of a network on the evaluation cases, scored against the
  reference (the ``truth`` mask, or the raters' majority vote), written to ``metrics.csv`` and ``summary.json``.
- :func:`rater_scores`: the raters' own scores against the truth (what the comparison command prints beside the
  model's).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import ndimage

from monai_noisylabel.bundle.checks import load_network_weights
from monai_noisylabel.bundle.knee import read_mask
from monai_noisylabel.utils import atomic_write_text, check_int, check_number, param_error

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["SCORE_NAMES", "lesion_scores", "summarize_scores", "evaluate_knee", "rater_scores", "choose_threshold"]

logger = logging.getLogger(__name__)

SCORE_NAMES = ("precision", "recall", "dice", "lesion_recall", "lesion_precision")
_STRUCTURE = np.ones((3, 3, 3), bool)  # 26-connectivity


def lesion_scores(pred: NdarrayOrTensor, reference: NdarrayOrTensor, *, min_size: int = 1) -> dict[str, float]:
    """Voxel precision, recall and Dice, and lesion-level detection, of a binary prediction against a reference.

    A reference lesion (26-connected component) is found when any predicted voxel overlaps it (lesion recall);
    a predicted component of at least ``min_size`` voxels is a true detection when it overlaps the reference
    (lesion precision). Empty prediction and empty reference score 1; an empty prediction against lesions
    scores precision 0 (a collapsed model is not rewarded).

    Example:
        >>> ref = np.zeros((8, 8, 8), np.uint8); ref[1:3, 1:3, 1:3] = 1; ref[5:7, 5:7, 5:7] = 1
        >>> pred = np.zeros_like(ref); pred[1:3, 1:3, 1:3] = 1; pred[4, 0, 0] = 1
        >>> s = lesion_scores(pred, ref)
        >>> s["recall"], s["lesion_recall"], s["lesion_precision"]
        (0.5, 0.5, 0.5)
    """
    p = np.asarray(pred).astype(bool).squeeze()
    r = np.asarray(reference).astype(bool).squeeze()
    if p.shape != r.shape:
        raise ValueError(f"lesion_scores: prediction shape {p.shape} differs from reference shape {r.shape}.")
    min_size = check_int("lesion_scores", "min_size", min_size, 1)
    tp, n_p, n_r = float((p & r).sum()), float(p.sum()), float(r.sum())
    out = {
        "precision": tp / n_p if n_p else float(n_r == 0),
        "recall": tp / n_r if n_r else 1.0,
        "dice": 2 * tp / (n_p + n_r) if n_p + n_r else 1.0,
    }
    st = _STRUCTURE[tuple(slice(0, 3) if i < p.ndim else 0 for i in range(3))] if p.ndim < 3 else _STRUCTURE
    ref_cc, n_ref = ndimage.label(r, st)
    pred_cc, n_pred = ndimage.label(p, st)
    if n_pred:
        sizes = ndimage.sum_labels(np.ones_like(p), pred_cc, index=np.arange(1, n_pred + 1))
        keep = np.flatnonzero(sizes >= min_size) + 1
    else:
        keep = np.zeros(0, int)
    found = len(np.setdiff1d(np.unique(ref_cc[p]), [0]))
    hits = len(np.intersect1d(np.unique(pred_cc[r]), keep))
    out["lesion_recall"] = found / n_ref if n_ref else 1.0
    out["lesion_precision"] = hits / len(keep) if len(keep) else float(n_ref == 0)
    out["num_reference_lesions"] = float(n_ref)
    out["num_predicted_lesions"] = float(len(keep))
    return out


def summarize_scores(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Mean and standard deviation of each of :data:`SCORE_NAMES` over ``rows``.

    Example:
        >>> summarize_scores([{n: 1.0 for n in SCORE_NAMES}, {n: 0.0 for n in SCORE_NAMES}])["dice_mean"]
        0.5
    """
    out: dict[str, float] = {}
    for name in SCORE_NAMES:
        values = np.array([float(r[name]) for r in rows], np.float64)
        out[f"{name}_mean"] = round(float(values.mean()), 4) if len(values) else float("nan")
        out[f"{name}_std"] = round(float(values.std()), 4) if len(values) else float("nan")
    return out


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


CSV_COLUMNS = ("id", "reference", *SCORE_NAMES, "num_reference_lesions", "num_predicted_lesions")
#: the thresholds :func:`choose_threshold` tries
THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _probabilities(
    network: torch.nn.Module,
    data: Iterable[Mapping[str, Any]],
    preprocessing: Callable[[Any], Any],
    inferer: Callable[..., torch.Tensor],
    device: Any,
    amp: bool,
    key: str,
) -> Iterable[tuple[Mapping[str, Any], Mapping[str, Any], np.ndarray, np.ndarray]]:
    """``(entry, item, sigmoid probability, reference under key > 0.5)`` for every case, one at a time."""
    network.to(device).eval()
    for entry in data:
        item = preprocessing(dict(entry))
        image = torch.as_tensor(item["image"])[None].to(device)
        with torch.no_grad(), torch.autocast(device_type=torch.device(device).type, enabled=bool(amp)):
            prob = torch.sigmoid(inferer(image, network).float())[0, 0].cpu().numpy()
        yield entry, item, prob, torch.as_tensor(item[key])[0].cpu().numpy() > 0.5


def _dice(pred: np.ndarray, ref: np.ndarray) -> float:
    total = float(pred.sum() + ref.sum())
    return 2.0 * float((pred & ref).sum()) / total if total else 1.0


def choose_threshold(
    network: torch.nn.Module,
    data: Iterable[Mapping[str, Any]],
    *,
    preprocessing: Callable[[Any], Any],
    inferer: Callable[..., torch.Tensor],
    device: Any = "cpu",
    amp: bool = False,
    label_key: str = "label",
    grid: Sequence[float] = THRESHOLD_GRID,
) -> tuple[float, dict[float, float]]:
    """The decision threshold that maximises the mean Dice on ``data`` (the validation cases), and every candidate's.

    ``preprocessing`` gives ``{"image", label_key}`` per case; the bundle's validation pipeline gives the raters'
    majority vote (channel 0), the reference its model selection uses too, so no evaluation-only ``truth`` is
    read. Ties go to the candidate nearest 0.5.

    Returns:
        ``(threshold, {candidate: mean Dice})``.

    Example:
        >>> net = torch.nn.Conv3d(1, 1, 1)
        >>> _ = torch.nn.init.ones_(net.weight), torch.nn.init.constant_(net.bias, -0.5)
        >>> image = torch.zeros(1, 8, 8, 8); image[0, 2:5, 2:5, 2:5] = 1.0
        >>> case = {"image": image, "label": (image > 0.5).float()}
        >>> t, dice = choose_threshold(net, [case], preprocessing=dict, inferer=lambda x, n: n(x))
        >>> t, dice[0.5]
        (0.5, 1.0)
    """
    owner = "choose_threshold"
    candidates = [check_number(owner, "grid", g, 0.0, 1.0, open_min=True, open_max=True) for g in grid]
    if not candidates:
        raise ValueError(f"{owner}: the 'grid' parameter must hold at least one threshold in (0, 1). Got [] instead.")
    per_case = [
        [_dice(prob > t, ref) for t in candidates]
        for _, _, prob, ref in _probabilities(network, data, preprocessing, inferer, device, amp, label_key)
    ]
    if not per_case:
        raise ValueError(f"{owner}: no validation cases (the 'data' list is empty).")
    means = np.mean(per_case, axis=0)
    best = max(range(len(candidates)), key=lambda i: (round(float(means[i]), 6), -abs(candidates[i] - 0.5)))
    return candidates[best], {c: round(float(m), 4) for c, m in zip(candidates, means)}


def evaluate_knee(
    network: torch.nn.Module,
    data: Iterable[Mapping[str, Any]],
    *,
    preprocessing: Callable[[Any], Any],
    inferer: Callable[..., torch.Tensor],
    output_dir: str | Path,
    device: Any = "cpu",
    threshold: float | str = 0.5,
    min_lesion_size: int = 1,
    amp: bool = False,
    checkpoint: str | Path | None = None,
    validation_data: Iterable[Mapping[str, Any]] | None = None,
    validation_preprocessing: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Score ``network`` on the evaluation cases; write ``metrics.csv`` (one row per case) and ``summary.json``.

    ``preprocessing`` turns an entry into ``{"image", "reference", "reference_kind"}`` (the bundle's evaluation
    pipeline, :class:`~monai_noisylabel.bundle.KneeTargetd` with ``reference_key``); the prediction is
    ``sigmoid(inferer(image, network)) > threshold``. ``threshold="validation"`` picks it with
    :func:`choose_threshold` on ``validation_data`` (through ``validation_preprocessing``, the bundle's validation
    pipeline: the raters' majority vote) before the evaluation cases are seen. ``checkpoint`` (a state dict file,
    e.g. ``models/model.pt``) is loaded first when given. The summary holds the mean and spread of every score,
    the number of cases, the threshold used and where it came from, and which reference was used (``truth`` or
    ``majority vote``), which is also printed.

    Returns:
        the summary dict.
    """
    owner = "evaluate_knee"
    if checkpoint is not None:
        load_network_weights(network, checkpoint, owner=owner)
    source = "given"
    candidates: dict[float, float] = {}
    if threshold == "validation":
        if validation_data is None or validation_preprocessing is None:
            raise ValueError(
                f"{owner}: threshold='validation' needs 'validation_data' and 'validation_preprocessing'. "
                f"Got {type(validation_data).__name__} and {type(validation_preprocessing).__name__} instead."
            )
        threshold, candidates = choose_threshold(
            network, validation_data, preprocessing=validation_preprocessing, inferer=inferer, device=device, amp=amp
        )
        source = "validation"
        print(f"{owner}: threshold {threshold} maximises the mean validation Dice against the majority vote")
    elif isinstance(threshold, str):
        raise param_error(owner, "threshold", "a number in (0, 1) or 'validation'", threshold)
    threshold = check_number(owner, "threshold", threshold, 0.0, 1.0, open_min=True, open_max=True)
    out = Path(output_dir)
    rows = []
    for entry, item, prob, ref in _probabilities(network, data, preprocessing, inferer, device, amp, "reference"):
        rows.append(
            {
                "id": entry.get("id", ""),
                "reference": item["reference_kind"],
                **lesion_scores(prob > threshold, ref, min_size=min_lesion_size),
            }
        )
    if not rows:
        raise ValueError(f"{owner}: no evaluation cases (the 'data' list is empty).")
    _write_csv(out / "metrics.csv", rows, CSV_COLUMNS)
    kinds = sorted({r["reference"] for r in rows})
    summary: dict[str, Any] = {"num_cases": len(rows), "reference": ", ".join(kinds), "threshold": threshold,
                               "threshold_source": source, **summarize_scores(rows)}  # fmt: skip
    if candidates:
        summary["validation_dice_by_threshold"] = {str(k): v for k, v in candidates.items()}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    line = ", ".join(f"{n} {summary[n + '_mean']:.3f}" for n in SCORE_NAMES)
    print(f"evaluation on {len(rows)} cases against the {summary['reference']} (threshold {threshold}): {line}")
    print(f"per-case scores: {out / 'metrics.csv'}; summary: {out / 'summary.json'}")
    return summary


def rater_scores(data: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Each rater's and the majority vote's scores against ``truth``, averaged over the cases that have one.

    Rater ``k`` is the ``k``-th entry of each case's ``raters`` list.

    Example:
        >>> import tempfile
        >>> from monai_noisylabel.bundle.knee import prepare_knee_data
        >>> d = prepare_knee_data(tempfile.mkdtemp(), num_synthetic=4, image_size=(16, 16, 16))
        >>> sorted(rater_scores(d["training"]))
        ['majority vote', 'rater 0', 'rater 1', 'rater 2']
    """
    per: dict[str, list[dict[str, float]]] = {}
    for entry in data:
        if not entry.get("truth"):
            continue
        truth = read_mask(entry["truth"]) > 0
        masks = [read_mask(p) > 0 for p in entry["raters"]]
        vote = np.sum(masks, axis=0) * 2 > len(masks)
        for name, mask in [("majority vote", vote), *((f"rater {k}", m) for k, m in enumerate(masks))]:
            per.setdefault(name, []).append(lesion_scores(mask, truth))
    return {name: summarize_scores(rows) for name, rows in per.items()}
