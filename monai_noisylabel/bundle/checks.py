"""Checks the bundles run on user data and folders before training starts, with messages that name the file.

- :func:`prepare_output_dir` / :func:`check_output_dir`: the output folder is writable and lies outside the
  dataset folder (the training configs' ``initialize`` step).
- :func:`check_finite_image`, :func:`check_segmentation_files`: each image is finite and each label an integer
  map of the image's shape with values in ``[0, num_classes)`` (voxels read, so truncated and non-image files are
  found here).
- :class:`CheckedCheckpointLoader`, :func:`load_network_weights`: checkpoint loads (``weights_only=True``) whose
  failures name the checkpoint file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.handlers import CheckpointLoader

from monai_noisylabel.data.io import read_voxels
from monai_noisylabel.utils import ParameterError, check_int, param_error

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = [
    "prepare_output_dir",
    "check_output_dir",
    "check_finite_image",
    "check_segmentation_files",
    "CheckedCheckpointLoader",
]


def check_output_dir(owner: str, output_dir: str | os.PathLike, dataset_dir: str | os.PathLike | None) -> Path:
    """Create ``output_dir`` if needed and check that it is writable and not inside ``dataset_dir``.

    Outputs inside the dataset folder would mix run files into the user's data (and into the next run's input
    listing), so they are refused: the dataset tree stays byte-identical across runs.

    Raises:
        ParameterError: ``output_dir`` is ``dataset_dir`` or inside it, or cannot be created or written.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> check_output_dir("prepare_echo_data", d + "/out", d + "/data").name
        'out'
        >>> check_output_dir("prepare_echo_data", d + "/data/out", d + "/data")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        monai_noisylabel.utils.ParameterError: The 'output_dir' parameter of prepare_echo_data must be ...
    """
    out = Path(output_dir)
    if dataset_dir is not None:
        data, resolved = Path(dataset_dir).resolve(), out.resolve()
        if resolved == data or data in resolved.parents:
            raise param_error(owner, "output_dir", f"a folder outside the dataset folder {str(data)!r}", str(out))
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise ParameterError(
            f"{param_error(owner, 'output_dir', 'a folder this process can create and write to', str(out))} "
            f"({e.strerror or e})"
        ) from e
    return out


def check_finite_image(where: str, key: str, path: str | os.PathLike) -> np.ndarray:
    """Read ``path`` in full and return its voxels; a NaN/inf or unreadable file raises naming ``where`` and it.

    Example:
        >>> import tempfile, numpy as np
        >>> from monai_noisylabel.data import save_nifti
        >>> p = save_nifti(np.full((2, 2), np.nan, np.float32), tempfile.mkdtemp() + "/i.nii.gz")
        >>> check_finite_image("case 'a'", "image", p)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: case 'a': the 'image' file ... has 4 NaN or infinite values.
    """
    try:
        arr = read_voxels(path)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from e
    if not np.issubdtype(arr.dtype, np.number) or not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum()) if np.issubdtype(arr.dtype, np.number) else arr.size
        raise ValueError(f"{where}: the {key!r} file {str(path)!r} has {bad} NaN or infinite values.")
    return arr


def prepare_output_dir(
    output_dir: str | os.PathLike, dataset_dir: str | os.PathLike, datalist: str | os.PathLike | None = None
) -> Path:
    """A training config's ``initialize`` step: create ``output_dir``, refusing one in the dataset folder.

    The dataset folder is the ``datalist``'s folder when one is given, else ``dataset_dir``. Runs before any data
    are read or any output written, so a refused folder is not even created.

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> prepare_output_dir(d + "/outputs", d + "/data").is_dir()
        True
    """
    data = Path(datalist).parent if datalist is not None else Path(dataset_dir)
    return check_output_dir("the bundle config", output_dir, data)


_PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _spatial(shape: Sequence[int]) -> tuple[int, ...]:
    """Drop trailing singleton axes: a 2D image stored as ``(H, W, 1)`` has spatial shape ``(H, W)``."""
    out = tuple(int(s) for s in shape)
    while len(out) > 2 and out[-1] == 1:
        out = out[:-1]
    return out


def check_segmentation_files(
    owner: str,
    entries: Sequence[Mapping[str, Any]],
    num_classes: int,
    *,
    image_key: str = "image",
    label_key: str = "label",
    source: str = "datalist",
) -> None:
    """Read every image and label of ``entries`` and check what a training run needs of them.

    Each image must be finite (no NaN or inf); each label must hold integers in ``[0, num_classes)`` and have the
    image's spatial shape (one channel: a 4-channel or one-hot label is refused, as the bundle trains on class
    indices). Both files are fully decompressed, so a truncated file is found here.

    Raises:
        ValueError: the message names the entry, the file and the offending values or shape.

    Example:
        >>> import tempfile, numpy as np
        >>> from monai_noisylabel.data import save_nifti
        >>> d = tempfile.mkdtemp()
        >>> e = {"id": "a", "image": str(save_nifti(np.ones((4, 4), np.float32), d + "/i.nii.gz")),
        ...      "label": str(save_nifti(np.full((4, 4), 5, np.uint8), d + "/l.nii.gz"))}
        >>> check_segmentation_files("prepare_echo_data", [e], 4)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: prepare_echo_data: datalist: entry 0 (id 'a'): the 'label' file ... holds class values [5] ...
    """
    num_classes = check_int(owner, "num_classes", num_classes, 2)
    for i, entry in enumerate(entries):
        where = f"{owner}: {source}: entry {i} (id {entry.get('id')!r})"
        label_path = str(entry[label_key])
        image = check_finite_image(where, image_key, entry[image_key])
        try:
            label = read_voxels(label_path)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from e
        if image.ndim == label.ndim + 1 and image.shape[-1] in (3, 4) and image.shape[:-1] == label.shape:
            raise ValueError(  # a colour PNG/JPEG (screenshot): say so rather than blame the label's shape
                f"{where}: the {image_key!r} file {str(entry[image_key])!r} has {image.shape[-1]} colour channels "
                f"(shape {tuple(image.shape)}; RGB or RGBA); images must be single-channel (grayscale) of the label's "
                f"shape {tuple(label.shape)}. Save them as grayscale."
            )
        if _spatial(label.shape) != _spatial(image.shape):
            paths = (str(entry[image_key]).lower(), label_path.lower())
            hint = (
                " MONAI reads PNG/JPEG files as (columns, rows): save image and label in the same format, or swap the "
                "axes of the one saved from a PNG's (rows, columns) array."
                if _spatial(label.shape)[::-1] == _spatial(image.shape)
                and any(p.endswith(_PIL_SUFFIXES) for p in paths)
                else ""
            )
            raise ValueError(
                f"{where}: the {label_key!r} file {label_path!r} must be one class-index map of the image's shape "
                f"{_spatial(image.shape)}. Got shape {tuple(label.shape)} instead.{hint}"
            )
        values = np.unique(label)
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            raise ValueError(f"{where}: the {label_key!r} file {label_path!r} has NaN or infinite values.")
        bad_values = values[(values != np.round(values)) | (values < 0) | (values >= num_classes)]
        if bad_values.size:
            raise ValueError(
                f"{where}: the {label_key!r} file {label_path!r} holds class values {bad_values[:5].tolist()} "
                f"outside the declared classes 0..{num_classes - 1} (num_classes={num_classes}); labels must be "
                "integer class indices."
            )


def _summary(e: BaseException) -> str:
    """``Type: message`` on one line, at most ~300 characters (``load_state_dict`` lists every key)."""
    text = " ".join(line.strip() for line in str(e).splitlines() if line.strip())
    text = text if len(text) <= 300 else text[:300] + " ..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def load_network_weights(
    network: torch.nn.Module, path: str | os.PathLike, *, owner: str, map_location: str | torch.device = "cpu"
) -> torch.nn.Module:
    """Load the state dict in ``path`` into ``network`` (``torch.load(weights_only=True)``: no code runs).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a ``torch.save`` file of tensors or was written for another network; the
            message names ``owner``, the file and the reason.

    Example:
        >>> import tempfile, torch
        >>> p = tempfile.mkdtemp() + "/model.pt"
        >>> torch.save(torch.nn.Linear(2, 2).state_dict(), p)
        >>> isinstance(load_network_weights(torch.nn.Linear(2, 2), p, owner="demo"), torch.nn.Linear)
        True
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"{owner}: the checkpoint file {str(path)!r} does not exist; train first.")
    try:
        network.load_state_dict(torch.load(str(path), map_location=map_location, weights_only=True))
    except Exception as e:  # UnpicklingError, EOFError, IndexError on garbage; RuntimeError on another network
        raise ValueError(
            f"{owner}: the checkpoint file {str(path)!r} could not be loaded into {type(network).__name__}: "
            f"{_summary(e)}. Was it written by this bundle with the same network settings?"
        ) from e
    return network


class CheckedCheckpointLoader(CheckpointLoader):
    """MONAI's ``CheckpointLoader`` that names the checkpoint file when it is missing or cannot be loaded.

    A missing file, a file that is not a ``torch.save`` checkpoint (read with ``weights_only=True``, as MONAI
    does: no code from the file runs) or a checkpoint of another network then stops the run with a
    ``FileNotFoundError`` / ``ValueError`` that names the file, not a deep traceback from ``torch.load`` or
    ``load_state_dict``. Takes the arguments of ``monai.handlers.CheckpointLoader``.

    Example:
        >>> import tempfile, torch
        >>> p = tempfile.mkdtemp() + "/model.pt"
        >>> torch.save(torch.nn.Linear(2, 2).state_dict(), p)
        >>> CheckedCheckpointLoader(p, {"model": torch.nn.Linear(2, 2)}).load_path == p
        True
    """

    def __init__(self, load_path: str, load_dict: dict, **kwargs: Any) -> None:
        super().__init__(str(load_path), load_dict, **kwargs)

    def __call__(self, engine: Engine) -> None:
        if not Path(self.load_path).is_file():  # checked when the engine starts: MONAI's check_properties builds
            raise FileNotFoundError(  # the handlers of a bundle that has not been trained yet
                f"CheckpointLoader: the checkpoint file {self.load_path!r} does not exist; train first."
            )
        try:
            super().__call__(engine)
        except Exception as e:  # UnpicklingError, EOFError, RuntimeError (size mismatch), KeyError (missing key)
            raise ValueError(
                f"CheckpointLoader: the checkpoint file {self.load_path!r} could not be loaded into "
                f"{sorted(self.load_dict)}: {_summary(e)}. Was it written by this bundle with the same network "
                "settings?"
            ) from e
