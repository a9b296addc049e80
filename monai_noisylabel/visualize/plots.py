"""Figures of a label-quality run: score histograms, training curves, suspect labels over their images.

Each function renders one PNG with matplotlib's Agg canvas (no ``pyplot``, no global figure state, no
display needed), encodes it in memory and writes it atomically, so a reader never sees half a file.
matplotlib is imported inside the functions only.
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from monai_noisylabel.label_scores import RANKED_COLUMNS, check_score_rows, finite_scores, score_value
from monai_noisylabel.utils import as_numpy, atomic_write_bytes, check_int, check_mapping, param_error

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["DEFAULT_SCORE_COLUMNS", "plot_score_histograms", "plot_training_curves", "plot_suspects"]

#: the ``label_scores.csv`` columns that :func:`plot_score_histograms` draws by default.
DEFAULT_SCORE_COLUMNS: tuple[str, ...] = RANKED_COLUMNS
_DPI = 100
_GROUP_COLORS = {"clean": "tab:blue", "corrupted": "tab:red", "unknown": "tab:gray", "all": "tab:blue"}


# --------------------------------------------------------------------------------------------- helpers
def _new_figure(nrows: int, ncols: int, cell: tuple[float, float]) -> tuple[Figure, np.ndarray]:
    """A figure on an Agg canvas and its ``(nrows, ncols)`` array of axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(cell[0] * ncols, cell[1] * nrows), dpi=_DPI)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save_png(fig: Figure, path: str | os.PathLike) -> Path:
    """Encode ``fig`` as PNG in memory, then write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return atomic_write_bytes(path, buf.getvalue())


# ------------------------------------------------------------------------------------ score histograms
def plot_score_histograms(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    columns: Sequence[str] = DEFAULT_SCORE_COLUMNS,
    is_corrupted: Mapping[str, bool | None] | None = None,
) -> Path:
    """One histogram per score column of ``label_scores.csv``, clean and corrupted samples overlaid when known.

    Columns without a finite value (a disabled score) get no subplot; non-finite values (``inf`` marks a
    sample whose loss or gradient was NaN/inf) are dropped and counted in the subplot title.

    Args:
        rows: row dicts, as :func:`~monai_noisylabel.handlers.read_label_scores` returns (``None`` for an
            empty cell).
        path: the PNG to write; parent folders are created.
        columns: the score columns to draw, in this order.
        is_corrupted: optional mapping from sample id to whether its label was corrupted; then each
            subplot overlays the clean and corrupted histograms (samples missing from it: "unknown").

    Returns:
        the path written.

    Raises:
        ValueError: malformed ``rows``, ``columns`` or ``is_corrupted``, or no column with a finite value.

    Example:
        >>> import tempfile
        >>> rows = [{"id": f"s{i}", "loss": 0.1 * i, "combined": i / 9, "vog": None} for i in range(10)]
        >>> p = plot_score_histograms(rows, tempfile.mkdtemp() + "/h.png", is_corrupted={"s9": True, "s8": True})
        >>> p.read_bytes()[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
        True
    """
    owner = "plot_score_histograms"
    rows = check_score_rows(owner, rows)
    if isinstance(columns, str) or not isinstance(columns, Sequence) or not columns:
        raise param_error(owner, "columns", "a non-empty sequence of column names", columns)
    is_corrupted = check_mapping(owner, "is_corrupted", is_corrupted)
    present = [(c, *finite_scores(rows, str(c), owner)) for c in columns]
    present = [p for p in present if p[1]]
    if not present:
        raise param_error(owner, "rows", f"rows with at least one finite value in {list(columns)}", f"{len(rows)} rows")

    def group(row: Mapping[str, Any]) -> str:
        if is_corrupted is None:
            return "all"
        flag = is_corrupted.get(str(row["id"]))
        return "unknown" if flag is None else ("corrupted" if flag else "clean")

    fig, axes = _new_figure(1, len(present), (3.6, 3.0))
    for ax, (column, values, dropped) in zip(axes[0], present):
        edges = np.histogram_bin_edges(values, bins=min(30, max(5, int(math.sqrt(len(values))) + 1)))
        groups: dict[str, list[float]] = {}
        for row in rows:
            v = score_value(row, column, owner)
            if v is not None and math.isfinite(v):
                groups.setdefault(group(row), []).append(v)
        for name in ("clean", "corrupted", "unknown", "all"):
            if name in groups:
                ax.hist(
                    groups[name],
                    bins=edges,
                    alpha=0.55 if is_corrupted is not None else 0.85,
                    color=_GROUP_COLORS[name],
                    label=f"{name} (n={len(groups[name])})",
                )
        note = f", {dropped} non-finite not shown" if dropped else ""
        ax.set_title(f"{column}{note}", fontsize=9)
        ax.set_xlabel("score (higher = more suspicious)", fontsize=8)
        ax.set_ylabel("samples", fontsize=8)
        ax.tick_params(labelsize=7)
        if is_corrupted is not None:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return _save_png(fig, path)


# ------------------------------------------------------------------------------------- training curves
def _series(owner: str, name: str, values: Any) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (numbers, or ``(epoch, value)`` pairs) as x and y arrays; numbers get epochs 1..n."""
    where = f"history[{name!r}]"
    if isinstance(values, (str, bytes)):
        raise param_error(owner, where, "a sequence of numbers or of (epoch, value) pairs", values)
    try:
        arr = np.asarray(as_numpy(owner, where, values), dtype=float)
    except (TypeError, ValueError):
        raise param_error(owner, where, "a sequence of numbers or of (epoch, value) pairs", values) from None
    if arr.ndim == 1:
        return np.arange(1, arr.shape[0] + 1, dtype=float), arr
    if arr.ndim == 2 and arr.shape[1] == 2:
        return arr[:, 0], arr[:, 1]
    raise param_error(owner, where, "a sequence of numbers or of (epoch, value) pairs", f"shape {arr.shape}")


def plot_training_curves(history: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Training curves: losses (and any other metric) on one subplot, Dice metrics on a second in [0, 1].

    Args:
        history: mapping from a curve name to its values: a sequence of numbers (one per epoch, epochs
            1..n) or of ``(epoch, value)`` pairs, e.g. ``{"train_loss": [...], "val_mean_dice": [(2, 0.7)]}``.
            Names containing ``"dice"`` (any case) go to the Dice subplot; empty curves are skipped.
        path: the PNG to write; parent folders are created.

    Returns:
        the path written.

    Raises:
        ValueError: ``history`` is not a mapping, has no non-empty curve, or a curve is not numbers/pairs.

    Example:
        >>> import tempfile
        >>> h = {"train_loss": [1.0, 0.6, 0.4], "val_mean_dice": [(1, 0.5), (3, 0.8)]}
        >>> plot_training_curves(h, tempfile.mkdtemp() + "/c.png").stat().st_size > 0
        True
    """
    owner = "plot_training_curves"
    if not isinstance(history, Mapping):
        raise param_error(owner, "history", "a mapping from curve name to values", type(history).__name__)
    curves = {str(name): _series(owner, str(name), values) for name, values in history.items()}
    curves = {name: xy for name, xy in curves.items() if xy[0].size}
    if not curves:
        raise param_error(owner, "history", "a mapping with at least one non-empty curve", dict(history))
    from matplotlib.ticker import MaxNLocator

    dice = {n: xy for n, xy in curves.items() if "dice" in n.lower()}
    other = {n: xy for n, xy in curves.items() if n not in dice}
    panels = [(t, c) for t, c in (("loss", other), ("Dice", dice)) if c]
    fig, axes = _new_figure(1, len(panels), (4.5, 3.2))
    for ax, (panel, group) in zip(axes[0], panels):
        for name, (x, y) in group.items():
            ax.plot(x, y, marker="o" if x.size < 30 else None, markersize=3, label=name)
        if panel == "Dice":
            ax.set_ylim(0.0, 1.0)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _save_png(fig, path)


# -------------------------------------------------------------------------------------------- suspects
def _spatial(x: np.ndarray) -> np.ndarray:
    """Drop a leading singleton channel: ``(1, H, W)`` -> ``(H, W)``, ``(1, H, W, D)`` -> ``(H, W, D)``.

    A NIfTI volume stored with a trailing singleton axis, ``(H, W, D, 1)``, becomes ``(H, W, D)``.
    """
    if x.ndim == 4 and x.shape[0] != 1 and x.shape[-1] == 1:
        return x[..., 0]
    return x[0] if x.ndim in (3, 4) and x.shape[0] == 1 else x


def _classes(owner: str, sid: str, key: str, x: np.ndarray) -> np.ndarray:
    """Class-index map as ints; soft or float-stored labels are rounded."""
    if x.dtype == bool:
        return x.astype(np.int64)
    if not np.all(np.isfinite(x)) or (x.size and x.min() < 0):
        raise param_error(owner, f"suspects[{key!r}]", f"class indices >= 0 (sample {sid!r})", "negative or NaN")
    return np.rint(x).astype(np.int64)


def _prepare(owner: str, index: int, suspect: Any, keys: Sequence[str]) -> dict[str, Any]:
    """One suspect as 2D slices (image float, label maps int), with its title parts."""
    if not isinstance(suspect, Mapping):
        raise param_error(owner, "suspects", "a sequence of dicts", type(suspect).__name__)
    sid = str(suspect.get("id", f"#{index}"))
    for key in ("image", "label"):
        if suspect.get(key) is None:
            raise param_error(owner, f"suspects[{key!r}]", f"an array (sample {sid!r})", None)
    label = _spatial(as_numpy(owner, "suspects['label']", suspect["label"]))
    image = _spatial(as_numpy(owner, "suspects['image']", suspect["image"]))
    if image.ndim == label.ndim + 1 and image.shape[1:] == label.shape:
        image = image[0]  # multi-channel image: show its first channel
    if image.ndim not in (2, 3):
        raise param_error(owner, "suspects['image']", f"a 2D or 3D array (sample {sid!r})", f"shape {image.shape}")
    maps: dict[str, np.ndarray] = {}
    for key in keys:
        if suspect.get(key) is None:
            continue
        arr = label if key == "label" else _spatial(as_numpy(owner, f"suspects[{key!r}]", suspect[key]))
        if arr.shape != image.shape:
            raise param_error(
                owner, f"suspects[{key!r}]", f"an array of the image's shape {image.shape} (sample {sid!r})", arr.shape
            )
        maps[key] = _classes(owner, sid, key, arr)
    where = ""
    if image.ndim == 3:
        depth = image.shape[-1]
        foreground = (maps["label"] > 0).reshape(-1, depth).sum(axis=0)
        z = int(np.argmax(foreground)) if foreground.any() else depth // 2
        image = image[..., z]
        maps = {k: v[..., z] for k, v in maps.items()}
        where = f"  slice {z}/{depth}"
    score = suspect.get("score")
    corrupted = suspect.get("corrupted")
    parts = [sid + where]
    if score is not None:
        try:
            parts.append(f"score {float(score):.3f}")
        except (TypeError, ValueError):
            raise param_error(owner, "suspects['score']", f"a number or None (sample {sid!r})", score) from None
    if corrupted is not None:
        parts.append("corrupted" if corrupted else "clean")
    return {"id": sid, "image": image.astype(np.float64), "maps": maps, "title": "  |  ".join(parts)}


def _class_colors(num_classes: int) -> np.ndarray:
    """RGB per class (row 0, the background, unused): tab10, then tab20, cycling."""
    import matplotlib

    palette = [matplotlib.colormaps["tab10"](i)[:3] for i in range(10)]
    palette += [matplotlib.colormaps["tab20"](i)[:3] for i in range(1, 20, 2)]
    return np.array([(0.0, 0.0, 0.0)] + [palette[(c - 1) % len(palette)] for c in range(1, num_classes)])


def _draw(ax: Axes, image: np.ndarray, classes: np.ndarray | None, colors: np.ndarray, heading: str) -> None:
    """``image`` in gray with ``classes`` alpha-blended on top (background transparent) and outlined."""
    finite = image[np.isfinite(image)]
    lo, hi = (float(v) for v in np.percentile(finite, [1, 99])) if finite.size else (0.0, 1.0)
    ax.imshow(image, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1.0)
    if classes is not None:
        rgba = np.zeros((*classes.shape, 4))
        fg = classes > 0
        rgba[fg, :3] = colors[classes[fg]]
        rgba[fg, 3] = 0.45
        ax.imshow(rgba, interpolation="nearest")
        for c in np.unique(classes[fg]):
            mask = (classes == c).astype(float)
            if 0 < mask.sum() < mask.size and min(mask.shape) > 1:
                ax.contour(mask, levels=[0.5], colors=[tuple(colors[c])], linewidths=0.8)
    else:
        box = {"facecolor": "black", "alpha": 0.7, "edgecolor": "none"}
        ax.text(0.5, 0.5, "not available", ha="center", va="center", color="white", bbox=box, transform=ax.transAxes)
    ax.set_title(heading, fontsize=8, parse_math=False)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_suspects(
    suspects: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    num_classes: int | None = None,
    max_rows: int = 8,
) -> Path:
    """The most suspicious labels over their images: one row per sample, given label next to the prediction.

    Columns: the image with the given ``label`` overlaid, with the ``prediction`` overlaid (when any
    suspect has one) and with the ``refurbished`` label overlaid (when any suspect has one). Each class
    keeps one color across the figure (tab10; the background is transparent). A 3D volume ``(H, W, D)``
    shows the slice along the last axis where the given label has the most foreground (the middle one
    when it has none).

    Args:
        suspects: dicts with ``id``, ``image`` (``(H, W)``, ``(1, H, W)``, ``(H, W, D)`` or ``(1, H, W, D)``;
            numpy array or torch tensor, MetaTensor included), ``label`` (class indices, same spatial
            shape), optional ``prediction`` and ``refurbished`` (class indices), ``score`` (float) and
            ``corrupted`` (bool or None); title of each row: id, score, "corrupted"/"clean" when known.
        path: the PNG to write; parent folders are created.
        num_classes: number of classes, for the colors; default: the largest index seen plus one.
        max_rows: draw at most this many suspects (the first ones).

    Returns:
        the path written.

    Raises:
        ValueError: no suspects, a missing image or label, a shape that differs from the image's (the
            message names the key and the sample id), negative class indices, indices >= ``num_classes``.

    Example:
        >>> import tempfile, numpy as np
        >>> label = np.zeros((16, 16), int); label[4:10, 4:10] = 1
        >>> s = [{"id": "case_1", "image": np.random.default_rng(0).random((16, 16)), "label": label,
        ...       "prediction": np.roll(label, 2, axis=0), "score": 0.93, "corrupted": True}]
        >>> plot_suspects(s, tempfile.mkdtemp() + "/s.png").stat().st_size > 0
        True
    """
    owner = "plot_suspects"
    if isinstance(suspects, (str, bytes, Mapping)) or not isinstance(suspects, Sequence) or not suspects:
        raise param_error(owner, "suspects", "a non-empty sequence of dicts", suspects)
    max_rows = check_int(owner, "max_rows", max_rows, minimum=1)
    keys = ["label", "prediction", "refurbished"]
    prepared = [_prepare(owner, i, s, keys) for i, s in enumerate(suspects[:max_rows])]
    largest = max((int(m.max()) for p in prepared for m in p["maps"].values() if m.size), default=0)
    if num_classes is None:
        num_classes = max(2, largest + 1)
    num_classes = check_int(owner, "num_classes", num_classes, minimum=1)
    if largest >= num_classes:
        raise param_error(owner, "num_classes", f"an int > the largest class index {largest}", num_classes)
    columns = [k for k in keys if k == "label" or any(k in p["maps"] for p in prepared)]
    headings = {"label": "given label", "prediction": "prediction", "refurbished": "refurbished"}
    colors = _class_colors(num_classes)

    fig, axes = _new_figure(len(prepared), len(columns), (2.8, 2.9))
    for row_axes, p in zip(axes, prepared):
        for j, (ax, key) in enumerate(zip(row_axes, columns)):
            heading = f"{p['title']}\n{headings[key]}" if j == 0 else f"\n{headings[key]}"
            _draw(ax, p["image"], p["maps"].get(key), colors, heading)
    if num_classes > 1:
        from matplotlib.patches import Patch

        handles = [Patch(color=tuple(colors[c]), alpha=0.6, label=f"class {c}") for c in range(1, num_classes)]
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0.0, 0.04 if num_classes > 1 else 0.0, 1.0, 1.0))
    return _save_png(fig, path)
