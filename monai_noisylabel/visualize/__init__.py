"""Visual report of a label-quality run: score histograms, training curves, suspect labels, an HTML page.

- :func:`plot_score_histograms`, :func:`plot_training_curves`, :func:`plot_suspects`: one PNG each.
- :func:`suspects_from_scores`: the top rows of ``label_scores.csv`` with their images and labels loaded.
- :func:`write_report`: ``<output_dir>/report/index.html`` with those PNGs (docs/architecture.md, output contracts).

matplotlib (Agg canvas, no ``pyplot``) is needed by this subpackage only; ``import monai_noisylabel``
does not import it.
"""

from __future__ import annotations

from monai_noisylabel.visualize.plots import (
    DEFAULT_SCORE_COLUMNS,
    plot_score_histograms,
    plot_suspects,
    plot_training_curves,
)
from monai_noisylabel.visualize.report import REPORT_DIR, REPORT_FILES, suspects_from_scores, write_report

__all__ = [
    "DEFAULT_SCORE_COLUMNS",
    "REPORT_DIR",
    "REPORT_FILES",
    "plot_score_histograms",
    "plot_suspects",
    "plot_training_curves",
    "suspects_from_scores",
    "write_report",
]
