#!/usr/bin/env bash
# The GPU suite in one line (benchmarks/gpu_suite.py; arguments pass through, e.g. --wheels wheels/ --json out.json).
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/../benchmarks/gpu_suite.py" "$@"
