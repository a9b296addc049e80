#!/usr/bin/env bash
# README command 1: set up what is needed, then run the main job on the built-in synthetic echo data:
# generate phantoms, corrupt a known subset of the training labels, train a U-Net with a
# noise-tolerant loss while scoring every training label, and report how well the scores find the
# corrupted ones. Extra arguments go to examples/noisy_echo_demo.py (try --help).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/setup_env.sh
source scripts/setup_env.sh
exec "$NL_PY" examples/noisy_echo_demo.py "$@"
