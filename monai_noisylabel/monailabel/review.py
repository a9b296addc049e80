"""The review queue in MONAI Label: a scoring method that scores every labelled image and the
``suspect_label_first`` strategy that hands the annotator the most suspect label that has not been
reviewed since it was scored.

Both only read the ``final`` labels; scoring writes the image info (key :data:`SCORE_KEY`) and one extra
label per image, tag :data:`QUALITY_TAG`: the per-pixel quality map as ``100 * (1 - quality)`` (0 = the
model agrees with the given class, 100 = it disputes it), for the viewer to overlay where to look.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from monai.utils import optional_import

from monai_noisylabel.data.io import save_nifti
from monai_noisylabel.monailabel.quality import (
    BundleScorer,
    bundle_spatial_dims,
    combine_label_scores,
    disputed_percent,
    file_signature,
    images_for_bundle,
    training_scores,
)
from monai_noisylabel.utils import param_error

# MONAI Label's bases; placeholders that raise OptionalImportError on use when monailabel is not installed
ScoringMethod: Any = optional_import("monailabel.interfaces.tasks.scoring", name="ScoringMethod", as_type="base")[0]
Strategy: Any = optional_import("monailabel.interfaces.tasks.strategy", name="Strategy", as_type="base")[0]

__all__ = [
    "SCORE_KEY",
    "QUALITY_TAG",
    "FINAL_TAG",
    "LabelQualityScoring",
    "SuspectLabelFirst",
    "label_signature",
    "training_in_progress",
    "TRAINING_LOCK",
]

logger = logging.getLogger(__name__)

#: image-info key under which the scores of one image are stored in the datastore.
SCORE_KEY = "label_quality"
#: label tag of the per-pixel quality map.
QUALITY_TAG = "label_quality"
#: MONAI Label's tag of the annotator's label.
FINAL_TAG = "final"
#: file inside a bundle's ``outputs/`` that holds the pid of a running MONAI Label training.
TRAINING_LOCK = "monailabel_training.pid"


def label_signature(datastore: Any, image_id: str) -> str | None:
    """What identifies the current ``final`` label of ``image_id``: its save time plus size and ns mtime.

    A label saved again (even within the same second) gets another signature; ``None`` when unlabelled.
    """
    uri = datastore.get_label_uri(image_id, FINAL_TAG)
    if not uri or not os.path.exists(uri):
        return None
    ts = datastore.get_label_info(image_id, FINAL_TAG).get("ts", "")
    return f"{ts}:{file_signature(uri)}"


def training_in_progress(bundle_dir: str | os.PathLike) -> int | None:
    """The pid of a MONAI Label training of this bundle that is still running, else ``None``."""
    lock = Path(bundle_dir) / "outputs" / TRAINING_LOCK
    try:
        pid = int(lock.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


class LabelQualityScoring(ScoringMethod):
    """MONAI Label scoring method: scores every labelled image with a bundle's current model.

    For each image with a ``final`` label it stores in the image info, under ``"label_quality"``: the
    per-sample ``loss``, the image-level ``quality``, the volume ``offsets`` and their ``offset`` distance,
    the last training run's score (``training``, from the bundle's ``outputs/label_scores.csv``), the
    ``combined`` rank-average (higher = more suspect) and the signatures of the model and label it used. An
    image whose model and label are unchanged since the last run is not predicted again. A label whose shape
    differs from its image is reported under ``problems`` (and in its image info) and left out. The annotator's
    labels are only read.

    Request keys: ``model`` (the bundle name, default: the one given here), ``device`` (default: CUDA when
    available, else CPU).

    Args:
        bundles: bundle name to bundle folder (the app's bundles).
        default_bundle: the bundle to score with when the request names none; without it, the one bundle that has a
            trained model (with several trained bundles the request must name one).

    Example:
        In a MONAI Label app (``init_scoring_methods``); each image's scores land in its info:

        >>> from monai_noisylabel.monailabel import SCORE_KEY, QUALITY_TAG
        >>> SCORE_KEY, QUALITY_TAG  # image-info key and label tag of the overlay
        ('label_quality', 'label_quality')
    """

    def __init__(self, bundles: Mapping[str, str], default_bundle: str | None = None) -> None:
        super().__init__("Label quality of every labelled image under the current model (suspect labels first)")
        self.bundles = dict(bundles)
        if default_bundle is None and len(self.bundles) == 1:
            default_bundle = next(iter(self.bundles))
        if default_bundle is not None and default_bundle not in self.bundles:
            raise param_error("LabelQualityScoring", "default_bundle", f"one of {sorted(self.bundles)}", default_bundle)
        self.default_bundle = default_bundle

    def bundle_of(self, request: Mapping[str, Any]) -> tuple[str, str]:
        """The (name, folder) of the bundle the request scores with."""
        name = request.get("model") or self.default_bundle
        if name is None:  # several bundles and none named: the one that has a trained model, if only one has
            trained = [n for n, d in self.bundles.items() if os.path.isfile(os.path.join(d, "models", "model.pt"))]
            if not trained:
                raise param_error(
                    "label_quality scoring",
                    "model",
                    "a bundle with a trained model (train one first)",
                    f"every bundle {sorted(self.bundles)} without models/model.pt",
                )
            name = trained[0] if len(trained) == 1 else None
        if name not in self.bundles:
            raise param_error(
                "label_quality scoring",
                "model",
                f"one of the bundles {sorted(self.bundles)} (needed when not exactly one bundle has a trained model)",
                name,
            )
        return name, self.bundles[name]

    def __call__(self, request: Mapping[str, Any], datastore: Any) -> dict[str, Any]:
        image_ids = sorted(datastore.get_labeled_images())
        if not image_ids:
            raise param_error(
                "label_quality scoring", "datastore", "a datastore with labelled images (a saved 'final' label)", 0
            )
        name, bundle_dir = self.bundle_of(request)
        fits = images_for_bundle([datastore.get_image_uri(i) for i in image_ids], bundle_dir)
        image_ids = [i for i, ok in zip(image_ids, fits) if ok]
        if not image_ids:
            raise param_error(
                "label_quality scoring",
                "datastore",
                f"labelled images of the {bundle_spatial_dims(bundle_dir)}D inputs of the bundle '{name}'",
                f"{len(fits)} labelled images of another dimensionality",
            )
        pid = training_in_progress(bundle_dir)
        if pid is not None:
            raise param_error(
                "label_quality scoring",
                "request",
                "no training of the bundle running",
                f"'{name}' training (pid {pid})",
            )
        device = request.get("device") or ("cuda" if _cuda() else "cpu")
        if isinstance(device, (list, tuple)):
            device = device[0]
        scorer = BundleScorer(bundle_dir, device="cpu" if str(device).startswith("cuda") and not _cuda() else device)
        problems: dict[str, str] = {}
        rows: dict[str, dict[str, Any]] = {}
        reused = 0
        with tempfile.TemporaryDirectory() as tmp:
            for image_id in image_ids:
                signature = label_signature(datastore, image_id)
                prev = datastore.get_image_info(image_id).get(SCORE_KEY) or {}
                if prev.get("model") == scorer.model_signature and prev.get("label") == signature and "loss" in prev:
                    rows[image_id] = {k: prev[k] for k in ("loss", "quality", "offsets")} | {"label": signature}
                    reused += 1
                    continue
                label_uri = datastore.get_label_uri(image_id, FINAL_TAG)
                try:
                    out = scorer.score(datastore.get_image_uri(image_id), label_uri)
                except ValueError as e:
                    problems[image_id] = str(e)
                    datastore.update_image_info(image_id, {SCORE_KEY: {"error": str(e), "label": signature}})
                    continue
                map_file = os.path.join(tmp, f"{image_id}.nii.gz")
                save_nifti(disputed_percent(out["quality_map"]), map_file, out["affine"])
                datastore.save_label(image_id, map_file, QUALITY_TAG, {"source": "monai_noisylabel", "bundle": name})
                rows[image_id] = {k: out[k] for k in ("loss", "quality", "offsets")} | {"label": signature}
        if rows:
            ids = list(rows)
            label_paths = [datastore.get_label_uri(i, FINAL_TAG) for i in ids]
            training = training_scores(bundle_dir, label_paths)
            combined = combine_label_scores([rows[i]["loss"] for i in ids], [rows[i]["offsets"] for i in ids], training)
            now = int(time.time())
            for k, image_id in enumerate(ids):
                info = rows[image_id] | {
                    "bundle": name,
                    "model": scorer.model_signature,
                    "offset": float(combined["offset"][k]),
                    "training": None if training[k] != training[k] else training[k],
                    "combined": float(combined["combined"][k]),
                    "ts": now,
                }
                datastore.update_image_info(image_id, {SCORE_KEY: info})
        ranking = sorted(rows, key=lambda i: -datastore.get_image_info(i)[SCORE_KEY]["combined"])
        logger.info(f"label_quality: scored {len(rows) - reused}, reused {reused}, problems {len(problems)}")
        return {
            "bundle": name,
            "scored": len(rows) - reused,
            "reused": reused,
            "ranking": ranking,
            "problems": problems,
        }


class SuspectLabelFirst(Strategy):
    """MONAI Label strategy ``suspect_label_first``: the labelled image with the worst ``combined`` score.

    Only images whose ``final`` label is still the one that was scored count: a label the annotator saved
    after the last scoring run leaves the queue until the next run scores it. Returns ``{}`` when every
    scored label has been reviewed.

    Raises:
        ValueError: no labelled image has been scored yet (run the ``label_quality`` scoring method first).
    """

    def __init__(self) -> None:
        super().__init__("The labelled image whose label is most suspect under the current model, not yet reviewed")

    def __call__(self, request: Mapping[str, Any], datastore: Any) -> dict[str, Any]:
        best: tuple[float, str] | None = None
        scored = 0
        for image_id in datastore.get_labeled_images():
            info = datastore.get_image_info(image_id).get(SCORE_KEY) or {}
            if "combined" not in info:
                continue
            scored += 1
            if info.get("label") != label_signature(datastore, image_id):
                continue  # reviewed (saved again) since it was scored
            key = (float(info["combined"]), image_id)
            if best is None or key[0] > best[0] or (key[0] == best[0] and key[1] < best[1]):
                best = key
        if scored == 0:
            raise param_error(
                "suspect_label_first",
                "datastore",
                "labelled images scored by the 'label_quality' scoring method (POST /scoring/label_quality)",
                "no scored image",
            )
        if best is None:
            return {}
        info = datastore.get_image_info(best[1])[SCORE_KEY]
        return {
            "id": best[1],
            "combined": info["combined"],
            "loss": info["loss"],
            "quality": info["quality"],
            "offset": info["offset"],
            "quality_map_tag": QUALITY_TAG,
        }


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
