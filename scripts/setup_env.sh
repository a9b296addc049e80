#!/usr/bin/env bash
# Sourced by run_tests.sh and run_demo.sh. Picks the Python to use and installs monai_noisylabel
# (editable, with the test extras) into it. It never reinstalls torch when a working torch>=2.8 is
# already importable from that Python.
#   - inside an active virtualenv/conda env: that env is used as it is;
#   - otherwise: a virtualenv at $MONAI_NOISYLABEL_VENV (default <repo>/.venv) that also sees the
#     system site-packages, so a system-wide torch is reused.
# Sets NL_PY to the interpreter to use.
NL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NL_BASE_PY="${PYTHON:-python3}"
if [ -n "${VIRTUAL_ENV:-}" ] || [ -n "${CONDA_PREFIX:-}" ]; then
    NL_PY="$(command -v python)"
else
    NL_VENV="${MONAI_NOISYLABEL_VENV:-$NL_ROOT/.venv}"
    if [ ! -x "$NL_VENV/bin/python" ]; then
        echo "[setup] creating virtual environment $NL_VENV"
        "$NL_BASE_PY" -m venv --system-site-packages "$NL_VENV" || return 1
    fi
    NL_PY="$NL_VENV/bin/python"
fi
export NL_PY
if ! "$NL_PY" -c "import sys, torch; v = tuple(int(p) for p in torch.__version__.split('+')[0].split('.')[:2]); sys.exit(v < (2, 8))" 2>/dev/null; then
    echo "[setup] no usable torch>=2.8 found: installing torch==2.13.0"
    "$NL_PY" -m pip install --disable-pip-version-check -q "torch==2.13.0" || return 1
fi
# Only install when the package or its requirements are missing or older than setup.cfg.
NL_STAMP="$("$NL_PY" -c 'import sys; print(sys.prefix)')/.monai_noisylabel_installed"
if [ ! -f "$NL_STAMP" ] || [ "$NL_ROOT/setup.cfg" -nt "$NL_STAMP" ] || [ "$(cat "$NL_STAMP")" != "$NL_ROOT" ] \
    || ! "$NL_PY" -c "import monai_noisylabel, monai, ignite, nibabel, sklearn, pytest" 2>/dev/null; then
    echo "[setup] installing monai_noisylabel and its dependencies (pip)"
    "$NL_PY" -m pip install --disable-pip-version-check -q -e "$NL_ROOT[test]" || return 1
    echo "$NL_ROOT" > "$NL_STAMP"
fi
