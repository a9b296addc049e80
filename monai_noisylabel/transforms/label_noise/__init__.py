"""Label-noise transforms with provenance, and dataset-level corruption.

Array transforms (channel-first numpy / torch / MetaTensor label maps, 2D and 3D, CPU or CUDA) and
their dictionary twins: :class:`RandLabelNoise` (random errors), :class:`RandLabelBias` (systematic
bias), :class:`RandLabelOmission` (omitted structures). Each records what it did under the label's
``meta["label_noise"]`` (:func:`read_label_noise` decodes it per sample, also from a batch) and can be
replayed exactly (:func:`apply_label_noise`). :func:`corrupt_datalist` corrupts a fixed fraction of a
datalist's training labels into a new folder (CLI: ``python -m monai_noisylabel corrupt``). The pure
kernels live in :mod:`.functional`.
"""

from __future__ import annotations

from monai_noisylabel.transforms.label_noise.array import (
    LABEL_NOISE_KINDS,
    LABEL_NOISE_META_KEY,
    RandLabelBias,
    RandLabelNoise,
    RandLabelOmission,
    apply_label_noise,
    encode_label_noise,
    read_label_noise,
)
from monai_noisylabel.transforms.label_noise.corrupt import corrupt_datalist, corrupted_ids, read_corruption_manifest
from monai_noisylabel.transforms.label_noise.dictionary import (
    RandLabelBiasD,
    RandLabelBiasd,
    RandLabelBiasDict,
    RandLabelNoiseD,
    RandLabelNoised,
    RandLabelNoiseDict,
    RandLabelOmissionD,
    RandLabelOmissiond,
    RandLabelOmissionDict,
)

__all__ = [
    "LABEL_NOISE_KINDS",
    "LABEL_NOISE_META_KEY",
    "RandLabelNoise",
    "RandLabelNoised",
    "RandLabelNoiseD",
    "RandLabelNoiseDict",
    "RandLabelBias",
    "RandLabelBiasd",
    "RandLabelBiasD",
    "RandLabelBiasDict",
    "RandLabelOmission",
    "RandLabelOmissiond",
    "RandLabelOmissionD",
    "RandLabelOmissionDict",
    "apply_label_noise",
    "read_label_noise",
    "encode_label_noise",
    "corrupt_datalist",
    "corrupted_ids",
    "read_corruption_manifest",
]
