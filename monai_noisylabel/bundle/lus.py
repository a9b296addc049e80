"""The lung ultrasound bundle's data and labels: per-pixel expert confidence to training targets.

- :func:`prepare_lus_data`: the built-in synthetic set (generated on first run) or a user datalist, every
  confidence map and clinical field checked before training starts.
- :func:`lus_label_transforms`: ``ConfidenceToSoftLabeld`` then, by ``label_mode``, hard labels at the threshold,
  hard labels with an ignore band below it, soft targets, or hard labels with a per-pixel confidence weight.
- :func:`lus_loss`: the loss that fits the label mode.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np
import torch
import torch.distributed as dist
from monai.data import MetaTensor
from monai.losses import DiceCELoss
from monai.transforms import CopyItemsd, DeleteItemsd, EnsureChannelFirst, EnsureTyped, LoadImage, MapTransform
from monai.utils import convert_to_dst_type

from monai_noisylabel.bundle.checks import check_finite_image, check_output_dir
from monai_noisylabel.bundle.data import SECTIONS, given_datalist, require_sections
from monai_noisylabel.data.datalist import load_datalist, read_datalist_json
from monai_noisylabel.data.io import read_voxels
from monai_noisylabel.data.synthetic import LUS_CLASSES, generate_lus_dataset
from monai_noisylabel.downstream.clinical import CLINICAL_FIELDS
from monai_noisylabel.losses.dice_ce import SampleDiceCELoss
from monai_noisylabel.transforms.soft_label import ConfidenceToSoftLabeld, ThresholdBinarized
from monai_noisylabel.transforms.soft_label.functional import CONFIDENCE_SCALES, threshold_binarize
from monai_noisylabel.utils import check_choice, check_int, check_number, param_error

__all__ = [
    "LABEL_MODES",
    "IGNORE_VALUE",
    "prepare_lus_data",
    "lus_label_transforms",
    "lus_loss",
    "LoadLusConfidenced",
    "ConfidenceWeightd",
    "ConfidenceWeightedDiceCELoss",
]

logger = logging.getLogger(__name__)

#: ``hard``: labels at the threshold; ``ignore_band``: hard labels, pixels whose best confidence lies in
#: ``[band_low, threshold)`` left out of the loss; ``soft``: the confidences as a per-pixel class distribution;
#: ``confidence_weighted``: hard labels, each pixel's loss weighted by ``|2 m - 1|`` (``m`` its best confidence)
LABEL_MODES = ("hard", "ignore_band", "soft", "confidence_weighted")
IGNORE_VALUE = 255
_OWNER = "prepare_lus_data"
_PIPELINE_KEYS = ("id", "image", "confidence")


def _check_confidence(entry: dict[str, Any], scale: str, channel_dim: int, image_shape: tuple[int, ...]) -> None:
    """Shape, channels, NaN and range of one confidence map; the message names the case, the field and the file."""
    name, path = entry["id"], entry["confidence"]
    num = len(LUS_CLASSES)
    where = f"case {name!r}, field 'confidence' ({path})"
    try:
        arr = np.asarray(read_voxels(path), dtype=np.float32)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    if arr.ndim != 3:
        raise ValueError(f"{where}: expected a 3D (C, H, W) or (H, W, C) map with C={num}. Got shape {arr.shape}.")
    arr = np.moveaxis(arr, channel_dim, 0)
    if arr.shape[0] != num:
        raise ValueError(
            f"{where}: expected {num} class channels ({', '.join(LUS_CLASSES)}) on axis {channel_dim} "
            f"(confidence_channel_dim). Got shape {tuple(np.moveaxis(arr, 0, channel_dim).shape)}."
        )
    if tuple(arr.shape[1:]) != tuple(image_shape):
        raise ValueError(
            f"{where}: spatial shape {tuple(arr.shape[1:])} differs from the image's {tuple(image_shape)}."
        )
    if np.isnan(arr).any():
        raise ValueError(f"{where}: has {int(np.isnan(arr).sum())} NaN values.")
    top = CONFIDENCE_SCALES[scale]
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > top:
        raise ValueError(f"{where}: values {lo:g}..{hi:g} are outside the declared confidence_scale {scale!r}.")


def _check_entry(entry: dict[str, Any], scale: str, channel_dim: int) -> None:
    image_shape = tuple(check_finite_image(f"case {entry['id']!r}", "image", entry["image"]).shape)
    if len(image_shape) == 3 and image_shape[-1] == 1:
        image_shape = image_shape[:2]
    if len(image_shape) != 2:
        raise ValueError(
            f"case {entry['id']!r}, field 'image' ({entry['image']}): expected a 2D image. Got {image_shape}."
        )
    _check_confidence(entry, scale, channel_dim, image_shape)
    if entry.get("truth") is not None:
        truth_shape = tuple(int(s) for s in nib.load(entry["truth"]).shape)[:2]  # type: ignore[attr-defined]
        if truth_shape != image_shape:
            raise ValueError(
                f"case {entry['id']!r}, field 'truth' ({entry['truth']}): shape {truth_shape} differs from the "
                f"image's {image_shape}."
            )
    for field in (*CLINICAL_FIELDS, "timepoint"):
        value = entry.get(field)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise ValueError(
                f"The '{field}' field of case {entry['id']!r} must be a finite number or absent. Got {value!r} instead."
            )


def _resolve(
    dataset_dir: Path,
    datalist: str | os.PathLike | None,
    num_synthetic: int,
    image_size: Sequence[int],
    seed: int,
    split: Sequence[float],
) -> tuple[str, Path]:
    given = given_datalist(dataset_dir, datalist, _OWNER)
    if given is not None:
        return "datalist", given
    if dataset_dir.is_dir() and any(dataset_dir.iterdir()):
        raise param_error(
            _OWNER,
            "dataset_dir",
            "an empty or missing folder (the synthetic set is generated there) or a folder with a datalist.json",
            str(dataset_dir),
        )
    size = (int(image_size[0]), int(image_size[1]))
    logger.info(f"{_OWNER}: generating {num_synthetic} synthetic LUS frames {size} into {dataset_dir}")
    path = generate_lus_dataset(
        dataset_dir, num=num_synthetic, seed=seed, size=size, val_frac=split[0], test_frac=split[1]
    )
    return "synthetic", path


def _prepare(
    dataset_dir: Path,
    datalist: str | os.PathLike | None,
    num_synthetic: int,
    image_size: Sequence[int],
    seed: int,
    split: Sequence[float],
    scale: str,
    channel_dim: int,
    output_dir: Path | None,
) -> dict[str, Any]:
    if output_dir is not None:
        check_output_dir(_OWNER, output_dir, Path(datalist).parent if datalist is not None else dataset_dir)
    source, path = _resolve(dataset_dir, datalist, num_synthetic, image_size, seed, split)
    raw = read_datalist_json(path, _OWNER)
    out: dict[str, Any] = {"source": source, "datalist": str(path), "entries": {}}
    for section in SECTIONS:
        entries = (
            load_datalist(
                path,
                section,
                keys=("image", "confidence"),
                path_keys=("image", "confidence", "truth"),
                check_shapes=False,
            )
            if raw.get(section)
            else []
        )
        for e in entries:
            _check_entry(e, scale, channel_dim)
        out["entries"][section] = entries
        out[section] = [{k: e[k] for k in _PIPELINE_KEYS} for e in entries]
    require_sections(out, path, _OWNER)
    return out


def prepare_lus_data(
    dataset_dir: str | os.PathLike,
    *,
    datalist: str | os.PathLike | None = None,
    num_synthetic: int = 320,
    image_size: Sequence[int] = (128, 128),
    seed: int = 0,
    val_frac: float = 0.1,
    test_frac: float = 0.4,
    confidence_scale: str = "0-1",
    confidence_channel_dim: int = -1,
    output_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The LUS bundle's data, every file and field checked before training starts.

    Where the data come from: ``datalist`` (a decathlon JSON; relative paths resolve against its folder), else
    ``<dataset_dir>/datalist.json``, else (an empty or missing ``dataset_dir``) ``num_synthetic`` synthetic frames
    of ``image_size`` generated there (patients at two time points, :func:`~monai_noisylabel.data.generate_lus_dataset`).

    Entries: ``{"id", "image", "confidence", "truth" (optional, evaluation only), "patient", "timepoint",
    "sf_ratio", "sf_change", "readmission_30d"}`` (the clinical fields are optional). ``confidence`` holds one
    channel per class (pleural line, A-line, B-line, consolidation) on axis ``confidence_channel_dim`` (0 or -1)
    with values on ``confidence_scale`` (``"0-1"``, ``"0-10"``, ``"0-100"``). Input files are only read; images must
    be finite. ``output_dir``, when given, must be writable and outside the dataset folder.

    Returns:
        ``{"training", "validation", "test"}`` (``{"id", "image", "confidence"}`` for the pipelines),
        ``"entries"`` (section -> the full checked entries, absolute paths), ``"source"``, ``"datalist"``.
        Under DDP rank 0 prepares first, the other ranks then read what it wrote.

    Raises:
        ValueError: a confidence map with NaN, values outside the scale, a missing class channel or another
            shape than the image; a clinical field that is not a number; bad parameters. The message names
            the case and the field.
        FileNotFoundError: a missing datalist or listed file.

    Example:
        >>> import tempfile
        >>> d = prepare_lus_data(tempfile.mkdtemp(), num_synthetic=8, image_size=(32, 32))
        >>> d["source"], sorted(d["training"][0])
        ('synthetic', ['confidence', 'id', 'image'])
    """
    scale = check_choice(_OWNER, "confidence_scale", confidence_scale, tuple(CONFIDENCE_SCALES))
    channel_dim = check_choice(_OWNER, "confidence_channel_dim", confidence_channel_dim, (0, -1))
    num_synthetic = check_int(_OWNER, "num_synthetic", num_synthetic, minimum=4)
    split = (
        check_number(_OWNER, "val_frac", val_frac, 0.0, 1.0),
        check_number(_OWNER, "test_frac", test_frac, 0.0, 1.0),
    )
    if len(tuple(image_size)) != 2:
        raise param_error(_OWNER, "image_size", "two ints (H, W)", tuple(image_size))
    out = Path(output_dir) if output_dir is not None else None
    args = (Path(dataset_dir), datalist, num_synthetic, tuple(image_size), int(seed), split, scale, channel_dim, out)
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return _prepare(*args)
    result = _prepare(*args) if dist.get_rank() == 0 else None
    dist.barrier()
    return result if result is not None else _prepare(*args)


def lus_label_transforms(
    label_mode: str = "hard",
    *,
    threshold: float = 0.6,
    confidence_scale: str = "0-1",
    band_low: float = 0.5,
    confidence_key: str = "confidence",
    label_key: str = "label",
) -> list[MapTransform]:
    """Transforms that turn a channel-first confidence map into the training target under ``label_key``.

    ``ConfidenceToSoftLabeld`` (scale to [0, 1]) and then, by ``label_mode``:

    - ``"hard"``: ``ThresholdBinarized(threshold)``, a ``(1, H, W)`` class map (0 background, 1..4);
    - ``"ignore_band"``: the same, and pixels whose best confidence lies in ``[band_low, threshold)`` get
      :data:`IGNORE_VALUE` (left out of :func:`lus_loss`);
    - ``"soft"``: a ``(5, H, W)`` per-pixel class distribution (``overlap="normalize"``, channel 0 background);
    - ``"confidence_weighted"``: a ``(2, H, W)`` float label, the class map at the threshold and
      :class:`ConfidenceWeightd`'s per-pixel weight ``|2 m - 1|`` (for :class:`ConfidenceWeightedDiceCELoss`).

    The confidence key is removed afterwards.

    Example:
        >>> from monai.transforms import Compose
        >>> c = torch.zeros(4, 2, 2); c[2, 0, 0] = 0.9; c[2, 0, 1] = 0.55
        >>> Compose(lus_label_transforms("ignore_band"))({"confidence": c})["label"].tolist()
        [[[3, 255], [0, 0]]]
    """
    owner = "lus_label_transforms"
    check_choice(owner, "label_mode", label_mode, LABEL_MODES)
    check_choice(owner, "confidence_scale", confidence_scale, tuple(CONFIDENCE_SCALES))  # the config key's name
    threshold = check_number(owner, "threshold", threshold, 0.0, 1.0)
    if not 0 < threshold < 1:
        raise param_error(owner, "threshold", "a number in (0, 1)", threshold)
    if label_mode == "ignore_band" and not 0 < band_low < threshold:
        raise param_error(owner, "band_low", f"a number in (0, threshold={threshold})", band_low)
    out: list[MapTransform] = [CopyItemsd(keys=confidence_key, names=label_key), DeleteItemsd(keys=confidence_key)]
    if label_mode == "soft":
        out += [
            ConfidenceToSoftLabeld(keys=label_key, scale=confidence_scale, overlap="normalize"),
            EnsureTyped(keys=label_key, dtype=torch.float32),
        ]
        return out
    if label_mode == "confidence_weighted":
        out += [
            ConfidenceToSoftLabeld(keys=label_key, scale=confidence_scale),
            ConfidenceWeightd(keys=label_key, threshold=threshold),
        ]
        return out
    low = band_low if label_mode == "ignore_band" else None
    out += [
        ConfidenceToSoftLabeld(keys=label_key, scale=confidence_scale),
        ThresholdBinarized(keys=label_key, threshold=threshold, low=low, ignore_index=IGNORE_VALUE, dtype=torch.int64),
    ]
    return out


def lus_loss(label_mode: str = "hard") -> torch.nn.Module:
    """The training loss for ``label_mode``: Dice + cross-entropy on softmax outputs.

    Hard labels (with or without an ignore band): :class:`~monai_noisylabel.losses.SampleDiceCELoss`
    (ignored pixels left out of both terms); soft targets: MONAI ``DiceCELoss`` against the class distribution;
    ``"confidence_weighted"``: :class:`ConfidenceWeightedDiceCELoss`.

    Example:
        >>> lus_loss("soft")(torch.zeros(1, 5, 4, 4), torch.full((1, 5, 4, 4), 0.2)).ndim
        0
    """
    check_choice("lus_loss", "label_mode", label_mode, LABEL_MODES)
    if label_mode == "soft":
        return DiceCELoss(softmax=True, include_background=False)
    if label_mode == "confidence_weighted":
        return ConfidenceWeightedDiceCELoss()
    return SampleDiceCELoss(ignore_index=IGNORE_VALUE, reduction="mean")


class LoadLusConfidenced(MapTransform):
    """Load the expert confidence map of an entry as a channel-first ``(4, H, W)`` map on ``confidence_scale``.

    An entry with ``confidence`` (the bundle's datalists) loads that file, channels on ``channel_dim``. An entry
    with only a ``label_key`` file (MONAI Label's training datalists of ``{"image", "label"}``) takes the saved
    label as the expert's confidence: a 2D class map (0 background, 1 pleural line, 2 A-line, 3 B-line,
    4 consolidation, as inference writes them) is confidence 0 or full scale per class; a map with the 4 class
    channels on ``channel_dim`` is used as the confidence map, values on ``confidence_scale``. The training
    targets are then built from it at the bundle's ``threshold`` as usual.

    Raises:
        ValueError: a label that is neither (non-integer or out-of-range classes, values outside the scale,
            another shape); the message names the file.

    Example:
        >>> import tempfile, numpy as np
        >>> from monai_noisylabel.data import save_nifti
        >>> p = save_nifti(np.array([[0, 3], [1, 0]], np.uint8), tempfile.mkdtemp() + "/l.nii.gz")
        >>> out = LoadLusConfidenced(confidence_scale="0-100")({"label": str(p)})
        >>> out["confidence"][:, 0, 1].tolist(), "label" in out
        ([0.0, 0.0, 100.0, 0.0], False)
    """

    def __init__(
        self,
        keys: str = "confidence",
        *,
        channel_dim: int = -1,
        confidence_scale: str = "0-1",
        label_key: str = "label",
    ) -> None:
        super().__init__(keys)
        self.channel_dim = check_choice("LoadLusConfidenced", "channel_dim", channel_dim, (0, -1))
        self.scale = check_choice("LoadLusConfidenced", "confidence_scale", confidence_scale, tuple(CONFIDENCE_SCALES))
        self.label_key = label_key

    def _from_label(self, path: str) -> MetaTensor:
        label = LoadImage(image_only=True)(path)
        arr = np.asarray(label, dtype=np.float32)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        num, top = len(LUS_CLASSES), float(CONFIDENCE_SCALES[self.scale])
        where = f"The label {path!r} used as the LUS confidence map"
        if arr.ndim == 2:
            if np.isnan(arr).any() or (arr != np.round(arr)).any() or arr.min() < 0 or arr.max() > num:
                raise ValueError(
                    f"{where} must be a class map with values 0..{num} ({', '.join(LUS_CLASSES)}). "
                    f"Got values {np.nanmin(arr):g}..{np.nanmax(arr):g} instead."
                )
            conf = np.stack([(arr == c) * top for c in range(1, num + 1)]).astype(np.float32)
        elif arr.ndim == 3 and arr.shape[self.channel_dim] == num:
            conf = np.moveaxis(arr, self.channel_dim, 0)
            if np.isnan(conf).any() or conf.min() < 0 or conf.max() > top:
                raise ValueError(f"{where} must hold values in [0, {top:g}] (confidence_scale {self.scale!r}).")
        else:
            raise ValueError(
                f"{where} must be a 2D class map or a map with {num} class channels on axis {self.channel_dim}. "
                f"Got shape {arr.shape} instead."
            )
        return MetaTensor(torch.as_tensor(conf), meta=dict(label.meta))

    def __call__(self, data: Any) -> dict[str, Any]:
        d = dict(data)
        for key in self.keys:
            if key in d:
                d[key] = EnsureChannelFirst(channel_dim=self.channel_dim)(LoadImage(image_only=True)(d[key]))
            elif self.label_key in d:
                d[key] = self._from_label(d.pop(self.label_key))
            else:
                raise ValueError(f"An LUS entry needs a {key!r} or a {self.label_key!r} file. Got keys {sorted(d)}.")
        return d


class ConfidenceWeightd(MapTransform):
    """Confidence maps in [0, 1] to ``(2, H, W)``: the class map at ``threshold`` and a per-pixel loss weight.

    Channel 0 is :func:`~monai_noisylabel.transforms.soft_label.functional.threshold_binarize`'s class map
    (0 background, ``k`` for the most confident class at or above ``threshold``); channel 1 is ``|2 m - 1|``,
    ``m`` the pixel's highest class confidence. A pixel the expert was sure about (``m`` near 0 or 1) weighs 1;
    one at a coin flip weighs 0. It is a graded version of the ignore band.

    Example:
        >>> c = torch.zeros(4, 1, 3); c[1, 0, 0] = 0.9; c[1, 0, 1] = 0.55
        >>> out = ConfidenceWeightd("label")({"label": c})["label"]
        >>> out[0].tolist(), [round(float(w), 2) for w in out[1].flatten()]
        ([[2.0, 0.0, 0.0]], [0.8, 0.1, 1.0])
    """

    def __init__(self, keys: Any, threshold: float = 0.6, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.threshold = check_number(type(self).__name__, "threshold", threshold, 0.0, 1.0)

    def __call__(self, data: Any) -> dict[Any, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            conf = torch.as_tensor(d[key]).float()
            hard = threshold_binarize(conf, threshold=self.threshold, owner=type(self).__name__).float()
            weight = (2 * conf.max(0, keepdim=True).values - 1).abs()
            d[key] = convert_to_dst_type(torch.cat([hard, weight]), d[key], dtype=torch.float32)[0]
        return d


class ConfidenceWeightedDiceCELoss(SampleDiceCELoss):
    """Dice + cross entropy on hard labels, each pixel weighted by the expert's confidence.

    The label is ``(B, 2, H, W)``: the class map and a weight in [0, 1] (:class:`ConfidenceWeightd`). Cross entropy
    is the weighted mean ``sum(w * ce) / sum(w)``; in the Dice term a pixel of weight ``w`` has the target
    ``w * onehot + (1 - w) * softmax`` (the prediction, detached), so weight 0 leaves it out, as the ignore band
    does, and weight 1 counts it in full. With every weight 1 it equals :class:`~monai_noisylabel.losses.SampleDiceCELoss`.

    Example:
        >>> logits = torch.randn(2, 5, 4, 4, generator=torch.Generator().manual_seed(0))
        >>> y = torch.randint(0, 5, (2, 1, 4, 4), generator=torch.Generator().manual_seed(1))
        >>> full = ConfidenceWeightedDiceCELoss()(logits, torch.cat([y.float(), torch.ones_like(y.float())], 1))
        >>> bool(torch.isclose(full, SampleDiceCELoss()(logits, y)))
        True
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``input``: ``(B, C, H, W)`` logits; ``target``: ``(B, 2, H, W)`` class map and weight."""
        if target.ndim != input.ndim or target.shape[1] != 2 or target.shape[2:] != input.shape[2:]:
            raise param_error(
                type(self).__name__, "target", f"a (B, 2, *spatial) class map + weight for logits {tuple(input.shape)}",
                tuple(target.shape),
            )  # fmt: skip
        y = target[:, 0].round().long().clamp(0, input.shape[1] - 1)
        w = target[:, 1].float().clamp(0, 1)
        ce = torch.nn.functional.cross_entropy(input.float(), y, reduction="none") * w
        ce = ce.flatten(1).sum(1) / w.flatten(1).sum(1).clamp_min(1e-6)
        onehot = torch.nn.functional.one_hot(y, input.shape[1]).movedim(-1, 1).to(input.dtype)
        probs = torch.softmax(input.float(), dim=1).detach()
        soft_target = onehot * w.unsqueeze(1) + probs * (1 - w.unsqueeze(1))
        dice = self.dice(input, soft_target).flatten(1).mean(1)
        return self._reduce(self.lambda_dice * dice + self.lambda_ce * ce)
