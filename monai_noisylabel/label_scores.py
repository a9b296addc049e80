"""The ``label_scores.csv`` contract: its columns, its ranking rule, its writer and reader, and its summary.

Every package that writes or reads the table imports it from here (the handlers write it; ``visualize``, the
command line, the bundles and the MONAI Label app read it). This module imports neither ignite nor torch.

Columns, in this order: ``id,image,label,vog,loss,gmm_noisy_prob,offset,combined,flagged,refurbished_label``.
A score that is disabled (its handler is not attached) or not available yet (e.g. VoG before its
second checkpoint) is an empty cell; ``inf`` marks a sample whose loss or gradient was NaN/inf;
``flagged`` is ``1`` or ``0``. Rows are ranked by :func:`rank_key`: most suspicious ``combined`` first,
unscored rows last, ties by id. :func:`summarize_label_scores` is the one end-of-run summary of a table
(the command line's ``report`` and the bundles' ``finish_training`` both print and store it).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_noisylabel.utils import atomic_write_text, param_error

__all__ = [
    "LABEL_SCORES_FILENAME",
    "LABEL_SCORES_COLUMNS",
    "SCORE_COLUMNS",
    "RANKED_COLUMNS",
    "SUMMARY_LABELS",
    "write_label_scores",
    "read_label_scores",
    "check_score_rows",
    "score_value",
    "finite_scores",
    "rank_key",
    "summarize_label_scores",
    "readable_summary",
]

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
#: the float columns: every score and ``combined``.
RANKED_COLUMNS: tuple[str, ...] = (*SCORE_COLUMNS, "combined")


# ------------------------------------------------------------------------------------------ reading rows
def check_score_rows(owner: str, rows: Any) -> list[Mapping[str, Any]]:
    """``rows`` as a list of row dicts that each have an ``id`` (the form :func:`read_label_scores` returns).

    Raises:
        ValueError: ``rows`` is not a sequence of mappings with an ``id``.

    Example:
        >>> check_score_rows("demo", [{"id": "a"}])
        [{'id': 'a'}]
    """
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise param_error(owner, "rows", "a sequence of row dicts (as read_label_scores returns)", type(rows).__name__)
    for row in rows:
        if not isinstance(row, Mapping) or row.get("id") in (None, ""):
            raise param_error(owner, "rows", "row dicts that each have an 'id'", row)
    return list(rows)


def score_value(row: Mapping[str, Any], column: str, owner: str = "score_value") -> float | None:
    """The float in ``row[column]``; ``None`` for a missing or empty cell (NaN and inf are kept).

    Accepts the floats :func:`read_label_scores` returns and the strings of a plain ``csv.DictReader``.

    Raises:
        ValueError: the cell is neither a number nor empty (``owner`` names the caller in the message).

    Example:
        >>> score_value({"loss": "0.5"}, "loss"), score_value({"loss": ""}, "loss"), score_value({}, "vog")
        (0.5, None, None)
    """
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise param_error(owner, "rows", f"rows whose {column!r} is a number or empty", value) from None


def finite_scores(
    rows: Iterable[Mapping[str, Any]], column: str, owner: str = "finite_scores"
) -> tuple[list[float], int]:
    """The finite values of ``column`` over ``rows`` and how many non-finite ones were dropped (empty cells skipped).

    Example:
        >>> finite_scores([{"loss": 1.0}, {"loss": float("inf")}, {"loss": None}], "loss")
        ([1.0], 1)
    """
    finite, dropped = [], 0
    for row in rows:
        v = score_value(row, column, owner)
        if v is None:
            continue
        if math.isfinite(v):
            finite.append(v)
        else:
            dropped += 1
    return finite, dropped


def rank_key(row: Mapping[str, Any]) -> tuple[int, float, str]:
    """The ranking rule of the table: most suspicious ``combined`` first, unscored rows last, ties by id.

    Example:
        >>> rows = [{"id": "b", "combined": 0.2}, {"id": "c", "combined": None}, {"id": "a", "combined": 0.9}]
        >>> [r["id"] for r in sorted(rows, key=rank_key)]
        ['a', 'b', 'c']
    """
    c = score_value(row, "combined", "rank_key")
    if c is None or math.isnan(c):
        return (1, 0.0, str(row["id"]))
    return (0, -c, str(row["id"]))


# ------------------------------------------------------------------------------------ writing and reading
def _cell(column: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if column in RANKED_COLUMNS:
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


def write_label_scores(
    path: str | os.PathLike, rows: Mapping[str, Mapping[str, Any]] | Iterable[Mapping[str, Any]]
) -> Path:
    """Write ``label_scores.csv`` atomically (temp file + rename, so a reader never sees half a file).

    Args:
        path: the file to write (usually ``<output_dir>/label_scores.csv``); parent folders are created.
        rows: ``engine.state.label_scores`` (id -> row dict) or an iterable of row dicts with an ``id``.
            Missing keys and ``None``/NaN values give empty cells; keys outside
            :data:`LABEL_SCORES_COLUMNS` are ignored. Rows are written in :func:`rank_key` order.

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
    ordered = sorted(_rows_of(rows), key=rank_key)
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
            for c in RANKED_COLUMNS:
                row[c] = float(raw[c]) if raw[c] else None
            row["flagged"] = raw["flagged"] == "1"
            out.append(row)
    return out


# ------------------------------------------------------------------------------------------------ summary
#: how the report's HTML names the keys of :func:`summarize_label_scores` (the JSON keeps the keys).
SUMMARY_LABELS: dict[str, str] = {
    "num_samples": "samples",
    "num_flagged": "flagged",
    "num_refurbished": "refurbished",
    "num_corrupted": "corrupted (manifest)",
    "flag_precision": "flag precision",
    "flag_recall": "flag recall",
    **{f"auroc_{c}": f"detection AUROC ({c})" for c in RANKED_COLUMNS},
    **{f"ap_{c}": f"detection AP ({c})" for c in RANKED_COLUMNS},
    **{f"precision_at_k_{c}": f"detection precision@k ({c})" for c in RANKED_COLUMNS},
}


def _rounded(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


def summarize_label_scores(
    rows: Sequence[Mapping[str, Any]],
    is_corrupted: Mapping[str, bool] | None = None,
    *,
    history: Mapping[str, Sequence[Sequence[float]]] | None = None,
) -> dict[str, Any]:
    """The end-of-run summary of a ``label_scores.csv`` table (counts, detection figures, final Dice).

    Args:
        rows: the table, as :func:`read_label_scores` returns it.
        is_corrupted: id -> whether the label is known to be corrupted (from a corruption manifest); rows whose
            id it lacks are left out of the detection figures.
        history: ``history.json`` of the bundles' ``TrainingProgress`` (metric -> ``[[epoch, value], ...]``);
            the last value of every Dice series becomes ``final_<name>``.

    Returns:
        ``num_samples``, ``num_flagged``, ``num_refurbished``; with ``is_corrupted``: ``num_corrupted``,
        ``flag_precision`` and ``flag_recall`` (``None`` when undefined), and for every score column whose known
        rows are all finite while both classes occur, ``auroc_<col>``, ``ap_<col>`` and ``precision_at_k_<col>``
        (``k`` = the number of corrupted samples; :func:`~monai_noisylabel.detection.detection_metrics`).
        Figures are rounded to 4 decimals; :func:`readable_summary` names them for a page.

    Example:
        >>> rows = [{"id": "a", "combined": 0.9, "flagged": True}, {"id": "b", "combined": 0.1, "flagged": False}]
        >>> s = summarize_label_scores(rows, {"a": True, "b": False})
        >>> s["num_samples"], s["auroc_combined"], s["flag_precision"], "auroc_loss" in s
        (2, 1.0, 1.0, False)
    """
    from monai_noisylabel.detection import detection_metrics

    summary: dict[str, Any] = {
        "num_samples": len(rows),
        "num_flagged": sum(bool(r.get("flagged")) for r in rows),
        "num_refurbished": sum(bool(r.get("refurbished_label")) for r in rows),
    }
    if is_corrupted is not None:
        known = [r for r in rows if str(r["id"]) in is_corrupted]
        truth = np.array([bool(is_corrupted[str(r["id"])]) for r in known], dtype=bool)
        flagged = np.array([bool(r.get("flagged")) for r in known], dtype=bool)
        hits = int((flagged & truth).sum())
        summary["num_corrupted"] = int(truth.sum())
        summary["flag_precision"] = round(hits / int(flagged.sum()), 4) if flagged.any() else None
        summary["flag_recall"] = round(hits / int(truth.sum()), 4) if truth.any() else None
        if 0 < truth.sum() < len(truth):
            for col in RANKED_COLUMNS:
                values = np.array([score_value(r, col, "summarize_label_scores") for r in known], dtype=float)
                if np.isfinite(values).all():
                    m = detection_metrics(values, truth)
                    summary[f"auroc_{col}"] = _rounded(m["auroc"])
                    summary[f"ap_{col}"] = _rounded(m["average_precision"])
                    summary[f"precision_at_k_{col}"] = _rounded(m["precision_at_k"])
    for name, series in (history or {}).items():
        if series and "dice" in name.lower():
            summary[f"final_{name}"] = round(float(series[-1][1]), 4)
    return summary


def readable_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``summary`` with its keys named for a page (:data:`SUMMARY_LABELS`; other keys as they are).

    Example:
        >>> readable_summary({"auroc_combined": 1.0, "note": "x"})
        {'detection AUROC (combined)': 1.0, 'note': 'x'}
    """
    return {SUMMARY_LABELS.get(k, k): v for k, v in summary.items()}
