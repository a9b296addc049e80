"""A second, independently designed echo phantom and its own label corruption, for evaluating detection only.

Detection methods tuned on one generator can learn its quirks. This generator shares nothing with
:func:`~monai_noisylabel.data.make_echo_case` but the label meaning (0 background, 1 LV cavity,
2 myocardium, 3 left atrium): the LV is a bullet (parabolic apex, straight walls, flat mitral base) rather
than a perturbed ellipse, the myocardium is a distance band whose thickness varies along the wall (thick
septum, thin apex), the atrium is a star-shaped Fourier contour; the image comes from a linear-array-like
rectangular field of view with complex-Gaussian speckle blurred more laterally than axially, log
compression, a rib shadow, near-field reverberation bands, a bright papillary muscle inside the labelled
cavity and bright unlabelled mitral leaflets. Cases are mirrored at random (left/right views).

:func:`corrupt_echo_phantom_b` corrupts a label with signed distance fields (``scipy.ndimage``), not with
the package's transforms: ``random`` (each structure grown or shrunk by a radius in ``1..radius`` with a
smooth irregular boundary), ``systematic`` (the LV cavity grown by ``radius``), ``omission`` (the left
atrium removed). The package never trains on it: ``benchmarks/bench_detection.py`` reports on it without
retuning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage

from monai_noisylabel.utils import check_choice, check_int, param_error, stable_seed

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["make_echo_phantom_b", "corrupt_echo_phantom_b", "PHANTOM_B_KINDS"]

PHANTOM_B_KINDS = ("random", "systematic", "omission")
_LV, _MYO, _LA = 1, 2, 3


def _rng(*parts: Any) -> np.random.Generator:
    return np.random.default_rng(stable_seed("echo_phantom_b", *parts))


def _star(yy: np.ndarray, xx: np.ndarray, centre: tuple[float, float], radius: float, rng: np.random.Generator):
    """A star-shaped region: polar radius ``radius * (1 + sum_k a_k cos(k phi + p_k))``, k = 2..4."""
    phi = np.arctan2(yy - centre[0], xx - centre[1])
    wobble = sum(rng.uniform(0.0, 0.09) * np.cos(k * phi + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4))
    return np.hypot(yy - centre[0], xx - centre[1]) < radius * (1.0 + wobble)


def make_echo_phantom_b(seed: int, index: int, size: tuple[int, int] = (96, 96)) -> dict[str, Any]:
    """One frame of the second echo phantom and its 4-class label.

    Args:
        seed: dataset seed.
        index: case number (every case has its own geometry).
        size: ``(H, W)`` in pixels, each >= 16; H is depth.

    Returns:
        dict with ``image`` (uint8 ``(H, W)``) and ``label`` (uint8 ``(H, W)``: 0 background, 1 LV cavity,
        2 myocardium, 3 left atrium).

    Example:
        >>> case = make_echo_phantom_b(0, 0, size=(64, 64))
        >>> case["image"].shape, sorted(set(case["label"].ravel().tolist()))
        ((64, 64), [0, 1, 2, 3])
    """
    h = check_int("make_echo_phantom_b", "size", size[0], 16)
    w = check_int("make_echo_phantom_b", "size", size[1], 16)
    g, t = _rng(seed, "geometry", index), _rng(seed, "texture", index)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    # long axis from the apex (top) down to the mitral plane, tilted
    tilt = g.uniform(-0.25, 0.25)
    apex = (h * g.uniform(0.10, 0.16), w * g.uniform(0.42, 0.58))
    length, half_width = h * g.uniform(0.40, 0.50), w * g.uniform(0.11, 0.16)
    u = (yy - apex[0]) * np.cos(tilt) + (xx - apex[1]) * np.sin(tilt)  # along the axis
    v = -(yy - apex[0]) * np.sin(tilt) + (xx - apex[1]) * np.cos(tilt)  # across
    rounding = g.uniform(0.25, 0.45) * length
    profile = half_width * np.sqrt(np.clip(u / rounding, 0.0, 1.0))
    lv = (u > 0) & (u < length) & (np.abs(v) < profile)
    # myocardium: a distance band, thick on the septum side (v < 0), thin at the apex, open at the base
    dist = ndimage.distance_transform_edt(~lv)
    along = 0.7 + 0.3 * np.clip(u / length, 0, 1)
    thick = h * g.uniform(0.05, 0.07) * (1.0 + 0.35 * np.tanh(-v / half_width)) * along
    myo = (dist > 0) & (dist < thick) & (u < length)
    la_radius = h * g.uniform(0.09, 0.13)
    la_centre = (
        apex[0] + (length + la_radius * 1.05) * np.cos(tilt),
        apex[1] + (length + la_radius * 1.05) * np.sin(tilt),
    )
    la = _star(yy, xx, la_centre, la_radius, g) & ~lv & ~myo
    label = np.zeros((h, w), np.uint8)
    label[myo], label[lv], label[la] = _MYO, _LV, _LA

    # echogenicity: dark blood, bright muscle, graded tissue; unlabelled bright structures
    tissue = 0.25 + 0.15 * (yy / h) + 0.1 * ndimage.gaussian_filter(t.standard_normal((h, w)), 0.08 * h)
    tissue[myo] = t.uniform(0.6, 0.9)
    tissue[lv | la] = t.uniform(0.02, 0.08)
    pap = np.hypot(u - 0.6 * length, v - 0.5 * half_width * t.choice([-1.0, 1.0])) < 0.12 * half_width + 1
    tissue[pap & lv] = 0.55  # papillary muscle: bright, but labelled as cavity
    leaflet = (np.abs(u - length - 1) < 1.0) & (np.abs(v) < 0.8 * half_width) & (np.abs(v) > 0.15 * half_width)
    tissue[leaflet] = 0.95
    tissue = ndimage.gaussian_filter(tissue, (0.6 + t.uniform(0, 0.5), 1.2 + t.uniform(0, 0.8)))
    # near-field reverberation bands and a rib shadow
    bands = 0.25 * np.exp(-yy / (0.12 * h)) * (0.5 + 0.5 * np.cos(2 * np.pi * yy / (0.05 * h) + t.uniform(0, 6)))
    shadow_x = w * t.uniform(0.1, 0.9)
    shadow = 1.0 - t.uniform(0.4, 0.7) * np.exp(-(((xx - shadow_x) / (0.06 * w)) ** 2))
    speckle = np.abs(t.standard_normal((h, w)) + 1j * t.standard_normal((h, w)))
    speckle = ndimage.gaussian_filter(speckle, (0.5, 1.0))
    speckle /= speckle.mean()
    envelope = (tissue + bands) * shadow * speckle * np.exp(-t.uniform(0.3, 0.8) * yy / h)
    image = np.log1p(20.0 * envelope) / np.log1p(20.0 * 1.6)  # log compression
    image = np.clip(image + 0.02 * t.standard_normal((h, w)), 0.0, 1.0)
    margin = round(w * t.uniform(0.0, 0.06))
    if margin:  # field of view narrower than the image
        image[:, :margin], image[:, w - margin :] = 0.0, 0.0
        label[:, :margin], label[:, w - margin :] = 0, 0
    if g.random() < 0.5:  # mirrored view
        image, label = image[:, ::-1], label[:, ::-1]
    return {"image": np.round(image * 255).astype(np.uint8), "label": np.ascontiguousarray(label)}


def _fill_removed(label: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """Give each removed voxel the class of the nearest kept voxel (class maps stay consistent)."""
    out = label.copy()
    if removed.any():
        keep = ~removed
        if keep.any():
            idx = ndimage.distance_transform_edt(removed, return_distances=False, return_indices=True)
            out[removed] = label[tuple(i[removed] for i in idx)]
        else:
            out[removed] = 0
    return out


def _resize(label: np.ndarray, cls: int, radius: float, rng: np.random.Generator | None) -> np.ndarray:
    """Grow (``radius > 0``) or shrink class ``cls`` by a signed-distance threshold; a smooth random field
    (when ``rng``) makes the new boundary irregular."""
    mask = label == cls
    if not mask.any() or radius == 0:
        return label
    signed = ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)
    level = np.full(label.shape, float(radius))
    if rng is not None:
        field = ndimage.gaussian_filter(rng.standard_normal(label.shape), 3.0)
        level = level + 0.5 * abs(radius) * field / max(float(np.abs(field).max()), 1e-12)
    new = signed <= level if radius > 0 else signed < level - 0.5  # radius r: r layers of voxels
    if radius > 0:
        out = label.copy()
        out[new & ~mask] = cls
        return out
    return _fill_removed(label, mask & ~new)


def corrupt_echo_phantom_b(label: NdarrayOrTensor, kind: str, *, radius: int, rng: np.random.Generator) -> np.ndarray:
    """Corrupt one 2D label of :func:`make_echo_phantom_b` (or any 1/2/3-class echo label).

    Args:
        label: ``(H, W)`` class indices.
        kind: ``"random"`` (each structure grown or shrunk, with equal chance, by ``1..radius`` voxels with an
            irregular boundary), ``"systematic"`` (the LV cavity grown by ``radius`` voxels, over the wall) or
            ``"omission"`` (the left atrium set to background).
        radius: size of the change in voxels, >= 1.
        rng: the generator that draws the random changes.

    Returns:
        the corrupted ``(H, W)`` label (a new array; the input is not modified).

    Example:
        >>> lab = make_echo_phantom_b(0, 1, size=(64, 64))["label"]
        >>> bad = corrupt_echo_phantom_b(lab, "systematic", radius=2, rng=np.random.default_rng(0))
        >>> int((bad == 1).sum()) > int((lab == 1).sum())
        True
    """
    owner = "corrupt_echo_phantom_b"
    check_choice(owner, "kind", kind, PHANTOM_B_KINDS)
    radius = check_int(owner, "radius", radius, 1)
    lab = np.asarray(label)
    if lab.ndim != 2:
        raise param_error(owner, "label", "a 2D (H, W) class map", f"shape {lab.shape}")
    lab = lab.copy()
    if kind == "omission":
        lab[lab == _LA] = 0
        return lab
    if kind == "systematic":
        return _resize(lab, _LV, radius, None)
    for cls in (_LV, _MYO, _LA):
        r = int(rng.integers(1, radius + 1))
        lab = _resize(lab, cls, r if rng.random() < 0.5 else -r, rng)
    return lab
