"""The HTML label-quality report of a run: ``<output_dir>/report/index.html`` and its PNGs (docs/architecture.md, output contracts).

The page is self-contained: no JavaScript, no external assets, only the PNGs next to it, and every
text it shows (ids, paths, summary keys) is HTML-escaped.
"""

from __future__ import annotations

import html
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from monai_noisylabel.label_scores import (
    LABEL_SCORES_FILENAME,
    RANKED_COLUMNS,
    check_score_rows,
    finite_scores,
    rank_key,
    read_label_scores,
    score_value,
)
from monai_noisylabel.utils import as_numpy, atomic_write_text, check_int, check_mapping, param_error
from monai_noisylabel.visualize.plots import (
    DEFAULT_SCORE_COLUMNS,
    plot_score_histograms,
    plot_suspects,
    plot_training_curves,
)

__all__ = ["REPORT_DIR", "REPORT_FILES", "write_report", "suspects_from_scores"]

#: the folder of the report inside a run's output folder.
REPORT_DIR = "report"
#: the files :func:`write_report` may write in ``REPORT_DIR`` (a PNG is absent when its input is).
REPORT_FILES: tuple[str, ...] = ("index.html", "score_histograms.png", "training_curves.png", "suspects.png")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.corrupted td { background: #fdecea; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.meta { color: #666; }
"""


# ------------------------------------------------------------------------------------------- suspects
def _load_file(owner: str, row: Mapping[str, Any], key: str, load: Callable[[Any], Any]) -> np.ndarray:
    sid = str(row["id"])
    value = row.get(key)
    if value is None or not str(value).strip():
        raise param_error(owner, "rows", f"rows with a {key!r} path (sample {sid!r})", value)
    path = Path(str(value))
    if not path.is_file():
        raise param_error(owner, "rows", f"rows whose {key!r} file exists (sample {sid!r})", str(path))
    return as_numpy(owner, key, load(str(path)))


def suspects_from_scores(
    rows: Sequence[Mapping[str, Any]],
    *,
    top_k: int = 8,
    image_key: str = "image",
    label_key: str = "label",
    loader: Callable[[Any], Any] | None = None,
) -> list[dict[str, Any]]:
    """The ``top_k`` most suspicious rows of ``label_scores.csv``, with their images and labels loaded.

    Rows are ranked by ``combined`` (highest first, unscored rows last, ties by id). The refurbished
    label is loaded too when the row's ``refurbished_label`` is a path (not empty, not ``"store"``).

    Args:
        rows: row dicts, as :func:`~monai_noisylabel.handlers.read_label_scores` returns.
        top_k: how many rows to load.
        image_key: the row key holding the image path.
        label_key: the row key holding the (given) label path.
        loader: a callable from a path to an array; default MONAI ``LoadImage(image_only=True)``.

    Returns:
        dicts with ``id``, ``image``, ``label``, ``score`` (``combined``), ``flagged`` and, when there is one,
        ``refurbished`` (numpy arrays), ready for :func:`~monai_noisylabel.visualize.plot_suspects`.

    Raises:
        ValueError: malformed ``rows``, a row without a path, or a file that does not exist (the message
            names the file).

    Example:
        >>> import tempfile, numpy as np
        >>> from monai_noisylabel.data import save_nifti
        >>> d = tempfile.mkdtemp()
        >>> img, lab = save_nifti(np.ones((8, 8), np.float32), f"{d}/i.nii.gz"), save_nifti(np.eye(8), f"{d}/l.nii.gz")
        >>> rows = [{"id": "a", "image": str(img), "label": str(lab), "combined": 0.2},
        ...         {"id": "b", "image": str(img), "label": str(lab), "combined": 0.9}]
        >>> s = suspects_from_scores(rows, top_k=1)
        >>> s[0]["id"], s[0]["label"].shape
        ('b', (8, 8))
    """
    owner = "suspects_from_scores"
    rows = check_score_rows(owner, rows)
    top_k = check_int(owner, "top_k", top_k, minimum=0)
    if loader is None:
        from monai.transforms import LoadImage

        loader = LoadImage(image_only=True)
    elif not callable(loader):
        raise param_error(owner, "loader", "a callable from a path to an array, or None", loader)
    out = []
    for row in sorted(rows, key=rank_key)[:top_k]:
        suspect: dict[str, Any] = {
            "id": str(row["id"]),
            "image": _load_file(owner, row, image_key, loader),
            "label": _load_file(owner, row, label_key, loader),
            "score": score_value(row, "combined", owner),
            "flagged": bool(row.get("flagged")),
        }
        refurbished = row.get("refurbished_label")
        if refurbished is not None and str(refurbished).strip() not in ("", "store"):
            suspect["refurbished"] = _load_file(owner, row, "refurbished_label", loader)
        out.append(suspect)
    return out


# ---------------------------------------------------------------------------------------------- HTML
def _fmt(value: Any) -> str:
    """A cell: floats with 3 decimals, ``inf``/``n/a`` for non-finite, booleans as yes/no, empty for None."""
    if value is None:
        return ""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        return ("-inf" if value < 0 else "inf") if math.isinf(value) else f"{value:.3f}"
    return str(value)


def _cell(value: Any, tag: str = "td") -> str:
    numeric = isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))
    cls = ' class="num"' if numeric and tag == "td" else ""
    return f"<{tag}{cls}>{html.escape(_fmt(value))}</{tag}>"


def _table(header: Sequence[str], body: Sequence[Sequence[Any]], row_classes: Sequence[str] | None = None) -> str:
    lines = ["<table>", "<tr>" + "".join(_cell(h, "th") for h in header) + "</tr>"]
    for i, cells in enumerate(body):
        cls = f' class="{html.escape(row_classes[i])}"' if row_classes and row_classes[i] else ""
        lines.append(f"<tr{cls}>" + "".join(_cell(c) for c in cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _top_table(rows: Sequence[Mapping[str, Any]], top_k: int, is_corrupted: Mapping[str, Any] | None) -> str:
    owner = "write_report"
    top = sorted(rows, key=rank_key)[:top_k]
    scores = [c for c in RANKED_COLUMNS if any(score_value(r, c, owner) is not None for r in rows)]
    header = ["rank", "id", *scores, "flagged", "refurbished_label"]
    if is_corrupted is not None:
        header.append("corrupted")
    body, classes = [], []
    for rank, row in enumerate(top, start=1):
        cells: list[Any] = [rank, str(row["id"]), *(score_value(row, c, owner) for c in scores)]
        cells += [bool(row.get("flagged")), row.get("refurbished_label") or ""]
        corrupted = None
        if is_corrupted is not None:
            corrupted = is_corrupted.get(str(row["id"]))
            cells.append("unknown" if corrupted is None else bool(corrupted))
        body.append(cells)
        classes.append("corrupted" if corrupted else "")
    return _table(header, body, classes)


def _page(title: str, sections: Sequence[tuple[str, str]], meta: str) -> str:
    t = html.escape(title)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        f'<head>\n<meta charset="utf-8">\n<title>{t}</title>\n<style>{_STYLE}</style>\n</head>',
        "<body>",
        f"<h1>{t}</h1>",
        f'<p class="meta">{html.escape(meta)}</p>' if meta else "",
    ]
    for heading, content in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>\n{content}")
    parts += ["</body>", "</html>", ""]
    return "\n".join(p for p in parts if p)


def _img(name: str, alt: str) -> str:
    return f'<p><img src="{html.escape(name)}" alt="{html.escape(alt)}"></p>'


def write_report(
    output_dir: str | os.PathLike,
    *,
    rows: Sequence[Mapping[str, Any]] | None = None,
    history: Mapping[str, Any] | None = None,
    suspects: Sequence[Mapping[str, Any]] | None = None,
    is_corrupted: Mapping[str, bool | None] | None = None,
    summary: Mapping[str, Any] | None = None,
    title: str = "Label quality report",
    top_k: int = 8,
) -> Path:
    """Write ``<output_dir>/report/index.html`` and the PNGs of whatever inputs are given.

    - ``score_histograms.png`` from ``rows`` (when a score column has a finite value),
    - ``training_curves.png`` from ``history``,
    - ``suspects.png`` from ``suspects`` (the first ``top_k``; a suspect without ``corrupted`` gets it
      from ``is_corrupted``).

    The page shows the title, the ``summary`` table, the images and the ``top_k`` rows ranked by
    ``combined`` (scores with 3 decimals, ``flagged``, ``refurbished_label`` and, with ``is_corrupted``,
    whether the label was corrupted). Every file is written atomically; a report PNG that this call does
    not produce is removed, so calling it again overwrites the report cleanly.

    Args:
        output_dir: the run's output folder.
        rows: row dicts as :func:`~monai_noisylabel.handlers.read_label_scores` returns; default: read
            ``<output_dir>/label_scores.csv`` when it exists.
        history: training curves, see :func:`~monai_noisylabel.visualize.plot_training_curves`.
        suspects: suspect dicts, see :func:`~monai_noisylabel.visualize.plot_suspects` (e.g. from
            :func:`suspects_from_scores`).
        is_corrupted: mapping from sample id to whether its label was corrupted (known in benchmarks).
        summary: mapping from a name to a value (e.g. detection AUROC, Dice) for the summary table.
        title: the page title.
        top_k: rows in the table and suspects in the figure.

    Returns:
        the path of ``index.html``.

    Raises:
        ValueError: malformed inputs (the message names the parameter).

    Example:
        >>> import tempfile
        >>> rows = [{"id": f"s{i}", "loss": i / 4, "combined": i / 4, "flagged": i > 2} for i in range(5)]
        >>> p = write_report(tempfile.mkdtemp(), rows=rows, history={"train_loss": [1.0, 0.5]}, summary={"AUROC": 0.9})
        >>> p.name, sorted(f.name for f in p.parent.glob("*.png"))
        ('index.html', ['score_histograms.png', 'training_curves.png'])
    """
    owner = "write_report"
    out = Path(output_dir)
    if rows is None and (out / LABEL_SCORES_FILENAME).is_file():
        rows = read_label_scores(out / LABEL_SCORES_FILENAME)
    rows = check_score_rows(owner, rows) if rows is not None else None
    top_k = check_int(owner, "top_k", top_k, minimum=1)
    is_corrupted = check_mapping(owner, "is_corrupted", is_corrupted)
    summary = check_mapping(owner, "summary", summary)
    history = check_mapping(owner, "history", history)
    if suspects is not None and (isinstance(suspects, (str, bytes, Mapping)) or not isinstance(suspects, Sequence)):
        raise param_error(owner, "suspects", "a sequence of suspect dicts or None", type(suspects).__name__)
    if not isinstance(title, str):
        raise param_error(owner, "title", "a str", title)
    report = out / REPORT_DIR
    report.mkdir(parents=True, exist_ok=True)

    written: set[str] = set()
    sections: list[tuple[str, str]] = []
    if summary:
        sections.append(("Summary", _table(["metric", "value"], [[str(k), v] for k, v in summary.items()])))
    if rows and any(finite_scores(rows, c, owner)[0] for c in DEFAULT_SCORE_COLUMNS):
        plot_score_histograms(rows, report / "score_histograms.png", is_corrupted=is_corrupted)
        written.add("score_histograms.png")
        sections.append(("Score distributions", _img("score_histograms.png", "histograms of the label scores")))
    if history:
        plot_training_curves(history, report / "training_curves.png")
        written.add("training_curves.png")
        sections.append(("Training curves", _img("training_curves.png", "training curves")))
    if suspects:
        filled = []
        for s in suspects[:top_k]:
            if isinstance(s, Mapping) and s.get("corrupted") is None and is_corrupted is not None:
                s = {**s, "corrupted": is_corrupted.get(str(s.get("id")))}
            filled.append(s)
        plot_suspects(filled, report / "suspects.png", max_rows=top_k)
        written.add("suspects.png")
        sections.append(("Most suspicious labels over their images", _img("suspects.png", "suspect labels")))
    meta = ""
    if rows is not None:
        n_flagged = sum(bool(r.get("flagged")) for r in rows)
        meta = f"{len(rows)} samples, {n_flagged} flagged."
        table = _top_table(rows, top_k, is_corrupted) if rows else "<p>No samples scored yet.</p>"
        sections.append((f"Top {min(top_k, len(rows))} samples by combined score" if rows else "Samples", table))
    for name in REPORT_FILES[1:]:
        if name not in written:
            (report / name).unlink(missing_ok=True)
    return atomic_write_text(report / "index.html", _page(title, sections, meta))
