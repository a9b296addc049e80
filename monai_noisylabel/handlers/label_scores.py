"""Re-export of the ``label_scores.csv`` contract, which lives in :mod:`monai_noisylabel.label_scores`.

Kept so that ``from monai_noisylabel.handlers.label_scores import write_label_scores`` goes on working.

Example:
    >>> from monai_noisylabel import label_scores
    >>> read_label_scores is label_scores.read_label_scores
    True
"""

from __future__ import annotations

from monai_noisylabel.label_scores import (
    LABEL_SCORES_COLUMNS,
    LABEL_SCORES_FILENAME,
    SCORE_COLUMNS,
    read_label_scores,
    write_label_scores,
)

__all__ = ["LABEL_SCORES_FILENAME", "LABEL_SCORES_COLUMNS", "SCORE_COLUMNS", "write_label_scores", "read_label_scores"]
