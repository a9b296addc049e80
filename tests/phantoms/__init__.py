"""Independently designed phantoms for testing the bundles on data they were not built on.

Used only by tests and benchmarks, never by the library. Written without the package's own generators: other
intensity ranges, anisotropic spacing, non-cubic sizes, other rater behaviour and other file layouts.
"""

from __future__ import annotations

from .echo_c import write_echo_c
from .knee import write_knee_phantom
from .lus import write_lus_phantom

__all__ = ["write_knee_phantom", "write_lus_phantom", "write_echo_c"]
