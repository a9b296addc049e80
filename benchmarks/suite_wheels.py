"""The wheels of ``gpu_suite.py --wheels``: what the suite needs beyond torch, the pinned ``pip download`` command
that fetches it on the development machine, and the offline install on the GPU machine."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

__all__ = ["PREINSTALLED", "REQUIRED_MODULES", "download_command", "install_wheels", "missing_modules"]

# What the pure-Python wheels must provide (module to import, distribution that ships it)
REQUIRED_MODULES = {
    "monai": "monai",
    "ignite": "pytorch-ignite",
    "nibabel": "nibabel",
    "fire": "fire",
    "skimage": "scikit-image",
    "matplotlib": "matplotlib",
    "tensorboard": "tensorboard",
    "tqdm": "tqdm",
}
# What the GPU machine's Python is expected to have already (with their own dependencies)
PREINSTALLED = ("torch", "numpy", "scikit-learn", "scipy", "pyyaml")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(roots: Iterable[str], stop: Iterable[str] = ()) -> dict[str, str]:
    """Installed distributions ``roots`` need (themselves included), name -> version, not descending into ``stop``."""
    from importlib import metadata

    from packaging.requirements import Requirement

    stop = {_canonical(s) for s in stop}
    found: dict[str, str] = {}
    todo = [_canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in found or name in stop:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(_canonical(req.name))
    return found


def download_command(target_python: str, platform: str = "manylinux2014_x86_64") -> str:
    """The ``pip download`` command for the wheels ``--wheels`` installs, pinned to this environment's versions.

    Everything the required modules need is listed, minus what the GPU machine's Python already has (torch,
    numpy, scikit-learn, scipy, pyyaml and their own dependencies).
    """
    have = _closure(PREINSTALLED)
    pins = _closure(REQUIRED_MODULES.values(), stop=have)
    parts = ["python -m pip download --no-deps --only-binary=:all:", f"--python-version {target_python}"]
    parts += [f"--platform {p}" for p in (platform, "manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "any")]
    parts += ["-d wheels", *sorted(f"{n}=={v}" for n, v in pins.items())]
    return " ".join(parts)


def missing_modules() -> list[str]:
    return [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]


def install_wheels(folder: Path) -> None:
    """Install the required distributions from ``folder`` (offline); nothing to do when all are importable."""
    if not folder.is_dir() or not any(folder.glob("*.whl")):
        raise ValueError(
            f"The '--wheels' parameter of gpu_suite must be a folder of .whl files. Got {str(folder)!r} instead."
        )
    if not missing_modules():
        print("[gpu_suite] every required module is importable; --wheels not needed", flush=True)
        return
    cmd = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(folder)]
    cmd += ["--disable-pip-version-check", "-q", *REQUIRED_MODULES.values()]
    print("[gpu_suite] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    importlib.invalidate_caches()
    if missing_modules():
        raise RuntimeError(f"still not importable after installing from {folder}: {', '.join(missing_modules())}")
