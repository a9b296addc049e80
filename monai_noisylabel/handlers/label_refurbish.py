"""Swap flagged training labels for pseudo-labels, soft LCM targets (self-cleansing) or a lower loss weight
(small-loss selection) during a MONAI training run, keeping the originals intact.

A thin ignite adapter over :mod:`monai_noisylabel.refurbish`: :func:`~monai_noisylabel.refurbish.build_pseudo_labels`
(confidence gate, largest connected component), :class:`~monai_noisylabel.refurbish.EMATeacher`,
:class:`~monai_noisylabel.refurbish.LabelStore` (read by
:class:`~monai_noisylabel.refurbish.ApplyStoredLabeld` in the training pipeline),
:func:`~monai_noisylabel.refurbish.write_refurbished_label` and
:func:`~monai_noisylabel.refurbish.sigmoid_rampup`; for self-cleansing :func:`~monai_noisylabel.refurbish.split_noisy`
and :func:`~monai_noisylabel.refurbish.lcm_soft_target`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.utils import IgniteInfo, min_version, optional_import

from monai_noisylabel.detection import per_sample_loss
from monai_noisylabel.handlers import _common as C
from monai_noisylabel.handlers.schedule import EpochSchedule
from monai_noisylabel.refurbish import (
    REFURBISHED_KEY,
    SPLIT_SOURCES,
    EMATeacher,
    LabelStore,
    build_pseudo_labels,
    lcm_mix_weight,
    lcm_pseudo_labels,
    lcm_soft_target,
    predict_probabilities,
    read_refurbish_manifest,
    remove_refurbished_label,
    sigmoid_rampup,
    split_noisy,
    write_refurbished_label,
)
from monai_noisylabel.utils import check_choice, check_int, check_number, param_error

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["LabelRefurbishHandler", "PseudoLabelWeightedLoss"]

_OWNER = "LabelRefurbishHandler"

MODES = ("hard", "lcm", "select")
"""``hard``: pseudo-labels in the store; ``lcm``: self-cleansing soft targets; ``select``: small-loss selection."""


def _check_flags(value: Any) -> Callable[[Any], Iterable[Any]] | frozenset[str] | None:
    if value is None or callable(value):
        return value
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
        raise param_error(_OWNER, "flags", "None, a collection of sample ids, or a callable(engine)", value)
    return frozenset(str(v) for v in value)


def _last_epoch(engine: Any) -> bool:
    """Whether ``engine`` is at its last epoch (held-out samples are relabelled at once there)."""
    last = engine.state.max_epochs
    return last is not None and int(engine.state.epoch) >= int(last)


def _affine_of(label: Any, index: int) -> np.ndarray | None:
    """The affine of sample ``index`` of a collated MetaTensor label, or ``None``."""
    if not isinstance(label, MetaTensor):
        return None
    aff = label.meta.get("affine")
    if aff is None:
        return None
    aff = torch.as_tensor(aff)
    return (aff[index] if aff.ndim == 3 else aff).detach().cpu().numpy()


class LabelRefurbishHandler:
    """Replace the labels of flagged training samples by pseudo-labels or soft LCM targets, or down-weight them.

    Three ``mode`` s share one schedule (``warmup``/``every``/``epochs``), one clean/noisy split (``split``,
    :func:`~monai_noisylabel.refurbish.split_noisy`, or oracle ``flags``), one loss wrapper
    (:class:`PseudoLabelWeightedLoss`), one checkpoint state and one set of outputs:

    - ``"hard"`` (default, the echo paper's refurbishment): described below;
    - ``"lcm"`` (deep self-cleansing, https://arxiv.org/abs/2409.05024): noisy samples are supervised by the
      label cleansing module's soft target ``sharpen(w * onehot(given) + (1 - w) * p, temperature)``, with
      ``p`` the EMA ``teacher``'s prediction on the very (augmented) training batch (or, without a teacher,
      the network's own detached prediction of the step) and ``w`` falling from 1 to ``P(clean)`` along the
      ``rampup_epochs`` ramp (:func:`~monai_noisylabel.refurbish.lcm_mix_weight`). Targets are recomputed on
      the fly in the loss, so nothing per voxel is stored: per sample the handler keeps ``P(clean)`` and the
      epoch it was called noisy (:meth:`memory_per_sample`). Clean samples keep their labels. When the run
      completes (or, with ``write_labels="split"``, at each cleansing epoch) the hard labels (argmax) of the
      targets are written to ``refurbished/``;
    - ``"select"`` (small-loss selection): noisy samples get the loss weight ``select_weight`` (0: dropped);
      no label changes.

    With ``split="gmm"`` (the default of ``lcm`` and ``select``) the noisy samples are those whose
    ``gmm_noisy_prob`` (the :class:`~monai_noisylabel.handlers.SampleLossHandler` GMM over the windowed
    per-sample loss) exceeds ``gmm_threshold``; when the GMM cannot split (fewer than ``min_split_samples``
    scored samples, all losses equal) that epoch's cleansing is skipped and logged, and the previous split kept.
    The split is recomputed at every scheduled epoch: a sample no longer noisy trains on its label again.

    Hard mode, at each refurbishment epoch (after ``warmup``, every ``every`` epochs, or the explicit ``epochs``) on
    ``EPOCH_COMPLETED``:

    1. the flagged ids are read: from ``engine.state.label_scores`` (the ``flagged`` column the detection
       handlers maintain, or the GMM posterior with ``split="gmm"``: attach this handler AFTER them), or from
       ``flags`` (an oracle list of ids, or a
       callable ``flags(engine)``, for experiments);
    2. one pass over ``probe_loader`` (the training images with their ORIGINAL labels, without augmentation,
       in the space where the training pipeline's :class:`~monai_noisylabel.refurbish.ApplyStoredLabeld`
       runs) forwards only the batches that hold a newly flagged sample, with the EMA ``teacher`` when given,
       else ``engine.network``, in eval mode; :func:`~monai_noisylabel.refurbish.build_pseudo_labels` makes
       the pseudo-labels (confidence gate ``delta``, largest connected component per class);
    3. the pseudo-labels go into ``store`` (every rank gets every rank's labels under DDP), and on rank 0 to
       ``<output_dir>/refurbished/<id>.nii.gz`` with ``manifest.csv`` (atomic writes; the original label
       files are never opened for writing) and the ``refurbished_label`` column of ``label_scores.csv``.

    With ``select_first=True`` (the echo bundle's default) a newly flagged sample is first held out: it trains
    with loss weight 0 until the next refurbishment epoch, and only then gets its pseudo-label, from a model that
    has been trained on the trusted samples without its given label (a model trained on the flagged labels learns
    their error, a systematic bias above all, and would copy it into the pseudo-label). At the last epoch the
    held-out samples are pseudo-labelled at once. A held-out sample whose pseudo-label is refused
    (``max_fraction_changed``, NaN output) stays held out while it is flagged. In ``lcm`` mode ``select_first``
    holds a newly noisy sample out the same way; its soft target, whose mixing ramp starts when it is called
    noisy, supervises it from the next cleansing epoch on; when held-out samples are released the EMA
    ``teacher`` restarts from the network (:meth:`~monai_noisylabel.refurbish.EMATeacher.restart`,
    ``restart_teacher=True``), which has trained without their labels: an average that reaches back into the
    epochs before the hold-out would carry the error of the labels it learned then into the targets. Where new
    samples are called noisy at every cleansing epoch (a GMM split) the teacher then averages over one
    cleansing interval at most. With ``refresh=True`` as well,
    the pseudo-labels are rebuilt at every later refurbishment epoch by the model that has trained on the
    corrected labels (iterated relabelling) instead of keeping the first.

    A stored label is reused in later epochs (not rebuilt, unless ``refresh=True``) until the sample is no
    longer flagged (re-scored clean): then it leaves the store, its file and manifest row are removed, and the
    sample trains on its original label again. A sample whose model output is NaN/inf is left unrefurbished,
    with the reason logged and kept in :attr:`skipped`.

    Loss weight: wrap the training loss in :class:`PseudoLabelWeightedLoss`; a pseudo-labelled sample made at
    epoch ``r`` then has weight :func:`~monai_noisylabel.refurbish.sigmoid_rampup` ``(epoch, rampup_epochs,
    start=r + 1)``, others 1. The handler reads which samples of a batch are pseudo-labelled on
    ``ITERATION_STARTED`` (from the batch's ``refurbished`` flag that ``ApplyStoredLabeld`` sets, else from
    the store).

    Its :meth:`state_dict` holds the store, the teacher and the written paths, so ``CheckpointSaver`` /
    ``CheckpointLoader`` resume a run with the same labels.

    Args:
        probe_loader: dict batches of the training images and their original labels, without augmentation.
        store: the :class:`~monai_noisylabel.refurbish.LabelStore` the training pipeline reads.
        mode: ``"hard"``, ``"lcm"`` or ``"select"`` (see above).
        split: ``"flagged"``, ``"gmm"`` or ``"offset"`` (``flags=None`` only); default ``"flagged"`` for ``hard``,
            ``"gmm"`` otherwise (the echo bundle uses ``"flagged"`` for every mode: the reference-based flag rule
            flags next to nothing on clean labels, a GMM always splits). A flagged sample has ``P(clean) = 0``; a
            GMM-noisy one ``1 - gmm_noisy_prob``.
        flags: ``None`` (use the detection handlers' ``flagged`` column), a collection of sample ids (oracle
            flags; an id that is not in ``probe_loader`` raises ``ValueError``), or ``flags(engine) -> ids``.
        gmm_threshold: ``gmm_noisy_prob`` above which a sample is noisy (``split="gmm"``).
        min_split_samples: fewer scored samples skip the GMM split (logged).
        unrefurbish_clean: drop a stored label once its sample is no longer flagged (default True).
        warmup: no refurbishment during the first ``warmup`` epochs.
        every: refurbish after epochs ``e > warmup`` with ``e % every == 0`` (ignored with ``epochs``).
        epochs: explicit epochs (1-based) after which to refurbish.
        select_first: ``hard`` and ``lcm``: hold a newly flagged (noisy) sample out of the loss (weight 0) until
            the next refurbishment epoch and relabel it only then (see above). Default False.
        restart_teacher: ``lcm`` with ``select_first`` and a ``teacher``: restart the teacher from the network
            when held-out samples are released (default True; see above).
        refresh: rebuild the pseudo-labels of already refurbished samples at every refurbishment epoch.
        teacher: an :class:`~monai_noisylabel.refurbish.EMATeacher` of the network, updated after every
            iteration and used for the pseudo-labels and LCM targets (restarted on release, see
            ``restart_teacher``); ``None``: the current network.
        activation: ``"softmax"`` (multi-class logits) or ``"sigmoid"`` (one foreground channel).
        inferer: optional MONAI inferer for the pseudo-label forward pass (e.g. sliding window).
        delta: confidence gate in [0, 1]: where the maximum class probability is below it a voxel keeps its
            given label (``below="keep"``) or gets ``ignore_index`` (``below="ignore"``).
        below: ``"keep"`` or ``"ignore"``.
        ignore_index: the value a gated voxel gets with ``below="ignore"`` (a loss must skip it; the package's
            losses skip 255, the default).
        largest_component: keep the largest connected component of each class (MONAI's transform).
        max_fraction_changed: a pseudo-label that changes more than this fraction of the voxels of the given
            label is not used (the sample keeps its label, or stays held out with ``select_first``; the reason is
            kept in :attr:`skipped`): a guard
            against refurbishing from a model that has not learned the task yet. Default 1.0 (off).
        temperature: sharpening temperature of the LCM targets (``lcm``).
        write_labels: ``lcm`` with ``output_dir``: write the hard labels of the LCM targets once, when the run
            completes (``"end"``, the default: no pass over the noisy samples during training; ignite's
            ``COMPLETED``, which also follows ``terminate()`` but not an exception: a resumed run writes them
            when it completes), or at every cleansing epoch (``"split"``: one eval pass over the noisy samples
            each time). Either way files of samples that are no longer noisy, also those an earlier run left in
            the same ``output_dir`` (read from its manifest), are removed.
        rampup_epochs: length of the sigmoid ramp of the pseudo-label loss weight (0: weight 1 at once).
        select_weight: loss weight of noisy samples in ``select`` mode, in [0, 1] (0: dropped).
        output_dir: run folder for ``refurbished/`` and ``label_scores.csv``; ``None``: nothing written.
        image_key, label_key, id_key: batch keys (ids fall back to the label's ``filename_or_obj``).
        flag_key: batch key of the "label came from the store" flag set by ``ApplyStoredLabeld``.
        name: logger name; default: ``engine.logger``.
        ignore_value: deprecated name of ``ignore_index``.

    Example:
        >>> import torch
        >>> from monai.engines import SupervisedTrainer
        >>> from monai_noisylabel.refurbish import ApplyStoredLabeld, LabelStore
        >>> store = LabelStore()
        >>> data = [{"image": torch.rand(1, 8, 8), "label": torch.zeros(1, 8, 8), "id": f"s{i}"} for i in range(4)]
        >>> read = ApplyStoredLabeld("label", store=store)
        >>> train = torch.utils.data.DataLoader([read(d) for d in data], batch_size=2)  # a Dataset in real use
        >>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
        >>> ce = torch.nn.CrossEntropyLoss(reduction="none")
        >>> handler = LabelRefurbishHandler(torch.utils.data.DataLoader(data, batch_size=2), store,
        ...                                 flags=["s1"], epochs=[1], largest_component=False)
        >>> loss = PseudoLabelWeightedLoss(lambda p, y: ce(p, y[:, 0].long()), handler)
        >>> trainer = SupervisedTrainer("cpu", 2, train, net, torch.optim.SGD(net.parameters(), 0.1), loss)
        >>> handler.attach(trainer)
        >>> trainer.run()
        >>> store.ids(), handler.history["s1"]["epoch"]
        (['s1'], 1)
    """

    def __init__(
        self,
        probe_loader: Iterable[Any],
        store: LabelStore,
        *,
        # what is done, to which samples
        mode: str = "hard",
        split: str | None = None,
        flags: Collection[Any] | Callable[[Any], Iterable[Any]] | None = None,
        gmm_threshold: float = 0.5,
        min_split_samples: int = 4,
        unrefurbish_clean: bool = True,
        # when
        warmup: int = 0,
        every: int = 1,
        epochs: Sequence[int] | None = None,
        select_first: bool = False,
        refresh: bool = False,
        restart_teacher: bool = True,
        # the pseudo-label or soft target
        teacher: EMATeacher | None = None,
        activation: str = "softmax",
        inferer: Callable[..., Any] | None = None,
        delta: float = 0.0,
        below: str = "keep",
        ignore_index: int = 255,
        largest_component: bool = True,
        max_fraction_changed: float = 1.0,
        temperature: float = 0.5,
        write_labels: str = "end",
        # the loss weight
        rampup_epochs: float = 5.0,
        select_weight: float = 0.0,
        # outputs and batch keys
        output_dir: str | Path | None = None,
        image_key: str = "image",
        label_key: str = "label",
        id_key: str = "id",
        flag_key: str | None = REFURBISHED_KEY,
        name: str | None = None,
        ignore_value: int | None = None,
    ) -> None:
        if ignore_value is not None:
            warnings.warn(
                f"{_OWNER}: 'ignore_value' is deprecated; use 'ignore_index' (MONAI's name).",
                DeprecationWarning,
                stacklevel=2,
            )
            ignore_index = ignore_value
        if probe_loader is None:
            raise param_error(_OWNER, "probe_loader", "a loader of the training images and original labels", None)
        if not isinstance(store, LabelStore):
            raise param_error(_OWNER, "store", "a monai_noisylabel.refurbish.LabelStore", type(store).__name__)
        if teacher is not None and not isinstance(teacher, EMATeacher):
            raise param_error(
                _OWNER, "teacher", "None or a monai_noisylabel.refurbish.EMATeacher", type(teacher).__name__
            )
        self.probe_loader = probe_loader
        self.store = store
        self.flags = _check_flags(flags)
        self.schedule = EpochSchedule.checked(_OWNER, warmup, every, epochs)
        self.teacher = teacher
        self.delta = check_number(_OWNER, "delta", delta, 0.0, 1.0)
        self.below = check_choice(_OWNER, "below", below, ("keep", "ignore"))
        self.ignore_index = check_int(_OWNER, "ignore_index", ignore_index)
        self.largest_component = bool(largest_component)
        self.activation = check_choice(_OWNER, "activation", activation, ("softmax", "sigmoid"))
        self.inferer = inferer
        self.rampup_epochs = check_number(_OWNER, "rampup_epochs", rampup_epochs, 0.0)
        self.unrefurbish_clean = bool(unrefurbish_clean)
        self.refresh = bool(refresh)
        self.max_fraction_changed = check_number(_OWNER, "max_fraction_changed", max_fraction_changed, 0.0, 1.0)
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.image_key, self.label_key, self.id_key, self.flag_key = image_key, label_key, id_key, flag_key
        self.mode = check_choice(_OWNER, "mode", mode, MODES)
        self.split = check_choice(
            _OWNER, "split", ("flagged" if self.mode == "hard" else "gmm") if split is None else split, SPLIT_SOURCES
        )
        self.gmm_threshold = check_number(_OWNER, "gmm_threshold", gmm_threshold, 0.0, 1.0, open_max=True)
        self.min_split_samples = check_int(_OWNER, "min_split_samples", min_split_samples, 2)
        self.temperature = check_number(_OWNER, "temperature", temperature, 0.0, open_min=True)
        self.write_labels = check_choice(_OWNER, "write_labels", write_labels, ("end", "split"))
        self.select_weight = check_number(_OWNER, "select_weight", select_weight, 0.0, 1.0)
        if not isinstance(select_first, (bool, np.bool_)):
            raise param_error(_OWNER, "select_first", "a bool", select_first)
        self.select_first = bool(select_first)
        if not isinstance(restart_teacher, (bool, np.bool_)):
            raise param_error(_OWNER, "restart_teacher", "a bool", restart_teacher)
        self.restart_teacher = bool(restart_teacher)
        #: hard mode with ``select_first``: per id flagged but not yet pseudo-labelled, the epoch it was flagged
        self.pending: dict[str, int] = {}
        self.logger = logging.getLogger(name)
        self._name = name
        #: lcm/select modes: per noisy id, its P(clean) and the epoch it was (last) called noisy
        self.noisy: dict[str, dict[str, Any]] = {}
        #: epochs whose split was skipped, with the reason
        self.skipped_epochs: dict[int, str] = {}
        self._batch_soft: tuple[list[int], torch.Tensor | None, list[float]] | None = None
        #: per refurbished id: the path of its written file (the rest lives in the store)
        self._paths: dict[str, str] = {}
        #: per id left unrefurbished: the reason (e.g. NaN output)
        self.skipped: dict[str, str] = {}
        self._batch_weights: torch.Tensor | None = None

    # ------------------------------------------------------------------------------------------- events

    def attach(self, engine: Engine) -> None:
        """Register on ``engine`` (a MONAI ``SupervisedTrainer``): weights per iteration, refurbishment per epoch."""
        C.set_logger(self, engine)
        C.check_network_at_start(engine, _OWNER)
        engine.add_event_handler(Events.ITERATION_STARTED, self._set_batch_weights)
        if self.teacher is not None:
            engine.add_event_handler(Events.ITERATION_COMPLETED, self._update_teacher)
        engine.add_event_handler(Events.EPOCH_COMPLETED(event_filter=C.epoch_filter(self.schedule)), self)
        if self.mode == "lcm" and self.output_dir is not None and self.write_labels == "end":
            engine.add_event_handler(Events.COMPLETED, self._write_lcm_labels)

    def _update_teacher(self, engine: Engine) -> None:
        assert self.teacher is not None
        self.teacher.update(C.engine_network(engine, _OWNER))

    def sample_weight(self, sample_id: str, epoch: int) -> float:
        """Loss weight of ``sample_id`` in ``epoch``: 0 while held out (``select_first``), the sigmoid ramp for a
        stored label (``hard``), ``select_weight`` for a noisy sample (``select``), 1 otherwise."""
        if sample_id in self.pending:
            return 0.0
        if self.mode != "hard":
            return self.select_weight if self.mode == "select" and sample_id in self.noisy else 1.0
        entry = self.store.get(sample_id)
        if entry is None:
            return 1.0
        start = (entry.epoch if entry.epoch is not None else 0) + 1
        return sigmoid_rampup(epoch, self.rampup_epochs, start=start)

    def _set_batch_weights(self, engine: Engine) -> None:
        batch = engine.state.batch
        self._batch_weights = None
        self._batch_soft = None
        active = len(self.store) + len(self.pending) if self.mode == "hard" else len(self.noisy)
        if not isinstance(batch, Mapping) or active == 0:
            return
        size = C.batch_size_of(batch, self.image_key, _OWNER)
        ids = C.batch_ids(batch, size, id_key=self.id_key, label_key=self.label_key, owner=_OWNER)
        if self.mode == "lcm":
            self._set_batch_soft(engine, batch, ids)
        if self.mode != "hard":
            if self.mode == "lcm" and not any(i in self.pending for i in ids):
                return
            epoch = int(engine.state.epoch)
            self._batch_weights = torch.tensor([self.sample_weight(i, epoch) for i in ids], dtype=torch.float32)
            return
        flag = batch.get(self.flag_key) if self.flag_key else None
        from_store = [bool(v) for v in torch.as_tensor(flag).reshape(-1).tolist()] if flag is not None else None
        epoch = int(engine.state.epoch)
        weights = [
            self.sample_weight(i, epoch)
            if i in self.pending or (from_store[j] if from_store is not None else i in self.store)
            else 1.0
            for j, i in enumerate(ids)
        ]
        self._batch_weights = torch.tensor(weights, dtype=torch.float32)

    def batch_weights(self, batch_size: int) -> torch.Tensor | None:
        """The per-sample loss weights of the current training batch (``None``: all 1)."""
        w = self._batch_weights
        return w if w is not None and w.numel() == batch_size else None

    def _set_batch_soft(self, engine: Engine, batch: Mapping[str, Any], ids: list[str]) -> None:
        """LCM mode: which rows of the batch are noisy, their ramped mixing weights and the teacher's prediction."""
        rows = [j for j, i in enumerate(ids) if i in self.noisy]
        if not rows:
            return
        epoch = int(engine.state.epoch)
        weights = [
            lcm_mix_weight(
                self.noisy[ids[j]]["clean_prob"],
                epoch,
                start=self.noisy[ids[j]]["epoch"] + 1,
                rampup_epochs=self.rampup_epochs,
            )
            for j in rows
        ]
        probs = None
        if self.teacher is not None:
            x = C.plain_tensor(batch[self.image_key], engine.state.device)[rows]  # type: ignore[attr-defined]
            probs = predict_probabilities(self.teacher, x, activation=self.activation, inferer=self.inferer)
        self._batch_soft = (rows, probs, weights)

    def batch_soft_targets(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[list[int], torch.Tensor] | None:
        """LCM mode: ``(rows, soft targets)`` of the noisy rows of the current batch, or ``None``.

        ``target`` is the batch's given labels ``(B, 1, *spatial)`` after augmentation; the prediction mixed in
        is the teacher's on the same batch (set on ``ITERATION_STARTED``) or ``pred`` detached.
        """
        soft = self._batch_soft
        if soft is None or target.shape[0] != pred.shape[0] or max(soft[0]) >= pred.shape[0]:
            return None
        rows, probs, weights = soft
        idx = torch.as_tensor(rows, device=pred.device)
        if probs is None:
            logits = pred.detach().float()[idx]
            probs = torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=1)
        given = target[idx.to(target.device)]
        # the teacher's softmax and the labels the loss checks: no value checks (passes over the batch) per step
        q = lcm_soft_target(
            given, probs.to(pred.device).float(), weights, temperature=self.temperature, validate_args=False
        )
        return rows, q

    # -------------------------------------------------------------------------------------- refurbishment

    def _split(self, engine: Engine) -> tuple[dict[str, float] | None, str]:
        """The noisy ids with their P(clean) (oracle flags: 0), or ``None`` and why the split is skipped."""
        if self.flags is None:
            return split_noisy(
                C.label_scores_of(engine),
                source=self.split,
                threshold=self.gmm_threshold,
                min_samples=self.min_split_samples,
            )
        ids = {str(i) for i in self.flags(engine)} if callable(self.flags) else set(self.flags)
        return dict.fromkeys(sorted(ids), 0.0), ""

    def _predict(self, engine: Engine, x: torch.Tensor) -> torch.Tensor:
        model: Any = self.teacher if self.teacher is not None else C.engine_network(engine, _OWNER)
        return predict_probabilities(model, x, activation=self.activation, inferer=self.inferer)

    def _pass(self, engine: Engine, wanted: set[str], flagged: set[str]) -> tuple[list[dict[str, Any]], set[str]]:
        """Pseudo-labels of the ``wanted`` ids this rank sees, and every id this rank saw."""
        device = engine.state.device  # type: ignore[attr-defined]
        seen: set[str] = set()
        records: list[dict[str, Any]] = []
        scores = C.label_scores_of(engine)
        epoch = int(engine.state.epoch)
        keys = {"image_key": self.image_key, "label_key": self.label_key, "id_key": self.id_key, "owner": _OWNER}
        for batch, ids in C.probe_batches(self.probe_loader, **keys):
            seen.update(ids)
            rows = [j for j, i in enumerate(ids) if i in wanted]
            if not rows:
                continue
            label = batch[self.label_key]
            x = C.plain_tensor(batch[self.image_key], device)[rows]
            given = C.plain_tensor(label, device)[rows]
            if self.mode == "lcm":
                clean = [float(self.noisy[ids[j]]["clean_prob"]) for j in rows]
                result = lcm_pseudo_labels(self._predict(engine, x), given, clean, temperature=self.temperature)
            else:
                result = build_pseudo_labels(
                    self._predict(engine, x),
                    given,
                    delta=self.delta,
                    below=self.below,
                    ignore_index=self.ignore_index,
                    largest_component=self.largest_component,
                )
            label_paths = C.batch_paths(batch, self.label_key, len(ids))
            for k, j in enumerate(rows):
                sid = ids[j]
                if not result.refurbished[k]:
                    self.skipped[sid] = str(result.reasons[k])
                    continue
                if self.mode == "hard" and result.fraction_changed[k] > self.max_fraction_changed:
                    self.skipped[sid] = (
                        f"the pseudo-label changes {result.fraction_changed[k]:.1%} of the voxels "
                        f"(max_fraction_changed={self.max_fraction_changed})"
                    )
                    continue
                self.skipped.pop(sid, None)
                row = scores.get(sid) or {}
                records.append(
                    {
                        "id": sid,
                        "label": result.labels[k].detach().cpu().clone(),
                        "epoch": epoch,
                        "score": row.get("combined"),
                        "fraction_changed": float(result.fraction_changed[k]),
                        "affine": _affine_of(label, j),
                        "label_path": label_paths[j] if j < len(label_paths) else "",
                        "flagged": sid in flagged,
                    }
                )
        return records, seen

    def __call__(self, engine: Engine) -> None:
        """End of a refurbishment epoch: split clean from noisy, then relabel, re-target or re-weight (``mode``)."""
        epoch = int(engine.state.epoch)
        split, reason = self._split(engine)
        if split is None:
            self.skipped_epochs[epoch] = reason
            self.logger.warning(f"{_OWNER}: epoch {epoch}: cleansing skipped ({reason}); the previous split is kept")
            return
        if self.mode == "hard":
            self._refurbish(engine, set(split))
        else:
            self._cleanse(engine, split)

    def _run_pass(self, engine: Engine, wanted: set[str], flagged: set[str]) -> list[dict[str, Any]]:
        """:meth:`_pass` in eval mode on every rank, gathered; checks oracle ids against what the ranks saw."""
        net = C.engine_network(engine, _OWNER)
        with C.eval_mode(net), torch.no_grad():
            records, seen = self._pass(engine, wanted, flagged)
        records = [r for part in C.gather_objects(records) for r in part]
        seen = {i for part in C.gather_objects(sorted(seen)) for i in part}
        if self.flags is not None and not callable(self.flags):
            unknown = sorted(flagged - seen)
            if unknown:
                raise param_error(_OWNER, "flags", "ids of samples in probe_loader", unknown[:5])
        return records

    def _cleanse(self, engine: Engine, split: dict[str, float]) -> None:
        """``lcm``/``select``: keep the new split (``lcm`` with ``write_labels="split"``: write the hard labels of
        the current LCM targets)."""
        epoch = int(engine.state.epoch)
        removed = [i for i in self.noisy if i not in split] if self.unrefurbish_clean else []
        for i in removed:
            del self.noisy[i]
            self._paths.pop(i, None)
        new = [i for i in split if i not in self.noisy]
        if self.mode == "lcm" and self.select_first:  # hold the newly noisy out until the next cleansing epoch
            released = [i for i in self.pending if i in split]
            self.pending = {} if _last_epoch(engine) else dict.fromkeys(new, epoch)
            if released and self.teacher is not None and self.restart_teacher:  # a model that never saw their labels
                self.teacher.restart(C.engine_network(engine, _OWNER))
        for i, p in split.items():
            prev = self.noisy.get(i)
            self.noisy[i] = {
                "clean_prob": float(p),
                "epoch": int(prev["epoch"]) if prev else epoch,
                "fraction_changed": prev["fraction_changed"] if prev else None,
                "label_path": prev["label_path"] if prev else "",
            }
        mean_clean = float(np.mean([v["clean_prob"] for v in self.noisy.values()])) if self.noisy else float("nan")
        self.logger.info(
            f"{_OWNER} ({self.mode}): epoch {epoch}: {len(split)} noisy (mean P(clean) {mean_clean:.3f}), "
            f"{len(removed)} re-scored clean, {len(self.noisy)} {'on LCM targets' if self.mode == 'lcm' else 'down-weighted'}"
        )
        if self.mode == "lcm" and self.output_dir is not None and self.write_labels == "split":
            self._write_lcm_labels(engine)
        else:
            self._publish(engine)

    def _write_lcm_labels(self, engine: Engine) -> None:
        """``lcm``: one eval pass over the noisy samples, their LCM targets' hard labels to ``refurbished/``
        (files of samples no longer noisy, found in the manifest, removed), then the ``refurbished_label`` column."""
        records = self._run_pass(engine, set(self.noisy), set(self.noisy)) if self.noisy else []
        for r in records:
            self.noisy[r["id"]].update(fraction_changed=r["fraction_changed"], label_path=r["label_path"])
        if C.is_main_process():
            assert self.output_dir is not None
            written = {str(r["id"]) for r in read_refurbish_manifest(self.output_dir)}
            stale = sorted(written - set(self.noisy))  # every written file has its manifest row
            for i in stale:
                self._paths.pop(i, None)
            self._write(records, stale)
        self._publish(engine)

    def _wanted(self, engine: Engine, flagged: set[str]) -> tuple[set[str], list[str]]:
        """``hard``: the ids to pseudo-label now, and the newly flagged ids held out (``select_first``) instead."""
        stored = set(self.store.ids())
        new = flagged - stored
        held: list[str] = []
        if self.select_first and not _last_epoch(engine):
            held = sorted(new - set(self.pending))
            new -= set(held)
        return (new | (flagged & stored) if self.refresh else new), held

    def _refurbish(self, engine: Engine, flagged: set[str]) -> None:
        """``hard``: pseudo-label the newly flagged samples (with ``select_first``: those held out since the
        previous refurbishment epoch), drop the re-scored clean ones."""
        wanted, held = self._wanted(engine, flagged)
        records = self._run_pass(engine, wanted, flagged)
        epoch = int(engine.state.epoch)
        removed = []
        if self.unrefurbish_clean:
            removed = [i for i in self.store.ids() if i not in flagged]
            for i in removed:
                self.store.remove(i)
                self._paths.pop(i, None)
            self.pending = {i: e for i, e in self.pending.items() if i in flagged}
        for r in records:
            meta = {"fraction_changed": r["fraction_changed"], "original_path": r["label_path"]}
            self.store.put(r["id"], r["label"], epoch=epoch, score=r["score"], meta=meta)
            self._paths.pop(r["id"], None)
            self.pending.pop(r["id"], None)
        self.pending.update(dict.fromkeys(held, epoch))
        if self.skipped:
            self.logger.warning(f"{_OWNER}: epoch {epoch}: left unrefurbished: {dict(list(self.skipped.items())[:5])}")
        self.logger.info(
            f"{_OWNER}: epoch {epoch}: {len(flagged)} flagged, {len(records)} refurbished, "
            f"{len(removed)} re-scored clean, {len(self.store)} in the store, {len(self.pending)} held out"
        )
        if C.is_main_process() and self.output_dir is not None:
            self._write(records, removed)
        self._publish(engine)

    @property
    def history(self) -> dict[str, dict[str, Any]]:
        """Per refurbished id (``hard``: from the store; ``lcm``/``select``: the noisy samples): ``epoch``,
        ``score``, ``fraction_changed``, ``label_path`` (the original label) and ``path`` (the written file,
        ``""`` when nothing is written); ``lcm``/``select`` add ``clean_prob``."""
        if self.mode != "hard":
            return {
                i: {
                    "epoch": int(v["epoch"]),
                    "score": None,
                    "clean_prob": float(v["clean_prob"]),
                    "fraction_changed": v.get("fraction_changed"),
                    "label_path": v.get("label_path") or "",
                    "path": self._paths.get(i, ""),
                }
                for i, v in self.noisy.items()
            }
        out = {}
        for i in self.store.ids():
            entry = self.store.get(i)
            assert entry is not None
            out[i] = {
                "epoch": entry.epoch,
                "score": entry.score,
                "fraction_changed": entry.meta.get("fraction_changed"),
                "label_path": entry.meta.get("original_path", ""),
                "path": self._paths.get(i, ""),
            }
        return out

    def _write(self, records: list[dict[str, Any]], removed: list[str]) -> None:
        assert self.output_dir is not None
        for i in removed:
            remove_refurbished_label(self.output_dir, i)
        for r in records:
            path = write_refurbished_label(
                r["label"],
                self.output_dir,
                r["id"],
                affine=r["affine"],
                original_path=r["label_path"] or None,
                epoch=r["epoch"],
                score=r["score"],
                fraction_changed=r["fraction_changed"],
            )
            self._paths[r["id"]] = str(path)

    def _publish(self, engine: Engine) -> None:
        """Fill the ``refurbished_label`` column (path, or ``"store"`` when nothing is written) and rewrite the CSV."""
        table = C.label_scores_of(engine)
        for row in table.values():
            row["refurbished_label"] = None
        for i, h in self.history.items() if self.mode != "select" else ():
            if i not in table:
                table[i] = C.new_row(i)
                table[i]["label"] = h["label_path"]
            table[i]["refurbished_label"] = h["path"] or ("store" if self.mode == "hard" else "lcm")
        C.write_outputs(engine, self.output_dir, None, {}, int(engine.state.epoch))

    # ------------------------------------------------------------------------------------- checkpointing

    def state_dict(self) -> dict[str, Any]:
        """The store, the teacher, the written file paths, the skipped ids and epochs, and the noisy samples'
        ``P(clean)`` (``torch.load(weights_only=True)`` safe)."""
        return {
            "store": self.store.state_dict(),
            "teacher": {} if self.teacher is None else self.teacher.state_dict(),
            "paths": dict(self._paths),
            "skipped": dict(self.skipped),
            "noisy": {i: dict(v) for i, v in self.noisy.items()},
            "skipped_epochs": {str(e): r for e, r in self.skipped_epochs.items()},
            "pending": dict(self.pending),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the same ``store`` object is refilled, so pipelines see it)."""
        try:
            store, teacher, paths, skipped = state["store"], state["teacher"], state["paths"], state["skipped"]
        except (KeyError, TypeError):
            raise param_error(_OWNER, "state", "a dict from state_dict()", type(state).__name__) from None
        self.store.load_state_dict(store)
        if self.teacher is not None and teacher:
            self.teacher.load_state_dict(teacher)
        self._paths = {str(i): str(p) for i, p in paths.items()}
        self.skipped = {str(i): str(r) for i, r in skipped.items()}
        self.noisy = {str(i): dict(v) for i, v in (state.get("noisy") or {}).items()}
        self.skipped_epochs = {int(e): str(r) for e, r in (state.get("skipped_epochs") or {}).items()}
        self.pending = {str(i): int(e) for i, e in (state.get("pending") or {}).items()}


class PseudoLabelWeightedLoss(torch.nn.Module):
    """A training loss whose pseudo-labelled samples are weighted by :class:`LabelRefurbishHandler`'s ramp.

    ``loss`` must keep the batch dimension (``reduction="none"``, as every loss of
    :mod:`monai_noisylabel.losses` and MONAI's ``DiceLoss``/``DiceCELoss``-style losses allow); the result
    is ``mean_i(w_i * loss_i)`` with ``loss_i`` the per-sample mean. In the handler's ``lcm`` mode the noisy
    rows of a batch are scored against their soft LCM targets ``(b, C, *spatial)``, so ``loss`` must also take
    soft targets (e.g. :class:`~monai_noisylabel.losses.SampleDiceCELoss`, the losses of
    :mod:`monai_noisylabel.losses`). Without weights (no refurbished sample
    in the batch, or outside a trainer) it is the plain batch mean.

    Args:
        loss: a per-sample loss callable ``loss(pred, target) -> (B, ...)``.
        handler: the :class:`LabelRefurbishHandler` attached to the trainer.

    Example:
        >>> import torch
        >>> ce = torch.nn.CrossEntropyLoss(reduction="none")
        >>> handler = LabelRefurbishHandler([], LabelStore(), flags=[])
        >>> f = PseudoLabelWeightedLoss(lambda p, y: ce(p, y[:, 0]), handler)
        >>> float(f(torch.zeros(2, 2, 4, 4), torch.zeros(2, 1, 4, 4, dtype=torch.long)))  # log(2)
        0.6931471824645996
    """

    def __init__(self, loss: Callable[..., torch.Tensor], handler: LabelRefurbishHandler) -> None:
        super().__init__()
        if not callable(loss):
            raise param_error("PseudoLabelWeightedLoss", "loss", "a per-sample loss callable", loss)
        if not isinstance(handler, LabelRefurbishHandler):
            raise param_error("PseudoLabelWeightedLoss", "handler", "a LabelRefurbishHandler", type(handler).__name__)
        self.loss = loss
        self.handler = handler

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        soft = self.handler.batch_soft_targets(pred, target) if self.handler.mode == "lcm" else None
        if soft is None:
            per = per_sample_loss(self.loss, pred, target)
        else:
            rows, q = soft
            per = pred.new_zeros(pred.shape[0], dtype=torch.float32)
            idx = torch.as_tensor(rows, device=pred.device)
            per = per.index_put((idx,), per_sample_loss(self.loss, pred[idx], q).float())
            noisy = set(rows)
            hard = [j for j in range(pred.shape[0]) if j not in noisy]
            if hard:
                h = torch.as_tensor(hard, device=pred.device)
                per = per.index_put((h,), per_sample_loss(self.loss, pred[h], target[h.to(target.device)]).float())
        w = self.handler.batch_weights(per.shape[0])
        if w is None:
            return per.mean()
        return (per * w.to(device=per.device, dtype=per.dtype, non_blocking=True)).mean()  # no stream sync per batch
