"""Label-noise kernels vs scipy.ndimage: the core operation of each transform, side by side.

Labels: a 256x256 4-class echo label (``make_echo_case``) and a 128^3 binary label (a smooth random
blob with several components). For every operation, "ours" is the deterministic apply of the
transform (:func:`monai_noisylabel.transforms.label_noise.functional.apply_ops`) and "scipy" is a
``scipy.ndimage`` implementation of the same operation on the same numpy label (binary_dilation /
binary_erosion with the same ball, the same nearest-label fill with maximum_filter, ndimage.label,
map_coordinates); the script checks the outputs are identical (the jitter row approximates the same
field with ``ndimage.zoom``, so only its timing compares). Both run on one CPU thread; CUDA rows
appear when a GPU is present. A second table times whole transform calls on a MetaTensor (checks,
draw, apply, provenance).

Run: ``python benchmarks/bench_label_noise.py [--repeats 7] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from scipy import ndimage

from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.transforms.label_noise import RandLabelBias, RandLabelNoise, RandLabelOmission
from monai_noisylabel.transforms.label_noise import functional as F

__all__ = ["scipy_apply_ops", "binary_blob", "cases", "time_ms", "main"]


# ------------------------------------------------------------------------------------------------
# scipy.ndimage implementations of the same operations (numpy label without channel axis)
# ------------------------------------------------------------------------------------------------


def _ball(radius: int, ndim: int) -> np.ndarray:
    g = np.mgrid[tuple(slice(-radius, radius + 1) for _ in range(ndim))]
    return (g**2).sum(0) <= radius * radius


def _fill_nearest(lab: np.ndarray, hole: np.ndarray, exclude: int, background: int, steps: int | None) -> np.ndarray:
    cur = np.where(hole | (lab == exclude), -1, lab.astype(np.int32))
    todo = hole.copy()
    for _ in range(steps if steps is not None else max(lab.shape)):
        grown = ndimage.maximum_filter(cur, size=3, mode="constant", cval=-1)
        new = todo & (grown >= 0)
        if not new.any():
            break
        cur[new] = grown[new]
        todo &= ~new
        if not todo.any():
            break
    out = lab.copy()
    out[hole] = np.where(todo, background, cur)[hole]
    return out


def scipy_apply_ops(lab: np.ndarray, ops: list[dict[str, Any]]) -> np.ndarray:
    """The same operations as ``apply_ops`` with scipy.ndimage on a spatial numpy label."""
    out = lab.copy()
    for op in ops:
        kind, c, bg = op["op"], op.get("class"), op.get("background", 0)
        if kind == "dilate":
            out[ndimage.binary_dilation(out == c, _ball(op["radius"], out.ndim))] = c
        elif kind == "erode":
            mask = out == c
            hole = mask & ~ndimage.binary_erosion(mask, _ball(op["radius"], out.ndim), border_value=1)
            out = _fill_nearest(out, hole, c, bg, op["radius"])
        elif kind == "shift":
            mask = out == c
            moved = ndimage.shift(mask.astype(np.uint8), op["offset"], order=0, mode="constant", cval=0) > 0
            out[moved] = c
            out = _fill_nearest(out, mask & ~moved, c, bg, None)
        elif kind == "drop":
            out = np.where(out == c, bg, out).astype(out.dtype)
        elif kind == "drop_component":
            comps, _ = ndimage.label(out == c, structure=np.ones((3,) * out.ndim))
            out = np.where(comps == comps[tuple(op["point"])], bg, out).astype(out.dtype)
        elif kind == "jitter":
            m, s = op["magnitude"], op["spacing"]
            rng = np.random.default_rng(op["seed"])
            coarse = [max(2, math.ceil(n / s) + 1) for n in out.shape]
            coords = []
            for ax, n in enumerate(out.shape):
                ctrl = rng.uniform(-m, m, coarse)
                field = ndimage.zoom(ctrl, [n / k for n, k in zip(out.shape, coarse)], order=1, grid_mode=False)
                shape = [1] * out.ndim
                shape[ax] = n
                coords.append(np.arange(n).reshape(shape) + field)
            out = ndimage.map_coordinates(out, np.stack(np.broadcast_arrays(*coords)), order=0, mode="nearest")
    return out


# ------------------------------------------------------------------------------------------------
# data and timing
# ------------------------------------------------------------------------------------------------


def binary_blob(size: int = 128, seed: int = 0) -> np.ndarray:
    """A 3D binary label: thresholded smooth noise inside a ball (a few connected components)."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal((size,) * 3), 6)
    g = np.stack(np.mgrid[(slice(0, size),) * 3]).astype(np.float32)
    ball = ((g - size / 2) ** 2).sum(0) < (0.4 * size) ** 2
    return ((noise > 0.3 * noise.std()) & ball).astype(np.uint8)


def time_ms(fn: Callable[[], Any], repeats: int, cuda: bool) -> float:
    fn()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def cases(echo: np.ndarray, blob: np.ndarray) -> list[tuple[str, str, str, np.ndarray, list[dict[str, Any]]]]:
    p3 = F.component_points(torch.from_numpy(echo == 3))[0]
    pb = F.component_points(torch.from_numpy(blob == 1))[0]
    e, b = f"{'x'.join(map(str, echo.shape))} 4-class", f"{blob.shape[0]}^3 binary"
    noise_2d = [
        {"op": "dilate", "class": 1, "radius": 3},
        {"op": "erode", "class": 2, "radius": 2, "fill": "nearest"},
        {"op": "dilate", "class": 3, "radius": 1},
    ]
    return [
        ("RandLabelNoise", "dilate/erode per class, r 1-3", e, echo, noise_2d),
        ("RandLabelNoise", "erode r=3, nearest fill", b, blob, [{"op": "erode", "class": 1, "radius": 3}]),
        (
            "RandLabelNoise",
            "jitter 2 px, spacing 16 *",
            e,
            echo,
            [{"op": "jitter", "magnitude": 2.0, "spacing": 16, "seed": 0}],
        ),
        (
            "RandLabelNoise",
            "jitter 2 px, spacing 16 *",
            b,
            blob,
            [{"op": "jitter", "magnitude": 2.0, "spacing": 16, "seed": 0}],
        ),
        ("RandLabelBias", "dilate class 1, r=3", e, echo, [{"op": "dilate", "class": 1, "radius": 3}]),
        ("RandLabelBias", "dilate class 1, r=3", b, blob, [{"op": "dilate", "class": 1, "radius": 3}]),
        ("RandLabelBias", "shift class 1 by (0, 3)", e, echo, [{"op": "shift", "class": 1, "offset": [0, 3]}]),
        ("RandLabelOmission", "drop class", e, echo, [{"op": "drop", "class": 3}]),
        ("RandLabelOmission", "drop class", b, blob, [{"op": "drop", "class": 1}]),
        ("RandLabelOmission", "drop one component", e, echo, [{"op": "drop_component", "class": 3, "point": p3}]),
        ("RandLabelOmission", "drop one component", b, blob, [{"op": "drop_component", "class": 1, "point": pb}]),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (scipy is single-threaded)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    echo = make_echo_case(0, 0, size=(256, 256))["label"]
    blob = binary_blob(128)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

    print(f"torch {torch.__version__}, {args.threads} CPU thread(s), median of {args.repeats}")
    header = (
        f"| {'transform':<18} | {'operation':<32} | {'label':<15} | {'device':<6} | ours ms | scipy ms | speed-up |"
    )
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for name, op_name, label_name, lab, ops in cases(echo, blob):
        ref = scipy_apply_ops(lab, ops)
        t_scipy = time_ms(lambda lab=lab, ops=ops: scipy_apply_ops(lab, ops), args.repeats, False)
        for dev in devices:
            x = torch.from_numpy(lab[None]).to(dev)
            ours = F.apply_ops(x, ops)[0].cpu().numpy()
            if ops[0]["op"] != "jitter":
                assert np.array_equal(ours, ref), f"{name} {op_name} {label_name}: not the same result as scipy"
            t_ours = time_ms(lambda x=x, ops=ops: F.apply_ops(x, ops), args.repeats, dev == "cuda")
            row = f"| {name:<18} | {op_name:<32} | {label_name:<15} | {dev:<6} | {t_ours:7.2f} | {t_scipy:8.2f} |"
            print(row + f" {t_scipy / t_ours:7.1f}x |")
    print("* jitter: scipy builds an equivalent (not identical) field with ndimage.zoom; timing only.")
    print("drop class: no ndimage function does it; the baseline is numpy's where. All other rows: identical output.")

    print()
    print("Whole transform call on a MetaTensor (checks, draw, apply, provenance JSON):")
    print(f"| {'transform':<48} | {'label':<15} | {'device':<6} | ms |")
    print("|" + "-" * 50 + "|" + "-" * 17 + "|" + "-" * 8 + "|----|")
    for label_name, lab, cls in (("256x256 4-class", echo, 3), ("128^3 binary", blob, 1)):
        transforms = [
            ("RandLabelNoise(radius=(1, 3))", RandLabelNoise(radius=(1, 3)).set_random_state(0)),
            ("RandLabelBias(label_class=1, radius=3)", RandLabelBias(label_class=1, radius=3)),
            (f"RandLabelOmission(classes={cls})", RandLabelOmission(classes=cls)),
            (f"RandLabelOmission(classes={cls}, mode='component')", RandLabelOmission(classes=cls, mode="component")),
        ]
        for dev in devices:
            x = MetaTensor(torch.from_numpy(lab[None]).to(dev), meta={"filename_or_obj": "case.nii.gz"})
            for tname, t in transforms:
                ms = time_ms(lambda t=t, x=x: t(x), args.repeats, dev == "cuda")
                print(f"| {tname:<48} | {label_name:<15} | {dev:<6} | {ms:.1f} |")


if __name__ == "__main__":
    main()
