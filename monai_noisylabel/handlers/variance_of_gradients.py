"""Variance of Gradients (VoG) of every training sample, recorded during a MONAI ``SupervisedTrainer`` run.

A thin ignite adapter over :class:`~monai_noisylabel.detection.VoGAccumulator` and
:func:`~monai_noisylabel.detection.input_gradients` (Agarwal et al., CVPR 2022,
https://arxiv.org/abs/2008.11600).

Which gradient target, measured end to end with these handlers (``tests/handlers/test_end_to_end.py``
setting: 64 synthetic echo images of 64x64, the LV cavity of 25 % of the labels dilated by 6 px, a MONAI
UNet trained 12 epochs on CPU; AUROC against the corrupted set over 4 data/noise seeds):

========================================  ==============================
score                                     AUROC (seeds 0, 1, 2, 3)
========================================  ==============================
VoG, ``target="loss"``, cross-entropy      0.93, 0.87, 0.83, 0.90 (default)
VoG, ``target="logit"``                    0.96, 0.85, 0.90, 0.94
VoG, ``target="loss"``, Dice + CE          0.81, 0.64, 0.66, 0.76
VoG, ``target="loss"``, Dice only          0.46, 0.21, 0.34, 0.37 (inverted)
VoG, online, CE training loss              0.90, 0.85, 0.89, 0.93
per-sample loss (SampleLossHandler)        1.00, 1.00, 1.00, 1.00
========================================  ==============================

With a subtler bias (3 px, 48 images) every VoG variant stayed between 0.33 and 0.66 while the per-sample
loss kept 1.00, and online VoG with a Dice + CE training loss reached 0.49 (3 px) and 0.70 to 0.78 (6 px):
the Dice term's input gradient hides the signal. The issue's reference experiment (256x256, 600 images, 40 epochs) found the loss target far
better than the logit target (which inverted for omitted structures), so ``"loss"`` is the default, with
the per-sample cross-entropy as its loss.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.engines.utils import IterationEvents
from monai.utils import IgniteInfo, min_version, optional_import

from monai_noisylabel.detection import VOG_STAGES, VoGAccumulator, input_gradients
from monai_noisylabel.handlers import _common as C
from monai_noisylabel.handlers.schedule import EpochSchedule
from monai_noisylabel.utils import as_plain_tensor, check_choice, check_int, param_error

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["VarianceOfGradientsHandler", "per_sample_cross_entropy"]

_OWNER = "VarianceOfGradientsHandler"
_NORMALIZE = ("raw", "zscore", "abs_zscore", "group_zscore")
#: Welford sets per sample in the main accumulator (early, middle, late thirds).
_SLOTS = 3


def _schedule_of(warmup: Any, every: Any, epochs: Any) -> tuple[EpochSchedule, str]:
    """The handler's schedule and the name of its period argument (``every``, or the deprecated ``epochs=n``,
    which still means every n-th epoch and warns)."""
    every_name = "every"
    if isinstance(epochs, (int, np.integer)) and not isinstance(epochs, bool):
        every = check_int(_OWNER, "epochs", epochs, 1)
        warnings.warn(
            f"{_OWNER}(epochs={every}) meaning every {every}-th epoch is deprecated; pass every={every} instead.",
            DeprecationWarning,
            stacklevel=3,
        )
        epochs, every_name = None, "epochs"
    schedule = EpochSchedule.checked(_OWNER, warmup, every, epochs)
    if schedule.epochs == ():
        raise param_error(_OWNER, "epochs", "None or a non-empty list of epochs (VoG needs checkpoints)", [])
    return schedule, every_name


def per_sample_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the given labels per sample, ``(B,)``: the default VoG loss target.

    Labels are class indices ``(B, 1, *spatial)`` / ``(B, *spatial)``, or one-hot/soft ``(B, C, *spatial)``
    (then ``-sum_k q_k log p_k``); the mean over voxels.
    """
    if labels.shape == logits.shape and logits.shape[1] > 1 and labels.is_floating_point():
        per_voxel = -(labels.to(logits.dtype) * torch.log_softmax(logits, dim=1)).sum(dim=1)
    else:
        index = labels[:, 0] if labels.ndim == logits.ndim else labels
        per_voxel = F.cross_entropy(logits, index.long(), reduction="none")
    return per_voxel.reshape(per_voxel.shape[0], -1).mean(dim=1)


class VarianceOfGradientsHandler:
    """Score every training sample by the Variance of its input Gradients across training (higher = suspect).

    Two ways to get the gradient maps ``S_t`` (the input gradient of the target, averaged over channels):

    - ``mode="checkpoint"`` (the VoG paper's definition): after each scheduled epoch,
      one pass over ``probe_loader`` (the training images and their given labels, WITHOUT augmentation;
      not shuffled) with ``engine.network`` in eval mode and
      :func:`~monai_noisylabel.detection.input_gradients`. It costs a forward and an input-only backward
      per sample (no weight gradients, no optimizer step).
    - ``mode="online"``: no extra pass. During a scheduled epoch the handler marks the training batch's
      image as requiring grad (it wraps ``engine.prepare_batch``; the collated batch itself is not
      modified) and reads ``image.grad`` on ``IterationEvents.BACKWARD_COMPLETED``: the gradient of the
      batch-mean training loss, multiplied by the batch size (and by ``accumulation_steps``, divided by
      the AMP scale) to give each sample's own loss gradient. Differences from the checkpoint
      definition: the map is taken in train mode (dropout; batch norm couples the samples of a batch),
      on the augmented image (spatial augmentation moves the structures between epochs, which inflates
      the per-voxel variance: use it with intensity-only augmentation or none, or use checkpoint mode),
      with the weights of the moment the sample is drawn (during the epoch, not at its end), and
      always with the training loss as target (``target`` must be ``"loss"``). Under AMP, batches whose
      scaled gradient overflowed (GradScaler skips them) are not recorded.

    Both modes call ``engine.network`` directly (not ``engine.inferer``), unwrapped from DDP.

    Each sample keeps Welford statistics per stage (early / middle / late third of the ``K`` scheduled
    checkpoints), never the maps themselves; maps are average-pooled so that this state fits
    ``max_state_bytes`` per sample (256 KiB: 3x3 pooling at 256x256) unless ``pool`` is given.

    Results: ``engine.state.label_scores[id]["vog"]`` after each checkpoint (NaN until a sample has 2;
    ``inf`` when its gradient was NaN/inf, which also flags it), written to
    ``<output_dir>/label_scores.csv`` (rank 0) and as a TensorBoard histogram ``label_scores/vog``.
    Under DDP the maps of each checkpoint are gathered, so every rank holds the full state (repeated ids
    from a padding ``DistributedSampler`` are dropped); give each rank the probe samples with
    ``DistributedSampler(shuffle=False)``. :meth:`state_dict` / :meth:`load_state_dict` let
    ``CheckpointSaver(save_dict={..., "vog": handler})`` / ``CheckpointLoader`` resume the scores exactly.

    Args:
        probe_loader: checkpoint mode: a loader of dict batches with the training images and given labels,
            without augmentation; must be ``None`` in online mode.
        warmup: no checkpoint during the first ``warmup`` epochs.
        every: a checkpoint after epochs ``e > warmup`` with ``e % every == 0`` (ignored with ``epochs``).
        epochs: explicit (1-based) checkpoint epochs, or ``None`` for ``warmup``/``every``
            (:mod:`~monai_noisylabel.handlers.schedule`). The number ``K`` of scheduled checkpoints defines
            the stages. The old ``epochs=n`` still means every ``n``-th epoch, with a ``DeprecationWarning``.
        target: ``"loss"`` (default; in the reference experiment of the issue it ranked corrupted labels
            far better than the paper's ``"logit"``) or ``"logit"`` (sum of the given label's logits).
        loss_fn: checkpoint mode with ``target="loss"``: a per-sample loss (``reduction="none"``, see
            :func:`~monai_noisylabel.detection.per_sample_loss`); default: the per-sample cross-entropy of
            the given labels (:func:`per_sample_cross_entropy`). A Dice term in this loss made VoG rank the
            wrong way in our end-to-end runs (see the module docstring). Must be ``None`` in online mode.
        mode: ``"checkpoint"`` or ``"online"``.
        image_key, label_key: batch keys of the image and the given label.
        id_key: batch key of the sample ids (the datalist ``id`` field); without it the label's meta
            ``filename_or_obj`` is used. A ValueError is raised when a batch has neither, or ids repeat.
        pool: average-pooling factor of the maps; ``None`` picks the smallest that fits ``max_state_bytes``.
        max_state_bytes: per-sample state budget used when ``pool`` is ``None``.
        stage: ``"all"``, ``"early"``, ``"middle"`` or ``"late"`` checkpoints.
        normalize: ``"raw"``, ``"zscore"``, ``"abs_zscore"`` or ``"group_zscore"`` (with ``groups``).
        groups: a mapping from sample id to group (e.g. view) for ``"group_zscore"``.
        output_dir: folder of ``label_scores.csv``; ``None``: not written by this handler.
        summary_writer: a TensorBoard ``SummaryWriter`` for histograms, or ``None``.
        name: logger name; default: ``engine.logger``.

    Example:
        >>> import torch
        >>> from monai.engines import SupervisedTrainer
        >>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
        >>> data = [{"image": torch.rand(1, 8, 8), "label": torch.zeros(1, 8, 8, dtype=torch.long), "id": f"s{i}"}
        ...         for i in range(4)]
        >>> loader = torch.utils.data.DataLoader(data, batch_size=2)
        >>> loss = torch.nn.CrossEntropyLoss()
        >>> trainer = SupervisedTrainer("cpu", 3, loader, net, torch.optim.SGD(net.parameters(), 0.1),
        ...                             lambda p, y: loss(p, y[:, 0]))
        >>> VarianceOfGradientsHandler(loader).attach(trainer)
        >>> trainer.run()
        >>> sorted(trainer.state.label_scores), trainer.state.label_scores["s0"]["vog"] > 0
        (['s0', 's1', 's2', 's3'], True)
    """

    def __init__(
        self,
        probe_loader: Iterable[Any] | None = None,
        *,
        warmup: int = 0,
        every: int = 1,
        epochs: Sequence[int] | None = None,
        target: str = "loss",
        loss_fn: Callable[..., torch.Tensor] | None = None,
        mode: str = "checkpoint",
        image_key: str = "image",
        label_key: str = "label",
        id_key: str = "id",
        pool: int | None = None,
        max_state_bytes: int = 256 * 1024,
        stage: str = "all",
        normalize: str = "raw",
        groups: Mapping[str, Hashable] | None = None,
        output_dir: str | Path | None = None,
        summary_writer: Any = None,
        name: str | None = None,
    ) -> None:
        self.mode = check_choice(_OWNER, "mode", mode, ("checkpoint", "online"))
        self.target = check_choice(_OWNER, "target", target, ("loss", "logit"))
        if mode == "checkpoint" and probe_loader is None:
            raise param_error(_OWNER, "probe_loader", "a loader of the training images without augmentation", None)
        if mode == "online":
            if probe_loader is not None:
                raise param_error(_OWNER, "probe_loader", "None when mode='online'", type(probe_loader).__name__)
            if target != "loss":
                raise param_error(_OWNER, "target", "'loss' when mode='online' (the training loss's gradient)", target)
            if loss_fn is not None:
                raise param_error(_OWNER, "loss_fn", "None when mode='online' (the training loss is used)", loss_fn)
        self.probe_loader = probe_loader
        self.schedule, self._every_name = _schedule_of(warmup, every, epochs)
        self.loss_fn = loss_fn
        self.image_key, self.label_key, self.id_key = image_key, label_key, id_key
        self.pool = None if pool is None else check_int(_OWNER, "pool", pool, 1)
        self.max_state_bytes = check_int(_OWNER, "max_state_bytes", max_state_bytes, _SLOTS * 8)
        self.stage = check_choice(_OWNER, "stage", stage, VOG_STAGES)
        self.normalize = check_choice(_OWNER, "normalize", normalize, _NORMALIZE)
        self.groups = C.check_groups(_OWNER, groups)
        if (normalize == "group_zscore") != (self.groups is not None):
            raise param_error(_OWNER, "groups", "a mapping if and only if normalize='group_zscore'", groups)
        self.output_dir = output_dir
        self.summary_writer = summary_writer
        self.logger = logging.getLogger(name)
        self._name = name
        # Maps of the current checkpoint, pooled by the accumulator's own rule (a budget of 1/3: one Welford
        # set instead of 3); committed to the main accumulator, which gets pool=1, when the checkpoint ends.
        self._buffer = VoGAccumulator(pool=self.pool, max_state_bytes=self.max_state_bytes // _SLOTS, owner=_OWNER)
        self._main: VoGAccumulator | None = None
        self._schedule: list[int] | None = None
        self._loaded_schedule: list[int] | None = None
        self._paths: dict[str, tuple[str, str]] = {}
        self._pool_resolved: int | None = self.pool
        self._online_input: torch.Tensor | None = None
        self._warned_no_grad = False

    # ------------------------------------------------------------------------------------------ wiring

    def attach(self, engine: Engine) -> None:
        """Register the handler's events on ``engine`` (a MONAI ``SupervisedTrainer``)."""
        C.set_logger(self, engine)
        C.check_network_at_start(engine, _OWNER)
        engine.add_event_handler(Events.STARTED, self._started)
        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=C.epoch_filter(self._scheduled)), self)
        engine.add_event_handler(Events.COMPLETED, self._completed)
        if self.mode == "online":
            original = getattr(engine, "prepare_batch", None)
            if not callable(original) or not engine.has_registered_events(IterationEvents.BACKWARD_COMPLETED):
                raise param_error(
                    _OWNER, "mode", "'checkpoint' unless the engine is a MONAI SupervisedTrainer", self.mode
                )
            engine.prepare_batch = self._wrap_prepare_batch(engine, original)  # type: ignore[attr-defined]
            engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self._online_step)

    def _started(self, engine: Engine) -> None:
        self._resolve_schedule(engine)

    def _resolve_schedule(self, engine: Engine) -> list[int]:
        if self._schedule is None:
            if self.schedule.epochs is not None:
                schedule = list(self.schedule.epochs)
            else:
                max_epochs = engine.state.max_epochs
                if max_epochs is None:
                    raise param_error(_OWNER, "epochs", "a list of epochs when the engine has no max_epochs", None)
                schedule = self.schedule.until(int(max_epochs))
                if not schedule:
                    raise param_error(_OWNER, self._every_name, f"at most max_epochs={max_epochs}", self.schedule.every)
            if self._loaded_schedule is not None and self._loaded_schedule != schedule:
                raise param_error(
                    _OWNER,
                    "epochs",
                    f"the schedule the loaded state was recorded with ({self._loaded_schedule})",
                    schedule,
                )
            self._schedule = schedule
        if self._main is None:
            self._main = VoGAccumulator(num_checkpoints=len(self._schedule), pool=1, owner=_OWNER)
        return self._schedule

    def _scheduled(self, epoch: int) -> bool:
        return self._schedule is not None and epoch in self._schedule

    # ----------------------------------------------------------------------------------------- passes

    def __call__(self, engine: Engine) -> None:
        """End of a scheduled epoch: take the checkpoint (a probe pass in checkpoint mode) and update the scores."""
        schedule = self._resolve_schedule(engine)
        if self.mode == "checkpoint":
            self._probe_pass(engine)
        self._commit(engine, schedule.index(int(engine.state.epoch)))

    def _probe_pass(self, engine: Engine) -> None:
        net = C.engine_network(engine, _OWNER)
        device = engine.state.device  # type: ignore[attr-defined]
        loss_fn = (self.loss_fn or per_sample_cross_entropy) if self.target == "loss" else None
        keys = {"image_key": self.image_key, "label_key": self.label_key, "id_key": self.id_key, "owner": _OWNER}
        for batch, ids in C.probe_batches(self.probe_loader, **keys):  # type: ignore[arg-type]
            self._remember_paths(batch, ids, len(ids))
            x = as_plain_tensor(batch[self.image_key], device)
            y = as_plain_tensor(batch[self.label_key], device)
            self._buffer.update(ids, input_gradients(net, x, y, target=self.target, loss_fn=loss_fn), checkpoint=0)

    def _wrap_prepare_batch(self, engine: Engine, original: Callable[..., Any]) -> Callable[..., Any]:
        def prepare_batch(batchdata: Any, device: Any = None, non_blocking: bool = False, **kwargs: Any) -> Any:
            out = original(batchdata, device, non_blocking, **kwargs)
            if not self._scheduled(int(engine.state.epoch)):
                return out
            image = out[0] if isinstance(out, (tuple, list)) and out else None
            if not isinstance(image, torch.Tensor) or not image.is_floating_point():
                raise param_error(_OWNER, "mode", "'checkpoint' unless prepare_batch gives a float image", image)
            # a new leaf sharing the batch's memory: the caller's tensor is left as it was
            self._online_input = image.detach().requires_grad_(True)
            return (self._online_input, *out[1:])

        return prepare_batch

    def _online_step(self, engine: Engine) -> None:
        x, self._online_input = self._online_input, None
        if x is None:
            return
        if x.grad is None:
            if not self._warned_no_grad:
                warnings.warn(
                    f"{_OWNER}: the training image got no gradient; online VoG skips these batches.", stacklevel=2
                )
                self._warned_no_grad = True
            return
        batch: Any = engine.state.batch
        size = int(x.shape[0])
        ids = C.batch_ids(batch, size, id_key=self.id_key, label_key=self.label_key, owner=_OWNER)
        scale = float(size * max(int(getattr(engine, "accumulation_steps", 1)), 1))
        amp_scaler = getattr(engine, "scaler", None) if getattr(engine, "amp", False) else None
        grad = x.grad.detach().mean(dim=1)
        x.grad = None
        if amp_scaler is not None:
            if not bool(torch.isfinite(grad).all()):
                return  # an overflow step, skipped by the GradScaler as well
            scale /= float(amp_scaler.get_scale())
        self._remember_paths(batch, ids, size)
        self._buffer.update(ids, grad * scale, checkpoint=0)

    def _remember_paths(self, batch: Mapping[str, Any], ids: list[str], size: int) -> None:
        if len(self._paths) and all(i in self._paths for i in ids):
            return
        images = C.batch_paths(batch, self.image_key, size)
        labels = C.batch_paths(batch, self.label_key, size)
        C.merge_paths(self._paths, ids, images, labels)

    def _commit(self, engine: Engine, checkpoint: int) -> None:
        """Move this checkpoint's maps (gathered over ranks) into the main accumulator and publish the scores."""
        state = self._buffer.state_dict()
        ids = list(state["ids"])
        maps = state["mean"][:, 0].numpy().copy() if ids else np.zeros((0, 1), np.float32)
        if state["pool"] is not None:
            self._pool_resolved = int(state["pool"])
        if ids:
            maps[state["nonfinite"].numpy()] = np.nan  # a NaN map marks the sample non-finite in the accumulator
        all_ids, (all_maps,) = C.gather_records(ids, maps)
        for part in C.gather_objects(C.paths_state({i: self._paths[i] for i in ids if i in self._paths})):
            C.merge_paths(self._paths, [p[0] for p in part], [p[1] for p in part], [p[2] for p in part])
        if all_ids:
            self._main.update(all_ids, all_maps, checkpoint=checkpoint)  # type: ignore[union-attr]
        self._buffer.reset()
        self.logger.debug(f"{_OWNER}: checkpoint {checkpoint + 1} of {len(self._schedule or [])}: {len(all_ids)} maps")
        self._publish(engine)

    def _publish(self, engine: Engine) -> None:
        if self._main is None or not self._main.ids:
            return
        values = self.scores_array()
        C.publish_scores(
            engine,
            self._main.ids,
            {"vog": values},
            source="vog",
            nonfinite=set(self._main.nonfinite_ids()),
            paths=self._paths,
        )
        C.write_outputs(engine, self.output_dir, self.summary_writer, {"label_scores/vog": values}, engine.state.epoch)

    def _completed(self, engine: Engine) -> None:
        self._publish(engine)

    # ---------------------------------------------------------------------------------------- results

    def scores_array(self) -> np.ndarray:
        """VoG per sample aligned with :attr:`ids` (NaN: fewer than 2 checkpoints; inf: non-finite gradient)."""
        if self._main is None or not self._main.ids:
            return np.zeros(0)
        return self._main.scores(stage=self.stage, normalize=self.normalize, groups=self.groups)

    @property
    def ids(self) -> list[str]:
        """Scored sample ids."""
        return [] if self._main is None else self._main.ids

    def scores(self) -> dict[str, float]:
        """VoG per sample id."""
        return dict(zip(self.ids, self.scores_array().tolist()))

    @property
    def state_bytes_per_sample(self) -> int:
        """Bytes of Welford state kept per sample (the pooled maps of 3 stages, mean and M2, float32)."""
        return 0 if self._main is None else self._main.state_bytes_per_sample

    @property
    def pool_used(self) -> int | None:
        """The pooling factor in use (resolved at the first map when ``pool`` is ``None``)."""
        return self._buffer.pool if self._buffer.pool is not None else self._pool_resolved

    # ----------------------------------------------------------------------------------- checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (tensors and builtins: ``torch.load(weights_only=True)`` reads it)."""
        return {
            "schedule": None if self._schedule is None else list(self._schedule),
            "vog": None if self._main is None else self._main.state_dict(),
            "buffer": self._buffer.state_dict(),
            "paths": C.paths_state(self._paths),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the epoch schedule must be the same)."""
        try:
            schedule, vog, buffer, paths = state["schedule"], state["vog"], state["buffer"], state["paths"]
        except (KeyError, TypeError):
            raise param_error(_OWNER, "state", "a dict from state_dict()", type(state).__name__) from None
        self._loaded_schedule = None if schedule is None else [int(e) for e in schedule]
        if self._schedule is not None and self._loaded_schedule is not None and self._schedule != self._loaded_schedule:
            raise param_error(
                _OWNER, "state", f"a state recorded with the schedule {self._schedule}", self._loaded_schedule
            )
        self._main = None
        if vog is not None:
            self._main = VoGAccumulator(num_checkpoints=int(vog["num_checkpoints"]), pool=1, owner=_OWNER)
            self._main.load_state_dict(vog)
        self._buffer.load_state_dict(buffer)
        self._paths = C.load_paths(_OWNER, paths)
