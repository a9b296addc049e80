"""Fixtures for the refurbish tests: a corrupted synthetic echo label and simulated model probabilities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice
from monai.networks.utils import one_hot
from monai.transforms.utils_morphological_ops import dilate
from scipy import ndimage

from monai_noisylabel.data.synthetic import make_echo_case

NUM_CLASSES = 4


def corrupt_dilate_lv(label: np.ndarray, filter_size: int = 7) -> np.ndarray:
    """Systematic bias: dilate class 1 (LV cavity) by (filter_size - 1) / 2 px, overwriting neighbours."""
    mask = torch.from_numpy((label == 1).astype(np.float32))[None, None]
    grown = dilate(mask, filter_size=filter_size)[0, 0].numpy() > 0.5
    out = label.copy()
    out[grown] = 1
    return out


def simulated_probs(label: np.ndarray, seed: int, *, sigma: float = 1.0, noise: float = 0.15) -> np.ndarray:
    """(C, *spatial) probabilities close to ``label``: smoothed one-hot plus uniform noise, renormalized."""
    rng = np.random.default_rng(seed)
    onehot = np.stack([(label == c).astype(np.float64) for c in range(NUM_CLASSES)])
    smooth = np.stack([ndimage.gaussian_filter(ch, sigma) for ch in onehot])
    probs = smooth + noise * rng.random(smooth.shape)
    return (probs / probs.sum(0, keepdims=True)).astype(np.float32)


def add_island(probs: np.ndarray, cls: int, centre: tuple[int, int], radius: int = 3, value: float = 0.8) -> np.ndarray:
    """A spurious, confident blob of class ``cls`` (what connected-component cleaning should remove)."""
    out = probs.copy()
    yy, xx = np.ogrid[: probs.shape[1], : probs.shape[2]]
    blob = (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 <= radius**2
    rest = (1 - value) / (NUM_CLASSES - 1)
    for c in range(NUM_CLASSES):
        out[c][blob] = value if c == cls else rest
    return out


def dice_fg(pred: np.ndarray, truth: np.ndarray) -> float:
    """Mean Dice over the foreground classes present in ``truth`` (MONAI's compute_dice)."""
    p = one_hot(torch.as_tensor(pred, dtype=torch.long).reshape(1, 1, *pred.shape), NUM_CLASSES)
    t = one_hot(torch.as_tensor(truth, dtype=torch.long).reshape(1, 1, *truth.shape), NUM_CLASSES)
    return float(torch.nanmean(compute_dice(p, t, include_background=False, ignore_empty=True)))


@pytest.fixture
def echo_noisy():
    """Three 64x64 echo cases: clean labels, LV-dilated labels, and probabilities near the clean label."""
    cases = []
    for i in range(3):
        clean = make_echo_case(7, i, size=(64, 64))["label"].astype(np.int64)
        noisy = corrupt_dilate_lv(clean)
        probs = simulated_probs(clean, seed=100 + i)
        cases.append((clean, noisy, probs))
    return cases
