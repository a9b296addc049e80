"""Write refurbished labels to ``<output_dir>/refurbished/`` with their source geometry, plus a manifest.

Layout: ``<output_dir>/refurbished/<safe id>.nii.gz`` and
``<output_dir>/refurbished/manifest.csv`` with the columns :data:`MANIFEST_COLUMNS`, one row per
currently refurbished sample. Every write is atomic (a temp file in the same folder, then a rename,
via :func:`monai_noisylabel.data.io.save_nifti` and :func:`monai_noisylabel.utils.atomic_write_text`);
original label files are only ever read from their meta, never opened, and a target path that is
the original label file is refused. Call these from one process (rank 0).
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import to_affine_nd

from monai_noisylabel.data.io import save_nifti
from monai_noisylabel.refurbish._checks import Raw, Shape, as_tensor_input
from monai_noisylabel.utils import atomic_write_text, param_error

__all__ = [
    "REFURBISHED_DIR",
    "MANIFEST_NAME",
    "MANIFEST_COLUMNS",
    "safe_sample_id",
    "write_refurbished_label",
    "remove_refurbished_label",
    "read_refurbish_manifest",
]

REFURBISHED_DIR = "refurbished"
MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS = ("id", "original_path", "refurbished_path", "epoch", "score", "fraction_changed")

_manifest_lock = threading.Lock()
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_sample_id(sample_id: Any, max_length: int = 100) -> str:
    """A file-name-safe, collision-free form of ``sample_id``.

    Ids made of ``[A-Za-z0-9._-]`` (not starting with a dot) are kept as they are; any other id gets
    its unsafe runs replaced by ``_`` and an 8-hex-digit hash of the original appended, so ``"a/b"``
    and ``"a_b"`` never share a file.

    Example:
        >>> safe_sample_id("patient0001_ED")
        'patient0001_ED'
        >>> safe_sample_id("/data/p1/label.nii.gz").startswith("data_p1_label.nii.gz_")
        True
    """
    sid = str(sample_id)
    if sid == "":
        raise param_error("safe_sample_id", "sample_id", "a non-empty id", sample_id)
    cleaned = _UNSAFE.sub("_", sid).strip("._") or "id"
    if cleaned == sid and len(sid) <= max_length:
        return sid
    digest = hashlib.sha256(sid.encode("utf-8")).hexdigest()[:8]
    return f"{cleaned[:max_length]}_{digest}"


def _as_spatial_array(label: Any, channel_first: bool) -> np.ndarray:
    owner = "write_refurbished_label"
    t = as_tensor_input(owner, "label", label).detach().cpu()
    arr = t.numpy()
    if channel_first:
        if arr.ndim not in (3, 4) or arr.shape[0] != 1:
            raise param_error(owner, "label", "a channel-first (1, H, W[, D]) label", Shape(arr.shape))
        arr = arr[0]
    elif arr.ndim not in (2, 3):
        raise param_error(owner, "label", "a (H, W[, D]) label with channel_first=False", Shape(arr.shape))
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise param_error(owner, "label", "a finite array", Raw("an array with NaN or inf values"))
    if arr.dtype.kind == "b" or (arr.dtype.kind in "iuf" and np.array_equal(arr, np.round(arr))):
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        for dt in (np.uint8, np.int16, np.int32):
            info = np.iinfo(dt)
            if info.min <= lo and hi <= info.max:
                return arr.astype(dt)
    return arr.astype(np.float32) if arr.dtype.kind == "f" else arr


def _affine_of(label: Any, affine: Any, meta: Mapping[str, Any] | None) -> np.ndarray | None:
    if affine is None and isinstance(label, MetaTensor):
        affine = label.meta.get("affine")
    if affine is None and meta is not None:
        affine = meta.get("affine")
    if affine is None:
        return None
    aff = np.asarray(affine.detach().cpu() if isinstance(affine, torch.Tensor) else affine, dtype=np.float64)
    if aff.ndim != 2 or aff.shape[0] != aff.shape[1] or aff.shape[0] not in (3, 4):
        raise param_error("write_refurbished_label", "affine", "a 3x3 or 4x4 matrix", Shape(aff.shape))
    return np.asarray(to_affine_nd(3, aff), dtype=np.float64)


def _same_file(a: Path, b: Path) -> bool:
    if a.resolve() == b.resolve():
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    return str(value)


def read_refurbish_manifest(output_dir: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of ``<output_dir>/refurbished/manifest.csv`` as dicts of strings (``[]`` when absent)."""
    path = Path(output_dir) / REFURBISHED_DIR / MANIFEST_NAME
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8") as f:
        return [dict(row) for row in csv.DictReader(f)]


def _write_manifest(output_dir: Path, rows: list[dict[str, str]]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in MANIFEST_COLUMNS})
    return atomic_write_text(output_dir / REFURBISHED_DIR / MANIFEST_NAME, buf.getvalue())


def write_refurbished_label(
    label: Any,
    output_dir: str | os.PathLike,
    sample_id: Any,
    *,
    affine: Any = None,
    meta: Mapping[str, Any] | None = None,
    original_path: str | os.PathLike | None = None,
    epoch: int | None = None,
    score: float | None = None,
    fraction_changed: float | None = None,
    channel_first: bool = True,
) -> Path:
    """Write one refurbished label as NIfTI and record it in the manifest (both atomically).

    The geometry comes from ``affine``, else the label's MetaTensor ``affine``, else ``meta["affine"]``
    (the original label's meta), else identity. The original path comes from ``original_path``, else
    ``meta["filename_or_obj"]``, else the label's own ``filename_or_obj``. The manifest row of
    ``sample_id`` is replaced if present, appended otherwise. Integer-valued labels are written with the
    smallest integer type that holds them (uint8, int16, int32); soft labels as float32.

    Args:
        label: channel-first ``(1, H, W[, D])`` label (MONAI's layout), torch/numpy/MetaTensor; a bare
            ``(H, W[, D])`` array with ``channel_first=False``.
        output_dir: the run's output folder; files go to ``<output_dir>/refurbished/``.
        sample_id: the sample's id (made file-name safe by :func:`safe_sample_id`).
        affine: optional 3x3 (2D) or 4x4 affine.
        meta: optional meta dict of the original label (``affine``, ``filename_or_obj``).
        original_path: optional path of the original label file, for the manifest and the safety check.
        epoch: epoch of the refurbishment, for the manifest.
        score: detection score, for the manifest.
        fraction_changed: fraction of voxels changed, for the manifest.
        channel_first: whether ``label`` has a leading channel axis of size 1.

    Returns:
        The path of the written NIfTI file.

    Raises:
        ValueError: bad label (shape, NaN), bad affine, or a target path that is the original label.

    Example:
        >>> import tempfile, numpy as np
        >>> out = tempfile.mkdtemp()
        >>> p = write_refurbished_label(np.ones((1, 4, 4)), out, "case_1", epoch=2, fraction_changed=0.5)
        >>> p.name, read_refurbish_manifest(out)[0]["epoch"]
        ('case_1.nii.gz', '2')
    """
    owner = "write_refurbished_label"
    out_dir = Path(output_dir)
    aff = _affine_of(label, affine, meta)
    arr = _as_spatial_array(label, channel_first)

    orig = original_path
    if orig is None and meta is not None:
        orig = meta.get("filename_or_obj")
    if orig is None and isinstance(label, MetaTensor):
        orig = label.meta.get("filename_or_obj")
    orig_str = "" if orig is None else str(orig)

    target = out_dir / REFURBISHED_DIR / f"{safe_sample_id(sample_id)}.nii.gz"
    if orig_str and _same_file(target, Path(orig_str)):
        raise param_error(owner, "output_dir", "a folder whose refurbished/ file is not the original label", orig_str)
    with _manifest_lock:
        save_nifti(arr, target, aff)
        rows = [r for r in read_refurbish_manifest(out_dir) if r.get("id") != str(sample_id)]
        rows.append(
            {
                "id": str(sample_id),
                "original_path": orig_str,
                "refurbished_path": str(target),
                "epoch": _fmt(epoch),
                "score": _fmt(None if score is None else float(score)),
                "fraction_changed": _fmt(None if fraction_changed is None else float(fraction_changed)),
            }
        )
        _write_manifest(out_dir, rows)
    return target


def remove_refurbished_label(output_dir: str | os.PathLike, sample_id: Any) -> bool:
    """Drop ``sample_id`` from the manifest and delete its refurbished file (re-scored clean). True if found."""
    out_dir = Path(output_dir)
    with _manifest_lock:
        rows = read_refurbish_manifest(out_dir)
        keep = [r for r in rows if r.get("id") != str(sample_id)]
        target = out_dir / REFURBISHED_DIR / f"{safe_sample_id(sample_id)}.nii.gz"
        found = len(keep) != len(rows) or target.exists()
        if len(keep) != len(rows):
            _write_manifest(out_dir, keep)
        if target.exists():
            target.unlink()
    return found
