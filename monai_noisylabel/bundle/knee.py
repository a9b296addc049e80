"""The knee BML bundle's data, training target and loss (``bundles/knee_bml_softlabel_segmentation``).

- :func:`prepare_knee_data`: the built-in synthetic knees or a user datalist of ``{"id", "image", "raters": [...],
  "bone" (optional), "truth" (optional)}`` entries, every file checked before training starts.
- :class:`KneeTargetd`: the raters (and bone mask) of a case to the training target: the soft label
  (:class:`~monai_noisylabel.transforms.MultiRaterSoftLabel` + :class:`~monai_noisylabel.transforms.AnatomicalPrior`)
  or the majority vote, stacked with the mask of voxels any rater marked (the class-balancing weight).
- :class:`KneeLesionLoss`: NAP (or BCE) with the marked voxels up-weighted to the background's total weight, plus a
  soft Dice term, one value per sample; the same balancing for both arms of the comparison.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from monai.losses import DiceLoss
from monai.transforms import MapTransform
from monai.utils import convert_to_dst_type

from monai_noisylabel.bundle.checks import check_finite_image, check_output_dir
from monai_noisylabel.bundle.data import given_datalist, require_sections
from monai_noisylabel.data import generate_knee_dataset
from monai_noisylabel.data.datalist import DatalistError, check_datalist, read_datalist_json, resolve_paths
from monai_noisylabel.data.io import read_spatial_shape, read_voxels
from monai_noisylabel.losses import NormalizedActivePassiveLoss
from monai_noisylabel.transforms import AnatomicalPrior, MultiRaterSoftLabel
from monai_noisylabel.utils import check_choice, check_int, check_number, param_error

__all__ = ["prepare_knee_data", "KneeTargetd", "KneeLesionLoss", "KNEE_KEYS", "read_mask", "knee_probe_shape"]

logger = logging.getLogger(__name__)

_OWNER = "prepare_knee_data"
KNEE_KEYS = ("image", "raters", "bone", "truth")
_SECTIONS = ("training", "validation", "test")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """The voxel array of an image file; a damaged file raises a ``ValueError`` that names it."""
    return read_voxels(path)


def _check_binary(section: str, i: int, entry: Mapping[str, Any], key: str, path: str) -> None:
    try:
        values = np.unique(read_mask(path))
    except ValueError as e:
        raise DatalistError(f"{_OWNER}: {section} entry {i} (id {entry['id']!r}): {e}") from e
    if not np.isin(values, (0, 1)).all():
        shown = values[~np.isin(values, (0, 1))][:5].tolist()
        raise DatalistError(
            f"{_OWNER}: {section} entry {i} (id {entry['id']!r}): the {key!r} file {path!r} must hold 0/1 masks. "
            f"Got values {shown} instead."
        )


def knee_probe_shape(cases: Sequence[Mapping[str, Any]], k: int = 8) -> list[int]:
    """The spatial shape that holds every case's image, each axis rounded up to a multiple of ``k``.

    The detection handlers compare per-voxel maps across cases, so the bundle pads every whole-volume probe input
    to this one shape; user volumes often differ in size from case to case.

    Examples:
        >>> import tempfile, numpy as np, nibabel as nib
        >>> d = tempfile.mkdtemp()
        >>> for n, shape in (("a", (20, 30, 9)), ("b", (26, 17, 12))):
        ...     nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), np.eye(4)), f"{d}/{n}.nii.gz")
        >>> knee_probe_shape([{"image": f"{d}/a.nii.gz"}, {"image": f"{d}/b.nii.gz"}])
        [32, 32, 16]
    """
    k = check_int("knee_probe_shape", "k", k, minimum=1)
    if not cases:
        raise param_error("knee_probe_shape", "cases", "a non-empty list of cases", list(cases))
    shapes = []
    for c in cases:
        shape = read_spatial_shape(str(c["image"]))
        if shape is None or len(shape) < 3:
            raise param_error("knee_probe_shape", "cases", "3D NIfTI images", f"{c['image']!r} of shape {shape}")
        shapes.append(shape[:3])
    return [int(-(-s // k) * k) for s in np.array(shapes).max(axis=0)]


def _case(section: str, i: int, item: Any, base: Path, check_values: bool) -> dict[str, Any]:
    """One datalist entry, checked: files exist, one spatial shape, raters and bone binary."""
    if not isinstance(item, Mapping):
        raise DatalistError(f"{_OWNER}: {section} entry {i} must be a dict. Got {item!r} instead.")
    entry = resolve_paths(item, base, KNEE_KEYS)
    entry.setdefault("id", Path(str(entry.get("image", f"{section}{i}"))).name.split(".")[0])
    if "raters" not in entry and "label" in entry:  # a plain decathlon entry: its label is the one rater
        entry["raters"] = [str(resolve_paths({"label": entry["label"]}, base, ["label"])["label"])]
    raters = entry.get("raters")
    if isinstance(raters, str):
        raters = entry["raters"] = [raters]
    if not isinstance(raters, list) or not raters:
        raise DatalistError(
            f"{_OWNER}: {section} entry {i} (id {entry['id']!r}) needs a non-empty 'raters' list of mask files. "
            f"Got {raters!r} instead."
        )
    keys = [k for k in KNEE_KEYS if entry.get(k) is not None]
    check_datalist([entry], keys, source=f"{_OWNER}: {section}")
    if check_values:
        check_finite_image(f"{_OWNER}: {section} entry {i} (id {entry['id']!r})", "image", entry["image"])
        for key in ("raters", "bone"):
            for path in entry[key] if key == "raters" else [entry[key]] if entry.get(key) else []:
                _check_binary(section, i, entry, key, path)
    return {k: entry[k] for k in ("id", *keys)}


def _prepare(
    dataset_dir: Path,
    datalist: Any,
    num_synthetic: int,
    size: tuple[int, ...],
    num_raters: int,
    seed: int,
    output_dir: Path | None,
) -> dict[str, Any]:
    if output_dir is not None:
        check_output_dir(_OWNER, output_dir, Path(datalist).parent if datalist is not None else dataset_dir)
    given = given_datalist(dataset_dir, datalist, _OWNER)
    if given is not None:
        path, source = given, "datalist"
    elif dataset_dir.is_dir() and any(dataset_dir.iterdir()):
        raise param_error(
            _OWNER, "dataset_dir", "an empty or missing folder (the synthetic knees go there) or one with a datalist.json",
            str(dataset_dir),
        )  # fmt: skip
    else:
        logger.info(f"{_OWNER}: generating {num_synthetic} synthetic knees {size} into {dataset_dir}")
        path = generate_knee_dataset(dataset_dir, num=num_synthetic, seed=seed, size=size, num_raters=num_raters)  # type: ignore[arg-type]
        source = "synthetic"
    raw = read_datalist_json(path, _OWNER)
    out: dict[str, Any] = {"source": source, "datalist": str(path)}
    for section in _SECTIONS:
        items = raw.get(section) or []
        out[section] = [_case(section, i, item, path.parent, source != "synthetic") for i, item in enumerate(items)]
    require_sections(out, path, _OWNER)
    return out


def prepare_knee_data(
    dataset_dir: str | os.PathLike,
    *,
    datalist: str | os.PathLike | None = None,
    num_synthetic: int = 20,
    image_size: Sequence[int] = (64, 64, 64),
    num_raters: int = 3,
    seed: int = 0,
    output_dir: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """The knee bundle's data, every case checked before training starts.

    Where the data come from: ``datalist`` (a JSON with ``training``, ``validation`` and optional ``test`` lists of
    ``{"id", "image", "raters": [path, ...], "bone" (optional), "truth" (optional)}``, paths relative to its folder
    or absolute; an entry with ``label`` instead of ``raters`` counts as one rater), else
    ``<dataset_dir>/datalist.json``, else ``num_synthetic`` synthetic knees of ``image_size`` with ``num_raters``
    raters generated into an empty ``dataset_dir`` (:func:`~monai_noisylabel.data.generate_knee_dataset`).
    Input files are only read (user images in full: NaN/inf and damaged files are refused). ``output_dir``, when
    given, must be writable and outside the dataset folder. Under DDP rank 0 prepares first.

    Returns:
        ``{"training", "validation", "test"}`` (entries with absolute paths and only the keys above),
        ``"source"`` (``"synthetic"`` or ``"datalist"``) and ``"datalist"`` (the JSON used).

    Raises:
        FileNotFoundError: a missing datalist or listed file (the message names the case and the file).
        ValueError: an empty ``raters`` list, raters/bone/truth of another shape than the image, rater or bone
            masks with values other than 0/1, an empty training or validation section, bad parameters.

    Example:
        >>> import tempfile
        >>> d = prepare_knee_data(tempfile.mkdtemp(), num_synthetic=6, image_size=(16, 16, 16))
        >>> d["source"], sorted(d["training"][0])
        ('synthetic', ['bone', 'id', 'image', 'raters', 'truth'])
    """
    num_synthetic = check_int(_OWNER, "num_synthetic", num_synthetic, 3)
    num_raters = check_int(_OWNER, "num_raters", num_raters, 1)
    size = tuple(int(s) for s in image_size)
    if len(size) != 3 or min(size) < 8:
        raise param_error(_OWNER, "image_size", "three ints >= 8 (D, H, W)", list(image_size))
    out = Path(output_dir) if output_dir is not None else None
    args = (Path(dataset_dir), datalist, num_synthetic, size, num_raters, int(seed), out)
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return _prepare(*args)
    result = _prepare(*args) if dist.get_rank() == 0 else None
    dist.barrier()
    return result if result is not None else _prepare(*args)


class KneeTargetd(MapTransform):
    """The training target of a knee case from its raters: soft label or majority vote, plus the marked mask.

    ``raters_key`` holds the stacked rater masks ``(R, *spatial)`` (``LoadImaged`` of the list of rater files and
    ``EnsureChannelFirstd``); where it is missing, ``label_key`` is taken as the one rater (MONAI Label's
    ``{"image", "label"}`` entries). Written to ``output_key``:

    - channel 0, the target: ``target="soft"``: :class:`~monai_noisylabel.transforms.MultiRaterSoftLabel`
      (``method`` ``"mean"``, ``"weighted"`` or ``"staple"``), then, when ``anatomical_prior`` is on and the case has
      a bone mask under ``bone_key``, :class:`~monai_noisylabel.transforms.AnatomicalPrior` (zero outside bone, times
      the brightness term); ``target="vote"``: the raters' majority vote (more than half of them);
    - channel 1 (``with_marked``): the voxels :class:`KneeLesionLoss` up-weights and ``RandCropByPosNegLabeld``
      centres patches on, the same for both targets: ``weight_map="union"`` (default) where any rater marked the
      voxel, ``"vote"`` where more than half of them did.

    With ``reference_key``, the evaluation reference is written there: the case's ``truth_key`` mask when it has
    one, else the majority vote; ``reference_kind`` says which. The raters, bone and truth keys are dropped (cases
    with and without a bone mask then collate together).

    Example:
        >>> import numpy as np
        >>> raters = np.zeros((3, 1, 4, 4), np.float32)
        >>> raters[:2, 0, 1, 1] = 1; raters[0, 0, 2, 2] = 1
        >>> out = KneeTargetd(target="vote")({"image": np.zeros((1, 1, 4, 4)), "raters": raters})
        >>> out["label"].shape, float(out["label"][0].sum()), float(out["label"][1].sum())
        ((2, 1, 4, 4), 1.0, 2.0)
    """

    def __init__(
        self,
        raters_key: Hashable = "raters",
        *,
        target: str = "soft",
        method: str = "mean",
        anatomical_prior: bool = True,
        prior_centre: float = 1.0,
        prior_width: float = 0.5,
        prior_decay: float | None = None,
        with_marked: bool = True,
        weight_map: str = "union",
        output_key: Hashable = "label",
        label_key: Hashable = "label",
        image_key: Hashable = "image",
        bone_key: Hashable = "bone",
        truth_key: Hashable = "truth",
        reference_key: Hashable | None = None,
    ) -> None:
        super().__init__(raters_key, allow_missing_keys=True)
        name = type(self).__name__
        self.target = check_choice(name, "target", target, ("soft", "vote"))
        self.combine = MultiRaterSoftLabel(method=method)
        self.prior = AnatomicalPrior(centre=prior_centre, width=prior_width, decay=prior_decay)
        if not isinstance(anatomical_prior, bool):
            raise param_error(name, "anatomical_prior", "a bool", anatomical_prior)
        self.anatomical_prior = anatomical_prior
        self.with_marked = bool(with_marked)
        self.weight_map = check_choice(name, "weight_map", weight_map, ("union", "vote"))
        self.raters_key, self.output_key, self.label_key = raters_key, output_key, label_key
        self.image_key, self.bone_key, self.truth_key, self.reference_key = (
            image_key,
            bone_key,
            truth_key,
            reference_key,
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        key = self.raters_key if d.get(self.raters_key) is not None else self.label_key
        if d.get(key) is None:
            raise param_error(type(self).__name__, "raters_key", "a key holding the case's rater masks", key)
        raters = d[key]
        x = torch.as_tensor(raters).float()
        vote = ((x > 0.5).sum(0, keepdim=True) * 2 > x.shape[0]).float()
        if self.target == "vote":
            target = vote
        else:
            target = torch.as_tensor(self.combine(x)).float()
            bone = d.get(self.bone_key)
            if self.anatomical_prior and bone is not None:
                target = torch.as_tensor(self.prior(target, region=bone, image=d[self.image_key])).float()
        marked = vote if self.weight_map == "vote" else (x > 0).any(0, keepdim=True).float()
        channels = [target, marked] if self.with_marked else [target]
        d[self.output_key] = convert_to_dst_type(torch.cat(channels), raters, dtype=torch.float32)[0]
        if self.reference_key is not None:
            truth = d.get(self.truth_key)
            ref = vote if truth is None else (torch.as_tensor(truth).float() > 0.5).float()
            d[self.reference_key] = convert_to_dst_type(ref, raters, dtype=torch.float32)[0]
            d["reference_kind"] = "majority vote" if truth is None else "truth"
        for k in (self.raters_key, self.bone_key, self.truth_key):
            if k != self.output_key:
                d.pop(k, None)
        return d


class KneeLesionLoss(torch.nn.Module):
    """Class-balanced lesion loss: ``NAP`` (or BCE) with marked voxels up-weighted, plus a soft Dice term.

    BMLs fill about 0.1 % of a knee, and a plain per-voxel loss collapses to empty predictions. Per sample, voxels
    that any rater marked (the label's channel 1) get the weight ``fg_weight``; ``"auto"`` sets it to the ratio of
    unmarked to marked voxels of that sample (capped at ``max_fg_weight``), so both groups weigh the same. The
    voxel term is the weighted mean ``sum(w * l) / sum(w)`` of

    - ``loss="nap"``: :class:`~monai_noisylabel.losses.NormalizedActivePassiveLoss` on the soft target
      (sigmoid, ``active``/``passive``/``alpha``/``beta``);
    - ``loss="bce"``: binary cross entropy with logits on the target (the majority vote in the baseline).

    ``dice_weight`` adds ``dice_weight * (1 - soft Dice)`` (MONAI ``DiceLoss`` with soft labels). Both arms of the
    comparison use the same weight map and Dice term, so only the target and the voxel loss differ.

    Args:
        loss: ``"nap"`` or ``"bce"``.
        fg_weight: ``"auto"`` or a number >= 1.
        max_fg_weight: cap of the ``"auto"`` weight (>= 1).
        dice_weight: weight of the soft Dice term (>= 0).
        active, passive, alpha, beta: NAP's terms (``"nce"``/``"nfl"``, ``"rce"``/``"mae"``).
        reduction: ``"mean"``, ``"sum"`` or ``"none"`` (one value per sample, for the detection handlers).

    Shapes: logits ``(B, 1, *spatial)``; label ``(B, 2, *spatial)`` (target, marked) or ``(B, 1, *spatial)``
    (target only, no up-weighting).

    Example:
        >>> loss = KneeLesionLoss("nap", reduction="none")
        >>> label = torch.zeros(2, 2, 8, 8, 8); label[:, :, 2:4, 2:4, 2:4] = 1
        >>> loss(torch.zeros(2, 1, 8, 8, 8), label).shape
        torch.Size([2])
    """

    def __init__(
        self,
        loss: str = "nap",
        *,
        fg_weight: float | str = "auto",
        max_fg_weight: float = 1000.0,
        dice_weight: float = 1.0,
        active: str = "nce",
        passive: str = "rce",
        alpha: float = 1.0,
        beta: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        self.loss = check_choice(name, "loss", loss, ("nap", "bce"))
        if fg_weight != "auto":
            fg_weight = check_number(name, "fg_weight", fg_weight, 1.0)
        self.fg_weight = fg_weight
        self.max_fg_weight = check_number(name, "max_fg_weight", max_fg_weight, 1.0)
        self.dice_weight = check_number(name, "dice_weight", dice_weight, 0.0)
        self.reduction = check_choice(name, "reduction", reduction, ("mean", "sum", "none"))
        self.nap = NormalizedActivePassiveLoss(
            active=active, passive=passive, alpha=alpha, beta=beta, sigmoid=True, reduction="none"
        )
        self.dice = DiceLoss(sigmoid=True, reduction="none", soft_label=True)

    def forward(self, logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        name = type(self).__name__
        if logits.ndim < 3 or logits.shape[1] != 1:
            raise param_error(name, "input", "one-channel logits (B, 1, *spatial)", tuple(logits.shape))
        if label.shape[0] != logits.shape[0] or label.shape[1] not in (1, 2) or label.shape[2:] != logits.shape[2:]:
            raise param_error(name, "target", f"a (B, 1 or 2, *spatial) label for logits {tuple(logits.shape)}",
                              tuple(label.shape))  # fmt: skip
        x = logits.float()
        target = label[:, :1].float()
        if self.loss == "nap":
            voxel = self.nap(x, target)
        else:
            voxel = torch.nn.functional.binary_cross_entropy_with_logits(x, target, reduction="none")
        weight = torch.ones_like(target)
        if label.shape[1] == 2:
            marked = (label[:, 1:] > 0).float()
            n_marked = marked.flatten(1).sum(1)
            if self.fg_weight == "auto":
                ratio = (marked.flatten(1).shape[1] - n_marked) / n_marked.clamp_min(1)
                w = ratio.clamp(1.0, self.max_fg_weight)
            else:
                w = torch.full_like(n_marked, float(self.fg_weight))
            weight = 1 + (w.view(-1, *[1] * (marked.ndim - 1)) - 1) * marked
        out = (voxel * weight).flatten(1).sum(1) / weight.flatten(1).sum(1)
        if self.dice_weight > 0:
            out = out + self.dice_weight * self.dice(x, target).flatten(1).mean(1)
        if self.reduction == "mean":
            return out.mean()
        return out.sum() if self.reduction == "sum" else out
