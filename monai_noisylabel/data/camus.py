"""CAMUS datalists for both public releases, with their official splits.

- 2023 NIfTI release: ``CAMUS_public/database_nifti/patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}[_gt].nii.gz``,
  ``..._half_sequence[_gt].nii.gz``, ``Info_{2CH,4CH}.cfg``, and the official split in
  ``CAMUS_public/database_split/subgroup_{training,validation,testing}.txt``.
- 2019 MetaImage release: ``patientNNNN/patientNNNN_{2CH,4CH}_{ED,ES}[_gt].mhd`` (+ ``.raw``),
  ``..._sequence[_gt].mhd``, ``Info_{2CH,4CH}.cfg``, and ten folds in
  ``listSubGroups/subGroup{k}_{training,validation,testing}.txt``.

Labels: 0 background, 1 LV cavity, 2 myocardium, 3 left atrium. Only ED/ES masks are manual.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from monai_noisylabel.utils import progress as _progress

__all__ = ["detect_camus_release", "parse_info_cfg", "camus_datalist", "CAMUS_LABELS"]

CAMUS_LABELS = {"0": "background", "1": "lv_cavity", "2": "myocardium", "3": "left_atrium"}
_SPLITS = (("training", "training"), ("validation", "validation"), ("test", "testing"))
_PATIENT = re.compile(r"^patient\d{4}$")


def parse_info_cfg(path: str | os.PathLike) -> dict[str, Any]:
    """Parse an ``Info_{2CH,4CH}.cfg`` file (``key: value`` lines) into typed values.

    ``ED``, ``ES`` and ``NbFrame`` become ints (1-based frame numbers), ``EF``, ``Age`` and
    ``FrameRate`` floats; anything else stays a string.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "Info_2CH.cfg"
        >>> _ = p.write_text("ED: 1\\nES: 14\\nImageQuality: Good\\nEF: 55.4\\n")
        >>> parse_info_cfg(p)
        {'ED': 1, 'ES': 14, 'ImageQuality': 'Good', 'EF': 55.4}
    """
    out: dict[str, Any] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if ":" not in line:
            continue
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key in ("ED", "ES", "NbFrame"):
            try:
                out[key] = int(float(value))
            except ValueError:
                out[key] = value
        elif key in ("EF", "Age", "FrameRate"):
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
        else:
            out[key] = value
    return out


def detect_camus_release(root: str | os.PathLike) -> tuple[str, Path]:
    """Return ``("2023" | "2019", patients_dir)`` for a CAMUS root, or raise ``FileNotFoundError``.

    ``root`` may be ``CAMUS_public`` itself, its parent, or ``database_nifti`` (2023); for 2019, the
    folder that holds the patient folders (directly or under ``training/`` and ``testing/``) and
    ``listSubGroups/``.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"camus_datalist: the 'root' folder {str(root)!r} does not exist.")
    for cand in (root / "database_nifti", root / "CAMUS_public" / "database_nifti", root):
        if cand.is_dir() and cand.name == "database_nifti":
            return "2023", cand
    if any(root.glob("patient*/patient*_*_ED.mhd")) or any(root.glob("*/patient*/patient*_*_ED.mhd")):
        return "2019", root
    if any(root.glob("patient*/patient*_*_ED.nii.gz")):
        return "2023", root
    raise FileNotFoundError(
        f"camus_datalist: {str(root)!r} does not look like a CAMUS release: expected database_nifti/ (2023) "
        "or patientNNNN/patientNNNN_*_ED.mhd folders (2019)."
    )


def _read_split(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"camus_datalist: the split file {str(path)!r} does not exist.")
    names = []
    for line in path.read_text().split():
        name = line.strip().strip(",")
        if name:
            names.append(name if name.startswith("patient") else f"patient{int(name):04d}")
    return names


def _patient_dirs(patients_dir: Path) -> dict[str, Path]:
    dirs = {p.name: p for p in patients_dir.glob("patient*") if p.is_dir() and _PATIENT.match(p.name)}
    for p in patients_dir.glob("*/patient*"):  # 2019: training/ and testing/ subfolders
        if p.is_dir() and _PATIENT.match(p.name):
            dirs.setdefault(p.name, p)
    return dirs


def camus_datalist(
    root: str | os.PathLike,
    *,
    fold: int = 1,
    views: tuple[str, ...] = ("2CH", "4CH"),
    phases: tuple[str, ...] = ("ED", "ES"),
    include_sequences: bool = False,
    require_labels: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Build a decathlon-style datalist (absolute paths) for a CAMUS release with its official split.

    Each entry: ``{"id", "image", "label", "patient", "view", "phase", "image_quality", "ed_frame",
    "es_frame", "num_frames", "ef"}``; with ``include_sequences`` the (half) sequences are added as
    ``phase="sequence"`` entries (``label`` only where a ``_gt`` sequence exists).

    Args:
        root: release folder (see :func:`detect_camus_release`).
        fold: 2019 release only, 1..10 (the 2023 release has one official split).
        views: subset of ``("2CH", "4CH")``.
        phases: subset of ``("ED", "ES")``.
        include_sequences: also list the (half) sequences.
        require_labels: raise when an ED/ES image of a listed patient has no ``_gt`` mask.
        progress: show a progress bar per split.

    Raises:
        FileNotFoundError: missing root, split file, patient folder or image (names the path).
        ValueError: bad ``fold``, ``views`` or ``phases``.
    """
    if isinstance(fold, bool) or not isinstance(fold, int) or not 1 <= fold <= 10:
        raise ValueError(f"The 'fold' parameter of camus_datalist must be an int in [1, 10]. Got {fold!r} instead.")
    for name, values, allowed in (("views", views, ("2CH", "4CH")), ("phases", phases, ("ED", "ES"))):
        if not values or any(v not in allowed for v in values):
            raise ValueError(
                f"The {name!r} parameter of camus_datalist must be a subset of {allowed}. Got {values!r} instead."
            )
    release, patients_dir = detect_camus_release(root)
    if release == "2023":
        split_dir = patients_dir.parent / "database_split"
        split_files = {key: split_dir / f"subgroup_{stem}.txt" for key, stem in _SPLITS}
        ext, seq_suffix = ".nii.gz", "_half_sequence"
    else:
        split_dir = patients_dir / "listSubGroups"
        split_files = {key: split_dir / f"subGroup{fold}_{stem}.txt" for key, stem in _SPLITS}
        ext, seq_suffix = ".mhd", "_sequence"
    patient_dirs = _patient_dirs(patients_dir)
    datalist: dict[str, Any] = {
        "name": f"CAMUS ({release} release" + (f", fold {fold})" if release == "2019" else ")"),
        "labels": dict(CAMUS_LABELS),
        "modality": {"0": "US"},
    }
    for key, _ in _SPLITS:
        entries = []
        patients = _read_split(split_files[key])
        for patient in _progress(patients, len(patients), f"CAMUS {key}", progress, unit="patient"):
            pdir = patient_dirs.get(patient)
            if pdir is None:
                raise FileNotFoundError(
                    f"camus_datalist: {patient} is listed in {str(split_files[key])!r} but "
                    f"{str(patients_dir / patient)!r} does not exist."
                )
            for view in views:
                info_path = pdir / f"Info_{view}.cfg"
                info = parse_info_cfg(info_path) if info_path.is_file() else {}
                common = {
                    "patient": patient,
                    "view": view,
                    "image_quality": info.get("ImageQuality"),
                    "ed_frame": info.get("ED"),
                    "es_frame": info.get("ES"),
                    "num_frames": info.get("NbFrame"),
                    "ef": info.get("EF"),
                }
                for phase in phases:
                    image = pdir / f"{patient}_{view}_{phase}{ext}"
                    label = pdir / f"{patient}_{view}_{phase}_gt{ext}"
                    if not image.is_file():
                        raise FileNotFoundError(f"camus_datalist: the image {str(image)!r} does not exist.")
                    entry: dict[str, Any] = {"id": f"{patient}_{view}_{phase}", "image": str(image), "phase": phase}
                    if label.is_file():
                        entry["label"] = str(label)
                    elif require_labels:
                        raise FileNotFoundError(f"camus_datalist: the label {str(label)!r} does not exist.")
                    entries.append({**entry, **common})
                if include_sequences:
                    seq = pdir / f"{patient}_{view}{seq_suffix}{ext}"
                    if seq.is_file():
                        entry = {"id": f"{patient}_{view}_sequence", "image": str(seq), "phase": "sequence"}
                        seq_gt = pdir / f"{patient}_{view}{seq_suffix}_gt{ext}"
                        if seq_gt.is_file():
                            entry["label"] = str(seq_gt)
                        entries.append({**entry, **common})
        datalist[key] = entries
    return datalist
