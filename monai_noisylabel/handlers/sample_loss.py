"""Per-sample loss of every training sample, every epoch, and the DivideMix GMM split, during a MONAI training run.

A thin ignite adapter over :class:`~monai_noisylabel.detection.SampleLossAccumulator`,
:func:`~monai_noisylabel.detection.gmm_noisy_probability` and (with a trusted reference loader)
:func:`~monai_noisylabel.detection.volume_offsets` / :func:`~monai_noisylabel.detection.offset_scores`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys, IgniteInfo, min_version, optional_import

from monai_noisylabel.detection import (
    SampleLossAccumulator,
    gmm_noisy_probability,
    offset_scores,
    per_sample_loss,
    reference_offset_scores,
    volume_offsets,
)
from monai_noisylabel.handlers import _common as C
from monai_noisylabel.handlers.schedule import EpochSchedule
from monai_noisylabel.utils import as_plain_tensor, check_choice, check_int, check_stage_fractions, param_error

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["SampleLossHandler"]

_OWNER = "SampleLossHandler"
#: where the per-sample losses come from: an eval pass over ``probe_loader``, or the training steps themselves
SOURCES = ("probe", "train")


def _class_indices(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(B, *spatial)`` class indices of labels given as indices ``(B, 1, ...)`` or one-hot/soft ``(B, C, ...)``."""
    if labels.ndim >= 3 and labels.shape[1] == num_classes and num_classes > 1 and labels.is_floating_point():
        return labels.argmax(dim=1)
    if labels.ndim >= 3 and labels.shape[1] == 1:
        labels = labels[:, 0]
    return labels.round().long() if labels.is_floating_point() else labels.long()


class SampleLossHandler:
    """Per-sample loss in eval mode after every epoch, its window mean, the GMM split, and the directional offset.

    After each selected epoch (after ``warmup``, every ``every`` epochs) one pass (``source="probe"``, the
    default; ``source="train"`` records the training steps' losses instead, see below) over ``probe_loader``
    (the training images and given labels WITHOUT augmentation) with ``engine.network`` in eval mode
    under ``torch.no_grad`` (the network is called directly, not through ``engine.inferer``) records each
    sample's loss. Published per sample (``engine.state.label_scores``):

    - ``loss``: the mean over ``window`` of the recorded epochs
      (:func:`~monai_noisylabel.detection.sample_loss_scores`; default the last two thirds, which kept its
      ranking where the last epoch alone collapsed because the network memorizes noisy labels);
    - ``gmm_noisy_prob``: P(noisy) of DivideMix's 2-component GMM on those losses (``gmm=True``);
    - ``offset`` (only with ``reference_loader``, a trusted clean set such as the validation set): per epoch,
      the Mahalanobis distance of the sample's signed label-vs-prediction volume offsets from the reference's
      (full covariance, Ledoit-Wolf shrinkage), averaged over the same window; the only score that sees a
      systematic bias (see :func:`~monai_noisylabel.detection.offset_scores`). Labels must be class indices
      (or one-hot).

    With ``reference_loader`` the same pass also scores the reference samples with the same model: their
    loss and their leave-one-out offset distance (:func:`~monai_noisylabel.detection.reference_offset_scores`),
    averaged over the same window. These reference scores are published on
    ``engine.state.label_scores_reference`` (name -> ``(M,)`` array); ``combined`` and ``flagged`` then weigh
    and threshold every score against them (:func:`~monai_noisylabel.detection.combine_with_reference`,
    :func:`~monai_noisylabel.detection.reference_flags`).

    With ``source="train"`` there is no pass: the losses are those the training steps of the selected epoch
    computed anyway (see ``source`` below), so the split costs no forward pass.

    A NaN/inf loss is recorded (the window mean becomes ``inf``, GMM 1.0), the sample is flagged, and
    training goes on. Under DDP each rank passes over its own probe samples (``DistributedSampler(shuffle=False)``)
    and the records are gathered, so every rank holds the full state; rank 0 writes the files.

    Args:
        probe_loader: dict batches of training images and given labels, without augmentation.
        loss_fn: a per-sample loss, ``loss_fn(logits, labels)`` returning ``(B, ...)`` (``reduction="none"``;
            every non-batch dimension is averaged, :func:`~monai_noisylabel.detection.per_sample_loss`).
        warmup: no pass during the first ``warmup`` epochs.
        every: a pass after epochs ``e > warmup`` with ``e % every == 0`` (ignored with ``epochs``).
        epochs: explicit (1-based) epochs after which to pass (``[]``: never), or ``None`` for ``warmup``/``every``
            (:mod:`~monai_noisylabel.handlers.schedule`).
        window: ``(start, end)`` fractions of the recorded epochs, or ``"last"``.
        gmm: publish ``gmm_noisy_prob`` (default True).
        gmm_random_state: seed of the GMM initialization.
        reference_loader: trusted clean samples (e.g. the validation set) for the ``offset`` score, or ``None``.
        num_classes: number of classes for the offsets; default: the network's output channels.
        image_key, label_key, id_key: batch keys (ids fall back to the label's meta ``filename_or_obj``).
        output_dir: folder of ``label_scores.csv``; ``None``: not written by this handler.
        summary_writer: a TensorBoard ``SummaryWriter`` for histograms, or ``None``.
        name: logger name; default: ``engine.logger``.
        source: ``"probe"`` (default): the eval pass above; ``"train"``: no extra pass, the loss of each sample's
            training step in the selected epoch (the network's raw output on the augmented batch, in train
            mode, against the label it trains on; read on MONAI's ``FORWARD_COMPLETED`` event, so the engine must
            be a MONAI ``SupervisedTrainer``). The cheap choice for a GMM split (self-cleansing, small-loss
            selection); no ``offset`` or reference scores (``reference_loader`` must be ``None``). Not for
            hard refurbishment: the loss of a relabelled sample is then against its pseudo-label, so it looks
            clean, is dropped and flagged again; use ``"probe"`` there. One item per sample in a batch (no
            multi-crop ``num_samples``: ids would repeat); the losses of a partly finished epoch are not in the
            checkpoint. ``probe_loader`` may be ``None``.

    Example:
        >>> import torch
        >>> from monai.engines import SupervisedTrainer
        >>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
        >>> data = [{"image": torch.rand(1, 8, 8), "label": torch.zeros(1, 8, 8, dtype=torch.long), "id": f"s{i}"}
        ...         for i in range(4)]
        >>> loader = torch.utils.data.DataLoader(data, batch_size=2)
        >>> ce = torch.nn.CrossEntropyLoss(reduction="none")
        >>> trainer = SupervisedTrainer("cpu", 2, loader, net, torch.optim.SGD(net.parameters(), 0.1),
        ...                             lambda p, y: ce(p, y[:, 0]).mean())
        >>> SampleLossHandler(loader, loss_fn=lambda p, y: ce(p, y[:, 0])).attach(trainer)
        >>> trainer.run()
        >>> row = trainer.state.label_scores["s0"]
        >>> row["loss"] > 0, 0.0 <= row["gmm_noisy_prob"] <= 1.0, row["vog"] is None
        (True, True, True)
    """

    def __init__(
        self,
        probe_loader: Iterable[Any] | None,
        *,
        loss_fn: Callable[..., torch.Tensor],
        warmup: int = 0,
        every: int = 1,
        epochs: Sequence[int] | None = None,
        window: tuple[float, float] | str = (1.0 / 3.0, 1.0),
        gmm: bool = True,
        gmm_random_state: int = 0,
        reference_loader: Iterable[Any] | None = None,
        num_classes: int | None = None,
        image_key: str = "image",
        label_key: str = "label",
        id_key: str = "id",
        output_dir: str | Path | None = None,
        summary_writer: Any = None,
        name: str | None = None,
        source: str = "probe",
    ) -> None:
        self.source = check_choice(_OWNER, "source", source, SOURCES)
        if probe_loader is None and self.source == "probe":
            raise param_error(_OWNER, "probe_loader", "a loader of the training images without augmentation", None)
        if self.source == "train" and reference_loader is not None:
            raise param_error(
                _OWNER,
                "reference_loader",
                "None with source='train' (the reference scores need the eval pass, source='probe')",
                type(reference_loader).__name__,
            )
        if not callable(loss_fn):
            raise param_error(_OWNER, "loss_fn", "a per-sample loss callable (reduction='none')", loss_fn)
        self.probe_loader = probe_loader
        self.loss_fn = loss_fn
        self.schedule = EpochSchedule.checked(_OWNER, warmup, every, epochs)
        if isinstance(window, str):
            check_choice(_OWNER, "window", window, ("last",))
        else:
            check_stage_fractions(_OWNER, "window", window)
        self.window = window
        self.gmm = bool(gmm)
        self.gmm_random_state = check_int(_OWNER, "gmm_random_state", gmm_random_state, 0)
        self.reference_loader = reference_loader
        self.num_classes = None if num_classes is None else check_int(_OWNER, "num_classes", num_classes, 2)
        self.image_key, self.label_key, self.id_key = image_key, label_key, id_key
        self.output_dir = output_dir
        self.summary_writer = summary_writer
        self.logger = logging.getLogger(name)
        self._name = name
        self._losses = SampleLossAccumulator(owner=_OWNER)
        self._offsets = SampleLossAccumulator(owner=_OWNER)
        self._ref_losses = SampleLossAccumulator(owner=_OWNER)
        self._ref_offsets = SampleLossAccumulator(owner=_OWNER)
        self._paths: dict[str, tuple[str, str]] = {}
        #: ``source="train"``: the losses of the current epoch's training steps, per id
        self._epoch_losses: dict[str, float] = {}

    def attach(self, engine: Engine) -> None:
        """Register the handler's events on ``engine`` (a MONAI ``SupervisedTrainer``)."""
        C.set_logger(self, engine)
        C.check_network_at_start(engine, _OWNER)
        if self.source == "train":
            try:  # MONAI's trainers fire it between the forward pass and the loss, before any postprocessing
                engine.add_event_handler(IterationEvents.FORWARD_COMPLETED, self._record_step)
            except (ValueError, TypeError):
                raise param_error(
                    _OWNER, "source", "'probe' for an engine that is not a MONAI SupervisedTrainer", "train"
                ) from None
            engine.add_event_handler(Events.EPOCH_STARTED, lambda _: self._epoch_losses.clear())
        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=C.epoch_filter(self.schedule)), self)
        engine.add_event_handler(Events.COMPLETED, self._publish)

    # ----------------------------------------------------------------------------------------- passes

    def _forward(self, net: torch.nn.Module, batch: Any, device: Any) -> tuple[int, torch.Tensor, torch.Tensor]:
        size = C.batch_size_of(batch, self.image_key, _OWNER)
        x = as_plain_tensor(batch[self.image_key], device)
        y = as_plain_tensor(batch[self.label_key], device)
        return size, net(x), y

    def _offsets_of(self, logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
        num_classes = self.num_classes or int(logits.shape[1])
        preds = logits.argmax(dim=1).cpu().numpy()
        given = _class_indices(labels, num_classes).cpu().numpy()
        return volume_offsets(preds, given, num_classes=num_classes)

    def _record_step(self, engine: Engine) -> None:
        """``source="train"``: the per-sample loss of this training step's forward pass (the raw network output,
        before postprocessing) against the label it trains on."""
        if not self.schedule(int(engine.state.epoch)):
            return
        output: Any = engine.state.output
        batch: Any = engine.state.batch
        pred, label = output[CommonKeys.PRED], output[CommonKeys.LABEL]
        size = int(pred.shape[0])
        ids = C.batch_ids(batch, size, id_key=self.id_key, label_key=self.label_key, owner=_OWNER)
        with torch.no_grad():
            losses = per_sample_loss(self.loss_fn, as_plain_tensor(pred).detach().float(), as_plain_tensor(label))
        self._epoch_losses.update(zip(ids, losses.cpu().double().tolist()))
        if not all(i in self._paths for i in ids):
            images = C.batch_paths(batch, self.image_key, size)
            C.merge_paths(self._paths, ids, images, C.batch_paths(batch, self.label_key, size))

    def __call__(self, engine: Engine) -> None:
        """End of a selected epoch: one eval pass over the probe (and reference) loader (``source="probe"``), or
        the losses recorded during the epoch's training steps (``source="train"``), then publish."""
        epoch = int(engine.state.epoch)
        if self.source == "train":
            recorded, self._epoch_losses = self._epoch_losses, {}
            self._update(engine, epoch, list(recorded), [np.fromiter(recorded.values(), dtype=np.float64)])
            return
        net = C.engine_network(engine, _OWNER)
        device = engine.state.device  # type: ignore[attr-defined]
        with_offsets = self.reference_loader is not None
        ids: list[str] = []
        losses: list[np.ndarray] = []
        offsets: list[np.ndarray] = []
        with C.eval_mode(net), torch.no_grad():
            keys = {"image_key": self.image_key, "label_key": self.label_key, "id_key": self.id_key, "owner": _OWNER}
            for batch, batch_ids in C.probe_batches(self.probe_loader or (), **keys):
                size, logits, y = self._forward(net, batch, device)
                ids += batch_ids
                losses.append(per_sample_loss(self.loss_fn, logits, y).detach().cpu().double().numpy())
                if with_offsets:
                    offsets.append(self._offsets_of(logits, y))
                if not all(i in self._paths for i in batch_ids):
                    images = C.batch_paths(batch, self.image_key, size)
                    C.merge_paths(self._paths, batch_ids, images, C.batch_paths(batch, self.label_key, size))
            reference = []
            for b in self.reference_loader or ():
                _, ref_logits, ref_y = self._forward(net, b, device)
                ref_loss = per_sample_loss(self.loss_fn, ref_logits, ref_y).detach().cpu().double().numpy()
                reference.append((self._offsets_of(ref_logits, ref_y), ref_loss))
        columns = [np.concatenate(losses) if losses else np.zeros(0)]
        if with_offsets:
            columns.append(np.concatenate(offsets) if offsets else np.zeros((0, 1)))
        self._update(engine, epoch, ids, columns, reference if with_offsets else None)

    def _update(
        self, engine: Engine, epoch: int, ids: list[str], columns: list[np.ndarray], reference: list[Any] | None = None
    ) -> None:
        """Gather this rank's records (loss, and offsets with a ``reference``) from every rank, keep and publish."""
        with_offsets = reference is not None
        all_ids, gathered = C.gather_records(ids, *columns)
        all_losses = gathered[0]
        for part in C.gather_objects(C.paths_state({i: self._paths[i] for i in ids})):
            C.merge_paths(self._paths, [p[0] for p in part], [p[1] for p in part], [p[2] for p in part])
        if not all_ids and self.source == "train":  # the same decision on every rank: the records are gathered
            raise param_error(
                _OWNER,
                "source",
                "'probe' for a trainer that does not fire MONAI's FORWARD_COMPLETED event (e.g. a custom "
                f"iteration_update): no training-step loss was recorded in epoch {epoch}",
                "train",
            )
        if not all_ids:
            return
        self._losses.update(all_ids, all_losses, epoch)
        bad = [i for i, v in zip(all_ids, all_losses.tolist()) if not np.isfinite(v)]
        if bad:
            self.logger.warning(f"{_OWNER}: epoch {epoch}: NaN/inf loss for {len(bad)} sample(s), flagged: {bad[:5]}")
        if with_offsets:
            ref_parts = [r for part in C.gather_objects(reference) for r in part]
            if not ref_parts:
                raise param_error(_OWNER, "reference_loader", "a loader with at least one batch", "an empty loader")
            ref_offsets = np.concatenate([r[0] for r in ref_parts])
            ref_ids = [str(j) for j in range(ref_offsets.shape[0])]  # position in the (unshuffled) reference
            self._offsets.update(all_ids, offset_scores(gathered[1], reference=ref_offsets), epoch)
            self._ref_offsets.update(ref_ids, reference_offset_scores(ref_offsets), epoch)
            self._ref_losses.update(ref_ids, np.concatenate([r[1] for r in ref_parts]), epoch)
        self._publish(engine)

    # ---------------------------------------------------------------------------------------- results

    def scores(self) -> dict[str, dict[str, float]]:
        """Per sample id: ``loss`` (window mean), and ``gmm_noisy_prob`` / ``offset`` when enabled."""
        ids, columns = self._columns()
        return {i: {name: float(values[j]) for name, values in columns.items()} for j, i in enumerate(ids)}

    def _columns(self) -> tuple[list[str], dict[str, np.ndarray]]:
        ids = self._losses.ids
        if not ids:
            return [], {}
        loss = self._losses.scores(window=self.window)
        columns = {"loss": loss}
        if self.gmm:
            columns["gmm_noisy_prob"] = gmm_noisy_probability(loss, random_state=self.gmm_random_state)
        if self._offsets.ids:
            offset = dict(zip(self._offsets.ids, self._offsets.scores(window=self.window).tolist()))
            columns["offset"] = np.array([offset.get(i, np.nan) for i in ids])
        return ids, columns

    def reference_scores(self) -> dict[str, np.ndarray]:
        """The reference set's ``loss`` and ``offset`` (window means, in reference order); empty without one."""
        if not self._ref_losses.ids:
            return {}
        return {
            "loss": self._ref_losses.scores(window=self.window),
            "offset": self._ref_offsets.scores(window=self.window),
        }

    def nonfinite_ids(self) -> list[str]:
        """Ids of samples that had a NaN/inf loss in at least one recorded epoch."""
        counts = self._losses.nonfinite_counts()
        return [i for i, n in zip(self._losses.ids, counts.tolist()) if n > 0]

    def _publish(self, engine: Engine) -> None:
        ids, columns = self._columns()
        if not ids:
            return
        nonfinite = set(self.nonfinite_ids())
        C.publish_reference(engine, self.reference_scores())
        C.publish_scores(engine, ids, columns, source="loss", nonfinite=nonfinite, paths=self._paths)
        hist = {f"label_scores/{name}": values for name, values in columns.items()}
        C.write_outputs(engine, self.output_dir, self.summary_writer, hist, engine.state.epoch)

    # ----------------------------------------------------------------------------------- checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly (tensors and builtins: ``torch.load(weights_only=True)`` reads it)."""
        return {
            "loss": self._losses.state_dict(),
            "offset": self._offsets.state_dict(),
            "reference_loss": self._ref_losses.state_dict(),
            "reference_offset": self._ref_offsets.state_dict(),
            "paths": C.paths_state(self._paths),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        try:
            loss, offset, paths = state["loss"], state["offset"], state["paths"]
        except (KeyError, TypeError):
            raise param_error(_OWNER, "state", "a dict from state_dict()", type(state).__name__) from None
        self._losses.load_state_dict(loss)
        self._offsets.load_state_dict(offset)
        # checkpoints written before the reference scores existed resume without them
        for key, acc in (("reference_loss", self._ref_losses), ("reference_offset", self._ref_offsets)):
            if key in state:
                acc.load_state_dict(state[key])
            else:
                acc.reset()
        self._paths = C.load_paths(_OWNER, paths)
