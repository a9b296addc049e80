"""Echo phantom C: an apical two-chamber-like echo set written as a user would write one, with its own label errors.

Written without reading the package's echo generators or label-noise transforms. What differs from them on
purpose: a non-square frame (120 x 104 by default) saved as 8-bit PNG (images and labels), a wide fan with its
apex above the frame, a tilted, asymmetric bullet-shaped LV (superellipse profile, walls of different thickness),
an LA that sits off the LV axis and is clipped by the fan, speckle from a laterally smeared complex Gaussian
field, log compression, a smooth depth gain curve with a lateral ramp, an angular dropout wedge, near-field
clutter at the apex and a bright epicardial rim.

Label errors are implemented here, on signed distance maps (never by the package's transforms):

- ``systematic``: the LV cavity of every corrupted label drawn 3 px too large (into the wall, never into the LA);
- ``subtle_systematic``: the same bias by 1 or 2 px;
- ``random``: every structure's contour moved by a smooth random displacement field (about 2.5 px, at most
  4 px) plus a random offset (up to 3 px, in or out);
- ``subtle_random``: the same with a field of about 1.2 px (at most 2 px) and offsets up to 1 px;
- ``omission``: the LA (60 %) or the myocardium (40 %) left out.

Command line (writes ``DIR/datalist.json`` with ``training`` on the labels as given, each with a ``corrupted``
flag, ``validation`` and ``test`` on clean labels, and ``DIR/corruption.csv`` recording which training ids are
corrupted and how)::

    python tests/phantoms/echo_c.py --out DIR --kind systematic --rate 0.5
    python tests/phantoms/echo_c.py --out DIR --score OUTPUT_DIR   # AUROC / AP / flags of OUTPUT_DIR/label_scores.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

KINDS = ("none", "systematic", "subtle_systematic", "random", "subtle_random", "omission")
LV, MYO, LA = 1, 2, 3
SCORES = ("combined", "loss", "offset", "vog", "gmm_noisy_prob")


def _fan(h: int, w: int, apex_y: float, half_angle: float, depth: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(mask, radius, angle)`` of a sector with its apex at ``(apex_y, w / 2)`` (above the frame)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    dy, dx = y - apex_y, x - (w - 1) / 2
    radius = np.hypot(dy, dx)
    angle = np.arctan2(dx, dy)
    return (np.abs(angle) <= half_angle) & (radius <= depth), radius, angle


def _anatomy(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Clean label map and the fan geometry of one case."""
    apex_y, half_angle = -0.08 * h, math.radians(rng.uniform(36, 42))
    fan, _, _ = _fan(h, w, apex_y, half_angle, 1.04 * h)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    tilt = math.radians(rng.uniform(-14, 14))
    top = np.array([rng.uniform(0.10, 0.16) * h, (w - 1) / 2 + rng.uniform(-0.06, 0.06) * w])  # LV apex (y, x)
    length = rng.uniform(0.48, 0.58) * h
    axis = np.array([math.cos(tilt), math.sin(tilt)])  # along the LV, downwards
    normal = np.array([-axis[1], axis[0]])
    s = (y - top[0]) * axis[0] + (x - top[1]) * axis[1]
    t = (y - top[0]) * normal[0] + (x - top[1]) * normal[1]
    u = np.clip(s / length, 0.0, 1.0)
    p = rng.uniform(2.0, 3.2)
    profile = (1.0 - (1.0 - u) ** p) ** (1.0 / p)  # superellipse: blunt at the base, pointed at the apex
    width_l, width_r = rng.uniform(0.15, 0.21, size=2) * w
    half = np.where(t < 0, width_l, width_r) * profile * (1 - 0.12 * u**4)
    cavity = (s >= 0) & (s <= length) & (np.abs(t) <= half)
    out = ndimage.distance_transform_edt(~cavity)
    scale = h / 120.0  # anatomy in proportion to the frame; label errors stay in pixels, as an annotator's
    thick = scale * (rng.uniform(5.0, 7.0) + rng.uniform(0.5, 2.0) * np.tanh(t / 4.0))  # the two walls differ
    wall = (out > 0) & (out <= thick) & (s <= length + 0.5)
    la_c = top + axis * (length + rng.uniform(0.09, 0.13) * h) + normal * rng.uniform(-0.05, 0.05) * w
    la_a, la_b = rng.uniform(0.10, 0.14) * h, rng.uniform(0.6, 0.9) * max(width_l, width_r)
    ls = (y - la_c[0]) * axis[0] + (x - la_c[1]) * axis[1]
    lt = (y - la_c[0]) * normal[0] + (x - la_c[1]) * normal[1]
    atrium = ((ls / la_a) ** 2 + (lt / la_b) ** 2 <= 1.0) & (s > length - 1)
    label = np.zeros((h, w), np.uint8)
    label[atrium] = LA
    label[wall] = MYO
    label[cavity] = LV
    label[~fan] = 0
    return label, {"apex_y": apex_y, "half_angle": half_angle, "fan": fan}


def _speckle(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-mean Rayleigh-like speckle, smeared laterally (wider than deep, as a beam's point spread)."""
    field = rng.normal(size=(h, w)) + 1j * rng.normal(size=(h, w))
    field = ndimage.gaussian_filter(field.real, (0.7, 1.6)) + 1j * ndimage.gaussian_filter(field.imag, (0.7, 1.6))
    amp = np.abs(field)
    return amp / amp.mean()


def _image(label: np.ndarray, geo: dict, rng: np.random.Generator) -> np.ndarray:
    h, w = label.shape
    fan, radius, angle = _fan(h, w, geo["apex_y"], geo["half_angle"], 1.04 * h)
    smooth = ndimage.gaussian_filter(rng.normal(size=(h, w)), 6.0)
    echo = 0.30 + 0.5 * smooth / (np.abs(smooth).max() + 1e-8) * 0.15  # surrounding tissue, slowly varying
    echo = np.where(label == MYO, rng.uniform(0.65, 0.85), echo)
    echo = np.where((label == LV) | (label == LA), rng.uniform(0.03, 0.08), echo)
    myo = label == MYO
    rim = ndimage.binary_dilation(myo, iterations=1) & ~myo & (label == 0)
    echo = np.where(rim, 1.1, echo)  # bright epicardial interface
    # near-field clutter: a haze over the first rows below the LV apex
    depth = radius / (1.04 * h)
    echo = echo + 0.18 * np.exp(-(((depth - 0.2) / 0.06) ** 2)) * rng.uniform(0.3, 1.0)
    amp = echo * _speckle(h, w, rng)
    # smooth gain: a depth curve (imperfect time-gain compensation) times a lateral ramp
    k = rng.uniform(0.6, 1.6)
    gain = np.exp(-k * depth) * (1 + rng.uniform(0.2, 0.6) * np.sin(math.pi * depth * rng.uniform(0.8, 1.4)))
    gain = gain * (1 + rng.uniform(-0.35, 0.35) * angle / geo["half_angle"])
    # dropout: an angular wedge (a rib shadow or poor contact) at a random angle
    centre, width = rng.uniform(-0.8, 0.8) * geo["half_angle"], math.radians(rng.uniform(4, 10))
    gain = gain * (1 - rng.uniform(0.6, 0.85) * np.exp(-(((angle - centre) / width) ** 2)))
    amp = amp * gain
    img = np.log1p(30 * amp) / np.log1p(30 * np.percentile(amp[fan], 99.5))
    img = np.clip(img, 0, 1) * fan
    return (img * 255).round().astype(np.uint8)


def _signed(mask: np.ndarray) -> np.ndarray:
    """Signed distance to the mask's contour: negative inside."""
    return ndimage.distance_transform_edt(~mask) - ndimage.distance_transform_edt(mask)


def _random_field(shape: tuple[int, int], scale: float, limit: float, rng: np.random.Generator) -> np.ndarray:
    """A smooth displacement field: about ``scale`` px in magnitude, never beyond ``limit`` px."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), 5.0)
    return np.clip(scale * field / (field.std() + 1e-8), -limit, limit)


def corrupt(label: np.ndarray, kind: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """One wrong label of ``kind`` and a short description of what was changed."""
    out = label.copy()
    if kind in ("systematic", "subtle_systematic"):
        px = 3 if kind == "systematic" else int(rng.integers(1, 3))
        grown = (_signed(label == LV) <= px) & (label != LA) & (label != LV)
        if label[label > 0].size:  # stay inside the fan (drawn pixels never leave the imaged sector)
            grown &= ndimage.binary_dilation(label > 0, iterations=px + 1)
        out[grown] = LV
        return out, f"LV +{px}px"
    if kind in ("random", "subtle_random"):
        (scale, limit), shift = ((2.5, 4.0), 3.0) if kind == "random" else ((1.2, 2.0), 1.0)
        inside = (label > 0) | ndimage.binary_dilation(label > 0, iterations=6)

        def moved(mask: np.ndarray) -> np.ndarray:
            sd = _signed(mask) + _random_field(mask.shape, scale, limit, rng) + rng.uniform(-shift, shift)
            return (sd <= 0) & inside

        epi, atrium, cavity = moved((label == LV) | (label == MYO)), moved(label == LA), moved(label == LV)
        out[:] = 0
        out[epi] = MYO
        out[atrium & ~epi] = LA
        out[cavity] = LV
        return out, f"contours moved (up to {limit:g}px, shift up to {shift:g}px)"
    if kind == "omission":
        gone = LA if rng.random() < 0.6 else MYO
        out[label == gone] = 0
        return out, "LA omitted" if gone == LA else "myocardium omitted"
    raise ValueError(f"The 'kind' parameter of echo_c.corrupt must be one of {KINDS[1:]}. Got {kind!r} instead.")


def _png(path: Path, arr: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), mode="L").save(path)
    return str(path.relative_to(path.parents[1]))


def write_echo_c(
    out: str | Path,
    *,
    kind: str = "systematic",
    rate: float = 0.5,
    num_train: int = 160,
    num_val: int = 24,
    num_test: int = 16,
    size: tuple[int, int] = (120, 104),
    seed: int = 0,
) -> Path:
    """Write the phantom to ``out`` and return its ``datalist.json``.

    ``round(rate * num_train)`` training labels are corrupted with ``kind``; ``corruption.csv`` lists every
    training id with ``corrupted`` 0/1. Clean training labels stay in ``clean_labels/`` for reference.
    """
    if kind not in KINDS:
        raise ValueError(f"The 'kind' parameter of write_echo_c must be one of {KINDS}. Got {kind!r} instead.")
    if not 0 <= rate <= 1:
        raise ValueError(f"The 'rate' parameter of write_echo_c must be a float in [0, 1]. Got {rate!r} instead.")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = (int(s) for s in size)
    n_bad = 0 if kind == "none" else round(rate * num_train)
    bad = set(rng.permutation(num_train)[:n_bad].tolist())
    datalist: dict[str, list] = {"training": [], "validation": [], "test": []}
    rows = []
    for i in range(num_train + num_val + num_test):
        case_rng = np.random.default_rng([seed, i])
        label, geo = _anatomy(h, w, case_rng)
        image = _image(label, geo, case_rng)
        cid = f"case{i:04d}"
        entry = {"id": cid, "image": _png(root / "images" / f"{cid}.png", image)}
        if i < num_train:
            given, detail = (label, "") if i not in bad else corrupt(label, kind, case_rng)
            _png(root / "clean_labels" / f"{cid}.png", label)
            entry["label"] = _png(root / "labels" / f"{cid}.png", given)
            entry["corrupted"] = i in bad  # the bundle scores detection against these flags
            datalist["training"].append(entry)
            rows.append({"id": cid, "corrupted": int(i in bad), "kind": kind if i in bad else "", "detail": detail})
        else:
            entry["label"] = _png(root / "labels" / f"{cid}.png", label)
            datalist["validation" if i < num_train + num_val else "test"].append(entry)
    (root / "datalist.json").write_text(json.dumps(datalist, indent=2) + "\n")
    with open(root / "corruption.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["id", "corrupted", "kind", "detail"])
        writer.writeheader()
        writer.writerows(rows)
    return root / "datalist.json"


def score_run(data_dir: str | Path, output_dir: str | Path) -> dict[str, float | int | None]:
    """AUROC and AP of each score of ``output_dir/label_scores.csv`` against ``data_dir/corruption.csv``,
    and the precision and recall of its ``flagged`` column (scikit-learn metrics)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    with open(Path(data_dir) / "corruption.csv") as f:
        truth = {r["id"]: int(r["corrupted"]) for r in csv.DictReader(f)}
    with open(Path(output_dir) / "label_scores.csv") as f:
        rows = list(csv.DictReader(f))
    y = np.array([truth[r["id"]] for r in rows])
    res: dict[str, float | int | None] = {"n": len(rows), "n_corrupted": int(y.sum())}
    for name in SCORES:
        cells = [r.get(name, "") for r in rows]
        if y.min() == y.max() or any(c in ("", None) for c in cells):
            res[f"auroc_{name}"] = res[f"ap_{name}"] = None
            continue
        s = np.array(cells, dtype=float)
        res[f"auroc_{name}"] = float(roc_auc_score(y, s))
        res[f"ap_{name}"] = float(average_precision_score(y, s))
    flagged = np.array([r["flagged"] in ("1", "True", "true") for r in rows])
    res["flagged"] = int(flagged.sum())
    res["flag_precision"] = float(y[flagged].mean()) if flagged.any() else None
    res["flag_recall"] = float(flagged[y == 1].mean()) if y.any() else None
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="data folder to write (or to score against with --score)")
    ap.add_argument("--kind", default="systematic", choices=KINDS)
    ap.add_argument("--rate", type=float, default=0.5)
    ap.add_argument("--num-train", type=int, default=160)
    ap.add_argument("--num-val", type=int, default=24)
    ap.add_argument("--num-test", type=int, default=16)
    ap.add_argument("--size", type=int, nargs=2, default=(120, 104), metavar=("H", "W"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--score", metavar="OUTPUT_DIR", help="score a bundle run's label_scores.csv instead")
    args = ap.parse_args(argv)
    if args.score:
        print(json.dumps(score_run(args.out, args.score), indent=2))
        return
    path = write_echo_c(
        args.out,
        kind=args.kind,
        rate=args.rate,
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        size=tuple(args.size),
        seed=args.seed,
    )
    print(path)


if __name__ == "__main__":
    main()
