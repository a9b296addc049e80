"""ACDC (Automated Cardiac Diagnosis Challenge, MICCAI 2017) datalists, and its volumes as 2D short-axis slices.

Public layout (https://www.creatis.insa-lyon.fr/Challenge/acdc/): ``<root>/{training,testing}/patientNNN/`` with
``Info.cfg`` (``key: value`` lines: ``ED``, ``ES`` (1-based frame numbers), ``Group``, ``Height``, ``NbFrame``,
``Weight``), ``patientNNN_4d.nii.gz`` (the cine sequence), and the ED and ES frames ``patientNNN_frameXX.nii.gz``
with their manual masks ``patientNNN_frameXX_gt.nii.gz`` (``XX`` the two-digit frame number). ``root`` may also be
the folder above ``database/``. Mask labels: 0 background, 1 right ventricle (RV), 2 myocardium, 3 left
ventricle (LV) cavity.

- Bernard et al., "Deep Learning Techniques for Automatic MRI Cardiac Multi-Structures Segmentation and Diagnosis:
  Is the Problem Solved?", IEEE TMI 2018, https://doi.org/10.1109/TMI.2018.2837502
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from monai_noisylabel.data.camus import parse_info_cfg
from monai_noisylabel.data.datalist import write_datalist
from monai_noisylabel.data.io import save_nifti
from monai_noisylabel.utils import check_int, param_error

__all__ = ["ACDC_LABELS", "acdc_datalist", "acdc_slices", "find_acdc_root"]

ACDC_LABELS = {"0": "background", "1": "right_ventricle", "2": "myocardium", "3": "left_ventricle"}
_PATIENT = re.compile(r"^patient(\d{3})$")
_OWNER = "acdc_datalist"


def find_acdc_root(root: str | os.PathLike) -> Path:
    """The folder that holds ``training/`` (and ``testing/``): ``root``, ``root/database`` or ``root/ACDC/database``.

    Raises:
        FileNotFoundError: no such folder (the message names ``root``).
    """
    base = Path(root)
    for cand in (base, base / "database", base / "ACDC" / "database"):
        if (cand / "training").is_dir() or (cand / "testing").is_dir():
            return cand
    raise FileNotFoundError(
        f"{_OWNER}: {str(base)!r} does not look like an ACDC release: expected training/ and testing/ folders of "
        "patientNNN/ (directly, under database/, or under ACDC/database/)."
    )


def _nifti(path: str | os.PathLike) -> Any:
    """The NIfTI image object of ``path`` (header read; data loaded on access)."""
    return nib.load(str(path))


def _frame_pair(pdir: Path, patient: str, frame: int, check_shapes: bool) -> tuple[Path, Path]:
    image = pdir / f"{patient}_frame{frame:02d}.nii.gz"
    label = pdir / f"{patient}_frame{frame:02d}_gt.nii.gz"
    for path in (image, label):
        if not path.is_file():
            raise FileNotFoundError(f"{_OWNER}: the file {str(path)!r} does not exist (frame {frame} of Info.cfg).")
    if check_shapes:
        shapes = [tuple(_nifti(p).shape[:3]) for p in (image, label)]  # headers only
        if shapes[0] != shapes[1]:
            raise param_error(
                _OWNER, "root", f"a mask {str(label)!r} of its image's shape {shapes[0]}", f"shape {shapes[1]}"
            )
    return image, label


def _patient_entries(pdir: Path, check_shapes: bool) -> list[dict[str, Any]]:
    patient = pdir.name
    info_path = pdir / "Info.cfg"
    if not info_path.is_file():
        raise FileNotFoundError(f"{_OWNER}: the file {str(info_path)!r} does not exist.")
    info = parse_info_cfg(info_path)
    entries = []
    for phase in ("ED", "ES"):
        frame = info.get(phase)
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 1:
            raise param_error(_OWNER, "root", f"an {phase} line with a frame number >= 1 in {str(info_path)!r}", frame)
        image, label = _frame_pair(pdir, patient, frame, check_shapes)
        entries.append(
            {
                "id": f"{patient}_{phase}",
                "image": str(image.resolve()),
                "label": str(label.resolve()),
                "patient": patient,
                "phase": phase,
                "frame": frame,
                "group": info.get("Group"),
            }
        )
    return entries


def acdc_datalist(root: str | os.PathLike, *, val_every: int = 5, check_shapes: bool = True) -> dict[str, Any]:
    """A decathlon-style datalist of the ACDC ED and ES frames (3D volumes, absolute paths).

    ``training/`` patients are split into ``training`` and ``validation``: every ``val_every``-th patient by
    number (patient005, patient010, ...) is a validation patient, which takes patients from each of the five
    diagnostic groups of 20. ``testing/`` patients form ``test``. Both frames of a patient stay in one section.

    Args:
        root: the ACDC folder (see :func:`find_acdc_root`).
        val_every: every ``val_every``-th training patient goes to ``validation`` (>= 2).
        check_shapes: compare each mask's shape with its image's (NIfTI headers only).

    Returns:
        ``{"name", "labels", "training", "validation", "test"}``; entries ``{"id", "image", "label", "patient",
        "phase", "frame", "group"}`` with ids ``patientNNN_ED`` / ``patientNNN_ES``.

    Raises:
        FileNotFoundError: no ACDC layout, a missing ``Info.cfg``, frame or ``_gt`` mask (the message names it).
        ValueError: an ``Info.cfg`` without a usable ED/ES line, a mask whose shape differs from its image's.
    """
    val_every = check_int(_OWNER, "val_every", val_every, 2)
    base = find_acdc_root(root)
    out: dict[str, Any] = {"name": "ACDC", "labels": dict(ACDC_LABELS), "training": [], "validation": [], "test": []}
    for folder, sections in (("training", ("training", "validation")), ("testing", ("test", "test"))):
        pdirs = sorted(p for p in (base / folder).glob("patient*") if p.is_dir() and _PATIENT.match(p.name))
        for pdir in pdirs:
            number = int(_PATIENT.match(pdir.name).group(1))  # type: ignore[union-attr]
            section = sections[1] if number % val_every == 0 else sections[0]
            out[section].extend(_patient_entries(pdir, check_shapes))
    if not out["training"]:
        raise FileNotFoundError(f"{_OWNER}: no patientNNN folder with frames under {str(base / 'training')!r}.")
    return out


def _slice_affine(affine: np.ndarray, z: int) -> np.ndarray:
    """The affine of slice ``z`` of a volume: the volume's, moved to the slice's origin."""
    out = np.array(affine, dtype=np.float64)
    out[:3, 3] = affine[:3, :3] @ np.array([0.0, 0.0, float(z)]) + affine[:3, 3]
    return out


def acdc_slices(datalist: Mapping[str, Any], out_dir: str | os.PathLike, *, min_foreground: int = 1) -> dict[str, Any]:
    """Write every short-axis slice of the datalist's volumes as a 2D NIfTI pair; return the 2D datalist.

    The echo bundle is 2D: its ``datalist`` override reads ``<out_dir>/datalist.json`` (RV, myocardium and LV as
    classes 1..3). Slices whose mask has fewer than ``min_foreground`` labelled pixels (above the base, below
    the apex) are left out. Images are written as float32, masks as uint8, each with its slice's affine; ids are
    ``patientNNN_{ED,ES}_sZZ``. The source files are only read.

    Raises:
        ValueError: a mask whose shape differs from its image's, a volume that is not 3D (names the file).

    Example:
        >>> import tempfile, numpy as np
        >>> from monai_noisylabel.data import save_nifti
        >>> d = tempfile.mkdtemp()
        >>> lab = np.zeros((8, 8, 3), np.uint8); lab[2:5, 2:5, 1] = 3
        >>> _ = save_nifti(np.ones((8, 8, 3), np.float32), d + "/i.nii.gz"); _ = save_nifti(lab, d + "/l.nii.gz")
        >>> out = acdc_slices({"training": [{"id": "p_ED", "image": d + "/i.nii.gz", "label": d + "/l.nii.gz"}]}, d)
        >>> [e["id"] for e in out["training"]]
        ['p_ED_s01']
    """
    owner = "acdc_slices"
    min_foreground = check_int(owner, "min_foreground", min_foreground, 0)
    out = Path(out_dir)
    result: dict[str, Any] = {"name": "ACDC short-axis slices", "labels": dict(ACDC_LABELS)}
    for section in ("training", "validation", "test"):
        entries = []
        for e in datalist.get(section) or []:
            img_nii, lab_nii = _nifti(e["image"]), _nifti(e["label"])
            image = np.asarray(img_nii.dataobj, dtype=np.float32)
            label = np.asarray(lab_nii.dataobj)
            if image.ndim != 3:
                raise param_error(owner, "datalist", f"3D volumes ({str(e['image'])!r})", f"{image.ndim}D")
            if label.shape != image.shape:
                raise param_error(
                    owner, "datalist", f"a mask {str(e['label'])!r} of its image's shape {image.shape}", label.shape
                )
            label = np.rint(label).astype(np.uint8)
            for z in range(image.shape[2]):
                if int((label[..., z] > 0).sum()) < min_foreground:
                    continue
                sid = f"{e['id']}_s{z:02d}"
                affine = _slice_affine(img_nii.affine, z)
                ipath = save_nifti(image[..., z], out / "images" / f"{sid}.nii.gz", affine=affine)
                lpath = save_nifti(label[..., z], out / "labels" / f"{sid}.nii.gz", affine=affine)
                entries.append({"id": sid, "image": str(ipath.resolve()), "label": str(lpath.resolve())})
        result[section] = entries
    write_datalist(result, out / "datalist.json")
    return result
