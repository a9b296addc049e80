"""Deterministic, atomic NIfTI writing and light header reading (no voxel data loaded)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import nibabel as nib
import numpy as np

from monai_noisylabel.utils import atomic_write_bytes

__all__ = ["save_nifti", "nifti_bytes", "read_spatial_shape", "read_voxels"]


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
        try:
            shape = tuple(int(s) for s in nib.load(str(path)).shape)  # type: ignore[attr-defined]
        except Exception as e:  # nibabel raises ImageFileError, gzip/EOF/struct errors on damaged files
            raise ValueError(f"{str(path)!r} is not a readable NIfTI file ({type(e).__name__}: {e}).") from e
    elif name.endswith(".mhd"):
        shape = _mhd_shape(path)
    else:
        return None
    if shape is None:
        return None
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def read_voxels(path: str | os.PathLike) -> np.ndarray:
    """The voxel array of an image file (NIfTI through nibabel, other formats through MONAI's ``LoadImage``).

    Unlike a header read, this decompresses every voxel, so a truncated file or one that is not an image
    behind an image name is found here, with a message that names the file, not deep in a data loader.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file cannot be read as an image (the message names the file and the reason).

    Example:
        >>> import tempfile, numpy as np
        >>> p = save_nifti(np.arange(6, dtype=np.uint8).reshape(2, 3), tempfile.mkdtemp() + "/x.nii.gz")
        >>> read_voxels(p).shape
        (2, 3)
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"read_voxels: the image file {str(path)!r} does not exist.")
    try:
        if path.name.lower().endswith((".nii", ".nii.gz")):
            return np.asanyarray(nib.load(str(path)).dataobj)  # type: ignore[attr-defined]
        from monai.transforms import LoadImage

        return np.asarray(LoadImage(image_only=True)(str(path)))
    except Exception as e:  # damaged files raise EOFError, zlib/gzip, struct or reader errors
        raise ValueError(f"{str(path)!r} is not a readable image file ({type(e).__name__}: {e}).") from e
