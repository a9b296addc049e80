"""Per-sample loss as a label-error score: a per-epoch table, a window mean, and a streaming accumulator.

A wrong label is hard to fit, so its loss stays high while the network learns the clean majority;
later the network memorizes it and the loss drops (at 50 % noise the last-epoch loss can rank the
wrong way). Averaging the loss over a window of epochs, measured in eval mode without augmentation,
keeps the early signal (DivideMix, arXiv 2002.07394; deep self-cleansing, arXiv 2409.05024).

Missing and non-finite losses: in a loss table NaN means "not measured" (a sample absent from an
epoch) and ``+inf`` means "a non-finite loss was measured" (a diverging sample is suspicious).
:class:`SampleLossAccumulator` records NaN/inf losses as ``+inf`` and counts them; any ``+inf`` in a
sample's window makes its score ``+inf``, which ranks it first.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from monai_noisylabel.utils import as_float_array, as_ids, check_choice, check_int, check_stage_fractions, param_error

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["per_sample_loss", "sample_loss_scores", "SampleLossAccumulator"]

_DEFAULT_WINDOW = (1.0 / 3.0, 1.0)


def per_sample_loss(
    loss_fn: Callable[..., torch.Tensor], logits: torch.Tensor, labels: NdarrayOrTensor
) -> torch.Tensor:
    """Call ``loss_fn(logits, labels)`` and reduce its output to one loss per sample (differentiable).

    ``loss_fn`` must not reduce over the batch: e.g. MONAI ``DiceCELoss(reduction="none")`` style
    losses returning ``(B, ...)``, or any callable returning ``(B,)``; every non-batch dimension is
    averaged. A scalar output is accepted only for a batch of one.

    Returns:
        ``(B,)`` torch tensor on the logits' device (it stays in the autograd graph).

    Raises:
        ValueError: the loss reduces over the batch, or its first dimension is not the batch size.

    Example:
        >>> import torch
        >>> ce = torch.nn.CrossEntropyLoss(reduction="none")
        >>> logits, labels = torch.zeros(3, 2, 4, 4), torch.zeros(3, 4, 4, dtype=torch.long)
        >>> per_sample_loss(ce, logits, labels).shape
        torch.Size([3])
    """
    out = loss_fn(logits, labels)
    if not isinstance(out, torch.Tensor):
        raise param_error("per_sample_loss", "loss_fn", "a callable returning a torch.Tensor", type(out).__name__)
    batch = logits.shape[0]
    if out.ndim == 0:
        if batch != 1:
            raise param_error(
                "per_sample_loss", "loss_fn", "a loss that keeps the batch dimension (reduction='none')", "a scalar"
            )
        return out.reshape(1)
    if out.shape[0] != batch:
        raise param_error(
            "per_sample_loss", "loss_fn", f"a loss whose first dimension is the batch size {batch}", tuple(out.shape)
        )
    return out.reshape(batch, -1).mean(dim=1)


def _window_rows(owner: str, num_epochs: int, window: Any) -> slice:
    if isinstance(window, str):
        check_choice(owner, "window", window, ("last",))
        return slice(num_epochs - 1, num_epochs)
    start, end = check_stage_fractions(owner, "window", window)
    lo = int(np.floor(start * num_epochs))
    hi = max(int(np.ceil(end * num_epochs)), lo + 1)
    return slice(lo, hi)


def sample_loss_scores(
    losses: NdarrayOrTensor | Sequence[float], *, window: tuple[float, float] | str = _DEFAULT_WINDOW
) -> np.ndarray:
    """Mean per-sample loss over a window of epochs.

    Args:
        losses: ``(E, N)`` table, one row per recorded epoch (oldest first), one column per sample; NaN =
            not measured, ``+inf`` = a non-finite loss was measured. A ``(N,)`` array is one epoch.
        window: ``(start, end)`` fractions of the recorded epochs, rows ``floor(start*E)`` to
            ``ceil(end*E)`` (at least one row); default ``(1/3, 1)``, the last two thirds of training,
            which kept its ranking at 50 % noise where the last epoch alone collapsed. ``"last"`` uses
            the last row only.

    Returns:
        ``(N,)`` float64 scores (higher = more suspicious): the mean of the measured losses in the
        window; ``+inf`` if a non-finite loss was measured there; NaN if none was measured.

    Raises:
        ValueError: a bad shape, ``-inf`` in the table, or a bad ``window``.

    Example:
        >>> table = [[1.0, 1.0], [0.2, 0.9], [0.1, 0.8]]
        >>> sample_loss_scores(table).round(3).tolist()
        [0.15, 0.85]
        >>> sample_loss_scores(table, window="last").tolist()
        [0.1, 0.8]
    """
    owner = "sample_loss_scores"
    table = as_float_array(owner, "losses", losses, ndim=(1, 2))
    if table.ndim == 1:
        table = table[None]
    if table.shape[0] == 0:
        raise param_error(owner, "losses", "a table with at least one epoch", f"shape {table.shape}")
    if (table == -np.inf).any():
        raise param_error(owner, "losses", "free of -inf (NaN = not measured, +inf = non-finite loss)", "-inf")
    rows = table[_window_rows(owner, table.shape[0], window)]
    measured = ~np.isnan(rows)
    count = measured.sum(axis=0)
    total = np.where(measured, rows, 0.0).sum(axis=0)  # +inf propagates
    out = np.full(table.shape[1], np.nan)
    np.divide(total, count, out=out, where=count > 0)
    return out


class SampleLossAccumulator:
    """Collect per-sample losses epoch by epoch, keyed by sample id, for :func:`sample_loss_scores`.

    Any per-epoch, per-sample score can be collected the same way (e.g. the per-epoch
    :func:`~monai_noisylabel.detection.offset_scores`, to average them over a window of epochs).

    Args:
        owner: the name used in error messages (a handler may pass its own class name).

    Example:
        >>> acc = SampleLossAccumulator()
        >>> acc.update(["a", "b"], [1.0, 1.0], epoch=1)
        >>> acc.update(["a", "b"], [0.2, float("nan")], epoch=2)
        >>> acc.ids, acc.epochs, acc.nonfinite_counts().tolist()
        (['a', 'b'], [1, 2], [0, 1])
        >>> acc.scores(window="last").tolist()
        [0.2, inf]
    """

    def __init__(self, *, owner: str = "SampleLossAccumulator") -> None:
        self._owner = owner
        self.reset()

    def reset(self) -> None:
        """Forget everything recorded."""
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._rows: dict[int, dict[int, float]] = {}

    @property
    def ids(self) -> list[str]:
        """Sample ids in first-seen order; the columns of :meth:`table`."""
        return list(self._ids)

    @property
    def epochs(self) -> list[int]:
        """Recorded epochs in increasing order; the rows of :meth:`table`."""
        return sorted(self._rows)

    def _column(self, sample_id: str) -> int:
        col = self._index.get(sample_id)
        if col is None:
            col = self._index[sample_id] = len(self._ids)
            self._ids.append(sample_id)
        return col

    def update(
        self, ids: Sequence[str | int] | NdarrayOrTensor, losses: NdarrayOrTensor | Sequence[float], epoch: int
    ) -> None:
        """Record the losses of a batch measured at ``epoch``.

        Args:
            ids: ``B`` unique sample ids (str or int).
            losses: ``(B,)`` per-sample losses (numpy or torch); NaN/inf are recorded as ``+inf``.
            epoch: the epoch the losses belong to (any int; rows are ordered by it).

        Raises:
            ValueError: a shape mismatch, ids that repeat within the batch, or a sample that already has
                a loss for this epoch (two samples sharing an id, or the same batch recorded twice).
        """
        values = as_float_array(self._owner, "losses", losses, ndim=1)
        keys = as_ids(self._owner, ids, expected_len=values.shape[0])
        epoch = check_int(self._owner, "epoch", epoch)
        row = self._rows.get(epoch, {})
        for key in keys:
            col = self._index.get(key)
            if col is not None and col in row:
                raise param_error(
                    self._owner, "ids", f"ids not already recorded at epoch {epoch} (do two samples share an id?)", key
                )
        row = self._rows.setdefault(epoch, row)
        for key, value in zip(keys, values.tolist()):
            row[self._column(key)] = value if np.isfinite(value) else np.inf

    def table(self) -> np.ndarray:
        """The ``(E, N)`` loss table: NaN = not measured, ``+inf`` = non-finite loss."""
        out = np.full((len(self._rows), len(self._ids)), np.nan)
        for r, epoch in enumerate(self.epochs):
            cols = self._rows[epoch]
            out[r, list(cols)] = list(cols.values())
        return out

    def scores(self, *, window: tuple[float, float] | str = _DEFAULT_WINDOW) -> np.ndarray:
        """:func:`sample_loss_scores` of :meth:`table`, aligned with :attr:`ids`."""
        if not self._rows:
            return np.zeros(0)
        return sample_loss_scores(self.table(), window=window)

    def nonfinite_counts(self) -> np.ndarray:
        """``(N,)`` number of epochs in which each sample had a NaN or inf loss (to flag and report)."""
        return np.isinf(self.table()).sum(axis=0) if self._rows else np.zeros(0, dtype=np.int64)

    def merge(self, other: SampleLossAccumulator, *, on_duplicate: str = "error") -> None:
        """Add another accumulator's records (e.g. gathered from other DDP ranks).

        Args:
            other: the accumulator to merge in; it is not modified.
            on_duplicate: ``"error"`` or ``"first"`` (keep this accumulator's value, as needed when a
                distributed sampler pads the last batch by repeating samples).
        """
        check_choice(self._owner, "on_duplicate", on_duplicate, ("error", "first"))
        for epoch, cols in other._rows.items():
            row = self._rows.setdefault(epoch, {})
            for col, value in cols.items():
                key = other._ids[col]
                mine = self._index.get(key)
                if mine is not None and mine in row:
                    if on_duplicate == "error":
                        raise param_error(self._owner, "other", f"free of ids already recorded at epoch {epoch}", key)
                    continue
                row[self._column(key)] = value

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; torch tensors and builtins only (``torch.load(weights_only=True)``)."""
        return {"ids": list(self._ids), "epochs": self.epochs, "table": torch.from_numpy(self.table())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output, replacing the current contents."""
        try:
            ids, epochs = [str(i) for i in state["ids"]], [int(e) for e in state["epochs"]]
            table = np.asarray(torch.as_tensor(state["table"], dtype=torch.float64).cpu().numpy())
        except (KeyError, TypeError, ValueError):
            raise param_error(self._owner, "state", "a dict from state_dict()", type(state).__name__) from None
        if table.shape != (len(epochs), len(ids)) or len(set(ids)) != len(ids):
            raise param_error(self._owner, "state", "a consistent dict from state_dict()", f"table {table.shape}")
        self.reset()
        for key in ids:
            self._column(key)
        for r, epoch in enumerate(epochs):
            cols = np.flatnonzero(~np.isnan(table[r]))
            self._rows[epoch] = {int(c): float(table[r, c]) for c in cols}
