"""Private helpers shared by the handlers: sample ids of a batch, DDP gathering, eval passes, the shared score table.

The score table lives on ``engine.state.label_scores``: a dict ``id -> row`` where a row holds the
columns of :data:`~monai_noisylabel.handlers.label_scores.LABEL_SCORES_COLUMNS` (``None`` = not scored)
plus ``nonfinite``, the set of score names for which that sample produced a NaN/inf value. Every handler
writes its own columns with :func:`publish_scores`, which then recomputes ``combined`` and ``flagged``
for all rows (:func:`refresh_combined`), so the table is always consistent whichever handler ran last.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from monai.utils import IgniteInfo, min_version, optional_import

from monai_noisylabel.detection import combine_scores, combine_with_reference, reference_excess, reference_flags
from monai_noisylabel.label_scores import LABEL_SCORES_FILENAME, SCORE_COLUMNS, write_label_scores
from monai_noisylabel.utils import as_plain_tensor, is_main_process, param_error, unwrap_network

#: the name ``label_refurbish.py`` calls the shared converter by
plain_tensor = as_plain_tensor

__all__: list[str] = []

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")

#: attribute of ``engine.state`` holding the combine/flag options set by ``LabelQualityReportHandler``.
OPTIONS_ATTR = "label_scores_options"
#: attribute of ``engine.state`` holding the same scores on the trusted clean reference (name -> ``(M,)`` array).
REFERENCE_ATTR = "label_scores_reference"
DEFAULT_OPTIONS: dict[str, Any] = {
    "include": None,
    "weights": "auto",
    "flag_rule": "auto",
    "flag_level": 0.1,
    "gmm_threshold": 0.5,
    "flag_fraction": None,
}


# ----------------------------------------------------------------------------------------------- sample ids


def _as_str_list(value: Any, batch_size: int) -> list[str] | None:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    elif isinstance(value, np.ndarray):
        value = value.reshape(-1).tolist()
    if isinstance(value, (str, bytes, int, np.integer)):
        value = [value]
    if not isinstance(value, Sequence):
        return None
    out = []
    for v in value:
        if v is None or isinstance(v, (float, bool)):
            return None
        out.append(v.decode() if isinstance(v, bytes) else str(v))
    return out if len(out) == batch_size else None


def meta_filenames(value: Any, batch_size: int) -> list[str] | None:
    """The ``filename_or_obj`` of each sample of a collated MetaTensor (``None`` when it has none)."""
    meta = getattr(value, "meta", None)
    if not isinstance(meta, Mapping):
        return None
    names = _as_str_list(meta.get("filename_or_obj"), batch_size)
    if names is None or not all(names):
        return None
    return names


def batch_ids(batch: Any, batch_size: int, *, id_key: str, label_key: str, owner: str) -> list[str]:
    """One stable id per sample of a collated batch, as :func:`monai_noisylabel.utils.sample_id_of` finds them.

    ``batch[id_key]`` (the datalist ``id`` field: after collation a list of str or a tensor of ints), else the
    ``filename_or_obj`` of the label's meta. Raises a ValueError when there is none, or when ids repeat.
    """
    ids = None
    if isinstance(batch, Mapping):
        if batch.get(id_key) is not None:
            ids = _as_str_list(batch[id_key], batch_size)
        elif label_key in batch:
            ids = meta_filenames(batch[label_key], batch_size)
    if ids is None:
        raise param_error(
            owner,
            "id_key",
            f"a key of every batch dict holding one id per sample ({batch_size} here; e.g. the datalist 'id' "
            f"field), or the {label_key!r} entry must carry meta 'filename_or_obj'",
            id_key,
        )
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise param_error(owner, "id_key", "a key whose ids are unique (ids that collide mix two samples)", dup)
    return ids


def batch_paths(batch: Mapping[str, Any], key: str, batch_size: int) -> list[str]:
    """Source file of each sample of ``batch[key]`` (its meta ``filename_or_obj``), ``""`` when unknown."""
    names = meta_filenames(batch.get(key), batch_size)
    return names if names is not None else [""] * batch_size


def probe_batches(
    loader: Iterable[Any], *, image_key: str, label_key: str, id_key: str, owner: str
) -> Iterator[tuple[Any, list[str]]]:
    """The handlers' one loop over a probe loader: each collated dict batch with the ids of its samples.

    Every extra pass (VoG checkpoints, per-sample loss, pseudo-labels) walks its ``probe_loader`` through this,
    so the batch size (:func:`batch_size_of`) and the ids (:func:`batch_ids`) are found, and refused with the
    same messages, in one place. The caller moves what it needs to its device (:func:`plain_tensor`).
    """
    for batch in loader:
        size = batch_size_of(batch, image_key, owner)
        yield batch, batch_ids(batch, size, id_key=id_key, label_key=label_key, owner=owner)


def batch_size_of(batch: Any, image_key: str, owner: str) -> int:
    """Batch size of a collated dict batch, from its image."""
    image = batch.get(image_key) if isinstance(batch, Mapping) else None
    if not isinstance(image, (torch.Tensor, np.ndarray)) or image.ndim < 3:
        raise param_error(owner, "image_key", "a key of every batch dict holding a (B, C, *spatial) image", image_key)
    return int(image.shape[0])


# ------------------------------------------------------------------------------------------------ engines


def engine_network(engine: Any, owner: str) -> torch.nn.Module:
    """The engine's network (``engine.network`` of a MONAI workflow), unwrapped from DDP."""
    net = getattr(engine, "network", None)
    if not isinstance(net, torch.nn.Module):
        raise param_error(
            owner, "engine", "a MONAI SupervisedTrainer (an engine with a `network`)", type(engine).__name__
        )
    return unwrap_network(net)


def check_network_at_start(engine: Any, owner: str) -> None:
    """Check for ``engine.network`` when the run starts: a MONAI ``SupervisedTrainer`` attaches its
    ``train_handlers`` before it sets ``network``, so the check cannot happen in ``attach``."""
    engine.add_event_handler(Events.STARTED, lambda e: engine_network(e, owner))


@contextlib.contextmanager
def eval_mode(network: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``network`` in eval mode for the block and restore every submodule's own mode afterwards."""
    modes = [(m, m.training) for m in network.modules()]
    network.eval()
    try:
        yield network
    finally:
        for module, mode in modes:
            module.training = mode


def epoch_filter(should_run: Callable[[int], bool]) -> Callable[[Any, int], bool]:
    """An ignite ``event_filter`` running on the epochs where ``should_run(epoch)`` (the engine's epoch, 1-based)."""

    def _filter(engine: Any, _event: int) -> bool:
        return bool(should_run(int(engine.state.epoch)))

    return _filter


def set_logger(handler: Any, engine: Any) -> None:
    """MONAI convention: a handler built without ``name`` logs through ``engine.logger``."""
    if handler._name is None:
        handler.logger = engine.logger


# --------------------------------------------------------------------------------------------------- DDP


def world() -> tuple[int, int]:
    """``(rank, world_size)``; ``(0, 1)`` without an initialized process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_objects(obj: Any) -> list[Any]:
    """``torch.distributed.all_gather_object`` over all ranks (every rank gets every rank's object, in rank order);
    ``[obj]`` without a process group. Every rank must call it the same number of times."""
    _, size = world()
    if size == 1:
        return [obj]
    out: list[Any] = [None] * size
    dist.all_gather_object(out, obj)
    return out


def gather_records(ids: list[str], *columns: Any) -> tuple[list[str], list[np.ndarray]]:
    """Gather per-sample records from all ranks and drop repeated ids (the first rank's copy wins).

    A ``DistributedSampler`` pads the last batches by repeating samples, so a sample may be seen by two
    ranks; in an eval pass both copies are identical (from training steps they differ by augmentation; the
    first rank's copy is kept either way). ``columns`` are arrays with one row per id.
    """
    parts = gather_objects((list(ids), [np.asarray(c) for c in columns]))
    all_ids: list[str] = []
    keep: list[list[int]] = []
    seen: set[str] = set()
    for part_ids, _ in parts:
        rows = []
        for r, i in enumerate(part_ids):
            if i not in seen:
                seen.add(i)
                all_ids.append(i)
                rows.append(r)
        keep.append(rows)
    merged = []
    for c in range(len(columns)):
        # a rank with no samples sends an empty array whose trailing shape may differ: leave it out
        pieces = [np.asarray(part[1][c])[rows] for part, rows in zip(parts, keep) if rows]
        merged.append(np.concatenate(pieces) if pieces else np.asarray(columns[c])[:0])
    return all_ids, merged


# ------------------------------------------------------------------------------------------- score table


def label_scores_of(engine: Any) -> dict[str, dict[str, Any]]:
    """``engine.state.label_scores``, created empty on first use."""
    table = getattr(engine.state, "label_scores", None)
    if not isinstance(table, dict):
        table = {}
        engine.state.label_scores = table
    return table


def new_row(sample_id: str) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(("image", "label", *SCORE_COLUMNS, "combined", "refurbished_label"))
    row.update(id=sample_id, image="", label="", flagged=False, nonfinite=set())
    return row


def _as_float(value: Any) -> float | None:
    v = float(value)
    return None if np.isnan(v) else v


def publish_reference(engine: Any, scores: Mapping[str, Any]) -> None:
    """Store the reference set's scores (name -> ``(M,)`` array) on ``engine.state`` (merged by name)."""
    if scores:
        current = dict(getattr(engine.state, REFERENCE_ATTR, None) or {})
        current.update({k: np.asarray(v, dtype=np.float64) for k, v in scores.items()})
        setattr(engine.state, REFERENCE_ATTR, current)


def refresh_combined(
    table: dict[str, dict[str, Any]],
    options: Mapping[str, Any] | None = None,
    reference: Mapping[str, Any] | None = None,
) -> None:
    """Recompute ``combined`` and ``flagged`` of every row from its scores (in place).

    ``combined``: :func:`~monai_noisylabel.detection.combine_scores` over the score columns that hold a
    value for at least one sample (its default picks ``loss`` and ``offset`` when present), restricted to
    ``options["include"]`` when given. With ``weights="auto"`` (default) and ``reference`` scores (the same
    scores on the trusted clean set) each score weighs how far it exceeds its reference
    (:func:`~monai_noisylabel.detection.combine_with_reference`); without a reference, how cleanly it splits
    in two (``"separation"``, the fallback). ``flagged``: a NaN/inf value was recorded for the sample, or the
    flag rule says so, or the sample is in the top ``flag_fraction`` of ``combined`` (off by default). The
    flag rule ``"auto"`` is ``"reference"`` when the combination was referenced
    (:func:`~monai_noisylabel.detection.reference_flags` on ``combined`` against the reference's combined
    values: the top of ``combined``, as many as the largest
    :func:`~monai_noisylabel.detection.reference_excess` of its referenced scores, or as the combined score's
    excess beyond every reference value when a test finds that excess clear), else ``"gmm"``
    (``gmm_noisy_prob > options["gmm_threshold"]``, DivideMix's 0.5).
    """
    opts = {**DEFAULT_OPTIONS, **(options or {})}
    ids = list(table)
    if not ids:
        return
    present = {}
    for name in SCORE_COLUMNS:
        values = np.array([np.nan if table[i].get(name) is None else float(table[i][name]) for i in ids])
        if not np.isnan(values).all():
            present[name] = values
    include = opts["include"]
    if include is not None:
        present = {k: v for k, v in present.items() if k in include}
    ref = {k: v for k, v in (reference or {}).items() if k in present and np.size(v) > 0}
    if len({np.size(v) for v in ref.values()}) > 1:
        ref = {}  # not aligned sample by sample: cannot be combined
    weights = opts["weights"]
    if weights == "auto":
        weights = "reference" if ref else "separation"
    ref_combined = None
    chosen = None if include is None else list(present)
    if not present:
        combined = np.full(len(ids), np.nan)
    elif weights == "reference" and ref:
        combined, ref_combined, _ = combine_with_reference(present, ref, include=chosen)
    else:
        combined = combine_scores(present, weights="separation" if weights == "reference" else weights, include=chosen)
    rule = opts["flag_rule"]
    if rule == "auto":
        rule = "reference" if ref_combined is not None else "gmm"
    by_rule = np.zeros(len(ids), bool)
    if rule == "reference" and ref_combined is not None:
        level = float(opts["flag_level"])
        fraction = max(reference_excess(present[k], r, level=level) for k, r in ref.items())
        by_rule = reference_flags(combined, ref_combined, level=level, fraction=fraction)
    top: set[str] = set()
    if opts["flag_fraction"]:
        scored = ~np.isnan(combined)
        k = round(float(opts["flag_fraction"]) * int(scored.sum()))
        order = np.argsort(-np.where(scored, combined, -np.inf), kind="stable")[:k]
        top = {ids[j] for j in order}
    threshold = float(opts["gmm_threshold"])
    for j, i in enumerate(ids):
        row = table[i]
        row["combined"] = _as_float(combined[j])
        gmm = row.get("gmm_noisy_prob")
        by_gmm = rule == "gmm" and gmm is not None and gmm > threshold
        row["flagged"] = bool(row.get("nonfinite")) or bool(by_rule[j]) or by_gmm or i in top


def publish_scores(
    engine: Any,
    ids: Sequence[str],
    columns: Mapping[str, Any],
    *,
    source: str,
    nonfinite: set[str] | frozenset[str] = frozenset(),
    paths: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Write ``columns`` (name -> values aligned with ``ids``; NaN = not scored) into ``engine.state.label_scores``.

    ``source`` names the score family (``"vog"``, ``"loss"``): the ids in ``nonfinite`` get it added to
    their row's ``nonfinite`` set, the others get it removed. Returns the table.
    """
    table = label_scores_of(engine)
    for name, values in columns.items():
        if name not in SCORE_COLUMNS:
            raise KeyError(name)
        for i, v in zip(ids, np.asarray(values, dtype=np.float64).tolist()):
            row = table.get(i)
            if row is None:
                row = table[i] = new_row(i)
            row[name] = _as_float(v)
    for i in ids:
        row = table[i]
        if i in nonfinite:
            row["nonfinite"].add(source)
        else:
            row["nonfinite"].discard(source)
        if paths and i in paths:
            image, label = paths[i]
            row["image"], row["label"] = image or row["image"], label or row["label"]
    refresh_combined(table, getattr(engine.state, OPTIONS_ATTR, None), getattr(engine.state, REFERENCE_ATTR, None))
    return table


def write_outputs(
    engine: Any, output_dir: str | Path | None, summary_writer: Any, histograms: Mapping[str, Any], step: int
) -> None:
    """On rank 0 only: the table to ``<output_dir>/label_scores.csv`` and finite values as TensorBoard histograms."""
    if not is_main_process():
        return
    if output_dir is not None:
        write_label_scores(Path(output_dir) / LABEL_SCORES_FILENAME, label_scores_of(engine))
    if summary_writer is not None:
        for tag, values in histograms.items():
            arr = np.asarray(values, dtype=np.float64)
            arr = arr[np.isfinite(arr)]
            if arr.size:
                summary_writer.add_histogram(tag, arr, step)


# ----------------------------------------------------------------------------------------------- paths


def merge_paths(
    store: dict[str, tuple[str, str]], ids: Sequence[str], images: Sequence[str], labels: Sequence[str]
) -> None:
    for i, im, lb in zip(ids, images, labels):
        if i not in store or not all(store[i]):
            store[i] = (im, lb)


def paths_state(store: Mapping[str, tuple[str, str]]) -> list[list[str]]:
    return [[i, im, lb] for i, (im, lb) in store.items()]


def load_paths(owner: str, value: Any) -> dict[str, tuple[str, str]]:
    try:
        return {str(i): (str(im), str(lb)) for i, im, lb in value}
    except (TypeError, ValueError):
        raise param_error(owner, "state", "a dict from state_dict() (bad 'paths')", type(value).__name__) from None


def check_groups(owner: str, groups: Any) -> Mapping[str, Hashable] | None:
    if groups is None:
        return None
    if not isinstance(groups, Mapping):
        raise param_error(owner, "groups", "None or a mapping from sample id to group", type(groups).__name__)
    return {str(k): v for k, v in groups.items()}
