"""A lung ultrasound phantom: 120x160 uint8 frames, expert confidence on the 0-100 scale, channels first.

Each patient has a latent severity at two time points (days 1 and 8 here, not 0/1). Severity widens and
multiplies B-lines, grows a consolidation and fades A-lines. Experts are confident (65-95) inside a finding,
give 50-58 to a one-pixel rim outside it, mark comet-tail artefacts at 40-55 as B-lines, and are unsure
(55-75) inside consolidations. One patient has a single time point and one frame lacks its clinical fields.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

CLASSES = ("pleural_line", "a_line", "b_line", "consolidation")


def make_lus_frame(severity: float, shape: tuple[int, int], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One frame: ``image`` (uint8, (H, W)), ``confidence`` (uint8 0-100, (4, H, W)), ``truth`` (uint8 0..4)."""
    h, w = shape
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    depth = rng.uniform(0.22, 0.3) * h
    lateral = np.arange(w, dtype=np.float32)
    pleura_row = depth + 3.0 * np.sin(lateral / w * np.pi * rng.uniform(0.8, 1.6) + rng.uniform(0, 3))
    pleura_row += severity * rng.normal(0, 1.2, w).cumsum() * 0.15  # irregular when sick
    masks = np.zeros((4, h, w), bool)
    thick = 2.0 + 2.0 * severity
    masks[0] = np.abs(rows - pleura_row[None, :]) < thick / 2 + 0.5
    for k in (2, 3):  # reverberation A-lines at multiples of the pleural depth
        if k * depth < h - 3:
            masks[1] |= np.abs(rows - k * pleura_row[None, :]) < 1.5
    below = rows > pleura_row[None, :] + thick / 2
    centres = rng.uniform(0.1 * w, 0.9 * w, round(severity * 5 + rng.uniform(0, 1)))
    for c in centres:
        half = rng.uniform(2.0, 3.5 + 3 * severity)
        masks[2] |= (np.abs(cols - c) < half) & below
    if severity > 0.45:
        cy, cx = pleura_row.mean() + rng.uniform(8, 18), rng.uniform(0.3 * w, 0.7 * w)
        ry, rx = 6 + 18 * severity * rng.uniform(0.7, 1.0), 10 + 25 * severity * rng.uniform(0.7, 1.0)
        blob = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1 + 0.25 * np.sin(
            np.arctan2(rows - cy, cols - cx) * 5
        )
        masks[3] = blob & below
    masks[1] &= ~masks[2] & ~masks[3]  # B-lines and consolidation erase A-lines
    if severity > 0.6:
        masks[1] &= rng.random() < 0.5  # faint A-lines vanish when sick
    masks[2] &= ~masks[3]
    truth = np.zeros(shape, np.uint8)
    for k in (1, 2, 3, 0):  # the pleural line wins overlaps
        truth[masks[k]] = k + 1
    # image
    img = np.full(shape, 35.0, np.float32)
    img[masks[1]] = 60 + 90 * (1 - severity)
    img[masks[2]] = 165.0
    img[masks[3]] = 105.0
    img[masks[0]] = 215.0
    img[masks[3] & (rng.random(shape) < 0.04)] = 220.0  # air bronchograms
    img = ndimage.gaussian_filter(img, (1.0, 0.6))
    img *= np.exp(-rows / (2.5 * h))  # attenuation with depth
    img *= rng.rayleigh(0.8, shape)  # speckle
    image = np.clip(img, 0, 255).astype(np.uint8)
    # expert confidence, per class
    conf = np.zeros((4, h, w), np.float32)
    for k in range(4):
        m = masks[k] & (truth == k + 1)
        inside = rng.uniform(65, 95) + rng.normal(0, 4, shape)
        if k == 3:
            inside = rng.uniform(55, 75) + rng.normal(0, 5, shape)
        rim = ndimage.binary_dilation(m) & ~m
        rim2 = ndimage.binary_dilation(m, iterations=3) & ~m & ~rim
        conf[k][m] = inside[m]
        conf[k][rim] = rng.uniform(50, 58)
        conf[k][rim2] = rng.uniform(20, 45)
    for _ in range(int(rng.integers(0, 3))):  # comet-tail artefacts: short, marked unsure as B-lines
        c, length = rng.uniform(5, w - 5), rng.uniform(8, 20)
        tail = (np.abs(cols - c) < 1.5) & below & (rows < pleura_row[None, :] + length) & (truth == 0)
        conf[2][tail] = rng.uniform(40, 55)
    conf = np.clip(np.rint(conf), 0, 100).astype(np.uint8)
    return {"image": image, "confidence": conf, "truth": truth}


def _save(path: Path, arr: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(arr, np.diag([0.3, 0.3, 1.0, 1.0])), str(path))


def write_lus_phantom(
    root: str | Path,
    patients: int = 16,
    frames: int = 2,
    shape: tuple[int, int] = (120, 160),
    seed: int = 11,
    vary: int = 0,
) -> Path:
    """Write frames of ``patients`` patients under ``root`` and a datalist ``root/lus.json``; returns its path.

    The first half of the patients train, the next 10 % (at least 2) validate, the rest test. Confidence maps are ``(4, H, W)`` on 0-100
    (``confidence_channel_dim 0``, ``confidence_scale "0-100"``). ``vary > 0`` gives each frame its own size,
    ``shape`` +- up to ``vary`` pixels per axis. The last patient has one time point only, and one frame of the
    one before it has no clinical fields.
    """
    root = Path(root)
    for sub in ("frames", "conf", "gt"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    sections: dict[str, list] = {"training": [], "validation": [], "test": []}
    n_train, n_val = patients // 2, max(2, patients // 10)
    for p in range(patients):
        pid = f"P{p + 101}"
        base = rng.uniform(0.05, 0.8)
        delta = rng.normal(0.0, 0.22)
        sev = {1: base, 8: float(np.clip(base + delta, 0, 1))}
        sf = {day: float(np.round(475 - 300 * s + rng.normal(0, 18), 1)) for day, s in sev.items()}
        change = int(sf[8] < 0.95 * sf[1])
        readmit = int(sev[8] + rng.normal(0, 0.15) > 0.55)
        days = (1,) if p == patients - 1 else (1, 8)
        section = "training" if p < n_train else "validation" if p < n_train + n_val else "test"
        for day in days:
            for f in range(frames):
                fid = f"{pid}_d{day}_f{f}"
                size = tuple(int(s + rng.integers(-vary, vary + 1)) for s in shape)
                frame = make_lus_frame(sev[day], size, rng)  # type: ignore[arg-type]
                _save(root / "frames" / f"{fid}.nii.gz", frame["image"])
                _save(root / "conf" / f"{fid}_conf.nii.gz", frame["confidence"])
                _save(root / "gt" / f"{fid}_gt.nii.gz", frame["truth"])
                entry = {
                    "id": fid,
                    "image": f"frames/{fid}.nii.gz",
                    "confidence": f"conf/{fid}_conf.nii.gz",
                    "truth": f"gt/{fid}_gt.nii.gz",
                    "patient": pid,
                    "timepoint": day,
                    "sf_ratio": sf[day],
                    "sf_change": change,
                    "readmission_30d": readmit,
                }
                if p == patients - 2 and day == 8 and f == 0:
                    for key in ("sf_ratio", "sf_change", "readmission_30d"):
                        entry.pop(key)
                sections[section].append(entry)
    path = root / "lus.json"
    path.write_text(json.dumps(sections, indent=1))
    return path
