"""The one schedule vocabulary of the handlers: ``warmup``, ``every`` and ``epochs``.

Every handler that runs an extra pass after some epochs (:class:`~monai_noisylabel.handlers.SampleLossHandler`,
:class:`~monai_noisylabel.handlers.VarianceOfGradientsHandler`,
:class:`~monai_noisylabel.handlers.LabelRefurbishHandler`) takes the same three arguments:

- ``warmup``: the first ``warmup`` epochs are skipped (``0``: none);
- ``every``: after that, the epochs ``e`` with ``e % every == 0`` run (``1``: every epoch);
- ``epochs``: an explicit list of (1-based) epochs that overrides both; ``[]`` means never.

This module imports neither ignite nor torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from monai_noisylabel.utils import check_int, param_error

__all__ = ["EpochSchedule", "check_epochs"]

_EXPECTED = "None or a list of distinct epoch numbers (ints >= 1)"


def check_epochs(owner: str, value: Iterable[int] | None) -> list[int] | None:
    """``epochs`` as a sorted list of distinct ints >= 1 (``[]`` allowed: never), or ``None``.

    Raises:
        ValueError: not ``None`` or a list/tuple/set of ints >= 1, or an epoch that repeats.

    Example:
        >>> check_epochs("demo", (3, 1)), check_epochs("demo", None), check_epochs("demo", [])
        ([1, 3], None, [])
        >>> check_epochs("demo", [2, 2])
        Traceback (most recent call last):
        ...
        monai_noisylabel.utils.ParameterError: The 'epochs' parameter of demo must be None or a list of distinct epoch numbers (ints >= 1). Got [2, 2] instead.
    """
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise param_error(owner, "epochs", _EXPECTED, value)
    out = list(value)
    if any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 1 for e in out):
        raise param_error(owner, "epochs", _EXPECTED, value)
    if len(set(out)) != len(out):
        raise param_error(owner, "epochs", _EXPECTED, value)
    return sorted(int(e) for e in out)


@dataclass(frozen=True)
class EpochSchedule:
    """After which epochs a handler runs: ``warmup``/``every``, or the explicit ``epochs`` (see the module).

    Build it with :meth:`checked` to validate user arguments; call it with an epoch number (the form
    ignite's ``event_filter`` wants, through ``handlers._common.epoch_filter``).

    Example:
        >>> s = EpochSchedule.checked("demo", warmup=2, every=2)
        >>> [e for e in range(1, 9) if s(e)], s.until(8)
        ([4, 6, 8], [4, 6, 8])
        >>> EpochSchedule.checked("demo", epochs=[]).until(8)
        []
    """

    warmup: int = 0
    every: int = 1
    epochs: tuple[int, ...] | None = None

    @classmethod
    def checked(cls, owner: str, warmup: int = 0, every: int = 1, epochs: Iterable[int] | None = None) -> EpochSchedule:
        """A schedule from user arguments; a bad one raises a ``ValueError`` that names ``owner``."""
        listed = check_epochs(owner, epochs)
        return cls(
            warmup=check_int(owner, "warmup", warmup, 0),
            every=check_int(owner, "every", every, 1),
            epochs=None if listed is None else tuple(listed),
        )

    def __call__(self, epoch: int) -> bool:
        """Whether the handler runs after ``epoch`` (1-based)."""
        if self.epochs is not None:
            return epoch in self.epochs
        return epoch > self.warmup and epoch % self.every == 0

    def until(self, max_epochs: int) -> list[int]:
        """The scheduled epochs of a run of ``max_epochs`` epochs."""
        if self.epochs is not None:
            return [e for e in self.epochs if e <= max_epochs]
        return [e for e in range(1, int(max_epochs) + 1) if self(e)]
