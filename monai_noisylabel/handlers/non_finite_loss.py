"""Stop, or skip the batch, when the training loss is NaN or infinite, naming the samples of the batch."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys, IgniteInfo, min_version, optional_import

from monai_noisylabel.utils import check_choice

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["NonFiniteLossHandler", "NON_FINITE_LOSS_ACTIONS"]

logger = logging.getLogger(__name__)

NON_FINITE_LOSS_ACTIONS = ("stop", "skip")


class NonFiniteLossHandler:
    """Check a MONAI ``SupervisedTrainer``'s loss before the backward pass; never train on NaN.

    Runs at ``IterationEvents.LOSS_COMPLETED``, i.e. after the loss of a batch is computed and before any gradient
    reaches the weights. On a NaN or infinite loss the message names the epoch, the iteration, the batch's sample
    ids (``id_key`` of the batch) and those of them whose image or prediction is itself non-finite, then:

    - ``action="stop"``: raises ``FloatingPointError``; the weights are those of the last step and the last
      checkpoint on disk is untouched, so the run can be fixed and resumed;
    - ``action="skip"``: the batch leaves no trace: its gradients are dropped before the optimizer step (with AMP,
      ``GradScaler`` skips the step on non-finite gradients itself). The ids are logged and kept in ``skipped``.

    Either way the network's buffers (BatchNorm running statistics, which the forward pass already updated from
    the bad batch) are restored to their values before the batch.

    Args:
        action: ``"stop"`` or ``"skip"``.
        id_key: the batch key holding the sample ids.

    Example:
        >>> NonFiniteLossHandler("skip").action
        'skip'
    """

    def __init__(self, action: str = "stop", id_key: str = "id") -> None:
        self.action = check_choice(type(self).__name__, "action", action, NON_FINITE_LOSS_ACTIONS)
        self.id_key = id_key
        self.skipped: list[dict[str, Any]] = []
        self._buffers: dict[str, torch.Tensor] = {}
        self._skip = False

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_STARTED, self._snapshot)
        if self.action == "skip":
            engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self._drop_gradients)
        engine.add_event_handler(IterationEvents.LOSS_COMPLETED, self)

    def _snapshot(self, engine: Engine) -> None:
        self._skip = False
        self._buffers = {k: v.detach().clone() for k, v in engine.network.named_buffers()}  # type: ignore[attr-defined]

    def _batch_ids(self, engine: Engine) -> tuple[list[str], list[str]]:
        batch, output = engine.state.batch, engine.state.output
        raw = batch.get(self.id_key) if isinstance(batch, dict) else None
        ids: list[str] = [str(i) for i in raw] if isinstance(raw, (list, tuple)) else []
        for key in (CommonKeys.IMAGE, CommonKeys.PRED):  # a NaN image spreads to every prediction through BatchNorm
            value = output.get(key) if isinstance(output, dict) else None
            if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == len(ids):
                finite = torch.isfinite(value.detach().reshape(value.shape[0], -1)).all(dim=1)
                if not bool(finite.all()):
                    return ids, [ids[int(i)] for i in torch.nonzero(~finite).flatten()]
        return ids, []

    def __call__(self, engine: Engine) -> None:
        loss = engine.state.output[CommonKeys.LOSS]  # type: ignore[index]
        if bool(torch.isfinite(loss.detach()).all()):
            return
        ids, culprits = self._batch_ids(engine)
        where = (
            f"{type(self).__name__}: the training loss is {float(loss.detach().float().mean())} at epoch "
            f"{engine.state.epoch}, iteration {engine.state.iteration}; batch ids {ids}"
            + (f" (non-finite input or prediction: {culprits})" if culprits else "")
        )
        if self.action == "stop":
            self._restore_buffers(engine)
            raise FloatingPointError(
                f"{where}. Training stopped before the weights were updated; check these samples (or lower the "
                "learning rate) and resume from the last checkpoint, or set the action to 'skip'."
            )
        logger.warning(f"{where}: batch skipped.")
        self.skipped.append({"epoch": engine.state.epoch, "iteration": engine.state.iteration, "ids": ids})
        self._skip = True

    def _drop_gradients(self, engine: Engine) -> None:
        if not self._skip:
            return
        if getattr(engine, "scaler", None) is None:  # GradScaler skips non-finite steps by itself
            for p in engine.network.parameters():  # type: ignore[attr-defined]
                p.grad = None
        self._restore_buffers(engine)  # after the backward pass, which still needs the forward's tensors

    def _restore_buffers(self, engine: Engine) -> None:
        with torch.no_grad():
            for name, buf in engine.network.named_buffers():  # type: ignore[attr-defined]
                if name in self._buffers:
                    buf.copy_(self._buffers[name])

    def state_dict(self) -> dict[str, Any]:
        """The skipped batches, saved with the checkpoint."""
        return {"skipped": list(self.skipped)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.skipped = list(state.get("skipped", []))
