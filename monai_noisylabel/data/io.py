"""Deterministic, atomic NIfTI writing and light header reading (no voxel data loaded)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_noisylabel.utils import atomic_write_bytes

__all__ = ["save_nifti", "nifti_bytes", "read_spatial_shape"]


def nifti_bytes(array: np.ndarray, affine: np.ndarray | None = None, *, compress: bool = True) -> bytes:
    """Serialize ``array`` as a NIfTI-1 file; gzip with ``mtime=0`` so equal inputs give equal bytes."""
    arr = np.asarray(array)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
    aff = np.eye(4) if affine is None else np.asarray(affine, dtype=np.float64)
    img = nib.Nifti1Image(arr, aff)
    img.header.set_xyzt_units("mm")
    img.set_qform(aff, code=1)
    img.set_sform(aff, code=1)
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=6, mtime=0) if compress else raw


def save_nifti(array: np.ndarray, path: str | os.PathLike, affine: np.ndarray | None = None) -> Path:
    """Write ``array`` to ``path`` (``.nii`` or ``.nii.gz``) atomically and deterministically.

    Example:
        >>> import tempfile, numpy as np
        >>> p = save_nifti(np.zeros((4, 4), np.uint8), tempfile.mkdtemp() + "/x.nii.gz")
        >>> p.name
        'x.nii.gz'
    """
    path = Path(path)
    name = path.name.lower()
    if not (name.endswith(".nii") or name.endswith(".nii.gz")):
        raise ValueError(f"save_nifti: 'path' must end with .nii or .nii.gz. Got {str(path)!r} instead.")
    return atomic_write_bytes(path, nifti_bytes(array, affine, compress=name.endswith(".gz")))


def _mhd_shape(path: Path) -> tuple[int, ...] | None:
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip().lower() == "dimsize":
            return tuple(int(v) for v in value.split())
    return None


def read_spatial_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """Spatial shape of an image file from its header only; ``None`` when the format is not known.

    NIfTI (via nibabel, lazily) and MetaImage ``.mhd`` headers are read; trailing singleton axes are
    dropped so a 2D image stored as ``(H, W, 1)`` compares equal to ``(H, W)``.
    """
    path = Path(path)
    name = path.name.lower()
    shape: tuple[int, ...] | None
    if name.endswith((".nii", ".nii.gz")):
        shape = tuple(int(s) for s in nib.load(str(path)).shape)  # type: ignore[attr-defined]
    elif name.endswith(".mhd"):
        shape = _mhd_shape(path)
    else:
        return None
    if shape is None:
        return None
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape
