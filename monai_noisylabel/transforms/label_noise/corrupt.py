"""Dataset-level label corruption: a fixed fraction of a datalist's labels, written to a new folder.

:func:`corrupt_datalist` is the library call; ``python -m monai_noisylabel corrupt`` is its command
line (in :mod:`monai_noisylabel.cli`).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from monai_noisylabel.data.datalist import read_datalist_json
from monai_noisylabel.data.io import save_nifti
from monai_noisylabel.transforms.label_noise.array import (
    LABEL_NOISE_KINDS,
    RandLabelBias,
    RandLabelNoise,
    RandLabelOmission,
    _LabelNoiseTransform,
)
from monai_noisylabel.utils import atomic_write_text, check_choice, check_int, check_number, param_error
from monai_noisylabel.utils import progress as _progress

__all__ = [
    "KIND_TRANSFORMS",
    "corrupt_datalist",
    "read_corruption_manifest",
    "corrupted_ids",
]

KIND_TRANSFORMS: dict[str, type[_LabelNoiseTransform]] = {
    "random": RandLabelNoise,
    "bias": RandLabelBias,
    "omission": RandLabelOmission,
}
"""The transform behind each ``kind`` of :func:`corrupt_datalist`."""

_OWNER = "corrupt_datalist"
_RESERVED = ("prob", "fixed_per_sample", "seed")


def _load(datalist: Any, base_dir: Any) -> tuple[dict[str, Any], Path, Path | None]:
    """The datalist as a dict, the folder relative paths are resolved against, and the JSON's path."""
    if isinstance(datalist, Mapping):
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        return json.loads(json.dumps(datalist, default=str)), base.resolve(), None
    if not isinstance(datalist, (str, os.PathLike)):
        raise param_error(_OWNER, "datalist", "a dict or the path of a datalist JSON", datalist)
    path = Path(datalist)
    data = read_datalist_json(path, owner=_OWNER)
    base = Path(base_dir) if base_dir is not None else path.parent
    return data, base.resolve(), path.resolve()


def _absolute(value: Any, base: Path) -> Any:
    if isinstance(value, (list, tuple)):
        return [_absolute(v, base) for v in value]
    if isinstance(value, str):
        return value if os.path.isabs(value) else str((base / value).resolve())
    return value


def _resolve_entry(entry: Any, base: Path, keys: Sequence[str]) -> Any:
    if isinstance(entry, str):  # decathlon "test" sections may list bare image paths
        return _absolute(entry, base)
    if not isinstance(entry, Mapping):
        return entry
    return {k: (_absolute(v, base) if k in keys else v) for k, v in entry.items()}


def _target(label: Path, base: Path, index: int, labels_dir: Path) -> Path:
    """Where the corrupted copy of ``label`` goes: its path relative to ``base`` under ``labels_dir``."""
    try:
        rel = label.relative_to(base)
    except ValueError:
        rel = Path(f"{index:05d}_{label.name}")
    return labels_dir / rel


def _real(p: str | Path) -> str:
    return os.path.realpath(str(p))


def _source_files(datalist: Mapping[str, Any], keys: Sequence[str]) -> set[str]:
    """Real paths of every file under ``keys`` in every section of a (resolved) datalist."""
    found: set[str] = set()
    for value in datalist.values():
        for entry in value if isinstance(value, list) else []:
            items: list[Any] = [entry] if isinstance(entry, str) else []
            if isinstance(entry, Mapping):
                items = [entry.get(k) for k in keys]
            for item in items:
                for p in item if isinstance(item, list) else [item]:
                    if isinstance(p, str):
                        found.add(_real(p))
    return found


def _read_label(path: Path) -> tuple[np.ndarray, np.ndarray]:
    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        raise ValueError(f"{_OWNER}: labels must be NIfTI (.nii or .nii.gz) files. Got {str(path)!r} instead.")
    if not path.is_file():
        raise FileNotFoundError(f"{_OWNER}: the label file {str(path)!r} does not exist.")
    img = nib.load(str(path))  # read-only
    data = np.asanyarray(img.dataobj)  # type: ignore[attr-defined]
    if data.ndim not in (2, 3):
        raise ValueError(f"{_OWNER}: the label {str(path)!r} must be a 2D or 3D image. Got shape {data.shape} instead.")
    return np.asarray(data), np.asarray(img.affine, dtype=np.float64)  # type: ignore[attr-defined]


_KIND_ALIASES = {"systematic": "bias"}


def corrupt_datalist(
    datalist: Mapping[str, Any] | str | os.PathLike,
    kind: str,
    rate: float,
    *,
    seed: int,
    out_dir: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    section: str = "training",
    label_key: str = "label",
    path_keys: Sequence[str] | None = None,
    progress: bool = False,
    **transform_kwargs: Any,
) -> dict[str, Any]:
    """Corrupt exactly ``round(rate * N)`` labels of a datalist section into a new folder.

    The samples are drawn with ``seed`` (``numpy.random.default_rng(seed).permutation``); each is
    corrupted by the transform of ``kind`` (:data:`KIND_TRANSFORMS`) built with ``prob=1``,
    ``fixed_per_sample=True`` and ``seed``, so its corruption depends only on ``seed`` and the sample id
    (the entry's ``"id"``, else its label path) and the call is reproducible byte for byte. ``round`` is
    Python's (halves go to the even number).

    Writes, atomically, under ``out_dir``:

    - ``labels/<label path relative to the datalist folder>``: the corrupted labels (NIfTI, source
      dtype and affine). Unselected labels are not copied.
    - ``manifest.json``: per sample of ``section``, in datalist order, ``id``, ``selected``,
      ``corrupted`` (the label changed), ``kind``, ``params`` (``{"ops": [...]}``, which
      :func:`~monai_noisylabel.transforms.label_noise.apply_label_noise` replays), ``record`` (the
      whole provenance record), ``original`` and ``new`` paths (``params``, ``record`` and ``kind`` are
      ``None`` for samples not selected); plus the call's settings.
    - ``datalist.json``: the input datalist with every path under ``path_keys`` made ABSOLUTE (so it works
      from ``out_dir``) and the selected labels pointing at their corrupted copies; other sections
      (validation, test) are otherwise unchanged, unselected samples keep their original labels.

    Originals are only read (nibabel). The call refuses an ``out_dir`` where any file it writes would
    replace a file the datalist refers to, or the datalist itself.

    Args:
        datalist: a decathlon-style dict, or the path of its JSON.
        kind: ``"random"``, ``"bias"`` or ``"omission"``.
        rate: fraction of ``section`` to corrupt, in [0, 1].
        seed: selects the samples and seeds their corruption.
        out_dir: output folder (created).
        base_dir: folder relative paths are resolved against; default the JSON's folder (the current
            directory for a dict).
        section: the section to corrupt.
        label_key: the key of the label path in each entry.
        path_keys: the keys holding paths (default ``("image", label_key)``).
        progress: show a progress bar over the section's entries.
        **transform_kwargs: passed to the transform, e.g. ``label_class=3, mode="erode"`` for ``"bias"``.

    Returns:
        the manifest (as written to ``manifest.json``).

    Raises:
        ValueError: bad parameters, a malformed datalist, a non-NIfTI label, an unsafe ``out_dir``.
        FileNotFoundError: the datalist or a selected label does not exist.

    Example:
        >>> import tempfile
        >>> from monai_noisylabel.data.synthetic import generate_echo_dataset
        >>> src = generate_echo_dataset(tempfile.mkdtemp(), num=8, size=(32, 32))
        >>> m = corrupt_datalist(src, "omission", 0.5, seed=0, out_dir=tempfile.mkdtemp())
        >>> m["num_samples"], m["num_selected"], sum(s["selected"] for s in m["samples"])
        (4, 2, 2)
    """
    kind, rate, seed, transform = _check_arguments(kind, rate, seed, transform_kwargs)
    keys = list(path_keys) if path_keys is not None else ["image", label_key]
    if label_key not in keys:
        keys.append(label_key)
    resolved, base, src_json = _resolve_datalist(datalist, base_dir, section, label_key, keys)
    train = resolved[section]
    n_sel = round(rate * len(train))
    selected = {int(i) for i in np.random.default_rng(seed).permutation(len(train))[:n_sel]}
    out = Path(out_dir).resolve()
    targets = {i: _target(Path(train[i][label_key]), base, i, out / "labels") for i in sorted(selected)}
    _check_writes(out, targets, resolved, keys, src_json)

    samples = []
    new_entries = []
    for i, entry in enumerate(_progress(train, len(train), f"corrupt ({kind})", progress)):
        sample = _corrupt_entry(entry, label_key, transform, kind, targets.get(i))
        samples.append(sample)
        new_entries.append({**entry, label_key: sample["new"]})
    resolved[section] = new_entries

    manifest = {
        "kind": kind,
        "rate": rate,
        "seed": seed,
        "section": section,
        "transform": type(transform).__name__,
        "transform_kwargs": transform_kwargs,
        "num_samples": len(train),
        "num_selected": n_sel,
        "num_corrupted": sum(s["corrupted"] for s in samples),
        "source_datalist": str(src_json) if src_json is not None else None,
        "datalist": str(out / "datalist.json"),
        "samples": samples,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=2, default=str) + "\n")
    atomic_write_text(out / "datalist.json", json.dumps(resolved, indent=2, default=str) + "\n")
    return manifest


def _check_arguments(
    kind: str, rate: float, seed: int, transform_kwargs: Mapping[str, Any]
) -> tuple[str, float, int, _LabelNoiseTransform]:
    """Checked ``kind``/``rate``/``seed`` and the transform of ``kind`` (``prob=1``, fixed per sample)."""
    kind = _KIND_ALIASES.get(kind, kind)  # the papers call a systematic bias "systematic"
    kind = check_choice(_OWNER, "kind", kind, LABEL_NOISE_KINDS)
    rate = check_number(_OWNER, "rate", rate, 0.0, 1.0)
    seed = check_int(_OWNER, "seed", seed, minimum=0)
    for name in _RESERVED:
        if name in transform_kwargs:
            raise param_error(_OWNER, name, "left to corrupt_datalist (it sets prob=1, fixed_per_sample, seed)", name)
    cls = KIND_TRANSFORMS[kind]
    try:
        transform = cls(prob=1.0, fixed_per_sample=True, seed=seed, **transform_kwargs)
    except TypeError as e:
        raise ValueError(f"{_OWNER}: {cls.__name__} does not take {sorted(transform_kwargs)}: {e}") from e
    return kind, rate, seed, transform


def _resolve_datalist(
    datalist: Any, base_dir: Any, section: str, label_key: str, keys: Sequence[str]
) -> tuple[dict[str, Any], Path, Path | None]:
    """The datalist with absolute paths under ``keys``, checked to hold a ``section`` of label entries."""
    data, base, src_json = _load(datalist, base_dir)
    entries = data.get(section)
    if not isinstance(entries, list):
        raise ValueError(f"{_OWNER}: the datalist has no {section!r} list (sections: {sorted(data)}).")
    resolved = {k: [_resolve_entry(e, base, keys) for e in v] if isinstance(v, list) else v for k, v in data.items()}
    for i, entry in enumerate(resolved[section]):
        if not isinstance(entry, Mapping) or not isinstance(entry.get(label_key), str):
            raise ValueError(f"{_OWNER}: {section} entry {i} must be a dict with a {label_key!r} path. Got {entry!r}.")
    return resolved, base, src_json


def _check_writes(
    out: Path, targets: Mapping[int, Path], resolved: Mapping[str, Any], keys: Sequence[str], src_json: Path | None
) -> None:
    """Refuse an ``out_dir`` where a file we write would replace a source file (labels, images, the datalist)."""
    sources = _source_files(resolved, keys) | ({_real(src_json)} if src_json is not None else set())
    writes = [*targets.values(), out / "manifest.json", out / "datalist.json"]
    for w in writes:
        if _real(w) in sources:
            raise ValueError(
                f"{_OWNER}: 'out_dir' {str(out)!r} would overwrite the source file {str(w)!r}; choose a new folder."
            )
    if len({_real(w) for w in writes}) != len(writes):
        raise ValueError(f"{_OWNER}: two selected labels map to the same output file under {str(out)!r}.")


def _corrupt_entry(
    entry: Mapping[str, Any], label_key: str, transform: _LabelNoiseTransform, kind: str, target: Path | None
) -> dict[str, Any]:
    """The manifest record of one entry; a selected one (``target`` given) gets its corrupted copy written there."""
    original = str(entry[label_key])
    sid = str(entry["id"]) if entry.get("id") is not None else original
    record: dict[str, Any] | None = None
    if target is not None:
        array, affine = _read_label(Path(original))
        noisy = transform(array[None], sample_id=sid)[0]
        record = transform.last_record
        save_nifti(noisy, target, affine)
        if record is not None and not record["corrupted"]:
            warnings.warn(
                f"{_OWNER}: sample {sid!r} was selected but the {kind} corruption left it unchanged.", stacklevel=3
            )
    return {
        "id": sid,
        "selected": target is not None,
        "corrupted": bool(record["corrupted"]) if record is not None else False,
        "kind": kind if target is not None else None,
        "params": record["params"] if record is not None else None,
        "record": record,
        "original": original,
        "new": str(target) if target is not None else original,
    }


def read_corruption_manifest(manifest: Mapping[str, Any] | str | os.PathLike) -> list[dict[str, Any]]:
    """The per-sample records of a :func:`corrupt_datalist` manifest (its dict, or the path of ``manifest.json``).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: not JSON, or no ``samples`` list of records with an ``id``.

    Example:
        >>> read_corruption_manifest({"samples": [{"id": "a", "corrupted": True}]})[0]["id"]
        'a'
    """
    source = "the manifest"
    if not isinstance(manifest, Mapping):
        source = repr(str(manifest))
        if not Path(manifest).is_file():
            raise FileNotFoundError(f"read_corruption_manifest: the 'manifest' file {source} does not exist.")
        try:
            manifest = json.loads(Path(manifest).read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"read_corruption_manifest: {source} is not a JSON corruption manifest: {e}") from e
    samples = manifest.get("samples") if isinstance(manifest, Mapping) else None
    if not isinstance(samples, list) or not all(isinstance(r, Mapping) and "id" in r for r in samples):
        raise ValueError(f"read_corruption_manifest: {source} has no 'samples' list of records with an 'id'.")
    return [dict(r) for r in samples]


def corrupted_ids(manifest: Mapping[str, Any] | str | os.PathLike) -> list[str]:
    """Ids whose label :func:`corrupt_datalist` really changed (``corrupted``), in datalist order.

    Example:
        >>> corrupted_ids({"samples": [{"id": "a", "corrupted": True}, {"id": "b", "corrupted": False}]})
        ['a']
    """
    return [str(r["id"]) for r in read_corruption_manifest(manifest) if r.get("corrupted")]
