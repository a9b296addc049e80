"""Variance of Gradients (VoG) for segmentation labels: input gradients, a streaming accumulator, scores.

Agarwal, D'souza and Hooker, "Estimating Example Difficulty Using Variance of Gradients", CVPR 2022,
https://arxiv.org/abs/2008.11600, adapted to segmentation as in docs/methods/detection.md:

- at checkpoint ``t`` the model is in eval mode and ``S_t = d a / d x`` is the gradient of a scalar
  ``a`` with respect to the input image, averaged over input channels (:func:`input_gradients`);
- per voxel, the population standard deviation of ``S_t`` across checkpoints,
  ``sqrt(mean_t (S_t - mean_t S_t)^2)``; VoG is its mean over voxels.

It is streamed with Welford's update (no ``S_t`` is stored). Invariants: identical ``S_t`` give 0,
``VoG(c S) = |c| VoG(S)``, adding one fixed map to every ``S_t`` changes nothing; average pooling of
the maps is linear, so all three hold with pooling too.

Stages (early / middle / late thirds of the checkpoints): checkpoint ``t`` of a planned ``K`` goes to
the third that ``numpy.array_split(range(K), 3)`` puts it in. Each third keeps its own Welford
statistics (mean and M2 maps), and "all" is merged from them exactly (Chan et al.'s parallel update),
so the state is 6 maps per sample whatever ``K`` is; storing every ``S_t`` and splitting at the end
would cost ``K`` maps. Without a planned ``K`` only "all" is kept (2 maps per sample).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from monai_noisylabel.detection.ranking import normalize_scores
from monai_noisylabel.detection.sample_loss import per_sample_loss
from monai_noisylabel.utils import as_float_array, as_ids, check_choice, check_int, param_error

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = ["VOG_STAGES", "input_gradients", "VoGAccumulator", "vog_scores"]

VOG_STAGES = ("all", "early", "middle", "late")
_NORMALIZE = ("raw", "zscore", "abs_zscore", "group_zscore")
_DEFAULT_STATE_BYTES = 256 * 1024


def _given_label_logit_sum(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over the batch and voxels of the logit of the given class (soft labels: the q-weighted logits)."""
    num_classes, spatial = logits.shape[1], tuple(logits.shape[2:])
    if num_classes < 2:
        raise param_error("input_gradients", "model", "a network with >= 2 output channels for target='logit'", 1)
    if labels.ndim == logits.ndim and labels.shape[1] == num_classes and num_classes > 1 and labels.is_floating_point():
        if tuple(labels.shape[2:]) != spatial:
            raise param_error("input_gradients", "labels", f"spatial shape {spatial}", tuple(labels.shape))
        return (logits * labels.to(logits.dtype)).sum()
    if labels.ndim == logits.ndim and labels.shape[1] == 1:
        labels = labels[:, 0]
    if tuple(labels.shape) != (logits.shape[0], *spatial):
        raise param_error(
            "input_gradients",
            "labels",
            f"class indices of shape {(logits.shape[0], 1, *spatial)} or {(logits.shape[0], *spatial)}, "
            f"or soft/one-hot float labels {tuple(logits.shape)}",
            tuple(labels.shape),
        )
    index = labels.long()
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num_classes):
        raise param_error("input_gradients", "labels", f"class indices in [0, {num_classes - 1}]", int(index.max()))
    return logits.gather(1, index.unsqueeze(1)).sum()


def input_gradients(
    model: torch.nn.Module,
    images: NdarrayOrTensor,
    labels: NdarrayOrTensor,
    *,
    target: str = "logit",
    loss_fn: Callable[..., torch.Tensor] | None = None,
) -> np.ndarray:
    """Per-sample input gradient maps ``S = d a / d x`` of a segmentation network, in eval mode.

    The model is switched to eval mode for the call (every submodule's mode is restored afterwards)
    so batch statistics and dropout do not mix samples; the gradient is taken with respect to the
    input only (``torch.autograd.grad``), so the parameters' ``.grad`` is left untouched.

    Args:
        model: a network mapping ``(B, C_in, *spatial)`` to logits ``(B, C, *spatial)``.
        images: ``(B, C_in, *spatial)`` (torch on the model's device, or numpy).
        labels: the given (possibly wrong) labels: class indices ``(B, 1, *spatial)`` or ``(B, *spatial)``,
            or float one-hot/soft labels ``(B, C, *spatial)``; passed unchanged to ``loss_fn``.
        target: ``"logit"`` (the VoG paper's: ``a`` = sum over voxels of the pre-softmax logit of the
            given label) or ``"loss"`` (``a`` = the sum of the per-sample losses; samples are independent
            in eval mode, so each sample's gradient is the gradient of its own loss).
        loss_fn: required for ``target="loss"``: ``loss_fn(logits, labels)`` returning per-sample losses
            (see :func:`~monai_noisylabel.detection.per_sample_loss`).

    Returns:
        ``(B, *spatial)`` float32 numpy array, the gradient averaged over input channels.

    Raises:
        ValueError: a bad ``target``, a missing ``loss_fn``, labels that do not fit the logits.

    Example:
        >>> import torch
        >>> net = torch.nn.Conv2d(1, 3, 3, padding=1)
        >>> input_gradients(net, torch.rand(2, 1, 8, 8), torch.zeros(2, 1, 8, 8, dtype=torch.long)).shape
        (2, 8, 8)
    """
    owner = "input_gradients"
    check_choice(owner, "target", target, ("logit", "loss"))
    if target == "loss" and loss_fn is None:
        raise param_error(owner, "loss_fn", "a per-sample loss callable when target='loss'", None)
    x = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
    if x.ndim < 3:
        raise param_error(owner, "images", "a (B, C_in, *spatial) batch", tuple(x.shape))
    if not x.is_floating_point():
        x = x.float()
    y = labels if isinstance(labels, torch.Tensor) else torch.as_tensor(np.asarray(labels))
    y = y.to(x.device)
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.enable_grad():
            x = x.detach().clone().requires_grad_(True)
            logits = model(x)
            if not isinstance(logits, torch.Tensor) or logits.ndim != x.ndim or logits.shape[0] != x.shape[0]:
                raise param_error(owner, "model", "a network returning (B, C, *spatial) logits", type(logits).__name__)
            if target == "logit":
                a = _given_label_logit_sum(logits, y)
            else:
                a = per_sample_loss(loss_fn, logits, y).sum()  # type: ignore[arg-type]
            (grad,) = torch.autograd.grad(a, x)
    finally:
        for module, mode in modes:
            module.training = mode
    return grad.detach().mean(dim=1).to(device="cpu", dtype=torch.float32).numpy()


def _stage_bounds(num_checkpoints: int) -> list[int]:
    """Start index of each third as ``numpy.array_split(range(K), 3)`` cuts it, plus ``K``."""
    base, extra = divmod(num_checkpoints, 3)
    sizes = [base + (1 if i < extra else 0) for i in range(3)]
    return [0, sizes[0], sizes[0] + sizes[1], num_checkpoints]


def _pooled_shape(spatial: Sequence[int], pool: int) -> tuple[int, ...]:
    return tuple(math.ceil(s / pool) for s in spatial)


def _merge_welford(
    n_a: np.ndarray, mean_a: np.ndarray, m2_a: np.ndarray, n_b: np.ndarray, mean_b: np.ndarray, m2_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chan et al.'s exact merge of two (count, mean, M2) sets; counts broadcast over the map dims."""
    n = n_a + n_b
    safe = np.maximum(n, 1).astype(np.float64)
    delta = mean_b - mean_a
    mean = mean_a + delta * (n_b / safe)
    m2 = m2_a + m2_b + delta**2 * (n_a * n_b / safe)
    return n, mean, m2


class VoGAccumulator:
    """Streaming per-sample, per-voxel Welford statistics of input gradients across checkpoints.

    Args:
        num_checkpoints: the planned number of checkpoints ``K``; needed for the early/middle/late
            stages (checkpoint indices must then be in ``[0, K)``). ``None``: only the "all" stage.
        pool: spatial average-pooling factor applied to each gradient map before it is accumulated
            (non-overlapping ``pool``-wide windows, a partial window at the edge averages what it
            covers). ``None`` (default): the smallest factor whose state fits ``max_state_bytes`` per
            sample, chosen at the first update (1 for small images; 3 for 256x256 with stages).
        max_state_bytes: the per-sample state budget used when ``pool`` is ``None`` (default 256 KiB).
        owner: the name used in error messages (a handler may pass its own class name).

    Example:
        >>> import numpy as np
        >>> acc = VoGAccumulator(num_checkpoints=3, pool=1)
        >>> for t, c in enumerate([1.0, 2.0, 3.0]):
        ...     acc.update(["a", "b"], np.stack([np.full((4, 4), c), np.ones((4, 4))]), checkpoint=t)
        >>> acc.ids, acc.scores().round(4).tolist()
        (['a', 'b'], [0.8165, 0.0])
    """

    def __init__(
        self,
        *,
        num_checkpoints: int | None = None,
        pool: int | None = None,
        max_state_bytes: int = _DEFAULT_STATE_BYTES,
        owner: str = "VoGAccumulator",
    ) -> None:
        self._owner = owner
        self.num_checkpoints = (
            None if num_checkpoints is None else check_int(owner, "num_checkpoints", num_checkpoints, 1)
        )
        self._pool_arg = None if pool is None else check_int(owner, "pool", pool, 1)
        self.max_state_bytes = check_int(owner, "max_state_bytes", max_state_bytes, 1)
        self.reset()

    @property
    def num_slots(self) -> int:
        """How many Welford sets each sample keeps: 3 (stages) or 1 ("all" only)."""
        return 1 if self.num_checkpoints is None else 3

    def reset(self) -> None:
        """Forget every sample (the configuration is kept)."""
        self.pool: int | None = self._pool_arg
        self.spatial_shape: tuple[int, ...] | None = None
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        self._mean = np.zeros((0, self.num_slots), np.float32)
        self._m2 = np.zeros((0, self.num_slots), np.float32)
        self._count = np.zeros((0, self.num_slots), np.int64)
        self._last = np.zeros(0, np.int64)
        self._nonfinite = np.zeros(0, bool)

    @property
    def ids(self) -> list[str]:
        """Sample ids in first-seen order; :meth:`scores` is aligned with it."""
        return list(self._ids)

    @property
    def state_bytes_per_sample(self) -> int:
        """Bytes of float32 map state per sample (0 before the first update)."""
        return int(self._mean[0].nbytes * 2) if len(self._ids) else 0

    def _resolve_pool(self, spatial: tuple[int, ...]) -> int:
        if self.pool is not None:
            return self.pool
        per_map = 2 * self.num_slots * 4
        for p in range(1, max(spatial) + 1):
            if per_map * int(np.prod(_pooled_shape(spatial, p))) <= self.max_state_bytes:
                return p
        return max(spatial)

    def _pool_maps(self, grads: Any) -> tuple[np.ndarray, tuple[int, ...], int]:
        """``(B, *spatial)`` gradients to pooled float64 maps (pooling runs in torch on the input's device),
        with the spatial shape and the pool factor used; the accumulator's state is not touched."""
        t = grads.detach() if isinstance(grads, torch.Tensor) else torch.as_tensor(np.asarray(grads))
        if t.ndim < 2 or t.ndim > 4:
            raise param_error(self._owner, "grads", "a (B, *spatial) array with 1 to 3 spatial dims", tuple(t.shape))
        spatial = tuple(int(s) for s in t.shape[1:])
        if self.spatial_shape is not None and spatial != self.spatial_shape:
            raise param_error(self._owner, "grads", f"maps of spatial shape {self.spatial_shape}", spatial)
        pool = self._resolve_pool(spatial)
        t = t.to(torch.float32) if t.dtype not in (torch.float32, torch.float64) else t
        if pool > 1:
            pool_fn = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(spatial) - 1]
            t = pool_fn(t.unsqueeze(1), kernel_size=pool, stride=pool, ceil_mode=True).squeeze(1)
        return t.to(device="cpu", dtype=torch.float64).numpy(), spatial, pool

    def _rows_for(self, keys: list[str], shape: tuple[int, ...]) -> np.ndarray:
        """Row indices of ``keys``, appending new samples (amortized growth)."""
        new = [k for k in keys if k not in self._index]
        if new:
            n_old, n_new = len(self._ids), len(self._ids) + len(new)
            if self._mean.shape[2:] != shape:
                self._mean = np.zeros((0, self.num_slots, *shape), np.float32)
                self._m2 = np.zeros((0, self.num_slots, *shape), np.float32)
            if n_new > self._mean.shape[0]:
                cap = max(n_new, 2 * self._mean.shape[0], 8)
                grow = cap - self._mean.shape[0]
                pad = ((0, grow),) + ((0, 0),) * (self._mean.ndim - 1)
                self._mean, self._m2 = np.pad(self._mean, pad), np.pad(self._m2, pad)
                self._count = np.pad(self._count, ((0, grow), (0, 0)))
                self._last = np.pad(self._last, (0, grow), constant_values=-1)
                self._nonfinite = np.pad(self._nonfinite, (0, grow))
            for i, key in enumerate(new, start=n_old):
                self._index[key] = i
                self._ids.append(key)
        return np.array([self._index[k] for k in keys], dtype=np.int64)

    def update(self, ids: Sequence[str | int] | NdarrayOrTensor, grads: NdarrayOrTensor, checkpoint: int) -> None:
        """Add the gradient maps of a batch taken at checkpoint ``checkpoint``.

        Args:
            ids: ``B`` unique sample ids (str or int).
            grads: ``(B, *spatial)`` gradient maps (numpy or torch, any device), e.g. from
                :func:`input_gradients`. A map with NaN/inf marks its sample non-finite: it is not
                accumulated and the sample scores ``+inf`` (most suspicious) from then on.
            checkpoint: the checkpoint index, increasing over calls for each sample (``[0, K)`` when
                ``num_checkpoints`` is set).

        Raises:
            ValueError: a shape mismatch, repeated ids, or a sample already updated at this or a later
                checkpoint (two samples sharing an id, or a batch fed twice).
        """
        owner = self._owner
        upper = None if self.num_checkpoints is None else self.num_checkpoints - 1
        checkpoint = check_int(owner, "checkpoint", checkpoint, 0, upper)
        maps, spatial, pool = self._pool_maps(grads)
        keys = as_ids(owner, ids, expected_len=maps.shape[0])
        for key in keys:
            row = self._index.get(key)
            if row is not None and self._last[row] >= checkpoint:
                raise param_error(
                    owner,
                    "ids",
                    f"ids not yet updated at checkpoint {checkpoint} (do two samples share an id?)",
                    key,
                )
        self.pool, self.spatial_shape = pool, spatial
        rows = self._rows_for(keys, maps.shape[1:])
        self._last[rows] = checkpoint
        slot = (
            0
            if self.num_checkpoints is None
            else int(np.searchsorted(_stage_bounds(self.num_checkpoints), checkpoint, "right") - 1)
        )
        finite = np.isfinite(maps.reshape(maps.shape[0], -1)).all(axis=1)
        self._nonfinite[rows[~finite]] = True
        rows, maps = rows[finite], maps[finite]
        if rows.size == 0:
            return
        n = self._count[rows, slot] + 1
        mean = self._mean[rows, slot].astype(np.float64)
        delta = maps - mean
        shape = (-1,) + (1,) * (maps.ndim - 1)
        mean += delta / n.reshape(shape)
        m2 = self._m2[rows, slot].astype(np.float64) + delta * (maps - mean)
        self._count[rows, slot] = n
        self._mean[rows, slot] = mean
        self._m2[rows, slot] = m2

    def _stage_stats(self, stage: str) -> tuple[np.ndarray, np.ndarray]:
        """Counts ``(N,)`` and M2 maps ``(N, *pooled)`` of one stage."""
        n_s = len(self._ids)
        if stage != "all":
            slot = VOG_STAGES.index(stage) - 1
            return self._count[:n_s, slot], self._m2[:n_s, slot].astype(np.float64)
        count, mean, m2 = (
            self._count[:n_s, 0],
            self._mean[:n_s, 0].astype(np.float64),
            self._m2[:n_s, 0].astype(np.float64),
        )
        shape = (n_s,) + (1,) * (mean.ndim - 1)
        for slot in range(1, self.num_slots):
            n_b = self._count[:n_s, slot]
            count, mean, m2 = _merge_welford(
                count.reshape(shape),
                mean,
                m2,
                n_b.reshape(shape),
                self._mean[:n_s, slot].astype(np.float64),
                self._m2[:n_s, slot].astype(np.float64),
            )
            count = count.reshape(n_s)
        return count, m2

    def scores(
        self,
        *,
        stage: str = "all",
        normalize: str = "raw",
        groups: Sequence[Any] | Mapping[str, Any] | None = None,
    ) -> np.ndarray:
        """VoG per sample, aligned with :attr:`ids`.

        Args:
            stage: ``"all"`` checkpoints, or the ``"early"``, ``"middle"`` or ``"late"`` third (needs
                ``num_checkpoints``).
            normalize: ``"raw"``, ``"zscore"``, ``"abs_zscore"`` or ``"group_zscore"``
                (see :func:`~monai_noisylabel.detection.normalize_scores`).
            groups: group keys for ``"group_zscore"``, aligned with :attr:`ids` or a mapping id -> group.

        Returns:
            ``(N,)`` float64: NaN for a sample with fewer than 2 checkpoints in the stage (no variance
            yet), ``+inf`` for a sample that produced a non-finite gradient.
        """
        owner = self._owner
        check_choice(owner, "stage", stage, VOG_STAGES)
        check_choice(owner, "normalize", normalize, _NORMALIZE)
        if stage != "all" and self.num_checkpoints is None:
            raise param_error(owner, "stage", "'all' unless num_checkpoints was given", stage)
        if isinstance(groups, Mapping):
            missing = [i for i in self._ids if i not in groups]
            if missing:
                raise param_error(owner, "groups", "a mapping with a group for every sample id", missing[0])
            groups = [groups[i] for i in self._ids]
        n_s = len(self._ids)
        if n_s == 0:
            return np.zeros(0)
        count, m2 = self._stage_stats(stage)
        enough = count >= 2
        shape = (n_s,) + (1,) * (m2.ndim - 1)
        std = np.sqrt(np.maximum(m2, 0.0) / np.maximum(count, 1).reshape(shape))
        raw = np.where(enough, std.reshape(n_s, -1).mean(axis=1), np.nan)
        bad = self._nonfinite[:n_s]
        out = normalize_scores(np.where(bad, np.nan, raw), method=normalize, groups=groups)
        out[bad] = np.inf
        return out

    def nonfinite_ids(self) -> list[str]:
        """Ids of samples that produced a NaN/inf gradient (to flag and report)."""
        return [k for k, bad in zip(self._ids, self._nonfinite[: len(self._ids)]) if bad]

    def merge(self, other: VoGAccumulator, *, on_duplicate: str = "error") -> None:
        """Add another accumulator's samples (e.g. gathered from other DDP ranks, where each rank saw
        different samples). ``on_duplicate``: ``"error"`` or ``"first"`` (keep this accumulator's
        statistics for an id both hold, as when a distributed sampler repeats samples to pad)."""
        check_choice(self._owner, "on_duplicate", on_duplicate, ("error", "first"))
        if (other.num_checkpoints, other.num_slots) != (self.num_checkpoints, self.num_slots):
            raise param_error(self._owner, "other", f"num_checkpoints={self.num_checkpoints}", other.num_checkpoints)
        if not other._ids:
            return
        if self.spatial_shape is None:
            self.pool, self.spatial_shape = other.pool, other.spatial_shape
        elif (other.pool, other.spatial_shape) != (self.pool, self.spatial_shape):
            raise param_error(
                self._owner,
                "other",
                f"pool={self.pool} and maps {self.spatial_shape}",
                (other.pool, other.spatial_shape),
            )
        dup = [k for k in other._ids if k in self._index]
        if dup and on_duplicate == "error":
            raise param_error(self._owner, "other", "free of ids this accumulator already holds", dup[0])
        take = [i for i, k in enumerate(other._ids) if k not in self._index]
        if not take:
            return
        rows = self._rows_for([other._ids[i] for i in take], other._mean.shape[2:])
        for name in ("_mean", "_m2", "_count", "_last", "_nonfinite"):
            getattr(self, name)[rows] = getattr(other, name)[take]

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; torch tensors and builtins only (``torch.load(weights_only=True)``)."""
        n_s = len(self._ids)
        return {
            "num_checkpoints": self.num_checkpoints,
            "pool": self.pool,
            "spatial_shape": None if self.spatial_shape is None else list(self.spatial_shape),
            "ids": list(self._ids),
            "mean": torch.from_numpy(self._mean[:n_s].copy()),
            "m2": torch.from_numpy(self._m2[:n_s].copy()),
            "count": torch.from_numpy(self._count[:n_s].copy()),
            "last": torch.from_numpy(self._last[:n_s].copy()),
            "nonfinite": torch.from_numpy(self._nonfinite[:n_s].copy()),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (same ``num_checkpoints``, and same ``pool`` if one was given)."""
        owner = self._owner
        try:
            k, pool, ids = state["num_checkpoints"], state["pool"], [str(i) for i in state["ids"]]
            spatial = None if state["spatial_shape"] is None else tuple(int(s) for s in state["spatial_shape"])
            arrays = {n: torch.as_tensor(state[n]).cpu().numpy() for n in ("mean", "m2", "count", "last", "nonfinite")}
        except (KeyError, TypeError, ValueError):
            raise param_error(owner, "state", "a dict from VoGAccumulator.state_dict()", type(state).__name__) from None
        if k != self.num_checkpoints:
            raise param_error(owner, "state", f"a state with num_checkpoints={self.num_checkpoints}", k)
        if self._pool_arg is not None and pool not in (None, self._pool_arg):
            raise param_error(owner, "state", f"a state with pool={self._pool_arg}", pool)
        if len(set(ids)) != len(ids) or any(a.shape[0] != len(ids) for a in arrays.values()):
            raise param_error(owner, "state", "a consistent dict from state_dict()", f"{len(ids)} ids")
        self.reset()
        self.pool, self.spatial_shape = pool, spatial
        if not ids:
            return
        self._index = {key: i for i, key in enumerate(ids)}
        self._ids = ids
        self._mean = arrays["mean"].astype(np.float32)
        self._m2 = arrays["m2"].astype(np.float32)
        self._count = arrays["count"].astype(np.int64)
        self._last = arrays["last"].astype(np.int64)
        self._nonfinite = arrays["nonfinite"].astype(bool)


def vog_scores(
    grads_over_checkpoints: NdarrayOrTensor | Sequence[NdarrayOrTensor],
    *,
    stage: str = "all",
    normalize: str = "raw",
    groups: Sequence[Any] | None = None,
    pool: int = 1,
) -> np.ndarray:
    """VoG of ``N`` samples from their gradient maps at ``K`` checkpoints (all in memory).

    A convenience over :class:`VoGAccumulator` (which streams them instead).

    Args:
        grads_over_checkpoints: ``(K, N, *spatial)`` array or a sequence of ``K`` ``(N, *spatial)`` arrays,
            e.g. :func:`input_gradients` outputs; sample ``i`` is the same image at every checkpoint.
        stage: ``"all"``, ``"early"``, ``"middle"`` or ``"late"`` third of the checkpoints.
        normalize: ``"raw"``, ``"zscore"``, ``"abs_zscore"`` or ``"group_zscore"``.
        groups: ``(N,)`` group keys for ``"group_zscore"``.
        pool: spatial average-pooling factor (default 1: exact, no pooling).

    Returns:
        ``(N,)`` float64 (higher = gradients that move more across training = more suspicious).

    Example:
        >>> import numpy as np
        >>> s = np.random.default_rng(0).normal(size=(4, 3, 8, 8))
        >>> bool(np.allclose(vog_scores(s), vog_scores(2 * s + 5) / 2))
        True
    """
    owner = "vog_scores"
    if isinstance(grads_over_checkpoints, (np.ndarray, torch.Tensor)):
        maps = list(grads_over_checkpoints)
    elif isinstance(grads_over_checkpoints, Sequence) and not isinstance(grads_over_checkpoints, str):
        maps = [as_float_array(owner, "grads_over_checkpoints", g) for g in grads_over_checkpoints]
    else:
        raise param_error(
            owner,
            "grads_over_checkpoints",
            "a (K, N, *spatial) array or a list of K arrays",
            type(grads_over_checkpoints).__name__,
        )
    if not maps:
        raise param_error(owner, "grads_over_checkpoints", "at least one checkpoint", 0)
    shapes = {tuple(m.shape) for m in maps}
    if len(shapes) != 1:
        raise param_error(owner, "grads_over_checkpoints", "maps of one shape at every checkpoint", sorted(shapes))
    acc = VoGAccumulator(num_checkpoints=len(maps), pool=pool, owner=owner)
    ids = list(range(int(maps[0].shape[0])))
    for t, g in enumerate(maps):
        acc.update(ids, g, checkpoint=t)
    return acc.scores(stage=stage, normalize=normalize, groups=groups)
