"""monai_noisylabel: segmentation with wrong or uncertain labels, inside MONAI."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
