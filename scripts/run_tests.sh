#!/usr/bin/env bash
# README command 2: set up what is needed, then run the whole test suite (CPU only, no network).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup_env.sh
source scripts/setup_env.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
if [ "$#" -eq 0 ]; then set -- tests monai_noisylabel; fi
exec "$NL_PY" -m pytest "$@"
