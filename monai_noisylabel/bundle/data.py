"""Resolve a bundle's data: the built-in synthetic set, a CAMUS release, or a user datalist; optional noise injection."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch.distributed as dist

from monai_noisylabel.bundle.checks import check_output_dir, check_segmentation_files
from monai_noisylabel.data import camus_datalist, generate_echo_dataset, load_datalist, write_datalist
from monai_noisylabel.data.camus import detect_camus_release
from monai_noisylabel.data.datalist import DatalistError, check_datalist, read_datalist_json
from monai_noisylabel.transforms import LABEL_NOISE_KINDS, corrupt_datalist, corrupted_ids
from monai_noisylabel.utils import atomic_write_text, check_choice, check_int, check_probability, param_error

__all__ = ["prepare_echo_data", "list_images", "noise_manifest", "require_sections", "SECTIONS"]

logger = logging.getLogger(__name__)

SECTIONS = ("training", "validation", "test")
_OWNER = "prepare_echo_data"


def _is_camus(root: Path) -> bool:
    try:
        detect_camus_release(root)
    except FileNotFoundError:
        return False
    return True


def require_sections(
    data: Mapping[str, Any], path: Path, owner: str, sections: Sequence[str] = ("training", "validation")
) -> None:
    """Refuse a prepared datalist (``section -> entries``) that leaves one of ``sections`` empty, naming the file.

    Example:
        >>> require_sections({"training": [1], "validation": [2]}, Path("dl.json"), "prepare")
    """
    for section in sections:
        if not data.get(section):
            raise DatalistError(f"{owner}: the datalist {str(path)!r} needs a non-empty {section!r} section.")


def given_datalist(dataset_dir: Path, datalist: str | os.PathLike | None, owner: str) -> Path | None:
    """The datalist a user gave: ``datalist`` (it must exist), else ``<dataset_dir>/datalist.json``, else ``None``.

    Every bundle's data preparation starts here; on ``None`` it looks for its own sources (a CAMUS release) or
    generates its synthetic set into an empty ``dataset_dir``.

    Example:
        >>> import tempfile
        >>> given_datalist(Path(tempfile.mkdtemp()), None, "prepare_echo_data") is None
        True
    """
    if datalist is not None:
        path = Path(datalist)
        if not path.is_file():
            raise FileNotFoundError(f"{owner}: the 'datalist' file {str(path)!r} does not exist.")
        return path
    own = dataset_dir / "datalist.json"
    return own if own.is_file() else None


def _resolve_source(
    dataset_dir: Path,
    datalist: str | os.PathLike | None,
    output_dir: Path,
    num_synthetic: int,
    image_size: Any,
    seed: int,
    camus_fold: int,
) -> tuple[str, Path]:
    """``(source, datalist path)``; generates the synthetic set or writes the CAMUS datalist when needed."""
    given = given_datalist(dataset_dir, datalist, _OWNER)
    if given is not None:
        return "datalist", given
    if dataset_dir.is_dir() and _is_camus(dataset_dir):
        entries = camus_datalist(dataset_dir, fold=camus_fold)
        return "camus", write_datalist(entries, output_dir / "camus_datalist.json")
    if dataset_dir.is_dir() and any(dataset_dir.iterdir()):
        raise param_error(
            _OWNER,
            "dataset_dir",
            "an empty or missing folder (the synthetic set is generated there), a folder with a datalist.json, "
            "or a CAMUS release",
            str(dataset_dir),
        )
    size = tuple(int(s) for s in image_size)
    logger.info(f"{_OWNER}: generating {num_synthetic} synthetic echo images {size} into {dataset_dir}")
    return "synthetic", generate_echo_dataset(dataset_dir, num=num_synthetic, seed=seed, size=size)  # type: ignore[arg-type]


NOISY_LABELS_DIR = "noisy_labels"
#: where :func:`prepare_echo_data` records the ``corrupted`` flags a user datalist gives its training entries
KNOWN_CORRUPTION_FILE = "known_corruption.json"


def _noise_kind(noise_kind: str | None, owner: str) -> str | None:
    """The bundles' one noise-off rule: ``None`` and the strings ``none``/``null``/``""`` mean no injected noise."""
    if isinstance(noise_kind, str) and noise_kind.strip().lower() in ("none", "null", ""):
        return None  # what `--noise_kind null` / `None` give on the command line
    if noise_kind is not None:
        check_choice(owner, "noise_kind", noise_kind, (*LABEL_NOISE_KINDS, "systematic"))
    return noise_kind


def noise_manifest(output_dir: str | os.PathLike, noise_kind: str | None, noise_rate: float) -> Path | None:
    """The manifest of the noise :func:`prepare_echo_data` injected into ``output_dir``, or ``None`` without noise.

    The end-of-training summary scores detection against it. It does not touch the data, so a run whose data
    were given directly (MONAI Label sets ``train#dataset#data``) generates nothing.

    Example:
        >>> import tempfile
        >>> noise_manifest(tempfile.mkdtemp(), "none", 0.5) is None
        True
    """
    if (
        _noise_kind(noise_kind, "noise_manifest") is None
        or check_probability("noise_manifest", "noise_rate", noise_rate) == 0
    ):
        known = Path(output_dir) / KNOWN_CORRUPTION_FILE  # a user's own record (an audit), see prepare_echo_data
        return known if known.is_file() else None
    path = Path(output_dir) / NOISY_LABELS_DIR / "manifest.json"
    return path if path.is_file() else None


def _check_noise_on_user_labels(path: Path, noise_kind: str, noise_rate: float, noisy_dir: Path) -> None:
    """Noise injection into a user's datalist: refuse labels it cannot rewrite, and say that it happens.

    ``noise_kind`` defaults to ``bias`` for the synthetic demo, so a user who leaves it out would otherwise train
    on simulated errors added to their own labels, or, with PNG labels, get an error about NIfTI.
    """
    labels = [str(e["label"]) for e in load_datalist(path, "training", check_files=False) if "label" in e]
    other = [p for p in labels if not p.lower().endswith((".nii", ".nii.gz"))]
    if other:
        raise param_error(
            _OWNER,
            "noise_kind",
            f"'none' for labels that are not NIfTI: {len(other)} training labels of {str(path)!r} are not "
            f"(e.g. {other[0]!r}), and injecting simulated noise (noise_rate={noise_rate:g}) writes NIfTI copies. "
            "Pass --noise_kind none to train on your labels as they are",
            noise_kind,
        )
    logger.warning(
        f"{_OWNER}: injecting simulated label noise (noise_kind={noise_kind!r}, noise_rate={noise_rate:g}) into "
        f"copies of the training labels of {str(path)!r} in {str(noisy_dir)!r}; pass --noise_kind none to train on "
        "your labels as they are"
    )


def _record_known_corruption(path: Path, output_dir: Path, source: str) -> tuple[list[str] | None, Path | None]:
    """``(corrupted ids, record)`` of a user datalist whose training entries say ``"corrupted": true/false``.

    The record is written to ``<output_dir>/known_corruption.json`` in the corruption manifest's form, so the
    end-of-training summary scores detection against it; without such flags a record left by an earlier run is
    removed (it described other data).
    """
    known = output_dir / KNOWN_CORRUPTION_FILE
    entries = load_datalist(path, "training", check_files=False) if source == "datalist" else []
    if not any("corrupted" in e for e in entries):
        known.unlink(missing_ok=True)
        return None, None
    for e in entries:
        if not isinstance(e.get("corrupted"), bool):
            raise DatalistError(
                f"{_OWNER}: {str(path)!r}: when training entries record 'corrupted', every one must, as true or "
                f"false. Got {e.get('corrupted')!r} for id {e['id']!r} instead."
            )
    samples = [{"id": str(e["id"]), "corrupted": e["corrupted"]} for e in entries]
    atomic_write_text(known, json.dumps({"source": str(path), "samples": samples}, indent=1) + "\n")
    return [r["id"] for r in samples if r["corrupted"]], known


def _labelled_test_entries(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The ``test`` entries of a datalist that have a label, checked; unlabelled ones are left to inference.

    A decathlon ``test`` section usually lists images only (bare paths or ``{"image"}``): they are for inference
    (:func:`list_images`), and evaluation needs labels, so training does not require them.
    """
    entries = load_datalist(path, "test", keys=("image",), path_keys=("image", "label"), check_shapes=False)
    labelled = [e for e in entries if e.get("label") is not None]
    if len(labelled) < len(entries):
        logger.info(
            f"{_OWNER}: {len(entries) - len(labelled)} of the {len(entries)} test entries of {str(path)!r} have no "
            "label: inference reads them, evaluation does not"
            + ("" if labelled else " (it evaluates on the validation set instead)")
        )
    check_datalist(labelled, ("image", "label"), source=f"{path} test")
    return labelled


def _prepare(
    dataset_dir: Path,
    datalist: str | os.PathLike | None,
    output_dir: Path,
    noise_kind: str | None,
    noise_rate: float,
    noise_seed: int,
    noise_kwargs: Mapping[str, Any],
    num_synthetic: int,
    image_size: Any,
    seed: int,
    camus_fold: int,
    num_classes: int | None,
) -> dict[str, Any]:
    check_output_dir(_OWNER, output_dir, Path(datalist).parent if datalist is not None else dataset_dir)
    source, path = _resolve_source(dataset_dir, datalist, output_dir, num_synthetic, image_size, seed, camus_fold)
    raw = read_datalist_json(path, _OWNER)
    if not isinstance(raw.get("training"), list) or not raw["training"]:
        raise DatalistError(f"{_OWNER}: the datalist {str(path)!r} has no non-empty 'training' section.")
    if source == "datalist" and num_classes is not None:  # user data: read every voxel once, before any training
        for section in ("training", "validation"):  # what training reads; test images are read by evaluation
            if raw.get(section):
                entries = load_datalist(path, section)
                check_segmentation_files(_OWNER, entries, num_classes, source=f"{str(path)!r} {section}")
    manifest_path = None
    corrupted: list[str] | None = None
    if noise_kind is not None and noise_rate > 0:
        noisy_dir = output_dir / NOISY_LABELS_DIR
        if source == "datalist":
            _check_noise_on_user_labels(path, noise_kind, noise_rate, noisy_dir)
        manifest = corrupt_datalist(path, noise_kind, noise_rate, seed=noise_seed, out_dir=noisy_dir, **noise_kwargs)
        corrupted = corrupted_ids(manifest)
        manifest_path = noisy_dir / "manifest.json"
        path = noisy_dir / "datalist.json"
    else:
        corrupted, manifest_path = _record_known_corruption(path, output_dir, source)
    out: dict[str, Any] = {"source": source, "datalist": str(path), "corrupted": corrupted, "manifest": manifest_path}
    for section in SECTIONS:
        if section == "test" and raw.get(section):
            entries = _labelled_test_entries(path)
        else:
            entries = load_datalist(path, section) if section == "training" or raw.get(section) else []
        # only what the pipelines read: extra fields (CAMUS's EF, quality, ...) may be None or missing, which
        # batch collation cannot handle
        out[section] = [{k: e[k] for k in ("id", "image", "label")} for e in entries]
    if not out["validation"]:
        raise DatalistError(
            f"{_OWNER}: the datalist {str(path)!r} needs a non-empty 'validation' section (clean labels)."
        )
    return out


def prepare_echo_data(
    dataset_dir: str | os.PathLike,
    *,
    output_dir: str | os.PathLike,
    datalist: str | os.PathLike | None = None,
    noise_kind: str | None = None,
    noise_rate: float = 0.0,
    noise_seed: int = 0,
    noise_kwargs: Mapping[str, Any] | None = None,
    num_synthetic: int = 600,
    image_size: Sequence[int] = (256, 256),
    seed: int = 0,
    camus_fold: int = 1,
    num_classes: int | None = None,
) -> dict[str, Any]:
    """The echo bundle's data, checked before training starts.

    Where the data come from, in this order:

    1. ``datalist``: a decathlon JSON (``training``, ``validation``, optional ``test``; relative paths resolve
       against its folder);
    2. ``<dataset_dir>/datalist.json`` (e.g. the synthetic set of an earlier run);
    3. a CAMUS release in ``dataset_dir`` (2023 NIfTI or 2019 MetaImage; official split, ``camus_fold`` for
       2019), its datalist written to ``<output_dir>/camus_datalist.json``;
    4. an empty or missing ``dataset_dir``: ``num_synthetic`` synthetic echo images of ``image_size`` are
       generated there (deterministic in ``seed``).

    With ``noise_kind`` (``"random"``, ``"bias"``/``"systematic"``, ``"omission"``; ``None`` or ``"none"`` for
    no noise) and ``noise_rate > 0``,
    exactly ``round(rate * N)`` training labels are corrupted into ``<output_dir>/noisy_labels/`` by
    :func:`~monai_noisylabel.transforms.corrupt_datalist` (originals untouched; validation/test stay clean),
    and the corrupted ids are returned so detection can be scored against them. Without injected noise, a user
    datalist whose training entries carry ``"corrupted": true`` / ``false`` (e.g. from an audit) is scored the
    same way: the flags are recorded in ``<output_dir>/known_corruption.json``. ``output_dir`` must be writable
    and outside the dataset folder (``dataset_dir``, or the ``datalist``'s folder). With ``num_classes``, a user
    datalist's training and validation files are read in full first: finite images, integer labels in
    ``[0, num_classes)`` of the image's shape (:func:`~monai_noisylabel.bundle.checks.check_segmentation_files`).
    Under DDP rank 0 prepares first and the other ranks then read what it wrote.

    Returns:
        ``{"training", "validation", "test"}`` (lists of ``{"id", "image", "label"}`` with absolute paths),
        ``"corrupted"`` (ids, or ``None`` without noise), ``"manifest"`` (path or ``None``), ``"source"``
        (``"synthetic"``, ``"camus"`` or ``"datalist"``) and ``"datalist"`` (the JSON used).

    Raises:
        ValueError: unknown ``noise_kind``, a ``noise_rate`` outside [0, 1], a non-empty ``dataset_dir`` that is
            neither a dataset nor CAMUS, a datalist without training or validation samples, an ``output_dir``
            inside the dataset folder or not writable, an unreadable file, NaN images, labels outside the classes.
        FileNotFoundError: a missing datalist, listed file or CAMUS split file (the message names it).

    Example:
        >>> import tempfile
        >>> d = prepare_echo_data(tempfile.mkdtemp(), output_dir=tempfile.mkdtemp(), num_synthetic=8,
        ...                       image_size=(32, 32), noise_kind="bias", noise_rate=0.5)
        >>> d["source"], len(d["corrupted"]) == round(0.5 * len(d["training"]))
        ('synthetic', True)
    """
    noise_kind = _noise_kind(noise_kind, _OWNER)
    noise_rate = check_probability(_OWNER, "noise_rate", noise_rate)
    num_synthetic = check_int(_OWNER, "num_synthetic", num_synthetic, 4)
    camus_fold = check_int(_OWNER, "camus_fold", camus_fold, 1, 10)
    if num_classes is not None:
        num_classes = check_int(_OWNER, "num_classes", num_classes, 2)
    if len(tuple(image_size)) != 2:
        raise param_error(_OWNER, "image_size", "two ints (H, W)", tuple(image_size))
    args = (
        Path(dataset_dir),
        datalist,
        Path(output_dir),
        noise_kind,
        noise_rate,
        int(noise_seed),
        dict(noise_kwargs or {}),
        num_synthetic,
        image_size,
        int(seed),
        camus_fold,
        num_classes,
    )
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not distributed:
        return _prepare(*args)
    result = _prepare(*args) if dist.get_rank() == 0 else None
    dist.barrier()
    return result if result is not None else _prepare(*args)


def list_images(
    dataset_dir: str | os.PathLike,
    *,
    datalist: str | os.PathLike | None = None,
    section: str = "test",
    pattern: str = "*.nii*",
) -> list[dict[str, str]]:
    """Images for inference, as ``[{"image": path}]``.

    From ``datalist`` (or ``<dataset_dir>/datalist.json``) when there is one: the ``section`` entries' images;
    otherwise every file of ``dataset_dir`` matching ``pattern`` (sorted). A folder without images is an error.

    Example:
        >>> import tempfile
        >>> from monai_noisylabel.data import generate_echo_dataset
        >>> d = tempfile.mkdtemp()
        >>> _ = generate_echo_dataset(d, num=8, size=(16, 16))
        >>> len(list_images(d)) > 0
        True
    """
    owner = "list_images"
    root = Path(dataset_dir)
    path = Path(datalist) if datalist is not None else root / "datalist.json"
    if datalist is not None or path.is_file():
        entries = load_datalist(path, section, keys=("image",), check_shapes=False)
        return [{"image": e["image"]} for e in entries]
    if not root.is_dir():
        raise FileNotFoundError(f"{owner}: the 'dataset_dir' folder {str(root)!r} does not exist.")
    files = sorted(str(p) for p in root.glob(pattern) if p.is_file())
    if not files:
        raise param_error(owner, "pattern", f"a pattern matching image files in {str(root)!r}", pattern)
    return [{"image": f} for f in files]
