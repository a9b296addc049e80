"""Clinical features of one lung ultrasound segmentation, and their pooling per patient and time point.

Pure numpy/scipy: label maps in, feature dicts out. The features are the ones LUS scores are built from:
how much of the frame each finding covers, how many B-lines there are and how wide a sector they cover,
how large the consolidation is, and how irregular and thick the pleural line is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from monai_noisylabel.data.synthetic import LUS_CLASSES
from monai_noisylabel.utils import param_error

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["LUS_FEATURES", "lus_mask_features", "pool_features"]

#: the keys :func:`lus_mask_features` returns, in order
LUS_FEATURES = (
    "pleural_line_area",
    "a_line_area",
    "b_line_area",
    "consolidation_area",
    "b_line_count",
    "b_line_coverage",
    "a_line_coverage",
    "consolidation_count",
    "consolidation_depth",
    "pleural_coverage",
    "pleural_thickness",
    "pleural_irregularity",
)


def lus_mask_features(mask: NdarrayOrTensor, *, min_component: int = 4) -> dict[str, float]:
    """Features of one ``(H, W)`` label map with values 0 background, 1 pleural line, 2 A-line, 3 B-line, 4 consolidation.

    Image rows are depth, columns lateral position. Areas and coverages are fractions of the frame (so the
    features do not depend on the image size); depth, thickness and irregularity are fractions of the height.

    - ``*_area``: the fraction of pixels of each class.
    - ``b_line_count``: connected B-line components of at least ``min_component`` pixels;
      ``b_line_coverage`` / ``a_line_coverage``: the fraction of columns a B-line / an A-line crosses.
    - ``consolidation_count`` and ``consolidation_depth`` (the deepest consolidated row).
    - ``pleural_coverage``: the fraction of columns with pleural line; ``pleural_thickness``: its mean number of
      pixels per such column; ``pleural_irregularity``: the standard deviation of its depth around a straight
      line fitted across the columns (0 with fewer than 3 columns).

    Args:
        mask: ``(H, W)`` integer label map (a leading channel axis of size 1 is dropped).
        min_component: smallest B-line / consolidation component counted, in pixels.

    Returns:
        ``{name: float}`` with the keys of :data:`LUS_FEATURES`.

    Raises:
        ValueError: a mask that is not 2D or has values outside 0..4.

    Example:
        >>> m = np.zeros((20, 10), int); m[5, :] = 1; m[6:, 2] = 3; m[6:, 7] = 3
        >>> f = lus_mask_features(m, min_component=2)
        >>> f["b_line_count"], f["b_line_coverage"], f["pleural_coverage"], round(f["pleural_irregularity"], 6)
        (2.0, 0.2, 1.0, 0.0)
    """
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[0] == 1:
        m = m[0]
    if m.ndim != 2:
        raise param_error("lus_mask_features", "mask", "an (H, W) label map", f"an array of shape {m.shape}")
    m = np.rint(m).astype(np.int64) if not np.issubdtype(m.dtype, np.integer) else m.astype(np.int64)
    if m.size and (m.min() < 0 or m.max() > 4):
        raise param_error("lus_mask_features", "mask", "labels in 0..4", f"values {m.min()}..{m.max()}")
    h, w = m.shape
    out = {f"{name}_area": float((m == k).mean()) for k, name in enumerate(LUS_CLASSES, 1)}

    def components(binary: np.ndarray) -> tuple[np.ndarray, int]:
        labels, n = ndimage.label(binary)
        if n == 0:
            return labels, 0
        sizes = np.bincount(labels.ravel())[1:]
        keep = np.flatnonzero(sizes >= min_component) + 1
        return np.isin(labels, keep) * labels, len(keep)

    b_lines, n_b = components(m == 3)
    consol, n_c = components(m == 4)
    out["b_line_count"] = float(n_b)
    out["b_line_coverage"] = float((b_lines > 0).any(axis=0).mean())
    out["a_line_coverage"] = float((m == 2).any(axis=0).mean())
    out["consolidation_count"] = float(n_c)
    rows = np.flatnonzero((consol > 0).any(axis=1))
    out["consolidation_depth"] = float((rows.max() + 1) / h) if rows.size else 0.0
    pleura = m == 1
    cols = np.flatnonzero(pleura.any(axis=0))
    out["pleural_coverage"] = float(cols.size / w)
    out["pleural_thickness"] = float(pleura[:, cols].sum(0).mean() / h) if cols.size else 0.0
    irregularity = 0.0
    if cols.size >= 3:
        depth = (pleura[:, cols] * np.arange(h)[:, None]).sum(0) / pleura[:, cols].sum(0)
        fit = np.polyval(np.polyfit(cols, depth, 1), cols)
        irregularity = float(np.std(depth - fit) / h)
    out["pleural_irregularity"] = irregularity
    return {k: out[k] for k in LUS_FEATURES}


def pool_features(
    features: Sequence[Mapping[str, float]],
    keys: Sequence[Any],
    *,
    names: Iterable[str] = LUS_FEATURES,
    ops: Sequence[str] = ("mean",),
) -> dict[Any, dict[str, float]]:
    """Pool per-frame features by key (e.g. ``(patient, timepoint)``): ``{key: {"<feature>_<op>": value}}``.

    Args:
        features: one feature dict per frame.
        keys: one hashable key per frame; frames with the same key are pooled.
        names: the features to pool.
        ops: ``"mean"``, ``"max"``, ``"min"`` (numpy reductions over the key's frames).

    Example:
        >>> pool_features([{"a": 1.0}, {"a": 3.0}, {"a": 5.0}], ["x", "x", "y"], names=["a"])
        {'x': {'a_mean': 2.0}, 'y': {'a_mean': 5.0}}
    """
    if len(features) != len(keys):
        raise param_error("pool_features", "keys", f"one key per frame ({len(features)})", f"{len(keys)} keys")
    reducers: dict[str, Callable[[Any], Any]] = {"mean": np.mean, "max": np.max, "min": np.min}
    for op in ops:
        if op not in reducers:
            raise param_error("pool_features", "ops", f"a subset of {sorted(reducers)}", list(ops))
    names = list(names)
    grouped: dict[Any, list[Mapping[str, float]]] = {}
    for f, k in zip(features, keys):
        grouped.setdefault(k, []).append(f)
    return {
        k: {f"{n}_{op}": float(reducers[op]([f[n] for f in fs])) for n in names for op in ops}
        for k, fs in grouped.items()
    }
