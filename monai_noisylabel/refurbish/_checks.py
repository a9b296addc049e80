"""Private input checks shared by the refurbish modules."""

from __future__ import annotations

from typing import Any

import torch

from monai_noisylabel.utils import as_plain_tensor, param_error

__all__ = ["Shape", "Raw", "as_tensor_input", "check_prob_range"]


class Shape(tuple):
    """A shape tuple whose ``repr`` reads ``shape (2, 3)`` so error messages name what was wrong."""

    def __repr__(self) -> str:
        return f"shape {tuple(self)}"


class Raw(str):
    """A string shown as is (no quotes) in :func:`param_error` messages."""

    def __repr__(self) -> str:
        return str(self)


def as_tensor_input(owner: str, name: str, value: Any) -> torch.Tensor:
    """``value`` as a plain torch tensor (shares memory where possible) or raise a parameter error."""
    return as_plain_tensor(value, owner=owner, name=name)


def check_prob_range(owner: str, name: str, values: torch.Tensor, tol: float = 1e-4) -> None:
    """Raise when finite ``values`` leave [0, 1]: probabilities were expected (logits are a common slip)."""
    if values.numel() == 0:
        return
    finite = values[torch.isfinite(values)]
    if finite.numel() and (float(finite.min()) < -tol or float(finite.max()) > 1 + tol):
        raise param_error(
            owner,
            name,
            "probabilities in [0, 1] (pass activation='softmax' or 'sigmoid' for logits)",
            Raw(f"values in [{float(finite.min()):.4g}, {float(finite.max()):.4g}]"),
        )
