"""Synthetic phantoms that stand in for the echo (CAMUS-like), knee BML and lung ultrasound data.

Each ``make_*_case`` is a pure function of ``(seed, index)`` that returns numpy arrays; each
``generate_*_dataset`` writes NIfTI files plus a MONAI decathlon-style datalist JSON. Every case draws
from its own ``numpy.random.Generator`` seeded from ``(seed, index)``, so the first ``k`` cases of a
dataset do not depend on how many cases are generated, and the global RNG is never touched.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from monai_noisylabel.data.io import save_nifti
from monai_noisylabel.utils import atomic_write_text, check_int, check_number
from monai_noisylabel.utils import progress as _progress

__all__ = [
    "ECHO_LABELS",
    "LUS_CLASSES",
    "make_echo_case",
    "make_knee_case",
    "make_lus_case",
    "lus_frame_layout",
    "generate_echo_dataset",
    "generate_knee_dataset",
    "generate_lus_dataset",
    "generate_dataset",
    "split_indices",
]

ECHO_LABELS = {"background": 0, "lv_cavity": 1, "myocardium": 2, "left_atrium": 3}
LUS_CLASSES = ("pleural_line", "a_line", "b_line", "consolidation")


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(k) for k in key]]))


def _smooth_noise(rng: np.random.Generator, shape: Sequence[int], sigma: float) -> np.ndarray:
    """Zero-mean, unit-std, spatially correlated Gaussian noise."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    std = field.std()
    return field / std if std > 0 else field


def _perturbed_ellipse(
    yy: np.ndarray,
    xx: np.ndarray,
    centre: tuple[float, float],
    axes: tuple[float, float],
    theta: float,
    harmonics: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Normalized radius (``< 1`` inside) of an ellipse with a smoothly perturbed outline.

    ``axes[0]`` lies along the rotated vertical (depth) axis. Returns the radius and the coordinate
    along the long axis (positive towards depth), used to cut the mitral plane.
    """
    dy, dx = yy - centre[0], xx - centre[1]
    u = dy * np.cos(theta) + dx * np.sin(theta)
    v = -dy * np.sin(theta) + dx * np.cos(theta)
    rho = np.sqrt((u / axes[0]) ** 2 + (v / axes[1]) ** 2)
    phi = np.arctan2(v / axes[1], u / axes[0])
    outline = np.ones_like(phi)
    for k, (amp, phase) in enumerate(harmonics, start=2):
        outline += amp * np.cos(k * phi + phase)
    return rho / outline, u


def make_echo_case(seed: int, index: int, size: tuple[int, int] = (256, 256)) -> dict[str, Any]:
    """One apical-view-like echo frame and its 4-class label.

    Case ``index`` belongs to patient ``index // 2`` at phase ED (even) or ES (odd): both phases of a
    patient share geometry, and at ES the cavity shrinks and the wall thickens. The image has a
    sector-shaped field of view, blurred walls, depth attenuation, lateral-wall dropout and
    Rayleigh-distributed speckle; it also shows an unlabelled right ventricle and right atrium that a
    model must learn to leave as background.

    Args:
        seed: dataset seed.
        index: case number.
        size: ``(H, W)`` in pixels; H is depth.

    Returns:
        dict with ``image`` (uint8 ``(H, W)``), ``label`` (uint8 ``(H, W)``, 0 background, 1 LV cavity,
        2 myocardium, 3 left atrium), ``patient``, ``phase``.

    Example:
        >>> case = make_echo_case(0, 0, size=(64, 64))
        >>> case["image"].shape, sorted(set(case["label"].ravel().tolist()))
        ((64, 64), [0, 1, 2, 3])
    """
    h, w = int(size[0]), int(size[1])
    patient, es = index // 2, index % 2 == 1
    prng = _rng(seed, 1, patient)  # patient-level geometry
    frng = _rng(seed, 2, index)  # frame-level appearance
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    # Geometry, as fractions of the image size.
    theta = prng.uniform(-0.18, 0.18)
    lv_a, lv_b = h * prng.uniform(0.20, 0.27), w * prng.uniform(0.085, 0.12)
    wall = h * prng.uniform(0.028, 0.042)
    la_a, la_b = h * prng.uniform(0.075, 0.11), w * prng.uniform(0.075, 0.105)
    lv_centre = (h * prng.uniform(0.36, 0.42), w * prng.uniform(0.50, 0.58))
    harm_lv = np.stack([prng.uniform(0, 0.06, 3), prng.uniform(0, 2 * np.pi, 3)], axis=1)
    harm_la = np.stack([prng.uniform(0, 0.08, 3), prng.uniform(0, 2 * np.pi, 3)], axis=1)
    if es:
        shrink = prng.uniform(0.72, 0.85)
        lv_a, lv_b, wall = lv_a * (0.5 + 0.5 * shrink), lv_b * shrink, wall * 1.35
        la_a, la_b = la_a * 1.15, la_b * 1.15
        harm_lv = harm_lv * 1.3

    lv_rho, lv_u = _perturbed_ellipse(yy, xx, lv_centre, (lv_a, lv_b), theta, harm_lv)
    myo_rho, _ = _perturbed_ellipse(yy, xx, lv_centre, (lv_a + wall, lv_b + wall), theta, harm_lv)
    base = 0.78 * lv_a  # mitral plane, along the long axis
    lv = (lv_rho < 1) & (lv_u < base)
    myo = (myo_rho < 1) & (lv_u < base + 0.4 * wall) & ~lv
    la_shift = base + la_a + 0.3 * wall
    la_centre = (lv_centre[0] + la_shift * np.cos(theta), lv_centre[1] + la_shift * np.sin(theta))
    la_rho, _ = _perturbed_ellipse(yy, xx, la_centre, (la_a, la_b), theta, harm_la)
    la = (la_rho < 1) & ~lv & ~myo
    # Unlabelled right heart, on the other side of the septum.
    rv_centre = (lv_centre[0] + 0.1 * lv_a, lv_centre[1] - (lv_b + wall) - 0.85 * lv_b)
    rv_rho, _ = _perturbed_ellipse(yy, xx, rv_centre, (0.8 * lv_a, 0.75 * lv_b), theta, harm_lv[::-1])
    rv = (rv_rho < 1) & ~lv & ~myo & ~la
    ra_centre = (la_centre[0], rv_centre[1] - 0.1 * lv_b)
    ra_rho, _ = _perturbed_ellipse(yy, xx, ra_centre, (0.9 * la_a, 0.85 * la_b), theta, harm_la[::-1])
    ra = (ra_rho < 1) & ~lv & ~myo & ~la & ~rv
    rv_wall = (rv_rho < 1.25) & ~rv & ~lv & ~myo & ~la & ~ra

    label = np.zeros((h, w), np.uint8)
    label[myo], label[lv], label[la] = 2, 1, 3

    # Field of view: a sector with its apex above the top edge.
    apex = (-0.04 * h, 0.5 * w)
    r = np.hypot(yy - apex[0], xx - apex[1])
    angle = np.arctan2(xx - apex[1], yy - apex[0])
    half_angle = np.deg2rad(frng.uniform(36, 40))
    sector = (np.abs(angle) < half_angle) & (r < 0.99 * (h - apex[0]))

    # Echogenicity: bright muscle, dark blood, textured surrounding tissue.
    tissue = 0.32 + 0.08 * _smooth_noise(frng, (h, w), 6.0)
    tissue[myo | rv_wall] = 0.78
    tissue[lv | la | rv | ra] = 0.05
    # Lateral-wall dropout: where the beam runs along the wall, part of it fades.
    drop_centre = lv_centre[1] + (lv_b + wall) * frng.choice([-1.0, 1.0])
    dropout = np.exp(-((xx - drop_centre) ** 2) / (2 * (0.04 * w) ** 2)) * np.exp(
        -((yy - lv_centre[0] - frng.uniform(-0.3, 0.3) * lv_a) ** 2) / (2 * (0.25 * lv_a) ** 2)
    )
    tissue = tissue * (1 - frng.uniform(0.3, 0.6) * dropout * myo)
    tissue = ndimage.gaussian_filter(tissue, frng.uniform(1.2, 2.2))  # blurred walls
    attenuation = np.exp(-frng.uniform(0.8, 1.4) * r / h)
    sigma = 1.0 / np.sqrt(np.pi / 2.0)  # Rayleigh with unit mean
    speckle = ndimage.gaussian_filter(frng.rayleigh(sigma, (h, w)), 0.6)
    speckle /= speckle.mean()
    image = tissue * attenuation * speckle * 1.15 + 0.015 * frng.standard_normal((h, w))
    image = np.clip(image, 0, 1) * sector
    label = label * sector

    return {
        "image": np.round(image * 255).astype(np.uint8),
        "label": label.astype(np.uint8),
        "patient": f"patient{patient:04d}",
        "phase": "ES" if es else "ED",
    }


def _ellipsoid(grid: Sequence[np.ndarray], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))  # type: ignore[return-value]


def make_knee_case(
    seed: int, index: int, size: tuple[int, int, int] = (64, 64, 64), num_raters: int = 3
) -> dict[str, Any]:
    """One knee volume with bone marrow lesions (BMLs) and several disagreeing rater masks.

    Axis 0 runs from superior (femur) to inferior (tibia). Lesions sit in subchondral bone within a few
    voxels of the joint surfaces and are bright on the (fat-suppressed, fluid-sensitive) image, with
    fuzzy borders. Rater 0 systematically over-segments; every rater jitters the boundary with its own
    smooth noise and may miss small lesions.

    Returns:
        dict with ``image`` (float32), ``truth`` (uint8 hidden true lesion mask), ``raters`` (list of
        uint8 masks), ``bone`` (uint8 femur+tibia mask), ``consensus`` (uint8 majority vote of the
        raters) and ``num_lesions``.

    Example:
        >>> case = make_knee_case(0, 0, size=(32, 32, 32))
        >>> len(case["raters"]), case["image"].shape
        (3, (32, 32, 32))
    """
    if num_raters < 1:
        raise ValueError(
            f"The 'num_raters' parameter of make_knee_case must be an int >= 1. Got {num_raters!r} instead."
        )
    d, h, w = (int(s) for s in size)
    rng = _rng(seed, 3, index)
    zz, yy, xx = np.mgrid[0:d, 0:h, 0:w].astype(np.float64)
    scale = np.array([d, h, w], np.float64)

    joint = d * rng.uniform(0.46, 0.54)
    gap = d * rng.uniform(0.05, 0.07)
    cy, cx = h * rng.uniform(0.47, 0.53), w * rng.uniform(0.47, 0.53)
    ry, rx = h * rng.uniform(0.30, 0.36), w * rng.uniform(0.34, 0.40)
    inplane = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2
    # Femoral condyles bulge towards the joint; the tibial plateau is flat to slightly concave.
    condyles = 0.10 * d * (np.cos(np.pi * (xx - cx) / rx) ** 2) * (inplane < 1)
    femur_surface = joint - gap / 2 + condyles - 0.06 * d * inplane
    tibia_surface = joint + gap / 2 + 0.03 * d * inplane
    femur = (zz < femur_surface) & (inplane < 1.0)
    tibia = (zz > tibia_surface) & (inplane < 0.95) & (zz < d * 0.97)
    bone = femur | tibia
    dist_in_bone = ndimage.distance_transform_edt(bone)
    # Subchondral bone: within a few voxels of the articular surface, away from the bone's sides.
    depth_below_surface = np.where(femur, femur_surface - zz, np.where(tibia, zz - tibia_surface, np.inf))
    subchondral = bone & (depth_below_surface <= max(3.0, 0.14 * d)) & (dist_in_bone >= 1)

    # Lesions: irregular ellipsoids centred in subchondral bone.
    candidates = np.argwhere(subchondral & (dist_in_bone >= 3))
    num_lesions = int(rng.integers(1, 4))
    lesion_field = np.zeros((d, h, w))
    for _ in range(num_lesions):
        centre = candidates[rng.integers(len(candidates))].astype(np.float64)
        radii = scale * rng.uniform(0.03, 0.10, 3)
        lesion_field = np.maximum(lesion_field, np.clip(1.0 - _ellipsoid((zz, yy, xx), centre, radii), 0, None))
    irregular = 0.25 * _smooth_noise(rng, (d, h, w), 2.0)
    truth = ((lesion_field + irregular * (lesion_field > 0)) > 0.15) & bone

    # Image: fat-suppressed fluid-sensitive contrast.
    image = np.full((d, h, w), 0.10)
    soft = inplane < 1.35
    image[soft] = 0.28  # muscle / soft tissue
    image[bone] = 0.14  # fat-suppressed marrow
    cartilage = ~bone & soft & (np.abs(zz - joint) < gap / 2 + 0.04 * d) & (inplane < 1.0)
    image[cartilage] = 0.45
    fluid = ~bone & ~cartilage & (np.abs(zz - joint) < gap / 2 + 0.07 * d) & (inplane >= 0.85) & (inplane < 1.15)
    image[fluid] = 0.85
    brightness = rng.uniform(0.45, 0.65)
    image = image + brightness * np.clip(lesion_field * 2.5, 0, 1) * bone  # bright, fading edges
    image = image * (1 + 0.08 * _smooth_noise(rng, (d, h, w), 4.0))
    image = ndimage.gaussian_filter(image, 0.7)
    noise = 0.035
    image = np.sqrt(
        (image + noise * rng.standard_normal(image.shape)) ** 2 + (noise * rng.standard_normal(image.shape)) ** 2
    )

    # Raters: boundary jitter, missed small lesions, one biased rater.
    signed = ndimage.distance_transform_edt(truth) - ndimage.distance_transform_edt(~truth)  # > 0 inside
    components, n_comp = ndimage.label(truth)
    sizes = ndimage.sum_labels(np.ones_like(truth), components, index=np.arange(1, n_comp + 1))
    small = np.flatnonzero(sizes < max(20.0, 0.0005 * d * h * w)) + 1
    raters = []
    for r in range(num_raters):
        margin = 1.5 if r == 0 else rng.uniform(-0.5, 0.5)  # voxels added (+) or removed (-) at the border
        jitter = 0.8 * _smooth_noise(rng, (d, h, w), 1.5)
        mask = (signed + margin + jitter) > 0.5
        for comp in small:
            if rng.random() < 0.4:
                mask &= components != comp
        raters.append(mask.astype(np.uint8))
    votes = np.sum(raters, axis=0)
    consensus = (votes * 2 > num_raters).astype(np.uint8)
    return {
        "image": np.clip(image, 0, None).astype(np.float32),
        "truth": truth.astype(np.uint8),
        "raters": raters,
        "bone": bone.astype(np.uint8),
        "consensus": consensus,
        "num_lesions": num_lesions,
    }


def _sigmoid(x: np.ndarray | float) -> Any:
    return 1.0 / (1.0 + np.exp(-np.asarray(x)))


def lus_frame_layout(index: int, frames_per_timepoint: int = 1) -> tuple[int, int, int]:
    """``(patient, timepoint, frame)`` of frame ``index`` in the synthetic LUS set.

    Frames are ordered patient by patient, time point 0 then 1, ``frames_per_timepoint`` frames each.

    Example:
        >>> [lus_frame_layout(i, 2) for i in (0, 1, 2, 5)]
        [(0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 1)]
    """
    fpt = check_int("lus_frame_layout", "frames_per_timepoint", frames_per_timepoint, minimum=1)
    index = check_int("lus_frame_layout", "index", index, minimum=0)
    return index // (2 * fpt), (index // fpt) % 2, index % fpt


def _lus_patient(seed: int, patient: int) -> dict[str, Any]:
    """The latent course of one synthetic patient: severity at both time points and the clinical targets."""
    rng = _rng(seed, 6, patient)
    s0 = float(rng.beta(1.3, 1.6))
    s1 = float(np.clip(s0 + rng.normal(0.0, 0.2), 0.02, 0.98))
    noise = rng.normal(0.0, 12.0, 2)
    sf = [float(np.clip(470.0 - 330.0 * s + e, 90.0, 480.0)) for s, e in zip((s0, s1), noise)]
    return {
        "severity": (s0, s1),
        "sf_ratio": (round(sf[0], 2), round(sf[1], 2)),
        # worsening: the S/F ratio fell by more than 5 % between the two time points
        "sf_change": int(sf[1] < 0.95 * sf[0]),
        # readmission follows the severity at the second time point and the trend
        "readmission_30d": int(rng.random() < _sigmoid(5.0 * (s1 - 0.45) + 4.0 * (s1 - s0))),
    }


def make_lus_case(
    seed: int, index: int, size: tuple[int, int] = (256, 256), frames_per_timepoint: int = 1
) -> dict[str, Any]:
    """One lung ultrasound frame, per-class expert confidence maps and the clinical targets of its patient.

    Classes (channels of ``confidence``, and values 1..4 of ``truth``): pleural line, A-lines,
    B-lines, consolidation. Confidence is high in the core of a finding, drops across its boundary,
    stays low for faint findings, and sits in ``[0.45, 0.6)`` on Z-line artefacts that are not
    B-lines: binarizing at 0.5 includes them, 0.6 does not.

    Frames belong to patients seen at two time points (:func:`lus_frame_layout`). Each patient has a latent
    severity at both time points; a frame's findings follow it (more B-lines, a larger consolidation, fainter
    A-lines), so the clinical targets can be learned from what the frames show: the patient's S/F ratio at the
    frame's time point, whether it worsened between the time points (``sf_change``), 30-day readmission.

    Returns:
        dict with ``image`` (uint8 ``(H, W)``), ``confidence`` (float32 ``(H, W, 4)`` in [0, 1]),
        ``truth`` (uint8 ``(H, W)``), ``patient`` (str), ``timepoint`` (0 or 1), ``sf_ratio`` (float, the
        patient's at this time point), ``sf_change`` (1 when the S/F ratio fell by more than 5 % from time
        point 0 to 1, else 0), ``readmission_30d`` (0/1), ``severity`` (float in [0, 1], this frame's).

    Example:
        >>> case = make_lus_case(0, 0, size=(64, 64))
        >>> case["confidence"].shape, float(case["confidence"].max()) <= 1.0, case["patient"], case["timepoint"]
        ((64, 64, 4), True, 'lus000', 0)
    """
    h, w = int(size[0]), int(size[1])
    patient, timepoint, _ = lus_frame_layout(index, frames_per_timepoint)
    course = _lus_patient(seed, patient)
    rng = _rng(seed, 4, index)
    severity = float(np.clip(course["severity"][timepoint] + rng.normal(0.0, 0.04), 0.0, 1.0))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)

    pleura_depth = h * rng.uniform(0.22, 0.32) + 0.015 * h * np.sin(2 * np.pi * xx[0] / w * rng.uniform(0.5, 1.5))
    thickness = max(1.5, 0.012 * h)
    dist_pleura = yy - pleura_depth[None, :]
    pleura_soft = np.exp(-(dist_pleura**2) / (2 * thickness**2))
    # A-lines: reverberations at multiples of the pleural depth, fading with depth and severity.
    a_strength = max(0.0, 1.0 - 1.4 * severity) * rng.uniform(0.7, 1.0)
    a_soft = np.zeros((h, w))
    for k in (2, 3):
        a_soft = np.maximum(a_soft, np.exp(-((yy - k * pleura_depth[None, :]) ** 2) / (2 * thickness**2)) / (k - 0.8))
    a_soft *= a_strength
    # B-lines: vertical comet tails from the pleura to the bottom.
    n_b = max(0, round(7.0 * severity - 0.5 + rng.normal(0.0, 0.6)))
    b_soft = np.zeros((h, w))
    for _ in range(n_b):
        x0, width = rng.uniform(0.05, 0.95) * w, rng.uniform(0.012, 0.03) * w
        vis = rng.uniform(0.55, 1.0)
        b_soft = np.maximum(b_soft, vis * np.exp(-((xx - x0) ** 2) / (2 * width**2)) * (dist_pleura > 0))
    # Z-lines: short vertical artefacts that experts hesitate on; not B-lines.
    z_soft = np.zeros((h, w))
    for _ in range(int(rng.integers(0, 3))):
        x0, width, length = rng.uniform(0.05, 0.95) * w, rng.uniform(0.01, 0.02) * w, rng.uniform(0.1, 0.25) * h
        z_soft = np.maximum(
            z_soft, np.exp(-((xx - x0) ** 2) / (2 * width**2)) * (dist_pleura > 0) * (dist_pleura < length)
        )
    # Consolidation: an irregular subpleural hypoechoic region when the lung is severe enough.
    consol = np.zeros((h, w), bool)
    if severity + rng.normal(0.0, 0.04) > 0.45:
        cx, rx, ry = rng.uniform(0.25, 0.75) * w, (0.08 + 0.2 * severity) * w, (0.06 + 0.18 * severity) * h
        cy = pleura_depth[int(np.clip(cx, 0, w - 1))] + 0.8 * ry
        edge = 0.25 * _smooth_noise(rng, (h, w), 5.0)
        consol = ((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) < 1 + edge) & (dist_pleura > thickness)

    truth = np.zeros((h, w), np.uint8)
    visible_a = a_strength >= 0.35  # fainter reverberations are not called A-lines
    truth[(a_soft > 0.3) & visible_a] = 2
    truth[b_soft > 0.5] = 3
    truth[pleura_soft > 0.5] = 1
    truth[consol] = 4

    # Image: subcutaneous layers, bright pleura, reverberations, comet tails, tissue-like consolidation.
    image = 0.18 + 0.07 * _smooth_noise(rng, (h, w), 3.0)
    image[yy < pleura_depth[None, :]] += 0.12 * (np.sin(yy[yy < pleura_depth[None, :]] / 3.0) > 0.6)
    image = np.where(dist_pleura > 0, 0.10, image)
    image += 0.85 * pleura_soft + 0.45 * a_soft + 0.55 * b_soft + 0.35 * z_soft
    image = np.where(consol, 0.30 + 0.08 * _smooth_noise(rng, (h, w), 1.5), image)
    image = ndimage.gaussian_filter(image, 0.8)
    image *= ndimage.gaussian_filter(rng.rayleigh(1.0 / np.sqrt(np.pi / 2.0), (h, w)), 0.5)
    image = np.clip(image, 0, 1)

    # Expert confidence: about 0.6 on the true boundary, so experts overcall a halo of [0.5, 0.6) around
    # each finding (binarizing at 0.5 over-segments, 0.6 follows the truth); faint A-lines and Z-line
    # artefacts stay below 0.6.
    def called(x: np.ndarray) -> np.ndarray:
        return _sigmoid(x + 0.45) * 0.99

    conf = np.zeros((h, w, 4), np.float64)
    conf[..., 0] = called((pleura_soft - 0.5) * 10)
    conf[..., 1] = called((a_soft - 0.3) * 12) * (1.0 if visible_a else 0.5)
    conf[..., 2] = np.maximum(called((b_soft - 0.5) * 12), rng.uniform(0.45, 0.6) * (z_soft > 0.5))
    if consol.any():
        sd = ndimage.distance_transform_edt(consol) - ndimage.distance_transform_edt(~consol)
        conf[..., 3] = called(sd / 2.0)
    conf += 0.01 * rng.standard_normal(conf.shape) * (conf > 0.05)
    conf = np.clip(conf, 0, 1)

    return {
        "image": np.round(image * 255).astype(np.uint8),
        "confidence": conf.astype(np.float32),
        "truth": truth,
        "patient": f"lus{patient:03d}",
        "timepoint": timepoint,
        "sf_ratio": course["sf_ratio"][timepoint],
        "sf_change": course["sf_change"],
        "readmission_30d": course["readmission_30d"],
        "severity": round(severity, 4),
    }


def split_indices(
    num: int, seed: int, val_frac: float, test_frac: float, groups: Sequence[Any] | None = None
) -> list[str]:
    """Assign each of ``num`` cases to ``"training"``, ``"validation"`` or ``"test"``.

    Whole groups (patients) go to one split. The assignment depends only on ``seed`` and the groups.
    """
    groups = list(range(num)) if groups is None else list(groups)
    unique = sorted(set(groups), key=str)
    order = _rng(seed, 5).permutation(len(unique))
    n_val = round(val_frac * len(unique))
    n_test = round(test_frac * len(unique))
    if len(unique) >= 3:
        n_val, n_test = max(n_val, 1 if val_frac > 0 else 0), max(n_test, 1 if test_frac > 0 else 0)
    which = {}
    for rank, g_idx in enumerate(order):
        g = unique[g_idx]
        which[g] = "validation" if rank < n_val else "test" if rank < n_val + n_test else "training"
    return [which[g] for g in groups]


def _finish(out: Path, datalist: dict[str, Any], extra: dict[str, Any]) -> Path:
    datalist.update(extra)
    path = out / "datalist.json"
    atomic_write_text(path, json.dumps(datalist, indent=2) + "\n")
    return path


def _check_common(owner: str, num: int, seed: int, val_frac: float, test_frac: float) -> None:
    check_int(owner, "num", num, minimum=1)
    check_int(owner, "seed", seed, minimum=0)
    check_number(owner, "val_frac", val_frac, 0.0, 1.0)
    check_number(owner, "test_frac", test_frac, 0.0, 1.0)
    if val_frac + test_frac >= 1.0:
        raise ValueError(f"{owner}: 'val_frac' + 'test_frac' must be < 1. Got {val_frac} + {test_frac} instead.")


def generate_echo_dataset(
    out_dir: str | os.PathLike,
    num: int = 60,
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    progress: bool = False,
) -> Path:
    """Write ``num`` synthetic echo frames under ``out_dir`` and return the datalist path.

    Layout: ``imagesTr/<id>.nii.gz``, ``labelsTr/<id>.nii.gz`` and ``datalist.json`` with
    ``training``/``validation``/``test`` lists of ``{"id", "image", "label", "patient", "phase"}``
    (paths relative to ``out_dir``). Both frames of a patient go to the same split.

    Example:
        >>> import tempfile, json
        >>> p = generate_echo_dataset(tempfile.mkdtemp(), num=6, size=(32, 32))
        >>> sorted(json.load(open(p)))
        ['labels', 'modality', 'name', 'test', 'training', 'validation']
    """
    _check_common("generate_echo_dataset", num, seed, val_frac, test_frac)
    out = Path(out_dir)
    spacing = 0.3 * 256 / size[0]
    affine = np.diag([spacing, spacing, 1.0, 1.0])
    splits = split_indices(num, seed, val_frac, test_frac, groups=[i // 2 for i in range(num)])
    datalist: dict[str, Any] = {"training": [], "validation": [], "test": []}
    for i in _progress(range(num), num, "echo", progress):
        case = make_echo_case(seed, i, size)
        cid = f"{case['patient']}_{case['phase']}"
        save_nifti(case["image"], out / "imagesTr" / f"{cid}.nii.gz", affine)
        save_nifti(case["label"], out / "labelsTr" / f"{cid}.nii.gz", affine)
        datalist[splits[i]].append(
            {
                "id": cid,
                "image": f"imagesTr/{cid}.nii.gz",
                "label": f"labelsTr/{cid}.nii.gz",
                "patient": case["patient"],
                "phase": case["phase"],
            }
        )
    extra = {"name": "synthetic_echo", "modality": {"0": "US"}, "labels": {str(v): k for k, v in ECHO_LABELS.items()}}
    return _finish(out, datalist, extra)


def generate_knee_dataset(
    out_dir: str | os.PathLike,
    num: int = 20,
    seed: int = 0,
    size: tuple[int, int, int] = (64, 64, 64),
    num_raters: int = 3,
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    progress: bool = False,
) -> Path:
    """Write ``num`` synthetic knee volumes with rater masks and return the datalist path.

    Each entry: ``{"id", "image", "label" (consensus), "raters": [...], "bone", "truth"}``; ``truth``
    is the generator's hidden lesion mask, for evaluation only.
    """
    _check_common("generate_knee_dataset", num, seed, val_frac, test_frac)
    check_int("generate_knee_dataset", "num_raters", num_raters, minimum=1)
    out = Path(out_dir)
    affine = np.diag([0.7, 0.7, 0.7, 1.0]) * (64 / size[0])
    affine[3, 3] = 1.0
    splits = split_indices(num, seed, val_frac, test_frac)
    datalist: dict[str, Any] = {"training": [], "validation": [], "test": []}
    for i in _progress(range(num), num, "knee", progress):
        case = make_knee_case(seed, i, size, num_raters)
        cid = f"knee{i:04d}"
        save_nifti(case["image"], out / "imagesTr" / f"{cid}.nii.gz", affine)
        for key in ("consensus", "bone", "truth"):
            save_nifti(case[key], out / key / f"{cid}.nii.gz", affine)
        rater_paths = []
        for r, mask in enumerate(case["raters"]):
            rel = f"raters/{cid}_rater{r}.nii.gz"
            save_nifti(mask, out / rel, affine)
            rater_paths.append(rel)
        datalist[splits[i]].append(
            {
                "id": cid,
                "image": f"imagesTr/{cid}.nii.gz",
                "label": f"consensus/{cid}.nii.gz",
                "raters": rater_paths,
                "bone": f"bone/{cid}.nii.gz",
                "truth": f"truth/{cid}.nii.gz",
                "num_lesions": case["num_lesions"],
            }
        )
    extra = {"name": "synthetic_knee_bml", "modality": {"0": "MR"}, "labels": {"0": "background", "1": "bml"}}
    return _finish(out, datalist, extra)


def generate_lus_dataset(
    out_dir: str | os.PathLike,
    num: int = 60,
    seed: int = 0,
    size: tuple[int, int] = (256, 256),
    val_frac: float = 0.15,
    test_frac: float = 0.15,
    progress: bool = False,
    frames_per_timepoint: int = 1,
) -> Path:
    """Write ``num`` synthetic lung ultrasound frames and return the datalist path.

    Frames come from ``ceil(num / (2 * frames_per_timepoint))`` patients seen at two time points
    (:func:`lus_frame_layout`; when ``num`` is not a multiple, the last patient is incomplete). All frames of a
    patient go to one split. Each entry: ``{"id", "patient", "timepoint", "image", "confidence" ((H, W, 4),
    channel last: load with ``EnsureChannelFirstd(channel_dim=-1)``), "truth", "sf_ratio", "sf_change",
    "readmission_30d"}`` (``sf_ratio`` is the patient's at that time point; the other two are per patient).

    Example:
        >>> import tempfile, json
        >>> p = generate_lus_dataset(tempfile.mkdtemp(), num=8, size=(32, 32))
        >>> e = json.load(open(p))["training"][0]
        >>> sorted(e)[:4], e["timepoint"] in (0, 1)
        (['confidence', 'id', 'image', 'patient'], True)
    """
    _check_common("generate_lus_dataset", num, seed, val_frac, test_frac)
    fpt = check_int("generate_lus_dataset", "frames_per_timepoint", frames_per_timepoint, minimum=1)
    out = Path(out_dir)
    affine = np.diag([0.2, 0.2, 1.0, 1.0])
    splits = split_indices(num, seed, val_frac, test_frac, groups=[lus_frame_layout(i, fpt)[0] for i in range(num)])
    datalist: dict[str, Any] = {"training": [], "validation": [], "test": []}
    for i in _progress(range(num), num, "lus", progress):
        case = make_lus_case(seed, i, size, fpt)
        cid = f"{case['patient']}_t{case['timepoint']}_f{lus_frame_layout(i, fpt)[2]}"
        save_nifti(case["image"], out / "imagesTr" / f"{cid}.nii.gz", affine)
        save_nifti(case["confidence"], out / "confidence" / f"{cid}.nii.gz", affine)
        save_nifti(case["truth"], out / "truth" / f"{cid}.nii.gz", affine)
        datalist[splits[i]].append(
            {
                "id": cid,
                "patient": case["patient"],
                "timepoint": case["timepoint"],
                "image": f"imagesTr/{cid}.nii.gz",
                "confidence": f"confidence/{cid}.nii.gz",
                "truth": f"truth/{cid}.nii.gz",
                "sf_ratio": case["sf_ratio"],
                "sf_change": case["sf_change"],
                "readmission_30d": case["readmission_30d"],
            }
        )
    extra = {
        "name": "synthetic_lus",
        "modality": {"0": "US"},
        "labels": {"0": "background", **{str(i + 1): c for i, c in enumerate(LUS_CLASSES)}},
    }
    return _finish(out, datalist, extra)


_GENERATORS: dict[str, Callable[..., Path]] = {
    "echo": generate_echo_dataset,
    "knee": generate_knee_dataset,
    "lus": generate_lus_dataset,
}


def generate_dataset(kind: str, out_dir: str | os.PathLike, **kwargs: Any) -> Path:
    """Dispatch to ``generate_{kind}_dataset`` (``kind`` in ``echo``, ``knee``, ``lus``)."""
    if kind not in _GENERATORS:
        raise ValueError(
            f"The 'kind' parameter of generate_dataset must be one of {sorted(_GENERATORS)}. Got {kind!r} instead."
        )
    return _GENERATORS[kind](out_dir, **kwargs)
