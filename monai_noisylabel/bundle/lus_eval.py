"""The LUS bundle's evaluation: per-class Dice/IoU of the predicted masks, then the downstream clinical tasks.

The segmentation is scored against ``truth`` when every evaluated case has one, else against the expert labels
at the configured threshold (the output says which). The downstream step
(:func:`~monai_noisylabel.downstream.run_downstream`) runs on features of the predicted masks and, as reference
rows, of the expert labels and of the true masks. The reference rows need no trained network, so they are also
computed on every patient of the dataset (:func:`reference_downstream`), each scored out of fold: the evaluated
section alone is often too small for a stable AUC.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.metrics import compute_dice, compute_iou
from monai.networks.utils import one_hot
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, Resized

from monai_noisylabel.bundle.checks import load_network_weights
from monai_noisylabel.data.synthetic import LUS_CLASSES
from monai_noisylabel.downstream import DOWNSTREAM_TASKS, lus_mask_features, run_downstream
from monai_noisylabel.utils import atomic_write_text, check_int

__all__ = ["predict_lus_masks", "evaluate_lus", "reference_downstream", "ALL_PATIENTS"]

logger = logging.getLogger(__name__)
CLINICAL_KEYS = ("patient", "timepoint", "sf_ratio", "sf_change", "readmission_30d")
#: suffix of the downstream sources computed on every patient of the dataset
ALL_PATIENTS = "_all_patients"


@torch.no_grad()
def predict_lus_masks(
    network: torch.nn.Module,
    images: Sequence[torch.Tensor],
    device: torch.device | str = "cpu",
    batch_size: int = 8,
) -> list[np.ndarray]:
    """Class maps ``(H, W)`` (argmax of the network's softmax) for channel-first images ``(1, H, W)``.

    Example:
        >>> net = torch.nn.Conv2d(1, 5, 1)
        >>> [m.shape for m in predict_lus_masks(net, [torch.zeros(1, 8, 8)])]
        [(8, 8)]
    """
    batch_size = check_int("predict_lus_masks", "batch_size", batch_size, minimum=1)
    was_training = network.training
    network.eval()
    out: list[np.ndarray] = []
    try:
        for i in range(0, len(images), batch_size):
            x = torch.stack([torch.as_tensor(im, dtype=torch.float32) for im in images[i : i + batch_size]])
            logits = network(x.to(device))
            out += [m.astype(np.uint8) for m in logits.argmax(1).cpu().numpy()]
    finally:
        network.train(was_training)
    return out


def _per_class(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class (1..4) Dice and IoU of one frame; NaN where the class is absent from the reference."""
    n = len(LUS_CLASSES) + 1
    p = one_hot(torch.as_tensor(pred[None, None].astype(np.int64)), n)
    r = one_hot(torch.as_tensor(ref[None, None].astype(np.int64)), n)
    dice = compute_dice(p, r, include_background=False, ignore_empty=True)[0].numpy()
    iou = compute_iou(p, r, include_background=False, ignore_empty=True)[0].numpy()
    return dice, iou


def _csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def _load(transform: Callable[[Any], Any], entries: Sequence[Mapping[str, Any]], key: str) -> list[torch.Tensor]:
    return [transform(dict(e))[key] for e in entries]


def _truth_masks(entries: Sequence[Mapping[str, Any]], image_size: Sequence[int]) -> list[np.ndarray] | None:
    """The ``truth`` masks at the network's size (nearest), or ``None`` when a case has none."""
    if not entries or not all(e.get("truth") for e in entries):
        return None
    load_truth = Compose(
        [
            LoadImaged(keys="truth", image_only=True),
            EnsureChannelFirstd(keys="truth"),
            Resized(keys="truth", spatial_size=list(image_size), mode="nearest"),
        ]
    )
    return [np.asarray(t)[0].astype(np.uint8) for t in _load(load_truth, entries, "truth")]


def _clinical_downstream(
    entries: Sequence[Mapping[str, Any]],
    masks: Mapping[str, Sequence[np.ndarray]],
    *,
    cv_splits: int,
    cv_repeats: int,
    seed: int,
    suffix: str = "",
) -> dict[str, Any]:
    """Source -> :func:`run_downstream` result on the features of ``masks[source]`` (one mask per entry)."""
    clinical = [{"id": e["id"], **{k: e.get(k) for k in CLINICAL_KEYS}} for e in entries]
    usable = [i for i, c in enumerate(clinical) if c["patient"] is not None and c["timepoint"] is not None]
    if len(usable) < len(clinical):
        logger.info(
            f"evaluate_lus: {len(clinical) - len(usable)} frames without patient/timepoint left out of the downstream step"
        )
    out = {}
    for source, ms in masks.items():
        records = [{**clinical[i], "features": lus_mask_features(ms[i])} for i in usable]
        out[source + suffix] = (
            run_downstream(records, n_splits=cv_splits, n_repeats=cv_repeats, seed=seed) if records else {}
        )
    return out


def reference_downstream(
    data: Mapping[str, Any],
    *,
    preprocessing: Callable[[Any], Any],
    image_size: Sequence[int],
    sections: Sequence[str] = ("training", "validation", "test"),
    cv_splits: int = 5,
    cv_repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """The downstream tasks on the expert labels and the true masks of every patient in ``sections``.

    No network is involved, so no patient has to be held out for these reference rows: the patient-grouped
    cross-validation scores every patient out of fold. Sources are ``expert_labels_all_patients`` and, when every
    frame has a ``truth``, ``true_masks_all_patients`` (:func:`~monai_noisylabel.downstream.run_downstream` results).

    Example:
        >>> import tempfile
        >>> from monai_noisylabel.bundle import lus_label_transforms, prepare_lus_data
        >>> d = prepare_lus_data(tempfile.mkdtemp(), num_synthetic=24, image_size=(32, 32))
        >>> pre = Compose([LoadImaged(["image", "confidence"], image_only=True), EnsureChannelFirstd("image"),
        ...                EnsureChannelFirstd("confidence", channel_dim=-1), *lus_label_transforms("hard")])
        >>> out = reference_downstream(d, preprocessing=pre, image_size=(32, 32), cv_repeats=1)
        >>> sorted(out), out["true_masks_all_patients"]["sf_regression"]["n_patients"]
        (['expert_labels_all_patients', 'true_masks_all_patients'], 12)
    """
    entries = [e for section in sections for e in (data["entries"].get(section) or [])]
    if not entries:
        raise ValueError(f"reference_downstream: no frames in the sections {list(sections)}.")
    items = [preprocessing({k: e[k] for k in ("id", "image", "confidence")}) for e in entries]
    masks: dict[str, Sequence[np.ndarray]] = {
        "expert_labels": [np.asarray(it["label"])[0].astype(np.uint8) for it in items]
    }
    truths = _truth_masks(entries, image_size)
    if truths is not None:
        masks["true_masks"] = truths
    return _clinical_downstream(
        entries, masks, cv_splits=cv_splits, cv_repeats=cv_repeats, seed=seed, suffix=ALL_PATIENTS
    )


def evaluate_lus(
    network: torch.nn.Module,
    data: Mapping[str, Any],
    *,
    preprocessing: Callable[[Any], Any],
    image_size: Sequence[int],
    eval_dir: str | os.PathLike | None,
    threshold: float,
    device: torch.device | str = "cpu",
    checkpoint: str | os.PathLike | None = None,
    section: str = "test",
    cv_splits: int = 5,
    cv_repeats: int = 5,
    seed: int = 0,
    reference_sections: Sequence[str] | None = ("training", "validation", "test"),
) -> dict[str, Any]:
    """Score ``network`` on one section of :func:`~monai_noisylabel.bundle.prepare_lus_data`'s data.

    Args:
        network: the trained segmenter (5 output channels: background and the four LUS classes).
        data: the output of ``prepare_lus_data``; ``section`` falls back to ``"validation"`` when empty.
        preprocessing: the bundle's validation preprocessing (gives ``image`` and ``label``, the expert labels at
            ``threshold``, at the network's size).
        image_size: the network's input size; ``truth`` is resized to it (nearest).
        eval_dir: where ``metrics.json``, ``segmentation_per_frame.csv`` and ``downstream.csv`` go (``None``: no
            files).
        threshold: the threshold of the expert labels (for the output's wording).
        device: where the network runs.
        checkpoint: a state dict (e.g. ``models/model.pt``) loaded into ``network`` first; ``None`` keeps its
            weights.
        section: the section scored.
        cv_splits, cv_repeats, seed: the downstream cross-validation.
        reference_sections: the sections whose patients the reference rows are also computed on
            (:func:`reference_downstream`); ``None`` skips them.

    Returns:
        ``{"reference", "n_frames", "dice", "iou" (class -> mean), "mean_dice", "mean_iou", "frames" (per-frame
        rows), "downstream" (source -> :func:`~monai_noisylabel.downstream.run_downstream` result, sources
        ``predicted``, ``expert_labels`` and, with truth, ``true_masks``, on the evaluated section; with
        ``reference_sections``, ``expert_labels_all_patients`` and ``true_masks_all_patients`` too)}``.
    """
    if checkpoint is not None:
        load_network_weights(network, checkpoint, owner="evaluate_lus", map_location=device)
    entries = list(data["entries"].get(section) or [])
    if not entries:
        section, entries = "validation", list(data["entries"]["validation"])
    items = [preprocessing({k: e[k] for k in ("id", "image", "confidence")}) for e in entries]
    images = [it["image"] for it in items]
    labels = [np.asarray(it["label"])[0].astype(np.uint8) for it in items]
    preds = predict_lus_masks(network, images, device)
    truths = _truth_masks(entries, image_size)
    reference = "truth" if truths is not None else f"expert labels at threshold {threshold}"
    refs = truths if truths is not None else labels

    frames = []
    for e, p, r in zip(entries, preds, refs):
        dice, iou = _per_class(p, r)
        row: dict[str, Any] = {"id": e["id"], "patient": e.get("patient")}
        row.update({f"dice_{c}": float(d) for c, d in zip(LUS_CLASSES, dice)})
        row.update({f"iou_{c}": float(v) for c, v in zip(LUS_CLASSES, iou)})
        frames.append(row)
    dice_mean = {c: float(np.nanmean([f[f"dice_{c}"] for f in frames])) for c in LUS_CLASSES}
    iou_mean = {c: float(np.nanmean([f[f"iou_{c}"] for f in frames])) for c in LUS_CLASSES}

    masks = {"predicted": preds, "expert_labels": labels}
    if truths is not None:
        masks["true_masks"] = truths
    downstream = _clinical_downstream(entries, masks, cv_splits=cv_splits, cv_repeats=cv_repeats, seed=seed)
    if reference_sections:
        downstream.update(
            reference_downstream(
                data,
                preprocessing=preprocessing,
                image_size=image_size,
                sections=reference_sections,
                cv_splits=cv_splits,
                cv_repeats=cv_repeats,
                seed=seed,
            )
        )
    result = {
        "section": section,
        "reference": reference,
        "n_frames": len(entries),
        "dice": dice_mean,
        "iou": iou_mean,
        "mean_dice": float(np.mean(list(dice_mean.values()))),
        "mean_iou": float(np.mean(list(iou_mean.values()))),
        "frames": frames,
        "downstream": downstream,
    }
    logger.info(
        f"evaluate_lus: {len(entries)} {section} frames against {reference}: mean Dice {result['mean_dice']:.4f}, "
        f"mean IoU {result['mean_iou']:.4f}"
    )
    if eval_dir is not None:
        _write(Path(eval_dir), result)
    return result


def downstream_rows(downstream: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Flat ``{source, task, metric, value, std, n_patients, skipped_reason}`` rows of the downstream results."""
    rows = []
    for source, res in downstream.items():
        for task, (_, names) in DOWNSTREAM_TASKS.items():
            if task not in res:
                continue
            t = res[task]
            for name in names:
                rows.append(
                    {
                        "source": source,
                        "task": task,
                        "metric": name,
                        "value": t["metrics"][name],
                        "std": t["metrics_std"][name],
                        "n_patients": t["n_patients"],
                        "skipped_reason": t["skipped_reason"] or "",
                    }
                )
    return rows


def _write(eval_dir: Path, result: Mapping[str, Any]) -> None:
    eval_dir.mkdir(parents=True, exist_ok=True)
    cols = ["id", "patient", *(f"dice_{c}" for c in LUS_CLASSES), *(f"iou_{c}" for c in LUS_CLASSES)]
    atomic_write_text(eval_dir / "segmentation_per_frame.csv", _csv(result["frames"], cols))
    rows = downstream_rows(result["downstream"])
    atomic_write_text(
        eval_dir / "downstream.csv",
        _csv(rows, ["source", "task", "metric", "value", "std", "n_patients", "skipped_reason"]),
    )
    summary = {k: result[k] for k in ("section", "reference", "n_frames", "dice", "iou", "mean_dice", "mean_iou")}
    summary["downstream"] = rows
    summary["downstream_skipped"] = {s: r.get("skipped", {}) for s, r in result["downstream"].items()}
    atomic_write_text(eval_dir / "metrics.json", json.dumps(summary, indent=2) + "\n")
    print(f"segmentation ({result['n_frames']} {result['section']} frames, against {result['reference']}):")
    for c in LUS_CLASSES:
        print(f"  {c:14s} Dice {result['dice'][c]:.4f}  IoU {result['iou'][c]:.4f}")
    print(f"  {'mean':14s} Dice {result['mean_dice']:.4f}  IoU {result['mean_iou']:.4f}")
    print("downstream (patient-grouped CV, mean over repeats):")
    for r in rows:
        value = "skipped: " + r["skipped_reason"] if r["skipped_reason"] else f"{r['value']:.4f} (sd {r['std']:.4f})"
        print(f"  {r['source']:14s} {r['task']:14s} {r['metric']:10s} {value}  [{r['n_patients']} patients]")
    print(f"evaluation written to {eval_dir}")
