"""Decathlon-style datalists: load with checks that fail early and name the file, write atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monai_noisylabel.data.io import read_spatial_shape
from monai_noisylabel.utils import atomic_write_text
from monai_noisylabel.utils import progress as _progress

__all__ = [
    "DatalistError",
    "read_datalist_json",
    "load_datalist",
    "check_datalist",
    "write_datalist",
    "resolve_paths",
    "file_keys",
]

#: file endings :func:`file_keys` takes for image/label paths (what MONAI's readers load)
IMAGE_SUFFIXES = (".nii", ".nii.gz", ".mhd", ".mha", ".nrrd", ".dcm", ".png", ".jpg", ".jpeg", ".npy", ".npz")


class DatalistError(ValueError):
    """A datalist is malformed: a missing section or key, colliding ids, mismatched shapes."""


def _entry_name(i: int, entry: Mapping[str, Any]) -> str:
    return f"entry {i}" + (f" (id {entry['id']!r})" if "id" in entry else "")


def resolve_paths(entry: Mapping[str, Any], base_dir: str | os.PathLike, keys: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``entry`` with the paths under ``keys`` made absolute against ``base_dir``.

    A key may hold one path or a list of paths (e.g. several raters).
    """
    base = Path(base_dir)
    out = dict(entry)
    for key in keys:
        if key not in out or out[key] is None:
            continue
        value = out[key]
        if isinstance(value, (list, tuple)):
            out[key] = [str(base / v) if not os.path.isabs(str(v)) else str(v) for v in value]
        elif isinstance(value, (str, os.PathLike)):
            out[key] = str(base / value) if not os.path.isabs(str(value)) else str(value)
    return out


def _is_image_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value).lower().endswith(IMAGE_SUFFIXES)


def file_keys(entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """The keys of ``entries`` that hold image files (one path or a list of paths), in first-seen order.

    Lets one check work on every datalist the package writes: ``image``/``label`` (echo, CAMUS),
    ``image``/``raters``/``bone``/``truth`` (knee), ``image``/``confidence``/``truth`` (lung ultrasound).

    Example:
        >>> file_keys([{"id": "a", "image": "a.nii.gz", "raters": ["r1.nii.gz", "r2.nii.gz"], "sf_ratio": 300}])
        ['image', 'raters']
    """
    keys: list[str] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        for key, value in entry.items():
            values = value if isinstance(value, (list, tuple)) and value else [value]
            if key not in keys and all(_is_image_path(v) for v in values):
                keys.append(key)
    return keys


def check_datalist(
    entries: Sequence[Mapping[str, Any]],
    keys: Sequence[str] = ("image", "label"),
    *,
    check_shapes: bool = True,
    source: str = "datalist",
    progress: bool = False,
) -> None:
    """Check a list of (absolute-path) entries before any training starts.

    ``progress`` shows a progress bar over the entries.

    Raises:
        FileNotFoundError: a file under one of ``keys`` does not exist (message names entry and file).
        DatalistError: an entry misses a key, two entries share an ``id``, or the image and the
            other keys' files have different spatial shapes (read from headers only).

    Example:
        >>> check_datalist([], keys=("image",))
    """
    seen: dict[str, int] = {}
    for i, entry in enumerate(_progress(entries, len(entries), f"check {Path(source).name}", progress)):
        name = _entry_name(i, entry)
        if not isinstance(entry, Mapping):
            raise DatalistError(f"{source}: {name} must be a dict with {list(keys)}. Got {entry!r} instead.")
        if "id" in entry:
            sid = str(entry["id"])
            if sid in seen:
                raise DatalistError(f"{source}: {name} repeats the id of entry {seen[sid]}; ids must be unique.")
            seen[sid] = i
        shapes: dict[str, tuple[int, ...]] = {}
        for key in keys:
            if key not in entry:
                raise DatalistError(f"{source}: {name} has no {key!r} key (keys: {sorted(entry)}).")
            paths = entry[key] if isinstance(entry[key], (list, tuple)) else [entry[key]]
            for p in paths:
                if not os.path.isfile(str(p)):
                    raise FileNotFoundError(f"{source}: {name}: the {key!r} file {str(p)!r} does not exist.")
                if check_shapes:
                    try:
                        shape = read_spatial_shape(p)
                    except ValueError as e:
                        raise DatalistError(f"{source}: {name}: the {key!r} file {e}") from e
                    if shape is not None:
                        shapes[f"{key} {p}"] = shape
        # Compare the spatial axes all files share: a channel-last map (H, W, C) matches an (H, W) image.
        ndim = min((len(s) for s in shapes.values()), default=0)
        if check_shapes and len({s[:ndim] for s in shapes.values()}) > 1:
            detail = ", ".join(f"{k} has shape {v}" for k, v in shapes.items())
            raise DatalistError(f"{source}: {name}: spatial shapes differ: {detail}.")


def read_datalist_json(path: str | os.PathLike, owner: str = "load_datalist") -> dict[str, Any]:
    """Read a datalist JSON object, with errors that name ``owner`` and the file.

    Raises:
        FileNotFoundError: the file does not exist.
        DatalistError: the file is not valid JSON or does not hold a JSON object.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{owner}: the datalist file {str(path)!r} does not exist.")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatalistError(f"{owner}: {str(path)!r} is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise DatalistError(f"{owner}: {str(path)!r} must hold a JSON object. Got {type(data).__name__} instead.")
    return data


def load_datalist(
    path: str | os.PathLike,
    section: str = "training",
    *,
    base_dir: str | os.PathLike | None = None,
    keys: Sequence[str] = ("image", "label"),
    path_keys: Sequence[str] | None = None,
    check_files: bool = True,
    check_shapes: bool = True,
) -> list[dict[str, Any]]:
    """Load one section of a decathlon-style datalist JSON with absolute paths, checked.

    Relative paths are resolved against ``base_dir`` (default: the JSON's folder). ``keys`` must be
    present in every entry and are checked (existence, shapes); ``path_keys`` (default ``keys``) lists
    every key whose values are paths. Entries without an ``id`` get their label (or image) path as id.

    Raises:
        FileNotFoundError: the datalist or a listed file does not exist.
        DatalistError: malformed JSON, missing section, see :func:`check_datalist`.

    Example:
        >>> import tempfile
        >>> from monai_noisylabel.data.synthetic import generate_echo_dataset
        >>> p = generate_echo_dataset(tempfile.mkdtemp(), num=6, size=(32, 32))
        >>> len(load_datalist(p, "training")) > 0
        True
    """
    path = Path(path)
    data = read_datalist_json(path)
    if section not in data:
        raise DatalistError(f"load_datalist: {str(path)!r} has no {section!r} section (found {sorted(data)}).")
    base = Path(base_dir) if base_dir is not None else path.parent
    pkeys = list(path_keys) if path_keys is not None else list(keys)
    entries = []
    for item in data[section]:
        if isinstance(item, str):  # decathlon "test" sections may list bare image paths
            item = {"image": item}
        entry = resolve_paths(item, base, pkeys)
        if "id" not in entry:
            entry["id"] = str(entry.get("label", entry.get("image")))
        entries.append(entry)
    if check_files:
        check_datalist(entries, keys, check_shapes=check_shapes, source=f"{path} ({section})")
    return entries


def write_datalist(datalist: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write ``datalist`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(datalist, indent=2, default=str) + "\n")
