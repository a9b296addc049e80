#!/usr/bin/env bash
# README command 2: set up what is needed (pip, cached), then run the whole test suite (CPU only).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup_env.sh
source scripts/setup_env.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# the separate MONAI Label environment for the `monailabel` tests (cached; they skip if it cannot be built)
bash scripts/setup_monailabel_env.sh >/dev/null || echo "[setup] MONAI Label environment not built: its tests will skip" >&2
if [ "$#" -eq 0 ]; then set -- tests monai_noisylabel; fi
exec "$NL_PY" -m pytest "$@"
