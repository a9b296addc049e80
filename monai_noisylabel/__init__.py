"""monai_noisylabel: segmentation with wrong or uncertain labels, inside MONAI.

Flat re-exports of the public names of :mod:`.transforms`, :mod:`.losses`, :mod:`.detection`,
:mod:`.refurbish`, :mod:`.handlers` and :mod:`.data`. They load on first use (PEP 562), so
``import monai_noisylabel`` and the command line's ``--help`` do not import MONAI or torch; ignite is imported
lazily by the handlers, through ``monai.utils.optional_import``.

Example:
    >>> import monai_noisylabel
    >>> monai_noisylabel.NormalizedActivePassiveLoss is monai_noisylabel.losses.NormalizedActivePassiveLoss
    True
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

__version__ = "0.1.0"

#: the subpackages whose public names are re-exported here, in the order they are searched
_SUBPACKAGES = ("data", "detection", "handlers", "losses", "refurbish", "transforms")


def _subpackage(name: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{name}")


def _exported() -> dict[str, str]:
    """Public name -> the subpackage that exports it (imports every subpackage)."""
    table: dict[str, str] = {}
    for sub in _SUBPACKAGES:
        for name in _subpackage(sub).__all__:
            table.setdefault(name, sub)
    return table


def __getattr__(name: str) -> Any:
    if name in _SUBPACKAGES:
        return _subpackage(name)
    if name == "__all__":
        return ["__version__", *_exported()]
    if name.startswith("__"):
        raise AttributeError(name)
    sub = _exported().get(name)
    if sub is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_subpackage(sub), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_SUBPACKAGES, *_exported()})
