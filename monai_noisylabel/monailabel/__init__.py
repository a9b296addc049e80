"""MONAI Label integration: serve and train the bundles, and a review queue that hands the most suspect label first.

- :class:`NoisyLabelApp`: a MONAI Label app over local bundle folders (no model-zoo download, no SAM2); each
  bundle trains on and scores the images of its own dimensionality; 2D masks keep the image's affine
  (:class:`GeometryKeepingInferTask`).
- :class:`LabelQualityScoring`: scoring method ``label_quality``: every labelled image scored by the current model.
- :class:`SuspectLabelFirst`: strategy ``suspect_label_first``: the worst not-yet-reviewed label first.
- :class:`BundleScorer` and the pure helpers in :mod:`.quality` work without MONAI Label.

MONAI Label (``monailabel==0.8.5``) is optional and needs its own environment
(``scripts/setup_monailabel_env.sh``); without it the MONAI Label classes raise ``OptionalImportError`` when
instantiated.
"""

from __future__ import annotations

from monai_noisylabel.monailabel.app import (
    GeometryKeepingInferTask,
    NoisyLabelApp,
    discover_bundles,
    training_datalist,
    training_lock,
)
from monai_noisylabel.monailabel.quality import (
    BundleScorer,
    bundle_spatial_dims,
    class_probabilities,
    combine_label_scores,
    disputed_percent,
    file_signature,
    images_for_bundle,
    training_scores,
)
from monai_noisylabel.monailabel.review import (
    FINAL_TAG,
    QUALITY_TAG,
    SCORE_KEY,
    LabelQualityScoring,
    SuspectLabelFirst,
    label_signature,
    training_in_progress,
)

__all__ = [
    "FINAL_TAG",
    "QUALITY_TAG",
    "SCORE_KEY",
    "BundleScorer",
    "GeometryKeepingInferTask",
    "LabelQualityScoring",
    "NoisyLabelApp",
    "SuspectLabelFirst",
    "bundle_spatial_dims",
    "class_probabilities",
    "combine_label_scores",
    "discover_bundles",
    "disputed_percent",
    "file_signature",
    "images_for_bundle",
    "label_signature",
    "training_in_progress",
    "training_datalist",
    "training_lock",
    "training_scores",
]
