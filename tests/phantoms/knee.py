"""A knee MRI-like phantom: uint16 0..4000 volumes on an anisotropic grid, femur and tibia, bright lesions, effusion.

Raters disagree in their own ways: a conservative rater erodes and misses small lesions, a generous one
over-draws in-plane, a third is off by one slice, and an optional fourth thresholds intensity inside a box.
Each case has 2 to 4 raters; half the cases have no bone mask.
"""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

SPACING = (0.45, 0.45, 1.6)  # mm; the third axis is the slice axis


def _save(path: Path, arr: np.ndarray, dtype) -> str:
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = (-20.0, 15.0, -8.0)
    nib.save(nib.Nifti1Image(arr.astype(dtype), affine), str(path))
    return path.name


def _grid(shape):
    return np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")


def make_knee_phantom(
    shape: tuple[int, int, int], rng: np.random.Generator, contrast: float = 1.0
) -> dict[str, np.ndarray]:
    """One case: ``image`` (uint16), ``bone``, ``truth`` (uint8 0/1) and ``raters`` (list of uint8 0/1).

    ``contrast`` scales the lesions' brightness above the marrow (1: 1900..2800 against 380).
    """
    x, y, z = _grid(shape)
    sx, sy, sz = shape
    mm_x, mm_y, mm_z = x * SPACING[0], y * SPACING[0], z * SPACING[2]
    cx, cz = sx * SPACING[0] / 2 + rng.uniform(-2, 2), sz * SPACING[2] / 2
    gap_y = sy * SPACING[1] * rng.uniform(0.46, 0.54)
    # femur above the gap (rounded condyle), tibia below (flat plateau), both extend across the slices
    rf = sx * SPACING[0] * 0.36
    femur = ((mm_x - cx) ** 2 / rf**2 + (mm_y - (gap_y - 1.2 - rf * 0.8)) ** 2 / (rf * 0.8) ** 2 <= 1) | (
        (np.abs(mm_x - cx) < rf * 0.55) & (mm_y < gap_y - 1.2 - rf * 0.8)
    )
    tibia = (np.abs(mm_x - cx) < rf * 1.05) & (mm_y > gap_y + 1.2) & (mm_y < gap_y + 1.2 + sy * SPACING[1] * 0.35)
    slab = np.abs(mm_z - cz) < sz * SPACING[2] * 0.42
    bone = (femur | tibia) & slab
    # truth: 1-4 lesions in subchondral bone (within ~6 mm of the joint gap), ellipsoids or pairs of blobs
    truth = np.zeros(shape, bool)
    near = bone & (np.abs(mm_y - gap_y) < 7.0) & (np.abs(mm_z - cz) < sz * SPACING[2] * 0.3)
    candidates = np.argwhere(near)
    for _ in range(int(rng.integers(1, 5))):
        c = candidates[rng.integers(len(candidates))] * np.array([SPACING[0], SPACING[1], SPACING[2]])
        r = rng.uniform(1.2, 4.5)  # mm
        radii = np.array([r * rng.uniform(0.7, 1.4), r * rng.uniform(0.5, 1.0), r * rng.uniform(0.8, 1.6)])
        blob = ((mm_x - c[0]) / radii[0]) ** 2 + ((mm_y - c[1]) / radii[1]) ** 2 + ((mm_z - c[2]) / radii[2]) ** 2 <= 1
        if rng.random() < 0.4:  # a lobulated lesion
            d = rng.normal(0, r * 0.6, 3)
            blob |= ((mm_x - c[0] - d[0]) ** 2 + (mm_y - c[1] - d[1]) ** 2 + (mm_z - c[2] - d[2]) ** 2) <= (
                0.7 * r
            ) ** 2
        truth |= blob & bone
    # intensities: dark marrow, brighter soft tissue, bright effusion in the gap, lesions bright with a fuzzy rim
    img = np.full(shape, 700.0, np.float32)
    img[bone] = 380.0
    effusion = (~bone) & (np.abs(mm_y - gap_y) < 1.6) & (np.abs(mm_x - cx) < rf * 0.9) & slab
    img[effusion] = 3300.0
    lesion_level = 380.0 + contrast * (rng.uniform(1900, 2800) - 380.0)
    soft = ndimage.gaussian_filter(truth.astype(np.float32), sigma=(0.8, 0.8, 0.3))
    img = img + soft * (lesion_level - 380.0) * bone
    img += 250.0 * np.sin(mm_x / 11.0 + rng.uniform(0, 6)) * np.cos(mm_y / 13.0)  # coil shading
    img = np.abs(img + rng.normal(0, 120, shape) + 1j * rng.normal(0, 120, shape))  # Rician noise
    image = np.clip(img, 0, 4000)
    # raters
    labels, n = ndimage.label(truth)
    sizes = ndimage.sum(truth, labels, range(1, n + 1)) if n else np.zeros(0)
    in_plane = np.zeros((3, 3, 1), bool)
    in_plane[:, :, 0] = True
    conservative = np.isin(labels, [i + 1 for i, s in enumerate(sizes) if s >= 40])
    conservative = ndimage.binary_erosion(conservative, in_plane) | (conservative & ~ndimage.binary_erosion(truth))
    conservative &= ndimage.binary_erosion(truth, in_plane) | (rng.random(shape) < 0.3)
    generous = ndimage.binary_dilation(truth, in_plane, iterations=2) & (bone | (rng.random(shape) < 0.5))
    shifted = np.roll(truth, int(rng.choice([-1, 1])), axis=2)
    raters = [conservative, generous, shifted]
    if rng.random() < 0.5:  # a fourth rater thresholds intensity in a box around each lesion
        box = ndimage.binary_dilation(truth, iterations=3)
        raters.append(box & (image > (lesion_level + 380) / 2) & bone)
    order = rng.permutation(len(raters))[: int(rng.integers(2, len(raters) + 1))]
    return {
        "image": image.astype(np.uint16),
        "bone": bone.astype(np.uint8),
        "truth": truth.astype(np.uint8),
        "raters": [raters[i].astype(np.uint8) for i in sorted(order)],
    }


def write_knee_phantom(
    root: str | Path,
    num: int = 10,
    shape: tuple[int, int, int] = (72, 60, 20),
    seed: int = 7,
    test: int = 2,
    vary: int = 0,
    contrast: float = 1.0,
) -> Path:
    """Write ``num`` knee cases under ``root`` and a datalist ``root/knees.json`` (relative paths); returns it.

    Half the cases carry a bone mask. The last ``test`` cases form the test section, the two before them the
    validation section. ``vary > 0`` gives each case its own size, ``shape`` +- up to ``vary`` voxels per axis; ``contrast``
    scales the lesions' brightness above the marrow.
    """
    root = Path(root)
    for sub in ("vol", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    entries = []
    for i in range(num):
        size = tuple(int(s + rng.integers(-vary, vary + 1)) for s in shape)
        case = make_knee_phantom(size, rng, contrast)  # type: ignore[arg-type]
        cid = f"knee{i:03d}"
        entry = {
            "id": cid,
            "image": "vol/" + _save(root / "vol" / f"{cid}_t2fs.nii.gz", case["image"], np.uint16),
            "raters": [
                "masks/" + _save(root / "masks" / f"{cid}_r{j}.nii.gz", m, np.uint8)
                for j, m in enumerate(case["raters"])
            ],
            "truth": "masks/" + _save(root / "masks" / f"{cid}_gt.nii.gz", case["truth"], np.uint8),
        }
        if i % 2 == 0:
            entry["bone"] = "masks/" + _save(root / "masks" / f"{cid}_bone.nii.gz", case["bone"], np.uint8)
        entries.append(entry)
    n_train = num - test - 2
    datalist = {
        "training": entries[:n_train],
        "validation": entries[n_train : n_train + 2],
        "test": entries[n_train + 2 :],
    }
    path = root / "knees.json"
    path.write_text(json.dumps(datalist, indent=1))
    return path
