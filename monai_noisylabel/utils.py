"""The helpers every package shares: argument checks, array/tensor conversion, networks, files, seeds, ids.

This is the one internal helpers module: a name two packages need lives here, public, rather than in one
package's private module. torch and MONAI are imported inside the functions that need them, so importing this
module (the command line does) stays light.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch
    from monai.config import NdarrayOrTensor
    from monai.data import MetaTensor

__all__ = [
    "ParameterError",
    "param_error",
    "check_probability",
    "check_int",
    "check_number",
    "check_choice",
    "check_mapping",
    "check_stage_fractions",
    "as_numpy",
    "as_float_array",
    "as_int_array",
    "as_ids",
    "check_finite",
    "as_plain_tensor",
    "split_meta",
    "unwrap_network",
    "is_main_process",
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


def check_mapping(owner: str, name: str, value: Any) -> Mapping[str, Any] | None:
    """Return ``value`` if it is a mapping or ``None``, else raise :class:`ParameterError`.

    Example:
        >>> check_mapping("demo", "summary", {"a": 1})
        {'a': 1}
    """
    if value is not None and not isinstance(value, Mapping):
        raise param_error(owner, name, "a mapping or None", type(value).__name__)
    return value


def check_stage_fractions(owner: str, name: str, value: Any) -> tuple[float, float]:
    """A ``(start, end)`` pair of fractions with ``0 <= start < end <= 1``, else :class:`ParameterError`.

    Example:
        >>> check_stage_fractions("demo", "stage", [0, 0.5])
        (0.0, 0.5)
    """
    expected = "a pair (start, end) of fractions with 0 <= start < end <= 1"
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise param_error(owner, name, expected, value)
    try:
        start, end = float(value[0]), float(value[1])
    except (TypeError, ValueError):
        raise param_error(owner, name, expected, value) from None
    if not (0.0 <= start < end <= 1.0):
        raise param_error(owner, name, expected, value)
    return start, end


# ------------------------------------------------------------------------------------- arrays and tensors
def as_numpy(owner: str, name: str, value: Any) -> np.ndarray:
    """numpy arrays, torch tensors (MetaTensor too) and nested lists as a numpy array, else :class:`ParameterError`.

    Example:
        >>> as_numpy("demo", "image", [[1, 2]]).shape
        (1, 2)
    """
    from monai.utils import convert_to_numpy

    try:
        return np.asarray(convert_to_numpy(value))
    except (TypeError, ValueError) as e:
        raise param_error(owner, name, "an array or tensor", type(value).__name__) from e


def as_float_array(owner: str, name: str, value: Any, *, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """A float64 numpy copy of ``value`` (numpy, torch, list); the caller's object is never touched.

    Example:
        >>> as_float_array("demo", "scores", [1, 2]).dtype
        dtype('float64')
    """
    import torch

    if isinstance(value, torch.Tensor):
        arr = value.detach().cpu().to(torch.float64).numpy()
    else:
        try:
            arr = np.array(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise param_error(owner, name, "an array of numbers", type(value).__name__) from None
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            expected = " or ".join(f"{d}-D" for d in allowed)
            raise param_error(owner, name, f"a {expected} array", f"an array of shape {arr.shape}")
    return arr


def as_int_array(owner: str, name: str, value: Any) -> np.ndarray:
    """An int64 numpy copy of an integer-valued array; raises if it holds fractions or non-finite values."""
    import torch

    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype == bool:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.number):
        raise param_error(owner, name, "an integer-valued array", f"an array of dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise param_error(owner, name, "an integer-valued array", "an array with fractional or non-finite values")
    return arr.astype(np.int64)


def check_finite(owner: str, name: str, arr: np.ndarray) -> None:
    """Raise if ``arr`` holds NaN or inf."""
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise param_error(owner, name, "finite (no NaN or inf)", f"an array with {bad} non-finite value(s)")


def as_ids(owner: str, ids: Any, *, expected_len: int | None = None) -> list[str]:
    """Sample ids as a list of ``str``; raises on a bad container, a wrong length or an id that repeats.

    Example:
        >>> as_ids("demo", ["a", 7])
        ['a', '7']
    """
    import torch

    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().reshape(-1).tolist()
    elif isinstance(ids, np.ndarray):
        ids = ids.reshape(-1).tolist()
    elif isinstance(ids, (str, bytes)) or not isinstance(ids, Sequence):
        raise param_error(owner, "ids", "a sequence of sample ids (str or int)", ids)
    out = []
    for i in ids:
        if i is None or isinstance(i, (float, bool)) or not isinstance(i, (str, int, np.integer)):
            raise param_error(owner, "ids", "a sequence of sample ids (str or int)", ids)
        out.append(str(int(i)) if isinstance(i, np.integer) else str(i))
    if expected_len is not None and len(out) != expected_len:
        raise param_error(owner, "ids", f"a sequence of {expected_len} ids (one per sample)", f"{len(out)} ids")
    seen: set[str] = set()
    for i in out:
        if i in seen:
            raise param_error(owner, "ids", "unique within one call (ids that collide mix two samples)", i)
        seen.add(i)
    return out


def as_plain_tensor(
    value: Any, device: torch.device | str | None = None, *, owner: str | None = None, name: str = "value"
) -> torch.Tensor:
    """``value`` as a plain ``torch.Tensor``: the one array/tensor converter of the package.

    A MetaTensor loses its metadata (no MetaTensor overhead; the autograd graph is kept), a tensor is returned
    as is, a numpy array is shared without a copy where possible. With ``owner`` only a tensor or a numeric
    numpy array is accepted (anything else raises :class:`ParameterError` naming ``owner`` and ``name``);
    without it, anything ``torch.as_tensor`` takes. ``device``: moved there (no copy when already there).

    Example:
        >>> import numpy as np
        >>> a = np.zeros((2, 3), dtype=np.float32)
        >>> t = as_plain_tensor(a)
        >>> t.shape, t.dtype, np.shares_memory(a, t.numpy())
        (torch.Size([2, 3]), torch.float32, True)
        >>> as_plain_tensor("x", owner="demo", name="label")
        Traceback (most recent call last):
        ...
        monai_noisylabel.utils.ParameterError: The 'label' parameter of demo must be a numeric torch.Tensor or numpy.ndarray. Got 'str' instead.
    """
    import torch

    if isinstance(value, torch.Tensor):
        t = value.as_tensor() if hasattr(value, "as_tensor") else value
    elif isinstance(value, np.ndarray) and (value.dtype == np.bool_ or np.issubdtype(value.dtype, np.number)):
        t = torch.from_numpy(np.ascontiguousarray(value))
    elif owner is not None:
        raise param_error(owner, name, "a numeric torch.Tensor or numpy.ndarray", type(value).__name__)
    else:
        t = torch.as_tensor(value)
    return t.to(device=device, non_blocking=True) if device is not None else t


def split_meta(img: NdarrayOrTensor) -> tuple[torch.Tensor, MetaTensor | None]:
    """A transform's input as a plain tensor plus the MetaTensor to take meta from (``None``: meta not tracked).

    The "convert in" half of a MONAI transform (``convert_to_tensor(..., track_meta=get_track_meta())``);
    ``convert_to_dst_type`` is the "convert out" half.

    Example:
        >>> import numpy as np
        >>> t, meta = split_meta(np.ones((1, 2, 2)))
        >>> type(t).__name__, type(meta).__name__
        ('Tensor', 'MetaTensor')
    """
    from monai.data import MetaTensor, get_track_meta
    from monai.utils import convert_to_tensor

    t = convert_to_tensor(img, track_meta=get_track_meta())
    if isinstance(t, MetaTensor):
        return t.as_tensor(), t
    return t, None


# ------------------------------------------------------------------------------------------------ networks
def unwrap_network(network: torch.nn.Module) -> torch.nn.Module:
    """The module inside ``DataParallel``, ``DistributedDataParallel`` and ``torch.compile`` wrappers (nested too).

    Eval passes must not trigger DDP hooks, and copies (an EMA teacher) must not copy a compiled wrapper.

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(2, 2)
        >>> unwrap_network(torch.nn.DataParallel(net)) is net
        True
    """
    import torch

    for _ in range(4):
        if isinstance(network, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            network = network.module
        elif isinstance(getattr(network, "_orig_mod", None), torch.nn.Module):  # torch.compile's OptimizedModule
            network = network._orig_mod  # type: ignore[assignment]
        else:
            break
    return network


def is_main_process() -> bool:
    """``True`` on rank 0 of an initialized process group, and always without one (the rank that writes files).

    Example:
        >>> is_main_process()
        True
    """
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


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
