"""Small helpers shared across the package: parameter validation, stable seeds and sample ids."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ParameterError",
    "param_error",
    "check_probability",
    "check_int",
    "check_number",
    "check_choice",
    "stable_seed",
    "sample_id_of",
    "atomic_write_bytes",
    "atomic_write_text",
    "progress",
]


class ParameterError(ValueError):
    """A public parameter got an invalid value. Subclass of ``ValueError``."""


def param_error(owner: str, name: str, expected: str, value: Any) -> ParameterError:
    """Build the one message format used for bad parameters across the package.

    Example:
        >>> str(param_error("RandLabelNoise", "radius", "an int >= 0", -1))
        "The 'radius' parameter of RandLabelNoise must be an int >= 0. Got -1 instead."
    """
    return ParameterError(f"The {name!r} parameter of {owner} must be {expected}. Got {value!r} instead.")


def check_probability(owner: str, name: str, value: Any) -> float:
    """Return ``value`` as a float in [0, 1] or raise :class:`ParameterError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise param_error(owner, name, "a number in [0, 1]", value)
    if not 0.0 <= float(value) <= 1.0:
        raise param_error(owner, name, "a number in [0, 1]", value)
    return float(value)


def check_int(owner: str, name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int within the optional bounds or raise :class:`ParameterError`."""
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    expected = "an int" + (" " + " and ".join(bounds) if bounds else "")
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise param_error(owner, name, expected, value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise param_error(owner, name, expected, value)
    return int(value)


def check_number(
    owner: str,
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    open_min: bool = False,
    open_max: bool = False,
) -> float:
    """Return ``value`` as a finite float within the optional bounds or raise :class:`ParameterError`."""
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if open_min else '>='} {minimum}")
    if maximum is not None:
        parts.append(f"{'<' if open_max else '<='} {maximum}")
    expected = "a finite number" + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise param_error(owner, name, expected, value)
    v = float(value)
    if not np.isfinite(v):
        raise param_error(owner, name, expected, value)
    if minimum is not None and (v <= minimum if open_min else v < minimum):
        raise param_error(owner, name, expected, value)
    if maximum is not None and (v >= maximum if open_max else v > maximum):
        raise param_error(owner, name, expected, value)
    return v


def check_choice(owner: str, name: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices`` or raise :class:`ParameterError`."""
    options = list(choices)
    if value not in options:
        raise param_error(owner, name, "one of " + ", ".join(repr(c) for c in options), value)
    return value


def stable_seed(*parts: Any) -> int:
    """A 32-bit seed derived from ``parts`` that is identical across processes, platforms and runs.

    Python's ``hash`` is salted per process, so it cannot seed per-sample randomness that must agree
    between DataLoader workers; this uses SHA-256 of the parts' ``repr`` instead.

    Example:
        >>> stable_seed("case_001", 0) == stable_seed("case_001", 0)
        True
    """
    digest = hashlib.sha256(repr(tuple(str(p) for p in parts)).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")


def sample_id_of(data: Any, id_key: str = "id", label_key: str | None = "label") -> str | None:
    """Find a stable identity for a sample.

    Looks for ``data[id_key]``, then the ``filename_or_obj`` of ``data[label_key]``'s meta (or of
    ``data`` itself when it is a MetaTensor). Returns ``None`` when there is none.
    """
    if isinstance(data, Mapping):
        if id_key in data and data[id_key] is not None:
            value = data[id_key]
            return str(value)
        if label_key is not None and label_key in data:
            return sample_id_of(data[label_key], id_key=id_key, label_key=None)
        return None
    meta = getattr(data, "meta", None)
    if isinstance(meta, Mapping):
        name = meta.get("filename_or_obj")
        if name:
            return str(name)
    return None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically: a temp file in the same folder, then ``os.replace``.

    The file gets the permissions a plain ``open(path, "w")`` would give (``0o666`` minus the umask), not
    ``mkstemp``'s private ``0o600``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a full disk: f.write's error names no file
            raise OSError(e.errno, f"{e.strerror or e} (not written; the old file, if any, is kept)", str(path)) from e
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def progress(iterable: Any, total: int | None = None, desc: str = "", show: bool = True, unit: str = "case") -> Any:
    """``iterable`` wrapped in a tqdm progress bar when ``show`` (tqdm is imported only then).

    Example:
        >>> list(progress(range(3), show=False))
        [0, 1, 2]
    """
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, unit=unit)
