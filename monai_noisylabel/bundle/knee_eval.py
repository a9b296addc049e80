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
from monai_noisylabel.utils import atomic_write_text, check_int, check_number

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["SCORE_NAMES", "lesion_scores", "summarize_scores", "evaluate_knee", "rater_scores"]

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


def evaluate_knee(
    network: torch.nn.Module,
    data: Iterable[Mapping[str, Any]],
    *,
    preprocessing: Callable[[Any], Any],
    inferer: Callable[..., torch.Tensor],
    output_dir: str | Path,
    device: Any = "cpu",
    threshold: float = 0.5,
    min_lesion_size: int = 1,
    amp: bool = False,
    checkpoint: str | Path | None = None,
) -> dict[str, Any]:
    """Score ``network`` on the evaluation cases; write ``metrics.csv`` (one row per case) and ``summary.json``.

    ``preprocessing`` turns an entry into ``{"image", "reference", "reference_kind"}`` (the bundle's evaluation
    pipeline, :class:`~monai_noisylabel.bundle.KneeTargetd` with ``reference_key``); the prediction is
    ``sigmoid(inferer(image, network)) > threshold``. ``checkpoint`` (a state dict file, e.g. ``models/model.pt``)
    is loaded first when given. The summary holds the mean and spread of every score, the number of cases and
    which reference was used (``truth`` or ``majority vote``), which is also printed.

    Returns:
        the summary dict.
    """
    threshold = check_number("evaluate_knee", "threshold", threshold, 0.0, 1.0, open_min=True, open_max=True)
    out = Path(output_dir)
    if checkpoint is not None:
        load_network_weights(network, checkpoint, owner="evaluate_knee")
    network.to(device).eval()
    rows = []
    for entry in data:
        item = preprocessing(dict(entry))
        image = torch.as_tensor(item["image"])[None].to(device)
        with torch.no_grad(), torch.autocast(device_type=torch.device(device).type, enabled=bool(amp)):
            prob = torch.sigmoid(inferer(image, network).float())
        pred = (prob[0, 0] > threshold).cpu().numpy()
        ref = torch.as_tensor(item["reference"])[0].cpu().numpy() > 0.5
        rows.append(
            {
                "id": entry.get("id", ""),
                "reference": item["reference_kind"],
                **lesion_scores(pred, ref, min_size=min_lesion_size),
            }
        )
    if not rows:
        raise ValueError("evaluate_knee: no evaluation cases (the 'data' list is empty).")
    _write_csv(out / "metrics.csv", rows, CSV_COLUMNS)
    kinds = sorted({r["reference"] for r in rows})
    summary: dict[str, Any] = {"num_cases": len(rows), "reference": ", ".join(kinds), **summarize_scores(rows)}
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    line = ", ".join(f"{n} {summary[n + '_mean']:.3f}" for n in SCORE_NAMES)
    print(f"evaluation on {len(rows)} cases against the {summary['reference']}: {line}")
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
