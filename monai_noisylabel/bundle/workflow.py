"""Pieces the bundle configs instantiate by dotted ``_target_`` that MONAI and ignite do not provide.

- :func:`seeded_init`: re-initialize a network from a seed without touching the global RNG.
- :func:`channel_output_transform`: the ``output_transform`` of a per-structure metric.
- :class:`ResumeFromLatestCheckpoint`: a ``CheckpointLoader`` for the newest checkpoint of a folder, if any.
- :class:`TrainingProgress`: per-epoch lines with the loss, epoch time and an estimate of the time left, and
  ``history.json`` (training loss and validation metrics per epoch) for the report's curves.
- :func:`finish_training`: after training, the report (``report/index.html``) and detection metrics against
  the known corruption, printed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.handlers import from_engine
from monai.utils import IgniteInfo, min_version, optional_import

from monai_noisylabel.label_scores import (
    LABEL_SCORES_FILENAME,
    read_label_scores,
    readable_summary,
    summarize_label_scores,
)
from monai_noisylabel.transforms.label_noise import corrupted_ids
from monai_noisylabel.utils import (
    atomic_write_text,
    check_int,
    is_main_process,
    param_error,
    sample_id_of,
    unwrap_network,
)

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = [
    "as_flag",
    "named",
    "rank_zero_only",
    "vog_checkpoints",
    "seeded_init",
    "channel_output_transform",
    "ResumeFromLatestCheckpoint",
    "data_fingerprint",
    "TrainingProgress",
    "finish_training",
    "HISTORY_FILENAME",
]

logger = logging.getLogger(__name__)
HISTORY_FILENAME = "history.json"


def as_flag(value: Any, name: str = "flag") -> bool:
    """A config switch as a bool: accepts bools, 0/1 and the strings ``true/false/yes/no/on/off/1/0``.

    ``python -m monai.bundle run --refurbish false`` passes the STRING ``"false"`` (fire reads Python literals,
    so only ``False`` is a bool), which plain truthiness would read as on.

    Example:
        >>> as_flag("false"), as_flag(True), as_flag("1")
        (False, True, True)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _FLAGS:
        return _FLAGS[value.strip().lower()]
    raise param_error("as_flag", name, "true or false", value)


def named(handler: Any) -> Any:
    """Return ``handler`` unchanged: lists a handler that a config defines as a named top-level entry.

    MONAI's ``check_properties`` and MONAI Label's bundle trainer read ``train#handlers`` as a list of dicts
    (MONAI Label inserts a ``CheckpointLoader`` at position 0), so a bare ``"@vog_handler"`` string cannot
    stand in that list, and a reference by position (``@train#handlers#1``) breaks as soon as anything is
    inserted. The configs define each handler that others refer to as a top-level entry and list it as
    ``{"_target_": "monai_noisylabel.bundle.named", "handler": "@vog_handler"}``.

    Example:
        >>> marker = object()
        >>> named(marker) is marker
        True
    """
    return handler


_FLAGS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


def rank_zero_only(handlers: Sequence[Any], *only_on_rank_zero: Any) -> list[Any]:
    """``handlers`` on rank 0; on the other ranks without ``only_on_rank_zero`` (the ones that print or write).

    The multi-GPU configs' ``train#trainer#train_handlers``.

    Example:
        >>> a, b, c = object(), object(), object()
        >>> rank_zero_only([a, b, c], b) == [a, b, c]  # without a process group this is rank 0
        True
    """
    if is_main_process():
        return list(handlers)
    return [h for h in handlers if all(h is not o for o in only_on_rank_zero)]


def vog_checkpoints(vog_epochs: int | Sequence[int] | None, max_epochs: int) -> Sequence[int] | int | None:
    """A bundle's ``vog_epochs`` as the ``epochs`` of :class:`~monai_noisylabel.handlers.VarianceOfGradientsHandler`.

    An int ``n`` means a checkpoint every ``n``-th epoch up to ``max_epochs``, with ``n`` capped at ``max_epochs``
    (so MONAI Label's 1-epoch trainings still get one checkpoint); ``None`` (every epoch) and a list of epochs
    pass as they are, and so does a bad value, which the handler then names.

    Example:
        >>> vog_checkpoints(4, 10), vog_checkpoints(4, 1), vog_checkpoints([2, 5], 10), vog_checkpoints(None, 10)
        ([4, 8], [1], [2, 5], None)
    """
    if isinstance(vog_epochs, int) and not isinstance(vog_epochs, bool) and vog_epochs >= 1 and max_epochs >= 1:
        every = min(vog_epochs, int(max_epochs))
        return list(range(every, int(max_epochs) + 1, every))
    return vog_epochs


def seeded_init(network: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Re-initialize every submodule with ``reset_parameters`` from ``seed``, leaving the global RNG as it was.

    Example:
        >>> a, b = seeded_init(torch.nn.Linear(3, 2), 1), seeded_init(torch.nn.Linear(3, 2), 1)
        >>> torch.equal(a.weight, b.weight)
        True
    """
    seed = check_int("seeded_init", "seed", seed, 0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in network.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    return network


def channel_output_transform(channel: int, keys: Sequence[str] = ("pred", "label")) -> Callable[[Any], Any]:
    """``output_transform`` for a MONAI metric handler that keeps one class channel of ``pred`` and ``label``.

    The engine output is the list of decollated dicts (``pred``/``label`` one-hot ``(C, *spatial)``).

    Example:
        >>> f = channel_output_transform(1)
        >>> p, y = f([{"pred": torch.zeros(3, 2, 2), "label": torch.ones(3, 2, 2)}])
        >>> p[0].shape, float(y[0].sum())
        (torch.Size([1, 2, 2]), 4.0)
    """
    c = check_int("channel_output_transform", "channel", channel, 0)

    def _transform(output: Any) -> tuple[list[Any], list[Any]]:
        items = output if isinstance(output, (list, tuple)) else [output]
        return [i[keys[0]][c : c + 1] for i in items], [i[keys[1]][c : c + 1] for i in items]

    return _transform


_CKPT = re.compile(r"_(?:epoch|iteration)=(\d+)\.pt$")


def _complete(path: Path) -> bool:
    """Whether ``path`` is a whole ``torch.save`` archive (a zip whose central directory, written last, is there)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


#: files up to this size are fingerprinted by content; larger ones by size and modification time
_HASH_LIMIT = 16 * 2**20
FINGERPRINT_FILENAME = "run_fingerprint.json"


def data_fingerprint(entries: Any) -> str:
    """A short hash of a training datalist: its entries, and the content of every file they name.

    Strings that name an existing file count by the file's content (files up to 16 MiB; larger ones by size
    and modification time), so two runs whose label files differ (another noise rate written to the same
    paths) differ too, while a resumed run on the same data, rewritten byte for byte, does not.

    Example:
        >>> a = data_fingerprint([{"id": "a", "label": "/nonexistent/a.nii.gz"}])
        >>> a == data_fingerprint([{"id": "a", "label": "/nonexistent/a.nii.gz"}]), len(a)
        (True, 16)
        >>> a == data_fingerprint([{"id": "b", "label": "/nonexistent/a.nii.gz"}])
        False
    """
    digest = hashlib.blake2b(digest_size=8)

    def visit(value: Any) -> None:
        if isinstance(value, Mapping):
            for key in sorted(value, key=str):
                digest.update(f"<{key}>".encode())
                visit(value[key])
        elif isinstance(value, (list, tuple)):
            digest.update(b"[")
            for item in value:
                visit(item)
            digest.update(b"]")
        else:
            text = str(value)
            digest.update(text.encode())
            if isinstance(value, (str, os.PathLike)) and os.path.isfile(value):
                size = os.path.getsize(value)
                if size <= _HASH_LIMIT:
                    with open(value, "rb") as f:
                        digest.update(hashlib.blake2b(f.read(), digest_size=8).digest())
                else:
                    digest.update(f"{size}:{os.stat(value).st_mtime_ns}".encode())

    visit(entries)
    return digest.hexdigest()


class ResumeFromLatestCheckpoint:
    """Load the newest ``checkpoint_epoch=N.pt`` (ignite ``Checkpoint`` naming) of ``ckpt_dir`` at the start.

    Nothing happens when ``enabled`` is false or the folder holds no checkpoint. It attaches MONAI's
    ``CheckpointLoader``, which restores every object of ``load_dict`` (network, optimizer, trainer, and the
    noisy-label handlers' ``state_dict``), so a killed run resumes where its last checkpoint left it.

    With ``fingerprint`` (the training datalist: ``"@train#dataset#data"`` in the bundles), the run records
    :func:`data_fingerprint` of it in ``ckpt_dir/run_fingerprint.json``, and refuses to resume a checkpoint
    written on other training data: that would train nothing (the old run had finished) or continue on the
    wrong labels, and write the old run's scores as this run's. A checkpoint folder without the record (an
    older run) resumes as before, with a warning.

    Raises:
        ValueError: at attach, the checkpoint to resume was written on other training data (names the folder
            and both fingerprints, and says how to start over).
    """

    def __init__(
        self, ckpt_dir: str | Path, load_dict: Mapping[str, Any], enabled: bool = True, fingerprint: Any = None
    ) -> None:
        self.ckpt_dir = Path(ckpt_dir)
        self.load_dict = dict(load_dict)
        self.enabled = as_flag(enabled, "enabled")
        self.fingerprint = None if fingerprint is None else data_fingerprint(fingerprint)
        self.path: Path | None = None

    def _check_fingerprint(self) -> None:
        if self.fingerprint is None:
            return
        record = self.ckpt_dir / FINGERPRINT_FILENAME
        if self.path is not None:
            if not record.is_file():
                logger.warning(f"{self.ckpt_dir} has no {FINGERPRINT_FILENAME}: resuming without checking its data")
            else:
                try:
                    previous = json.loads(record.read_text()).get("training_data")
                except (OSError, ValueError, AttributeError):
                    previous = None
                if previous != self.fingerprint:
                    raise ValueError(
                        f"The checkpoint {self.path} was written by a run on other training data (fingerprint "
                        f"{previous}, this run's {self.fingerprint}), so resuming it would train on or report "
                        "the wrong labels. Use a new output_dir for this run (e.g. --output_dir NEW), or "
                        "--resume False to start over in this one (its outputs are then replaced)."
                    )
        if is_main_process():
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_text(record, json.dumps({"training_data": self.fingerprint}) + "\n")

    def latest(self) -> Path | None:
        """The complete checkpoint with the highest epoch number, or ``None``.

        MONAI's ``CheckpointSaver`` writes in place (not atomically), so a run killed while saving leaves a
        truncated newest file next to the previous complete one; that file is skipped (with a warning, and
        kept) in favour of the newest complete one. When none is complete the newest is returned and its load
        fails with a message naming it.
        """
        found = sorted(
            ((int(m.group(1)), p) for p in self.ckpt_dir.glob("*.pt") if (m := _CKPT.search(p.name))), reverse=True
        )
        for _, path in found:
            if _complete(path):
                return path
            logger.warning(f"skipping {path}: not a complete checkpoint (a run killed while saving it?)")
        return found[0][1] if found else None

    def attach(self, engine: Engine) -> None:
        from monai_noisylabel.bundle.checks import CheckedCheckpointLoader

        self.path = self.latest() if self.enabled else None
        self._check_fingerprint()
        if self.path is not None:
            logger.info(f"resuming from {self.path}")
            load_dict = self.load_dict
            optional = [k for k, v in load_dict.items() if getattr(v, "optional_in_checkpoint", False)]
            if optional:  # entries newer than the checkpoint (e.g. the random state): resume without them
                try:
                    content = torch.load(self.path, map_location="cpu", weights_only=True)
                except Exception:  # not a checkpoint: CheckedCheckpointLoader names the file and the reason
                    content = None
                present = set(content) if isinstance(content, dict) else set(optional)
                missing = [k for k in optional if k not in present]
                if missing:
                    logger.warning(f"{self.path} has no {missing}: resuming without them (the run may not repeat)")
                load_dict = {k: v for k, v in load_dict.items() if k not in missing}
            # torch.load takes a device string; MONAI's hint says dict
            CheckedCheckpointLoader(str(self.path), load_dict, map_location="cpu").attach(engine)  # type: ignore[arg-type]


class TrainingProgress:
    """Per-epoch progress lines (loss, seconds, estimated time left) and ``<output_dir>/history.json``.

    Attach to the trainer; pass ``evaluator`` to also record its metrics each time it runs.
    """

    def __init__(
        self, output_dir: str | Path | None = None, evaluator: Engine | None = None, name: str = "TrainingProgress"
    ) -> None:
        self.output_dir = None if output_dir is None else Path(output_dir)
        self.evaluator = evaluator
        self.logger = logging.getLogger(name)
        self.history: dict[str, list[list[float]]] = {}
        self._loss_sum: float | torch.Tensor = 0.0
        self._loss_n = 0
        self._t0 = 0.0
        self._epoch_times: list[float] = []

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.EPOCH_STARTED, self._epoch_started)
        engine.add_event_handler(Events.ITERATION_COMPLETED, self._iteration)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._epoch_completed)
        if self.evaluator is not None:
            self.evaluator.add_event_handler(Events.COMPLETED, self._validated)
        self._trainer = engine

    def _epoch_started(self, engine: Engine) -> None:
        self._loss_sum, self._loss_n, self._t0 = 0.0, 0, time.perf_counter()

    def _iteration(self, engine: Engine) -> None:
        try:
            loss = from_engine(["loss"], first=True)(engine.state.output)  # MONAI's own output accessor
        except (KeyError, IndexError, TypeError):
            loss = None
        if isinstance(loss, tuple):  # a dict output gives a 1-tuple, a decollated list the value itself
            loss = loss[0]
        if loss is not None:  # summed where it lives: no host sync per iteration, one at the end of the epoch
            self._loss_sum = self._loss_sum + (loss.detach() if isinstance(loss, torch.Tensor) else float(loss))
            self._loss_n += 1

    def _record(self, name: str, epoch: int, value: float) -> None:
        series = [p for p in self.history.setdefault(name, []) if p[0] != epoch]
        self.history[name] = [*series, [epoch, value]]

    def _epoch_completed(self, engine: Engine) -> None:
        epoch, total = int(engine.state.epoch), int(engine.state.max_epochs or 0)
        took = time.perf_counter() - self._t0
        self._epoch_times.append(took)
        mean_loss = float(self._loss_sum) / self._loss_n if self._loss_n else None
        if mean_loss is not None:
            self._record("train_loss", epoch, mean_loss)
        left = float(np.mean(self._epoch_times[-5:])) * (total - epoch)
        loss_txt = "n/a" if mean_loss is None else f"{mean_loss:.4f}"
        self.logger.info(f"epoch {epoch}/{total}: train loss {loss_txt}, {took:.1f} s, about {left / 60:.1f} min left")
        self._save()

    def _validated(self, evaluator: Engine) -> None:
        epoch = int(getattr(self._trainer.state, "epoch", 0) or 0)
        for name, value in evaluator.state.metrics.items():
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            if math.isfinite(v):
                self._record(name, epoch, v)
        self._save()

    def _save(self) -> None:
        if self.output_dir is not None and is_main_process():
            atomic_write_text(self.output_dir / HISTORY_FILENAME, json.dumps(self.history, indent=1) + "\n")

    def state_dict(self) -> dict[str, Any]:
        return {"history": {k: [list(p) for p in v] for k, v in self.history.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.history = {str(k): [[float(a), float(b)] for a, b in v] for k, v in state.get("history", {}).items()}


def _predict_suspects(
    suspects: list[dict[str, Any]],
    network: torch.nn.Module,
    preprocessing: Callable[[Any], Any],
    entries: Mapping[str, Any],
    device: str | torch.device,
) -> None:
    """Fill ``image``/``label``/``prediction`` of each suspect from the preprocessed training entry and the network."""
    network.eval()
    for s in suspects:
        entry = entries.get(s["id"])
        if entry is None:
            continue
        item = preprocessing(dict(entry))
        with torch.no_grad():
            logits = network(torch.as_tensor(item["image"])[None].to(device))
        s["image"] = torch.as_tensor(item["image"]).cpu().numpy()
        s["label"] = torch.as_tensor(item["label"]).cpu().numpy()
        s["prediction"] = logits.argmax(1).cpu().numpy()


def finish_training(
    output_dir: str | Path,
    *,
    entries: Sequence[Mapping[str, Any]] = (),
    manifest: str | Path | None = None,
    network: torch.nn.Module | None = None,
    preprocessing: Callable[[Any], Any] | None = None,
    device: str | torch.device = "cpu",
    top_k: int = 8,
    title: str = "Echo label quality report",
) -> dict[str, Any]:
    """After training (rank 0): detection metrics against the known corruption, the report, a printed summary.

    Reads ``<output_dir>/label_scores.csv`` and ``history.json``; with the ``manifest.json`` of the injected
    noise (:func:`~monai_noisylabel.bundle.prepare_echo_data`), computes AUROC and average precision of every
    score column against the known corrupted ids with :func:`~monai_noisylabel.detection.detection_metrics`,
    and the precision and recall of the ``flagged`` column (``flag_precision``, ``flag_recall``; printed):
    the summary of :func:`~monai_noisylabel.label_scores.summarize_label_scores`, which the command line's
    ``report`` shows too.
    The top ``top_k`` suspects are drawn with the network's prediction (``entries``: the training data list;
    ``preprocessing``: the training pipeline without augmentation). Writes ``report/index.html`` and
    ``detection_metrics.json``; returns the summary (``{}`` on a rank other than 0; ``network`` may be
    wrapped in DDP).
    """
    from monai_noisylabel.visualize import suspects_from_scores, write_report

    out = Path(output_dir)
    if not is_main_process():
        return {}
    scores_path = out / LABEL_SCORES_FILENAME
    rows = read_label_scores(scores_path) if scores_path.is_file() else []
    is_corrupted = None
    if manifest is not None and Path(manifest).is_file() and rows:
        bad = set(corrupted_ids(manifest))
        is_corrupted = {r["id"]: r["id"] in bad for r in rows}
    history_path = out / HISTORY_FILENAME
    history = json.loads(history_path.read_text()) if history_path.is_file() else None
    summary = summarize_label_scores(rows, is_corrupted, history=history)
    suspects = None
    if rows:
        suspects = suspects_from_scores(rows, top_k=top_k)
        if network is not None and preprocessing is not None:
            # the handlers' ids: the entry's id, else the label's file name as LoadImaged records it
            by_id = {sample_id_of(e) or str(e.get("label", "")): e for e in entries}
            _predict_suspects(suspects, unwrap_network(network), preprocessing, by_id, device)
    report = write_report(
        out,
        rows=rows or None,
        history=history,
        suspects=suspects,
        is_corrupted=is_corrupted,
        summary=readable_summary(summary),
        title=title,
        top_k=top_k,
    )
    atomic_write_text(out / "detection_metrics.json", json.dumps(summary, indent=1) + "\n")
    summary["report"] = str(report)
    print(f"report: {report}")
    if "auroc_combined" in summary:
        print(f"detection AUROC against the known corruption (combined score): {summary['auroc_combined']:.3f}")
    if "num_corrupted" in summary:
        p, r = summary["flag_precision"], summary["flag_recall"]
        print(
            f"flagged {summary['num_flagged']} of {len(rows)} labels ({summary['num_corrupted']} known corrupted): "
            f"precision {'n/a' if p is None else f'{p:.3f}'}, recall {'n/a' if r is None else f'{r:.3f}'}"
        )
    return summary
