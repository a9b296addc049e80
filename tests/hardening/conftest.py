"""Hardening tests: load the hypothesis profile and report how many property cases ran."""

from __future__ import annotations

import _proplib


def pytest_terminal_summary(terminalreporter):
    if not _proplib.CASES:
        return
    total = sum(_proplib.CASES.values())
    outcomes = ", ".join(f"{n} {k}" for k, n in sorted(_proplib.OUTCOMES.items()))
    terminalreporter.write_line(
        f"hypothesis ({_proplib.PROFILE} profile): {total} cases over {len(_proplib.CASES)} functions ({outcomes})"
    )
