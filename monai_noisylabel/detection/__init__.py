"""Noisy-label detection core: pure functions and small accumulators, arrays in and numpy arrays out, no ignite.

Every score follows one convention: higher = the label is more likely wrong.

- :func:`vog_scores`, :class:`VoGAccumulator`, :func:`input_gradients`: Variance of Gradients.
- :func:`sample_loss_scores`, :class:`SampleLossAccumulator`, :func:`per_sample_loss`: per-sample loss.
- :func:`gmm_noisy_probability`: DivideMix's two-component GMM split of the losses.
- :func:`pixel_label_quality`, :func:`image_label_quality`: per-voxel self-confidence and its summary.
- :func:`volume_offsets`, :func:`offset_scores`: directional disagreement against a clean reference.
- :func:`combine_scores`, :func:`normalize_scores`, :func:`detection_metrics`: ranking and evaluation.
- :func:`conformal_pvalues`, :func:`reference_excess`, :func:`reference_flags`, :func:`combine_with_reference`,
  :func:`reference_offset_scores`: every score judged against the same score on a trusted clean set.
"""

from __future__ import annotations

from monai_noisylabel.detection.gmm import gmm_noisy_probability
from monai_noisylabel.detection.offset import offset_scores, reference_offset_scores, volume_offsets
from monai_noisylabel.detection.pixel_quality import image_label_quality, pixel_label_quality
from monai_noisylabel.detection.ranking import (
    DEFAULT_COMBINED_SCORES,
    combine_scores,
    combine_with_reference,
    detection_metrics,
    normalize_scores,
    separation_weight,
)
from monai_noisylabel.detection.reference import conformal_pvalues, reference_excess, reference_flags
from monai_noisylabel.detection.sample_loss import SampleLossAccumulator, per_sample_loss, sample_loss_scores
from monai_noisylabel.detection.vog import VOG_STAGES, VoGAccumulator, input_gradients, vog_scores

__all__ = [
    "DEFAULT_COMBINED_SCORES",
    "combine_with_reference",
    "conformal_pvalues",
    "reference_excess",
    "reference_flags",
    "reference_offset_scores",
    "VOG_STAGES",
    "SampleLossAccumulator",
    "VoGAccumulator",
    "combine_scores",
    "separation_weight",
    "detection_metrics",
    "gmm_noisy_probability",
    "image_label_quality",
    "input_gradients",
    "normalize_scores",
    "offset_scores",
    "per_sample_loss",
    "pixel_label_quality",
    "sample_loss_scores",
    "vog_scores",
    "volume_offsets",
]
