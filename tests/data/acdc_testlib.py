"""A small synthetic ACDC tree with the public layout and file names (imported by the tests, not collected)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from monai_noisylabel.data import save_nifti

SHAPE = (12, 10, 4)


def _volume(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    label = np.zeros(SHAPE, np.uint8)
    label[2:6, 2:6, 1:3] = 1  # RV
    label[6:10, 4:8, 1:3] = 2  # myocardium
    label[7:9, 5:7, 1:3] = 3  # LV
    return rng.random(SHAPE).astype(np.float32) * 100, label


def make_acdc_tree(root: Path, training=(1, 2, 5), testing=(101,)) -> Path:
    """``root/database/{training,testing}/patientNNN/`` with Info.cfg, the 4D file, ED/ES frames and masks."""
    base = root / "database"
    for folder, numbers in (("training", training), ("testing", testing)):
        for n in numbers:
            name = f"patient{n:03d}"
            pdir = base / folder / name
            pdir.mkdir(parents=True)
            es = 8 + n % 5
            (pdir / "Info.cfg").write_text(f"ED: 1\nES: {es}\nGroup: DCM\nHeight: 180.0\nNbFrame: 30\nWeight: 80.0\n")
            save_nifti(np.zeros((*SHAPE, 2), np.float32), pdir / f"{name}_4d.nii.gz")
            for frame in (1, es):
                image, label = _volume(n * 100 + frame)
                save_nifti(image, pdir / f"{name}_frame{frame:02d}.nii.gz", affine=np.diag([1.5, 1.5, 10.0, 1.0]))
                save_nifti(label, pdir / f"{name}_frame{frame:02d}_gt.nii.gz", affine=np.diag([1.5, 1.5, 10.0, 1.0]))
    return root
