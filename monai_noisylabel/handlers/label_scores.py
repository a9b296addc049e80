"""The ``label_scores.csv`` contract: one writer and one reader shared by every handler.

Columns, in this order: ``id,image,label,vog,loss,gmm_noisy_prob,offset,combined,flagged,refurbished_label``.
A score that is disabled (its handler is not attached) or not available yet (e.g. VoG before its
second checkpoint) is an empty cell; ``inf`` marks a sample whose loss or gradient was NaN/inf;
``flagged`` is ``1`` or ``0``. Rows are ranked: most suspicious ``combined`` first, then by id.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from monai_noisylabel.utils import atomic_write_text, param_error

__all__ = ["LABEL_SCORES_FILENAME", "LABEL_SCORES_COLUMNS", "SCORE_COLUMNS", "write_label_scores", "read_label_scores"]

LABEL_SCORES_FILENAME = "label_scores.csv"
LABEL_SCORES_COLUMNS: tuple[str, ...] = (
    "id",
    "image",
    "label",
    "vog",
    "loss",
    "gmm_noisy_prob",
    "offset",
    "combined",
    "flagged",
    "refurbished_label",
)
#: the per-sample scores (higher = more suspicious) that handlers publish and ``combined`` may average.
SCORE_COLUMNS: tuple[str, ...] = ("vog", "loss", "gmm_noisy_prob", "offset")
_FLOAT_COLUMNS = (*SCORE_COLUMNS, "combined")


def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if column in _FLOAT_COLUMNS:
        v = float(value)
        return "" if math.isnan(v) else repr(v)
    return str(value)


def _rows_of(rows: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    owner = "write_label_scores"
    out: list[Mapping[str, Any]] = []
    if isinstance(rows, Mapping):
        for key, row in rows.items():
            if not isinstance(row, Mapping):
                raise param_error(owner, "rows", "a mapping from id to a row dict", type(row).__name__)
            out.append({**row, "id": str(row.get("id", key))})
        return out
    seen: set[str] = set()
    for row in rows:
        if not isinstance(row, Mapping) or row.get("id") in (None, ""):
            raise param_error(owner, "rows", "row dicts that each have an 'id'", row)
        if str(row["id"]) in seen:
            raise param_error(owner, "rows", "rows with unique ids", row["id"])
        seen.add(str(row["id"]))
        out.append(row)
    return out


def _rank_key(row: Mapping[str, Any]) -> tuple[float, str]:
    c = row.get("combined")
    c = math.nan if c is None else float(c)
    return (math.inf if math.isnan(c) else -c, str(row["id"]))


def write_label_scores(
    path: str | os.PathLike, rows: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]
) -> Path:
    """Write ``label_scores.csv`` atomically (temp file + rename, so a reader never sees half a file).

    Args:
        path: the file to write (usually ``<output_dir>/label_scores.csv``); parent folders are created.
        rows: ``engine.state.label_scores`` (id -> row dict) or an iterable of row dicts with an ``id``.
            Missing keys and ``None``/NaN values give empty cells; keys outside
            :data:`LABEL_SCORES_COLUMNS` are ignored.

    Returns:
        the path written.

    Raises:
        ValueError: a row without an id, or two rows with one id.

    Example:
        >>> import tempfile, os
        >>> d = tempfile.mkdtemp()
        >>> p = write_label_scores(os.path.join(d, "label_scores.csv"), [{"id": "a", "loss": 0.5, "flagged": True}])
        >>> p.read_text().splitlines()[1]
        'a,,,,0.5,,,,1,'
    """
    ordered = sorted(_rows_of(rows), key=_rank_key)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LABEL_SCORES_COLUMNS)
    for row in ordered:
        writer.writerow([_cell(c, row.get(c)) for c in LABEL_SCORES_COLUMNS])
    return atomic_write_text(path, buf.getvalue())


def read_label_scores(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read ``label_scores.csv`` back: scores as floats (``None`` for an empty cell), ``flagged`` as bool.

    Raises:
        ValueError: the header is not :data:`LABEL_SCORES_COLUMNS`.

    Example:
        >>> import tempfile, os
        >>> p = write_label_scores(os.path.join(tempfile.mkdtemp(), "s.csv"), [{"id": "a", "vog": float("inf")}])
        >>> read_label_scores(p)[0]["vog"], read_label_scores(p)[0]["flagged"]
        (inf, False)
    """
    with Path(path).open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != LABEL_SCORES_COLUMNS:
            raise param_error("read_label_scores", "path", "a label_scores.csv with the contract columns", path)
        out = []
        for raw in reader:
            row: dict[str, Any] = dict(raw)
            for c in _FLOAT_COLUMNS:
                row[c] = float(raw[c]) if raw[c] else None
            row["flagged"] = raw["flagged"] == "1"
            out.append(row)
    return out
