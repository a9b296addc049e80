"""Label-quality scores of annotated images under a bundle's current model (no MONAI Label import).

The review queue's core: a bundle folder (``configs/train.json`` + ``models/model.pt``) gives the network,
the deterministic image/label preprocessing and the per-sample loss it trains with; every labelled image is
then scored the way the training-time detectors score their samples (:mod:`monai_noisylabel.detection`):

- ``loss``: the per-sample training loss of the given label (:func:`~monai_noisylabel.detection.per_sample_loss`);
- ``quality``: the label's image-level quality (:func:`~monai_noisylabel.detection.image_label_quality` of the
  per-pixel self-confidence), and the per-pixel map itself at the label's own resolution;
- ``offset``: the directional volume offset of the label against the prediction
  (:func:`~monai_noisylabel.detection.volume_offsets`), scored as the distance from the other labels'
  offsets (:func:`~monai_noisylabel.detection.offset_scores`);
- ``training``: the ``combined`` score of the bundle's last training run (``outputs/label_scores.csv``) when
  that run saw the current label file.

:func:`combine_label_scores` rank-averages them (:func:`~monai_noisylabel.detection.combine_scores`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from monai_noisylabel.data.io import read_spatial_shape
from monai_noisylabel.detection import (
    combine_scores,
    image_label_quality,
    offset_scores,
    per_sample_loss,
    pixel_label_quality,
    volume_offsets,
)
from monai_noisylabel.label_scores import LABEL_SCORES_FILENAME, read_label_scores
from monai_noisylabel.utils import param_error

__all__ = [
    "BundleScorer",
    "bundle_spatial_dims",
    "images_for_bundle",
    "class_probabilities",
    "combine_label_scores",
    "file_signature",
    "training_scores",
    "disputed_percent",
]


def file_signature(path: str | os.PathLike) -> str:
    """A string that changes whenever the file at ``path`` is rewritten (size and ns modification time).

    Example:
        >>> import tempfile
        >>> p = tempfile.mkdtemp() + "/a.txt"
        >>> _ = open(p, "w").write("x")
        >>> file_signature(p).startswith("1:")
        True
    """
    st = os.stat(path)
    return f"{st.st_size}:{st.st_mtime_ns}"


def bundle_spatial_dims(bundle_dir: str | os.PathLike) -> int | None:
    """The number of spatial dimensions of a bundle's input (its metadata ``spatial_shape``), ``None`` if unknown.

    Example:
        >>> import tempfile
        >>> bundle_spatial_dims(tempfile.mkdtemp()) is None
        True
    """
    meta = Path(bundle_dir) / "configs" / "metadata.json"
    try:
        inputs = json.loads(meta.read_text())["network_data_format"]["inputs"]
        shape = next(iter(inputs.values())).get("spatial_shape")
    except (OSError, ValueError, KeyError, StopIteration, AttributeError):
        return None
    return len(shape) if isinstance(shape, list) and shape else None


def images_for_bundle(image_paths: Sequence[str], bundle_dir: str | os.PathLike) -> list[bool]:
    """Whether each image has the bundle's number of spatial dimensions (from the file header; an image whose
    header cannot be read, or a bundle that declares none, counts as matching).

    A datastore may hold 2D frames and 3D volumes for different bundles of one app: each bundle trains on and
    scores only the images of its own dimensionality.

    Example:
        >>> import tempfile
        >>> from monai_noisylabel.data import save_nifti
        >>> d = tempfile.mkdtemp()
        >>> p2, p3 = save_nifti(np.zeros((4, 4)), d + "/a.nii.gz"), save_nifti(np.zeros((4, 4, 4)), d + "/b.nii.gz")
        >>> b = Path(d) / "bundle" / "configs"; b.mkdir(parents=True)
        >>> _ = (b / "metadata.json").write_text('{"network_data_format": {"inputs": {"image": {"spatial_shape": [8, 8]}}}}')
        >>> images_for_bundle([str(p2), str(p3)], b.parent)
        [True, False]
    """
    dims = bundle_spatial_dims(bundle_dir)
    out = []
    for path in image_paths:
        try:
            shape = read_spatial_shape(path)
        except ValueError:
            shape = None
        out.append(dims is None or shape is None or len(shape) == dims)
    return out


def disputed_percent(quality: np.ndarray) -> np.ndarray:
    """The per-pixel quality map as the label overlay a viewer shows: ``round(100 * (1 - quality))``, uint8.

    0 where the model agrees with the given class, 100 where it gives that class no probability at all.

    Example:
        >>> disputed_percent(np.array([[1.0, 0.25]])).tolist()
        [[0, 75]]
    """
    return np.clip(np.rint(100.0 * (1.0 - np.asarray(quality, dtype=np.float64))), 0, 100).astype(np.uint8)


def training_scores(bundle_dir: str | os.PathLike, label_paths: Sequence[str]) -> list[float]:
    """The ``combined`` score of each label in the bundle's last training run, NaN where there is none.

    A row counts only when the run's ``outputs/label_scores.csv`` is newer than the label file (so a label
    corrected after that run is not judged by the old one) and names the same label file.

    Example:
        >>> import tempfile
        >>> training_scores(tempfile.mkdtemp(), ["/x/a.nii.gz"])
        [nan]
    """
    csv_path = Path(bundle_dir) / "outputs" / LABEL_SCORES_FILENAME
    out = [math.nan] * len(label_paths)
    if not csv_path.is_file():
        return out
    by_label = {os.path.realpath(str(r["label"])): r["combined"] for r in read_label_scores(csv_path) if r["label"]}
    csv_mtime = csv_path.stat().st_mtime_ns
    for i, path in enumerate(label_paths):
        value = by_label.get(os.path.realpath(path))
        if value is not None and os.stat(path).st_mtime_ns < csv_mtime:
            out[i] = float(value)
    return out


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Per-class probabilities ``(B, C, ...)`` of a network's output: softmax over ``C`` classes, or for one
    sigmoid channel (a binary network) ``[1 - p, p]``.

    Example:
        >>> class_probabilities(torch.zeros(1, 1, 2)).tolist()
        [[[0.5, 0.5], [0.5, 0.5]]]
    """
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits)
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits, dim=1)


def combine_label_scores(
    losses: Sequence[float], offsets: Sequence[Sequence[float]], training: Sequence[float] | None = None
) -> dict[str, np.ndarray]:
    """Per-label ``offset`` distances and the ``combined`` rank-average of loss, offset and training scores.

    Args:
        losses: ``(N,)`` per-sample losses of the given labels.
        offsets: ``(N, K)`` volume offsets of the given labels against the predictions.
        training: ``(N,)`` training-run ``combined`` scores, NaN where absent (left out for that label).

    Returns:
        ``{"offset": (N,), "combined": (N,)}``, higher = more suspect, ``combined`` in [0, 1].

    Example:
        >>> out = combine_label_scores([0.2, 0.3, 1.5], [[0.0], [0.1], [2.0]])
        >>> int(np.argmax(out["combined"]))
        2
    """
    loss = np.asarray(losses, dtype=np.float64)
    offset = offset_scores(np.asarray(offsets, dtype=np.float64).reshape(len(loss), -1))
    scores: dict[str, Any] = {"loss": loss, "offset": offset}
    include = ["loss", "offset"]
    if training is not None and np.isfinite(np.asarray(training, dtype=np.float64)).any():
        scores["training"] = np.asarray(training, dtype=np.float64)
        include.append("training")
    return {"offset": offset, "combined": combine_scores(scores, include=include)}


class BundleScorer:
    """Scores given labels with a bundle's current model: per-sample loss, pixel/image quality, volume offsets.

    Args:
        bundle_dir: a bundle folder with ``configs/train.json`` (``network_def``, ``validate#preprocessing``
            loading ``image`` and ``label``, ``loss`` with ``reduction="none"``) and ``models/model.pt``.
        device: torch device for the forward passes.
        model_file: the weights file inside ``models/`` (default ``model.pt``).

    Raises:
        ValueError: the folder has no ``configs/train.json`` or no trained model.

    Example:
        >>> BundleScorer("/nonexistent")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        monai_noisylabel.utils.ParameterError: The 'bundle_dir' parameter of BundleScorer must be a bundle ...
    """

    def __init__(
        self, bundle_dir: str | os.PathLike, device: str | torch.device = "cpu", model_file: str = "model.pt"
    ) -> None:
        from monai.bundle import ConfigParser

        owner = "BundleScorer"
        self.bundle_dir = Path(bundle_dir)
        config = self.bundle_dir / "configs" / "train.json"
        if not config.is_file():
            raise param_error(owner, "bundle_dir", "a bundle folder with configs/train.json", str(bundle_dir))
        self.model_path = self.bundle_dir / "models" / model_file
        if not self.model_path.is_file():
            raise param_error(
                owner,
                "bundle_dir",
                "a bundle with a trained model (train it first, e.g. POST /train/<bundle> in MONAI Label)",
                f"{bundle_dir} without models/{model_file}",
            )
        self.device = torch.device(device)
        parser = ConfigParser()
        parser.read_config(str(config))
        parser["bundle_root"] = str(self.bundle_dir)
        parser["device"] = str(self.device)
        with torch.random.fork_rng(devices=[]):  # the initial weights are replaced: leave the global RNG alone
            self.network = parser.get_parsed_content("network_def").to(self.device)
        state = torch.load(self.model_path, map_location=self.device, weights_only=True)
        self.network.load_state_dict(state.get("model", state) if isinstance(state, Mapping) else state)
        self.network.eval()
        self.preprocessing = parser.get_parsed_content("validate#preprocessing")
        self.inferer = parser.get_parsed_content("validate#inferer") if parser.get("validate#inferer") else None
        self.loss_fn = parser.get_parsed_content("loss")
        self.model_signature = file_signature(self.model_path)

    def score(self, image_path: str, label_path: str) -> dict[str, Any]:
        """Score one label: ``loss``, ``quality``, ``offsets`` (list) and the per-pixel ``quality_map``.

        Raises:
            ValueError: the label's spatial shape differs from the image's (naming both files and shapes), or the
                bundle's loss cannot take the preprocessed label (e.g. a LUS bundle trained with
                ``label_mode: soft`` and a saved class map).
        """
        from monai.data import MetaTensor
        from monai.transforms import Invertd, LoadImage

        image = LoadImage(image_only=True, ensure_channel_first=True)(image_path)
        label = LoadImage(image_only=True, ensure_channel_first=True)(label_path)
        if tuple(image.shape[1:]) != tuple(label.shape[1:]):
            raise param_error(
                "BundleScorer",
                "label",
                f"a label of the image's shape {tuple(image.shape[1:])} ({os.path.basename(image_path)})",
                f"{tuple(label.shape[1:])} ({os.path.basename(label_path)})",
            )
        data = self.preprocessing({"image": image_path, "label": label_path})
        x = data["image"].as_tensor()[None].to(self.device)
        y = data["label"].as_tensor()[None].to(self.device)
        with torch.no_grad():
            logits = self.network(x) if self.inferer is None else self.inferer(x, self.network)
            logits = torch.as_tensor(logits).float()
            # class indices for a multi-class network, the (soft) target as it is for a one-channel sigmoid one
            target = y.long() if logits.shape[1] > 1 and y.shape[1] == 1 else y.float()
            try:
                loss = float(per_sample_loss(self.loss_fn, logits, target)[0])
            except (AssertionError, RuntimeError, ValueError, IndexError) as e:  # torch/MONAI shape checks
                raise param_error(
                    "BundleScorer",
                    "label",
                    f"a label the bundle's training loss {type(self.loss_fn).__name__} takes after its preprocessing"
                    f" ({self.bundle_dir.name}, {os.path.basename(label_path)}; the loss said: {e})",
                    f"a label preprocessed to shape {tuple(target.shape[1:])} for an output of shape"
                    f" {tuple(logits.shape[1:])}",
                ) from e
            probs = class_probabilities(logits)[0]
        # back to the label's own grid (the preprocessing inverted), so the map overlays the label the annotator sees
        data["pred"] = MetaTensor(probs.cpu())
        probs = Invertd("pred", self.preprocessing, orig_keys="image", nearest_interp=False)(data)["pred"]
        probs = torch.as_tensor(probs).float().clamp(0, 1)
        given = label.as_tensor()[0].round().long().clamp(0, probs.shape[0] - 1).numpy()
        quality_map = pixel_label_quality(probs.numpy(), given)
        pred = probs.argmax(0).numpy()
        offsets = volume_offsets(pred[None], given[None], num_classes=probs.shape[0])[0]
        return {
            "loss": loss,
            "quality": float(image_label_quality(quality_map[None])[0]),
            "offsets": [float(v) for v in offsets],
            "quality_map": quality_map,
            "affine": np.asarray(label.affine),
        }
