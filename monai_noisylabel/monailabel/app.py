"""A MONAI Label app that serves and trains local MONAI bundles and runs the label review queue.

Every folder under the app's ``model/`` directory (or the ``bundles`` conf value) that holds a bundle
(``configs/inference.json`` or ``configs/train.json``) becomes a model of that name, served with MONAI Label's
``BundleInferTask`` and trained with its ``BundleTrainTask``, exactly as the ``monaibundle`` sample app does,
but from the local folder only: no model-zoo download, no SAM2. Added on top:

- the ``label_quality`` scoring method and the ``suspect_label_first`` strategy (:mod:`.review`);
- a bundle without a trained model is listed as a trainer and answers inference with a clear error until
  training (or a copied ``models/model.pt``) gives it one; it is then served without a restart;
- requests that cannot work (unknown image, scoring while the bundle trains, nothing scored yet, a label of
  another shape) get an HTTP 4xx response that names the problem; the server keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

from monai.utils import optional_import

from monai_noisylabel.data.io import save_nifti
from monai_noisylabel.monailabel.quality import bundle_spatial_dims, images_for_bundle
from monai_noisylabel.monailabel.review import TRAINING_LOCK, LabelQualityScoring, SuspectLabelFirst
from monai_noisylabel.utils import param_error

# MONAI Label's bases; placeholders that raise OptionalImportError on use when monailabel is not installed
MONAILabelApp: Any = optional_import("monailabel.interfaces.app", name="MONAILabelApp", as_type="base")[0]
BundleInferTask: Any = optional_import("monailabel.tasks.infer.bundle", name="BundleInferTask", as_type="base")[0]

__all__ = ["GeometryKeepingInferTask", "NoisyLabelApp", "discover_bundles", "training_datalist", "training_lock"]

logger = logging.getLogger(__name__)


def discover_bundles(root: str | os.PathLike) -> dict[str, str]:
    """Bundle folders directly under ``root`` (those with ``configs/inference.json`` or ``configs/train.json``).

    Example:
        >>> import tempfile
        >>> discover_bundles(tempfile.mkdtemp())
        {}
    """
    root = Path(root)
    if not root.is_dir():
        return {}
    return {
        p.name: str(p.resolve())
        for p in sorted(root.iterdir())
        if (p / "configs" / "inference.json").is_file() or (p / "configs" / "train.json").is_file()
    }


@contextlib.contextmanager
def training_lock(bundle_dir: str | os.PathLike) -> Iterator[None]:
    """Mark the bundle as training (its ``outputs/monailabel_training.pid``) while the block runs."""
    lock = Path(bundle_dir) / "outputs" / TRAINING_LOCK
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


class GeometryKeepingInferTask(BundleInferTask):
    """MONAI Label's ``BundleInferTask`` whose 2D NIfTI masks keep the image's affine (spacing, origin, direction).

    MONAI Label 0.8.5 writes a 2D result with ITK and no affine, so a 2D mask comes back with unit spacing at
    the origin and no longer overlays its image in the viewer. Here a 2D mask requested as ``.nii`` / ``.nii.gz``
    (the default for NIfTI images) is written with the affine of the image it was predicted from (the one
    MONAI Label's ``Restored`` puts back); every other result goes through MONAI Label's own writer.

    Example:
        Built by :class:`NoisyLabelApp` for every bundle with a model
        (``GeometryKeepingInferTask(bundle_dir, conf)``, arguments as ``BundleInferTask``).
    """

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: Any = None) -> Any:
        ext = extension or data.get("result_extension") or _nifti_ext(data.get("image_path"))
        pred = data.get(self.output_label_key)
        to_file = data.get("result_write_to_file", True)
        if self.dimension != 2 or ext not in (".nii", ".nii.gz") or pred is None or not to_file:
            return super().writer(data, extension=extension, dtype=dtype)
        import tempfile

        import numpy as np
        import torch

        array = np.asarray(pred.detach().cpu() if isinstance(pred, torch.Tensor) else pred)
        if array.ndim == 3 and array.shape[0] == 1:
            array = array[0]
        if array.ndim != 2:
            return super().writer(data, extension=extension, dtype=dtype)
        meta = data.get(f"{self.output_label_key}_meta_dict") or {}
        affine = meta.get("affine")
        if affine is None:
            affine = getattr(pred, "affine", None)
        if dtype is not None or data.get("result_dtype") is not None:
            array = array.astype(dtype or data["result_dtype"])
        elif np.all(array == np.round(array)) and array.min() >= 0 and array.max() <= 255:
            array = array.astype(np.uint8)
        out = tempfile.NamedTemporaryFile(suffix=ext, delete=False).name  # MONAI Label sends and removes it
        save_nifti(array, out, None if affine is None else np.asarray(affine, dtype=np.float64))
        return out, data.get(self.output_json_key, {})


def _nifti_ext(path: Any) -> str | None:
    name = str(path or "").lower()
    return ".nii.gz" if name.endswith(".nii.gz") else ".nii" if name.endswith(".nii") else None


def training_datalist(datalist: list[dict[str, Any]], bundle_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of MONAI Label's training datalist whose image has the bundle's dimensionality.

    Raises:
        ValueError: none has (the message names the bundle, its dimensionality and the number of images).

    Example:
        >>> import tempfile
        >>> training_datalist([{"image": "a.png", "label": "b.png"}], tempfile.mkdtemp())  # header unknown: kept
        [{'image': 'a.png', 'label': 'b.png'}]
    """
    kept = [e for e, ok in zip(datalist, images_for_bundle([e["image"] for e in datalist], bundle_dir)) if ok]
    if datalist and not kept:
        raise param_error(
            "MONAI Label training",
            "datastore",
            f"labelled images of the {bundle_spatial_dims(bundle_dir)}D inputs of the bundle {Path(bundle_dir).name}",
            f"{len(datalist)} labelled images of another dimensionality",
        )
    return kept


def _http_error(status: int, message: str) -> Exception:
    from fastapi import HTTPException

    return HTTPException(status_code=status, detail=message)


class NoisyLabelApp(MONAILabelApp):
    """MONAI Label app over local bundles with the ``label_quality`` review queue.

    Conf keys (``--conf key value`` of ``monailabel start_server``):
        bundles: folder holding the bundle folders (default ``<app_dir>/model``).
        label_quality_bundle: the bundle the ``label_quality`` scoring uses by default (needed when there
            are several).

    Args:
        app_dir: the app folder.
        studies: the datastore (a folder of images; labels go to ``labels/final``).
        conf: the ``--conf`` values.

    Example:
        Started by ``scripts/monailabel_app.sh STUDIES_DIR``; every train request is a new run warm-started from
        ``models/model.pt``:

        >>> NoisyLabelApp.TRAIN_OVERRIDES
        {'resume': False}
    """

    #: set on every training on top of MONAI Label's own overrides: each train request is a new training that
    #: starts from ``models/model.pt`` (MONAI Label's warm start), not a resume of the last run's checkpoint
    #: (whose trainer had already finished and whose per-sample state belongs to the old datastore).
    TRAIN_OVERRIDES: ClassVar[dict[str, Any]] = {"resume": False}

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        from monai_noisylabel import __version__

        conf = dict(conf or {})
        self.bundles = discover_bundles(conf.get("bundles") or os.path.join(app_dir, "model"))
        if not self.bundles:
            raise ValueError(
                f"The 'bundles' folder of NoisyLabelApp must hold at least one bundle (a folder with "
                f"configs/inference.json or configs/train.json). Got {conf.get('bundles') or app_dir + '/model'} "
                "instead."
            )
        super().__init__(
            app_dir=app_dir,
            studies=studies,
            conf=conf,
            name="monai_noisylabel",
            description="Local MONAI bundles with a review queue that hands the most suspect label first",
            version=__version__,
        )

    def _infer_task(self, name: str) -> Any:
        task = GeometryKeepingInferTask(self.bundles[name], self.conf)
        return task if task.is_valid() else None

    def init_infers(self) -> dict[str, Any]:
        tasks = {name: self._infer_task(name) for name in self.bundles}
        for name, task in tasks.items():
            if task is None:
                logger.warning(f"bundle '{name}' has no models/model.pt yet: train it first (POST /train/{name})")
        return {name: task for name, task in tasks.items() if task is not None}

    def init_trainers(self) -> dict[str, Any]:
        from monailabel.tasks.train.bundle import BundleTrainTask

        extra = dict(self.TRAIN_OVERRIDES)

        class _BundleTrainTask(BundleTrainTask):
            def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
                overrides.update(extra)
                return overrides

            def _fetch_datalist(self, request: dict[str, Any], datastore: Any) -> list[dict[str, Any]]:
                return training_datalist(super()._fetch_datalist(request, datastore), self.bundle_path)

        tasks = {name: _BundleTrainTask(path, self.conf) for name, path in self.bundles.items()}
        return {name: task for name, task in tasks.items() if task.is_valid()}

    def init_strategies(self) -> dict[str, Any]:
        from monailabel.tasks.activelearning.first import First
        from monailabel.tasks.activelearning.random import Random

        return {"suspect_label_first": SuspectLabelFirst(), "random": Random(), "first": First()}

    def init_scoring_methods(self) -> dict[str, Any]:
        default = self.conf.get("label_quality_bundle") or None
        return {"label_quality": LabelQualityScoring(self.bundles, default_bundle=default)}

    def infer(self, request: dict[str, Any], datastore: Any = None) -> Any:
        model = request.get("model")
        if model in self.bundles and model not in self._infers:
            task = self._infer_task(model)  # trained since the server started?
            if task is None:
                raise _http_error(
                    409,
                    f"The bundle '{model}' has no trained model ({self.bundles[model]}/models/model.pt is missing): "
                    f"train it first (POST /train/{model}) or copy a model.pt there.",
                )
            self._infers[model] = task
        image = request.get("image")
        store = datastore if datastore is not None else self.datastore()
        if isinstance(image, str) and not os.path.exists(image) and not store.get_image_uri(image):
            raise _http_error(404, f"The image '{image}' is not in the datastore {self.studies}.")
        return super().infer(request, datastore)

    def train(self, request: dict[str, Any]) -> Any:
        bundle = self.bundles.get(request.get("model", ""))
        auto_scoring = bool(getattr(self, "_auto_update_scoring", False))  # set by MONAILabelApp.__init__
        self._auto_update_scoring = False
        try:
            with training_lock(bundle) if bundle else contextlib.nullcontext():
                result = super().train(request)
        finally:
            self._auto_update_scoring = auto_scoring
        if auto_scoring:
            self.async_scoring(None)  # outside the lock, so the scoring is not refused
        return result

    def scoring(self, request: dict[str, Any], datastore: Any = None) -> Any:
        from monailabel.utils.async_tasks.utils import processes, tasks

        # a submitted task gets its process a moment later: count both
        if processes("train") or any(t.get("status") in ("SUBMITTED", "RUNNING") for t in tasks("train")):
            raise _http_error(409, "A training task is running: score after it finishes (GET /train/ shows it).")
        try:
            return super().scoring(request, datastore)
        except ValueError as e:
            raise _http_error(409, str(e)) from e

    def next_sample(self, request: dict[str, Any]) -> Any:
        try:
            return super().next_sample(request)
        except ValueError as e:
            raise _http_error(409, str(e)) from e
