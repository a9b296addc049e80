"""Data: synthetic phantoms (echo, knee, LUS), CAMUS datalists, checked datalist loading."""

from __future__ import annotations

from monai_noisylabel.data.acdc import ACDC_LABELS, acdc_datalist, acdc_slices, find_acdc_root
from monai_noisylabel.data.camus import CAMUS_LABELS, camus_datalist, detect_camus_release, parse_info_cfg
from monai_noisylabel.data.datalist import (
    DatalistError,
    check_datalist,
    load_datalist,
    read_datalist_json,
    resolve_paths,
    write_datalist,
)
from monai_noisylabel.data.io import read_spatial_shape, save_nifti
from monai_noisylabel.data.synthetic import (
    ECHO_LABELS,
    LUS_CLASSES,
    generate_dataset,
    generate_echo_dataset,
    generate_knee_dataset,
    generate_lus_dataset,
    make_echo_case,
    make_knee_case,
    make_lus_case,
)

__all__ = [
    "CAMUS_LABELS",
    "ECHO_LABELS",
    "LUS_CLASSES",
    "DatalistError",
    "camus_datalist",
    "check_datalist",
    "detect_camus_release",
    "generate_dataset",
    "generate_echo_dataset",
    "generate_knee_dataset",
    "generate_lus_dataset",
    "load_datalist",
    "make_echo_case",
    "make_knee_case",
    "make_lus_case",
    "parse_info_cfg",
    "read_datalist_json",
    "read_spatial_shape",
    "resolve_paths",
    "save_nifti",
    "write_datalist",
    "ACDC_LABELS",
    "acdc_datalist",
    "acdc_slices",
    "find_acdc_root",
]
