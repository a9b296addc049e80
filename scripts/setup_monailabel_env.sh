#!/usr/bin/env bash
# Builds the separate virtual environment that MONAI Label 0.8.5 needs (it pins numpy<2 and old DICOM
# packages, so it cannot share the main environment). Cached: does nothing when the environment is already
# built from the same requirements. Prints the environment's python on the last line (progress goes to stderr).
#   MONAI_NOISYLABEL_MONAILABEL_VENV  where to build it (default <repo>/.venv-monailabel)
#   MONAI_NOISYLABEL_MONAILABEL_TORCH torch requirement (default torch==2.13.0: the CPU wheel; a CUDA machine
#                                     can give e.g. "torch==2.13.0 torchvision==0.28.0" from PyPI, a true pair)
#   PYTHON                            base interpreter, 3.10 or 3.11 (default python3)
#   MONAI_NOISYLABEL_MONAILABEL_PYTHON the python of a MONAI Label environment built elsewhere (e.g. by another
#                                     checkout of this repository): checked that it has MONAI Label and this
#                                     package (run with PYTHONPATH=<this checkout> to use this checkout's
#                                     package), never rebuilt
#
# torchvision: PyPI has no CPU build for Linux, and the CUDA build of torchvision 0.28 (the one made for torch
# 2.13) fails at import without the CUDA torch (it registers `torchvision::nms` unconditionally). MONAI Label
# imports only torchvision's pure-Python `utils` on the paths used here, and no torchvision operator runs, so
# with a CPU torch the environment keeps torchvision 0.16.2's Python code, whose import tolerates missing
# compiled operators (`torchvision.extension._has_ops()` is False).
set -euo pipefail
ML_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ML_VENV="${MONAI_NOISYLABEL_MONAILABEL_VENV:-$ML_ROOT/.venv-monailabel}"
read -r -a ML_TORCH <<< "${MONAI_NOISYLABEL_MONAILABEL_TORCH:-torch==2.13.0}"
ML_REQS=(
    "monailabel==0.8.5"
    "${ML_TORCH[@]}"
    "numpy<2"
    "pydicom<3"
    "pynetdicom<3"
    "dicomweb-client[gcp]<0.60"
    "monai>=1.6,<1.7"
    # the package's own runtime requirements (it is installed without them: monailabel's pydicom-seg pins
    # jsonschema<4, which the package does not use at run time)
    "pytorch-ignite>=0.5"
    "nibabel>=5.0"
    "scikit-learn>=1.3"
    "scikit-image>=0.21"
    "matplotlib>=3.7"
    "tensorboard>=2.14"
)
ML_KEY="$(printf '%s\n' "${ML_REQS[@]}" "$ML_ROOT" | sha256sum | cut -c1-16)"
ML_STAMP="$ML_VENV/.monailabel_env_built"
ML_CHECK="import torchvision.utils, monailabel.tasks.infer.bundle, monai_noisylabel.monailabel, monai_noisylabel.bundle"
if [ -n "${MONAI_NOISYLABEL_MONAILABEL_PYTHON:-}" ]; then
    ML_FIND="import importlib.util as u, sys; sys.exit(not all(u.find_spec(m) for m in ('monailabel', 'monai_noisylabel')))"
    if ! "$MONAI_NOISYLABEL_MONAILABEL_PYTHON" -c "$ML_FIND" >&2; then
        echo "[setup-monailabel] MONAI_NOISYLABEL_MONAILABEL_PYTHON=$MONAI_NOISYLABEL_MONAILABEL_PYTHON cannot import MONAI Label and this package" >&2
        exit 1
    fi
    echo "$MONAI_NOISYLABEL_MONAILABEL_PYTHON"
    exit 0
fi
if [ ! -x "$ML_VENV/bin/python" ] || [ ! -f "$ML_STAMP" ] || [ "$(cat "$ML_STAMP")" != "$ML_KEY" ]; then
    echo "[setup-monailabel] building $ML_VENV (one time, several minutes)" >&2
    start=$SECONDS
    "${PYTHON:-python3}" -m venv "$ML_VENV"
    pip_install() { "$ML_VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" >&2; }
    pip_install "${ML_REQS[@]}"
    pip_install --no-deps -e "$ML_ROOT"
    if ! "$ML_VENV/bin/python" -c "import torchvision" 2>/dev/null; then
        echo "[setup-monailabel] torchvision does not import with this torch: using torchvision 0.16.2's Python code" >&2
        pip_install --no-deps --force-reinstall "torchvision==0.16.2"
    fi
    "$ML_VENV/bin/python" -c "$ML_CHECK" >&2
    echo "$ML_KEY" > "$ML_STAMP"
    echo "[setup-monailabel] built in $((SECONDS - start)) s" >&2
fi
echo "$ML_VENV/bin/python"
