"""Pure kernels of the label-noise transforms: torch tensors in, torch tensors out, no side effects.

Every kernel takes a channel-first, single-channel integer label map as a plain ``torch.Tensor``
(``(1, H, W)`` or ``(1, H, W, D)``), returns a new tensor of the same shape, dtype and device, never
modifies its input and is deterministic: all randomness is drawn by the transforms in :mod:`.array`
and passed in as parameters (the random-parameters / deterministic-apply split), so the parameters a
transform records are enough to replay what it did (:func:`apply_ops`).

Conventions shared by the kernels:

- Structuring element: the Euclidean ball ``{o : |o|^2 <= r^2}`` (a disk in 2D), in voxels.
- Image border: outside the image counts as "unchanged": dilation brings nothing in from outside and
  erosion does not eat a structure from the image edge (MONAI's ``erode`` default, ``pad_value=1``).
- Dilation overwrites every other class it grows into. Operations in a list run in order, each on the
  result of the previous one, so where two dilated structures compete the later one wins.
- Voxels a structure gives up (erosion, the back side of a shift) are filled with ``fill``: an int
  label, or ``"nearest"``: the label of the nearest other structure, grown one voxel per step with
  the full ``3^d`` neighbourhood (chessboard distance; ties go to the larger label). Voxels no other
  structure reaches get ``background``.
- Connected components use full connectivity (8 in 2D, 26 in 3D), as MONAI's
  ``get_largest_connected_component_mask`` does by default.

Binary morphology is a decomposition of the ball into shifted in-place ``|=`` / ``&=`` of 1D
dilations along the last axis (one per row of the ball), which gives exactly the result of
``scipy.ndimage.binary_dilation`` / ``binary_erosion(border_value=1)`` with the same ball and runs
faster on CPU and on CUDA tensors (``benchmarks/bench_label_noise.py``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from monai_noisylabel.utils import param_error

__all__ = [
    "OPS",
    "class_mask",
    "binary_dilate_ball",
    "binary_erode_ball",
    "fill_nearest",
    "dilate_class",
    "erode_class",
    "shift_class",
    "jitter_labels",
    "drop_class",
    "drop_component",
    "component_points",
    "apply_ops",
    "check_label",
    "present_labels",
    "count_changed",
]

OPS = ("dilate", "erode", "shift", "jitter", "drop", "drop_component")
"""The primitive operations a label-noise record can hold, in :func:`apply_ops` form."""

_SHIFT_STEPS_CAP = 1 << 30  # "until nothing changes": the fill loop also stops when it makes no progress


class _Desc(str):
    """A description shown without quotes in :func:`param_error` messages."""

    def __repr__(self) -> str:
        return str(self)


# ---------------------------------------------------------------------------------------------
# binary morphology on spatial bool tensors (no channel axis)
# ---------------------------------------------------------------------------------------------


def class_mask(lab: torch.Tensor, value: int) -> torch.Tensor:
    """``lab == value`` as a bool tensor on ``lab``'s device.

    On CPU this uses numpy's comparison on the shared memory: torch's CPU comparison kernels measured
    about ten times slower for integer label maps (torch 2.13), and this is the most frequent operation.

    Example:
        >>> class_mask(torch.tensor([0, 2, 2]), 2).tolist()
        [False, True, True]
    """
    if lab.device.type == "cpu" and not lab.requires_grad:
        return torch.from_numpy(np.equal(lab.numpy(), value))
    return lab == value


def _any(mask: torch.Tensor, dim: int | tuple[int, ...] | None = None) -> Any:
    """``mask.any(dim)`` through a uint8 view (torch's bool reductions measured ~25x slower on CPU).

    Returns a Python bool when ``dim`` is ``None``, else a bool tensor.
    """
    as_bytes = mask.view(torch.uint8)
    if dim is None:
        return bool(as_bytes.max()) if mask.numel() else False
    return as_bytes.amax(dim=dim).bool()


def _pair(n: int, o: int) -> tuple[slice, slice]:
    """Destination and source slices along an axis of length ``n`` for ``dst[i] op= src[i - o]``."""
    if o >= 0:
        return slice(o, n), slice(0, max(n - o, 0))
    return slice(0, n + o), slice(-o, n)


def _bbox(mask: torch.Tensor, margin: int) -> tuple[slice, ...] | None:
    """Bounding box of ``mask`` grown by ``margin`` voxels (clipped to the array); ``None`` if empty."""
    box = []
    for ax in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != ax)
        hit = torch.nonzero(_any(mask, others) if others else mask).flatten()
        if hit.numel() == 0:
            return None
        lo, hi = int(hit[0]), int(hit[-1])
        box.append(slice(max(lo - margin, 0), min(hi + margin + 1, mask.shape[ax])))
    return tuple(box)


def _morph(mask: torch.Tensor, radius: int, dilate: bool) -> torch.Tensor:
    """Binary dilation (``dilate=True``) or erosion of a spatial bool tensor by a ball of ``radius``."""
    if radius == 0 or mask.numel() == 0:
        return mask.clone()
    n_last = mask.shape[-1]
    rows = [mask]  # rows[w]: 1D dilation/erosion by w along the last axis
    cur = mask.clone()
    for w in range(1, radius + 1):
        for o in (w, -w):
            d, s = _pair(n_last, o)
            if dilate:
                cur[..., d] |= mask[..., s]
            else:
                cur[..., d] &= mask[..., s]
        rows.append(cur.clone())
    out = torch.zeros_like(mask) if dilate else torch.ones_like(mask)
    r2 = radius * radius
    lead = mask.ndim - 1
    for offsets in itertools.product(range(-radius, radius + 1), repeat=lead):
        s2 = sum(o * o for o in offsets)
        if s2 > r2:
            continue
        pairs = [_pair(mask.shape[ax], o) for ax, o in enumerate(offsets)]
        dst = tuple(p[0] for p in pairs)
        src = tuple(p[1] for p in pairs)
        row = rows[math.isqrt(r2 - s2)]
        if dilate:
            out[dst] |= row[src]
        else:
            out[dst] &= row[src]
    return out


def _morph_cropped(mask: torch.Tensor, radius: int, dilate: bool) -> torch.Tensor:
    """:func:`_morph` computed inside the bounding box of ``mask`` grown by ``radius`` (same result)."""
    box = _bbox(mask, radius)
    if box is None:
        return mask.clone()
    out = mask.clone()
    out[box] = _morph(mask[box], radius, dilate)
    return out


def binary_dilate_ball(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilate a spatial (no channel axis) boolean mask by a Euclidean ball of ``radius`` voxels.

    Equal to ``scipy.ndimage.binary_dilation(mask, ball)`` with ``ball = {o : |o|^2 <= radius^2}``.

    Example:
        >>> m = torch.zeros(5, 5, dtype=torch.bool)
        >>> m[2, 2] = True
        >>> binary_dilate_ball(m, 1).int().tolist()
        [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    """
    return _morph_cropped(mask.bool(), int(radius), dilate=True)


def binary_erode_ball(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Erode a spatial boolean mask by a Euclidean ball; outside the image counts as foreground.

    Equal to ``scipy.ndimage.binary_erosion(mask, ball, border_value=1)``.

    Example:
        >>> m = torch.ones(3, 4, dtype=torch.bool)
        >>> m[1, 1] = False
        >>> binary_erode_ball(m, 1).int().tolist()
        [[1, 0, 1, 1], [0, 0, 0, 1], [1, 0, 1, 1]]
    """
    return _morph_cropped(mask.bool(), int(radius), dilate=False)


def _box_max(x: torch.Tensor) -> torch.Tensor:
    """Maximum over the full ``3^d`` neighbourhood (separable; the border adds nothing)."""
    for ax in range(x.ndim):
        y = x.clone()
        n = x.shape[ax]
        for o in (1, -1):
            d, s = _pair(n, o)
            dst = (slice(None),) * ax + (d,)
            src = (slice(None),) * ax + (s,)
            torch.maximum(y[dst], x[src], out=y[dst])
        x = y
    return x


def fill_nearest(
    label: torch.Tensor, hole: torch.Tensor, exclude: int, background: int = 0, max_steps: int | None = None
) -> torch.Tensor:
    """Fill the ``hole`` voxels of a spatial label map with the nearest label other than ``exclude``.

    Labels grow into the hole one voxel per step over the full ``3^d`` neighbourhood; where several
    reach a voxel in the same step the larger label wins. Voxels of class ``exclude`` block the growth.
    Hole voxels still empty after ``max_steps`` steps (or when growth stops) get ``background``.

    Args:
        label: spatial integer label map (no channel axis).
        hole: boolean mask of the voxels to fill, same shape.
        exclude: the class that must not fill the hole (the one that gave the voxels up).
        background: label of hole voxels no other class reaches.
        max_steps: most growth steps; ``None`` grows until nothing changes. Also the margin of the
            bounding box the computation is restricted to (exact for this many steps).

    Example:
        >>> lab = torch.tensor([[0, 1, 1, 1, 2]])
        >>> fill_nearest(lab, lab == 1, exclude=1).tolist()  # the middle voxel ties: the larger label wins
        [[0, 0, 2, 2, 2]]
    """
    out = label.clone()
    box = _bbox(hole, (max_steps + 1) if max_steps is not None else 0)
    if box is None:
        return out
    if max_steps is None:
        box = tuple(slice(None) for _ in range(hole.ndim))
    sub, todo = label[box], hole[box].clone()
    # labels are stored +1 in the smallest dtype that holds them (0 = not filled yet): less memory traffic
    top = int(sub.max()) if sub.numel() else 0
    enc = _int_dtype(top)
    cur = (sub.to(enc) + 1).masked_fill_(todo | class_mask(sub, exclude), 0)
    steps = _SHIFT_STEPS_CAP if max_steps is None else int(max_steps)
    for _ in range(steps):
        grown = _box_max(cur)
        new = todo & grown.bool()
        if not _any(new):
            break
        cur.add_(grown.mul_(new))  # the voxels in ``new`` hold 0: adding sets them
        todo &= ~new
        if not _any(todo):
            break
    filled = (cur.to(out.dtype) - 1).masked_fill_(todo, int(background))
    out[box] = torch.where(hole[box], filled, sub)
    return out


def _fill(label: torch.Tensor, hole: torch.Tensor, cls: int, fill: Any, background: int, steps: int | None) -> Any:
    if fill == "nearest":
        return fill_nearest(label, hole, exclude=cls, background=background, max_steps=steps)
    return label.masked_fill(hole, int(fill))


# ---------------------------------------------------------------------------------------------
# label-map kernels on channel-first (1, *spatial) tensors
# ---------------------------------------------------------------------------------------------


def _spatial(label: torch.Tensor) -> torch.Tensor:
    if label.ndim not in (3, 4) or label.shape[0] != 1:
        raise ValueError(
            f"label-noise kernels need a channel-first single-channel label (1, H, W) or (1, H, W, D). "
            f"Got shape {tuple(label.shape)} instead."
        )
    return label[0]


def dilate_class(label: torch.Tensor, cls: int, radius: int) -> torch.Tensor:
    """Grow class ``cls`` by a ball of ``radius`` voxels; it overwrites every class it grows into.

    Example:
        >>> lab = torch.tensor([[[0, 0, 1, 2, 2, 0]]])
        >>> dilate_class(lab, 1, 2).tolist()
        [[[1, 1, 1, 1, 1, 0]]]
    """
    lab = _spatial(label)
    grown = binary_dilate_ball(class_mask(lab, cls), radius)
    return lab.masked_fill(grown, cls)[None]


def erode_class(
    label: torch.Tensor, cls: int, radius: int, fill: int | str = "nearest", background: int = 0
) -> torch.Tensor:
    """Shrink class ``cls`` by a ball of ``radius`` voxels; the freed voxels get ``fill`` (see module doc).

    Example:
        >>> lab = torch.tensor([[[0, 1, 1, 1, 1, 2]]])
        >>> erode_class(lab, 1, 1).tolist()
        [[[0, 0, 1, 1, 2, 2]]]
        >>> erode_class(lab, 1, 1, fill=0).tolist()
        [[[0, 0, 1, 1, 0, 2]]]
    """
    lab = _spatial(label)
    mask = class_mask(lab, cls)
    hole = mask & ~binary_erode_ball(mask, radius)
    return _fill(lab, hole, cls, fill, background, int(radius))[None]


def shift_class(
    label: torch.Tensor, cls: int, offset: Sequence[int], fill: int | str = "nearest", background: int = 0
) -> torch.Tensor:
    """Translate class ``cls`` by ``offset`` voxels (one int per spatial axis).

    The moved structure overwrites what it moves onto; the voxels it leaves get ``fill`` (see module
    doc); whatever moves past the image edge is lost.

    Example:
        >>> lab = torch.tensor([[[0, 1, 1, 0, 2]]])
        >>> shift_class(lab, 1, [0, 2]).tolist()
        [[[0, 0, 0, 1, 1]]]
    """
    lab = _spatial(label)
    offset = [int(o) for o in offset]
    if len(offset) != lab.ndim:
        raise ValueError(f"shift_class: 'offset' needs {lab.ndim} values (one per spatial axis). Got {offset} instead.")
    mask = class_mask(lab, cls)
    moved = torch.zeros_like(mask)
    pairs = [_pair(n, o) for n, o in zip(lab.shape, offset)]
    moved[tuple(p[0] for p in pairs)] = mask[tuple(p[1] for p in pairs)]
    out = lab.masked_fill(moved, cls)
    return _fill(out, mask & ~moved, cls, fill, background, None)[None]


def _jitter_field(shape: Sequence[int], magnitude: float, spacing: int, seed: int, device: Any) -> torch.Tensor:
    """Smooth displacement field ``(ndim, *shape)`` bounded by ``magnitude``: uniform control points
    every ``spacing`` voxels (from a CPU ``torch.Generator`` seeded with ``seed``), linearly interpolated."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    coarse = [max(2, math.ceil(n / spacing) + 1) for n in shape]
    ctrl = (torch.rand((len(shape), *coarse), generator=gen, dtype=torch.float32) * 2 - 1) * float(magnitude)
    mode = "bilinear" if len(shape) == 2 else "trilinear"
    return F.interpolate(ctrl[None].to(device), size=tuple(shape), mode=mode, align_corners=True)[0]


def jitter_labels(label: torch.Tensor, magnitude: float, spacing: int, seed: int) -> torch.Tensor:
    """Elastic boundary jitter: resample the label map (nearest neighbour) along a smooth random field.

    Every voxel takes the label found at most ``magnitude`` voxels away along a displacement field
    with control points every ``spacing`` voxels, drawn from ``seed``; the output holds only labels of
    the input. Replays are exact on the same device type (the field is interpolated on the label's
    device, whose float rounding may differ between CPU and CUDA).

    Example:
        >>> lab = torch.zeros(1, 16, 16, dtype=torch.long)
        >>> lab[0, 4:12, 4:12] = 1
        >>> out = jitter_labels(lab, magnitude=2.0, spacing=8, seed=0)
        >>> out.shape, sorted(out.unique().tolist()), torch.equal(out, jitter_labels(lab, 2.0, 8, 0))
        (torch.Size([1, 16, 16]), [0, 1], True)
    """
    lab = _spatial(label)
    if magnitude <= 0 or lab.numel() == 0:
        return label.clone()
    field = _jitter_field(lab.shape, magnitude, spacing, seed, lab.device)
    idx = []
    for ax, n in enumerate(lab.shape):
        shape = [1] * lab.ndim
        shape[ax] = n
        base = torch.arange(n, device=lab.device, dtype=torch.float32).reshape(shape)
        idx.append(torch.round(base + field[ax]).clamp_(0, n - 1).long())
    return lab[tuple(idx)][None]


def drop_class(label: torch.Tensor, cls: int, background: int = 0) -> torch.Tensor:
    """Set every voxel of class ``cls`` to ``background``.

    Example:
        >>> drop_class(torch.tensor([[[0, 1, 3, 3]]]), 3).tolist()
        [[[0, 1, 0, 0]]]
    """
    lab = _spatial(label)
    return lab.masked_fill(class_mask(lab, cls), background)[None]


def _components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    return ndimage.label(mask, structure=np.ones((3,) * mask.ndim, dtype=bool))


def component_points(mask: torch.Tensor) -> list[list[int]]:
    """The first voxel (raster order) of each connected component of a spatial boolean mask.

    Components are listed in raster order of those voxels (``scipy.ndimage.label`` on CPU, full
    connectivity, inside the mask's bounding box); a point identifies its component for
    :func:`drop_component`.

    Example:
        >>> m = torch.tensor([[1, 0, 0, 1], [1, 0, 0, 0]], dtype=torch.bool)
        >>> component_points(m)
        [[0, 0], [0, 3]]
    """
    box = _bbox(mask, 0)
    if box is None:
        return []
    sub = mask[box].cpu().numpy()
    labels, num = _components(sub)
    flat = labels.ravel()
    idx = np.flatnonzero(flat)
    values = flat[idx]
    # scipy numbers components in raster order of their first voxel: first voxels are where the label
    # exceeds every label before it (O(n), instead of sorting with np.unique). Checked; else the slow way.
    new = np.ones(values.shape, dtype=bool)
    new[1:] = values[1:] > np.maximum.accumulate(values)[:-1]
    firsts = idx[new]
    if not np.array_equal(values[new], np.arange(1, num + 1)):
        firsts = np.unique(flat, return_index=True)[1][1:]
    starts = [b.start for b in box]
    points = [[int(c) + s for c, s in zip(np.unravel_index(int(f), sub.shape), starts)] for f in firsts]
    return sorted(points)


def _flood_torch(mask: torch.Tensor, point: Sequence[int]) -> torch.Tensor:
    """The connected component of ``mask`` containing ``point`` by geodesic dilation (stays on device)."""
    reached = torch.zeros_like(mask)
    reached[tuple(point)] = True
    while True:
        before = reached
        for _ in range(8):
            reached = _box_max(reached.to(torch.uint8)).bool() & mask
        if torch.equal(before, reached):  # one sync per 8 steps
            return reached


def drop_component(label: torch.Tensor, cls: int, point: Sequence[int], background: int = 0) -> torch.Tensor:
    """Set to ``background`` the connected component of class ``cls`` that contains ``point``.

    CPU tensors use scikit-image's ``flood`` from ``point`` inside the class's bounding box; CUDA tensors
    a geodesic dilation from ``point`` on the device. Both use full connectivity.

    Raises:
        ValueError: ``point`` is outside the image or not a voxel of class ``cls``.

    Example:
        >>> lab = torch.tensor([[[3, 0, 0, 3], [3, 0, 1, 0]]])
        >>> drop_component(lab, 3, [0, 3]).tolist()
        [[[3, 0, 0, 0], [3, 0, 1, 0]]]
    """
    lab = _spatial(label)
    point = [int(p) for p in point]
    if len(point) != lab.ndim or any(not 0 <= p < n for p, n in zip(point, lab.shape)):
        raise ValueError(f"drop_component: 'point' {point} is not a voxel of a label of shape {tuple(lab.shape)}.")
    if int(lab[tuple(point)]) != cls:
        raise ValueError(f"drop_component: 'point' {point} is not a voxel of class {cls}.")
    mask = class_mask(lab, cls)
    if lab.device.type == "cpu":
        from skimage.segmentation import flood  # a scan-line flood fill: visits only the component

        box = _bbox(mask, 0)
        assert box is not None  # the point is in the mask
        local = tuple(p - b.start for p, b in zip(point, box))
        comp = torch.zeros_like(mask)
        comp[box] = torch.from_numpy(flood(mask[box].numpy(), local, connectivity=mask.ndim))
    else:
        comp = _flood_torch(mask, point)
    return lab.masked_fill(comp, background)[None]


# ---------------------------------------------------------------------------------------------
# replay and input checks
# ---------------------------------------------------------------------------------------------


def _req(op: Mapping[str, Any], key: str) -> Any:
    if key not in op:
        raise ValueError(f"apply_ops: a {op.get('op')!r} operation needs a {key!r} entry. Got {dict(op)} instead.")
    return op[key]


def apply_ops(label: torch.Tensor, ops: Sequence[Mapping[str, Any]]) -> torch.Tensor:
    """Apply primitive label-noise operations in order (the deterministic half of every transform).

    Each operation is a dict with an ``"op"`` in :data:`OPS` and its parameters:
    ``{"op": "dilate", "class", "radius"}``, ``{"op": "erode", "class", "radius", "fill", "background"}``,
    ``{"op": "shift", "class", "offset", "fill", "background"}``,
    ``{"op": "jitter", "magnitude", "spacing", "seed"}``, ``{"op": "drop", "class", "background"}``,
    ``{"op": "drop_component", "class", "point", "background"}`` (``fill`` defaults to ``"nearest"``,
    ``background`` to 0).

    Example:
        >>> lab = torch.tensor([[[0, 1, 1, 2, 3]]])
        >>> apply_ops(lab, [{"op": "dilate", "class": 1, "radius": 1}, {"op": "drop", "class": 3}]).tolist()
        [[[1, 1, 1, 1, 0]]]
    """
    out = label
    for op in ops:
        if not isinstance(op, Mapping) or op.get("op") not in OPS:
            raise ValueError(f"apply_ops: each operation must be a dict with 'op' one of {OPS}. Got {op!r} instead.")
        kind = op["op"]
        bg = int(op.get("background", 0))
        fill = op.get("fill", "nearest")
        if kind == "dilate":
            out = dilate_class(out, int(_req(op, "class")), int(_req(op, "radius")))
        elif kind == "erode":
            out = erode_class(out, int(_req(op, "class")), int(_req(op, "radius")), fill, bg)
        elif kind == "shift":
            out = shift_class(out, int(_req(op, "class")), _req(op, "offset"), fill, bg)
        elif kind == "jitter":
            out = jitter_labels(out, float(_req(op, "magnitude")), int(_req(op, "spacing")), int(_req(op, "seed")))
        elif kind == "drop":
            out = drop_class(out, int(_req(op, "class")), bg)
        else:
            out = drop_component(out, int(_req(op, "class")), _req(op, "point"), bg)
    return out.clone() if out is label else out


def _int_dtype(top: int) -> torch.dtype:
    """The smallest signed-or-uint8 integer dtype that holds ``0..top``."""
    if top < 255:
        return torch.uint8
    if top < 32767:
        return torch.int16
    return torch.int32 if top < 2**31 - 1 else torch.int64


def present_labels(label: torch.Tensor) -> list[int]:
    """The sorted distinct values of a non-negative integer label map (``bincount`` for small labels).

    Example:
        >>> present_labels(torch.tensor([[[3, 0, 3, 1]]]))
        [0, 1, 3]
    """
    if label.numel() == 0:
        return []
    top = int(label.max())
    if top < 65536 and not label.is_floating_point():
        counts = torch.bincount(label.reshape(-1).to(torch.int64) if label.dtype != torch.uint8 else label.reshape(-1))
        return [int(v) for v in torch.nonzero(counts).flatten().tolist()]
    return [int(v) for v in torch.unique(label).tolist()]


def count_changed(a: torch.Tensor, b: torch.Tensor) -> int:
    """Number of voxels where two label maps of the same shape differ (numpy on CPU, see :func:`_eq`)."""
    if a.device.type == "cpu" and b.device.type == "cpu":
        return int(np.count_nonzero(a.numpy() != b.numpy()))
    return int((a != b).sum())


def check_label(owner: str, name: str, label: torch.Tensor, num_classes: int | None = None) -> torch.Tensor:
    """Validate a label map and return it as an integer tensor on its device (a view when already integer).

    A label must be channel-first with one channel, 2D or 3D, and hold integers ``>= 0`` (``< num_classes``
    when given); floating dtypes are accepted when every value is a whole number (``LoadImage`` gives
    float labels), bool as 0/1.

    Raises:
        ValueError: wrong shape, non-integer, negative, NaN or out-of-range values (message names
            ``owner`` and ``name``).

    Example:
        >>> check_label("RandLabelNoise", "label", torch.tensor([[[0.0, 1.0, 2.0]]])).dtype  # smallest that fits
        torch.uint8
        >>> check_label("RandLabelNoise", "label", torch.tensor([[[0.5]]]))
        Traceback (most recent call last):
        ...
        monai_noisylabel.utils.ParameterError: The 'label' parameter of RandLabelNoise must be an integer label map (whole numbers >= 0). Got non-integer values such as 0.5 instead.
    """
    if label.ndim not in (3, 4) or label.shape[0] != 1:
        expected = "a channel-first single-channel label, (1, H, W) or (1, H, W, D)"
        raise param_error(owner, name, expected, _Desc(f"shape {tuple(label.shape)}"))
    expected = "an integer label map (whole numbers >= 0)"
    if label.is_complex():
        raise param_error(owner, name, expected, _Desc(f"dtype {label.dtype}"))
    if label.dtype == torch.bool:
        return label.to(torch.uint8)
    if label.is_floating_point():
        lo_f, hi_f = (float(label.min()), float(label.max())) if label.numel() else (0.0, 0.0)
        if not (math.isfinite(lo_f) and math.isfinite(hi_f)):  # min/max propagate NaN and show infinities
            bad = int((~torch.isfinite(label)).sum())
            raise param_error(owner, name, expected, _Desc(f"{bad} NaN or infinite value(s)"))
        if label.numel() and float((label - torch.round(label)).abs().max()) > 0:
            frac = label[label != torch.round(label)]
            raise param_error(owner, name, expected, _Desc(f"non-integer values such as {float(frac[0]):g}"))
        if lo_f < 0:
            raise param_error(owner, name, expected, _Desc(f"values in [{lo_f:g}, {hi_f:g}]"))
        lab = label.to(_int_dtype(int(hi_f)))
    else:
        lab = label
    if lab.numel():
        lo, hi = int(lab.min()), int(lab.max())
        if lo < 0:
            raise param_error(owner, name, expected, _Desc(f"values in [{lo}, {hi}]"))
        if num_classes is not None and hi >= num_classes:
            expected = f"an integer label map with values in [0, {num_classes - 1}] (num_classes={num_classes})"
            raise param_error(owner, name, expected, _Desc(f"values in [{lo}, {hi}]"))
    return lab
