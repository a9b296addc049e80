"""Label-noise transforms on channel-first label maps (numpy, torch, MetaTensor; CPU or CUDA; 2D and 3D).

- :class:`RandLabelNoise`: random errors, per structure erosion or dilation (equal odds), optional
  shift and elastic boundary jitter. Zero mean bias.
- :class:`RandLabelBias`: systematic bias, the same signed change on every affected sample.
- :class:`RandLabelOmission`: a whole structure, or one of its connected components, set to background.

Each transform draws its parameters (``randomize``) and then applies a deterministic function of the
label and those parameters (:func:`.functional.apply_ops`): the random-parameters / deterministic-apply
split of TorchIO. What a call did is recorded as a provenance record::

    {"transform": "RandLabelBias", "kind": "bias", "class": [1], "applied": True, "corrupted": True,
     "changed_voxels": 412, "params": {"ops": [{"op": "dilate", "class": 1, "radius": 3}]},
     "sample_id": "0001_ED"}

``params["ops"]`` is enough to replay the corruption exactly (:func:`apply_label_noise`). On a
MetaTensor the records of all label-noise transforms a label went through are kept, oldest first, as
ONE JSON string under ``meta["label_noise"]``: a string per sample is what survives
``list_data_collate`` and DataLoader workers unchanged (nested dicts of numbers would be collated
into tensors). :func:`read_label_noise` decodes it per sample, from a label or a batch. Numpy arrays
and plain tensors come back as the same type without meta; the record of the last call is then in
:attr:`last_record` (and the dictionary transforms can also write it under a data key).

Echo defaults (labels 0 background, 1 LV cavity, 2 myocardium, 3 left atrium): ``RandLabelNoise()``
erodes or dilates every structure by 1 to 3 px, ``RandLabelBias()`` over-segments the LV cavity by
3 px, ``RandLabelOmission()`` drops the left atrium.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import RandomizableTransform
from monai.utils import TransformBackends, convert_to_dst_type

from monai_noisylabel.transforms.label_noise import functional as F
from monai_noisylabel.utils import (
    check_choice,
    check_int,
    check_number,
    check_probability,
    param_error,
    sample_id_of,
    split_meta,
    stable_seed,
)

if TYPE_CHECKING:
    from monai.config import NdarrayOrTensor

__all__ = [
    "LABEL_NOISE_META_KEY",
    "LABEL_NOISE_KINDS",
    "RandLabelNoise",
    "RandLabelBias",
    "RandLabelOmission",
    "apply_label_noise",
    "read_label_noise",
    "encode_label_noise",
]

LABEL_NOISE_META_KEY = "label_noise"
"""Meta key of the provenance: a JSON string holding the list of records of one sample."""

LABEL_NOISE_KINDS = ("random", "bias", "omission")
"""The ``kind`` of each transform's records: RandLabelNoise, RandLabelBias, RandLabelOmission."""


# ---------------------------------------------------------------------------------------------
# provenance
# ---------------------------------------------------------------------------------------------


def encode_label_noise(records: Sequence[Mapping[str, Any]]) -> str:
    """The JSON string stored under ``meta["label_noise"]`` (compact, keys sorted: equal records, equal text).

    Example:
        >>> encode_label_noise([{"kind": "bias", "corrupted": True}])
        '[{"corrupted":true,"kind":"bias"}]'
    """
    return json.dumps([dict(r) for r in records], sort_keys=True, separators=(",", ":"))


def _decode(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, str):
        out = json.loads(value) if value else []
    elif isinstance(value, Mapping):
        out = [dict(value)]
    else:
        out = [dict(r) for r in value]
    if not isinstance(out, list) or not all(isinstance(r, dict) for r in out):
        raise ValueError(f"read_label_noise: {value!r} is not a list of label-noise records.")
    return out


def _is_batch_value(value: Any) -> bool:
    """True for a collated provenance value: a list of per-sample JSON strings."""
    return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


def read_label_noise(data: Any, key: str = "label") -> list[list[dict[str, Any]]]:
    """Decode the label-noise provenance of one sample or of a collated batch, per sample.

    Accepts a label MetaTensor (one sample, or a batch from ``list_data_collate``), a data dict or
    batch dict (looks at ``data[key]``'s meta, then at ``data[f"{key}_label_noise"]`` written by the
    dictionary transforms' ``provenance_postfix``), a meta dict, or the JSON string(s) themselves.

    Returns:
        one list of records per sample (oldest first); ``[[]]`` for a single sample without records.

    Raises:
        ValueError: ``data`` holds no label-noise provenance that can be read.

    Example:
        >>> import torch
        >>> from monai.data import MetaTensor, list_data_collate
        >>> t = RandLabelOmission(classes=[1])
        >>> a = t(MetaTensor(torch.tensor([[[0, 1], [1, 1]]]), meta={"filename_or_obj": "a.nii"}))
        >>> b = t(MetaTensor(torch.tensor([[[0, 0], [0, 0]]]), meta={"filename_or_obj": "b.nii"}))
        >>> [[r["corrupted"] for r in s] for s in read_label_noise(list_data_collate([a, b]))]
        [[True], [False]]
    """
    if isinstance(data, str) or _is_batch_value(data):
        return [_decode(v) for v in data] if not isinstance(data, str) else [_decode(data)]
    meta = getattr(data, "meta", None)
    if isinstance(meta, Mapping):
        if LABEL_NOISE_META_KEY in meta:
            return read_label_noise(meta[LABEL_NOISE_META_KEY])
        if getattr(data, "is_batch", False):
            return [[] for _ in range(int(data.shape[0]))]
        return [[]]
    if isinstance(data, Mapping):
        if LABEL_NOISE_META_KEY in data:
            return read_label_noise(data[LABEL_NOISE_META_KEY])
        extra = f"{key}_{LABEL_NOISE_META_KEY}"
        if key in data and isinstance(getattr(data[key], "meta", None), Mapping):
            found = read_label_noise(data[key])
            if any(found) or extra not in data:
                return found
        if extra in data:
            return read_label_noise(data[extra])
    raise ValueError(
        f"read_label_noise: found no label-noise provenance in {type(data).__name__} (looked for "
        f"meta[{LABEL_NOISE_META_KEY!r}], data[{key!r}].meta and data[{key + '_' + LABEL_NOISE_META_KEY!r}])."
    )


def _restore(out: torch.Tensor, dst: Any, meta_src: MetaTensor | None, record: Mapping[str, Any] | None) -> Any:
    """``out`` in ``dst``'s type, dtype and device; meta copied from ``meta_src`` with ``record`` appended."""
    if meta_src is not None:
        meta = dict(meta_src.meta)
        if record is not None:
            previous = _decode(meta.get(LABEL_NOISE_META_KEY))
            meta[LABEL_NOISE_META_KEY] = encode_label_noise([*previous, record])
        out = MetaTensor(out, meta=meta, applied_operations=list(meta_src.applied_operations))
    return convert_to_dst_type(out, dst=dst)[0]


def _ops_of(record: Any) -> list[dict[str, Any]]:
    if isinstance(record, Mapping) and "ops" in record:  # a record's params: {"ops": [...]}
        return [dict(op) for op in record["ops"]]
    records = _decode(record) if not isinstance(record, Mapping) else [dict(record)]
    ops: list[dict[str, Any]] = []
    for r in records:
        params = r.get("params")
        if not isinstance(params, Mapping) or "ops" not in params:
            raise ValueError(f"apply_label_noise: a record needs params['ops']. Got {r!r} instead.")
        ops.extend(params["ops"])
    return ops


def apply_label_noise(
    label: NdarrayOrTensor, record: Mapping[str, Any] | Sequence[Mapping[str, Any]] | str
) -> NdarrayOrTensor:
    """Replay recorded label noise on ``label``: the deterministic half of the transforms.

    Args:
        label: channel-first single-channel label (numpy, torch or MetaTensor, CPU or CUDA).
        record: one record (dict), its ``params`` (``{"ops": [...]}``), a list of records (replayed in
            order), or the JSON string stored under ``meta["label_noise"]``.

    Returns:
        the corrupted label in the input's type, dtype and device; a MetaTensor keeps its meta as is.

    Example:
        >>> import numpy as np
        >>> lab = np.array([[[0, 1, 1, 0, 0]]], dtype=np.uint8)
        >>> t = RandLabelBias(label_class=1, radius=1)
        >>> out = t(lab)
        >>> np.array_equal(apply_label_noise(lab, t.last_record), out), out.tolist()
        (True, [[[1, 1, 1, 1, 0]]])
    """
    t, meta_src = split_meta(label)
    lab = F.check_label("apply_label_noise", "label", t)
    out = F.apply_ops(lab, _ops_of(record))
    return _restore(out, label, meta_src, None)


# ---------------------------------------------------------------------------------------------
# parameter checks
# ---------------------------------------------------------------------------------------------


def _check_class(owner: str, name: str, value: Any, background: int, num_classes: int | None) -> int:
    expected = f"an int >= 0 other than the background {background}"
    if num_classes is not None:
        expected += f" and < num_classes={num_classes}"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0 or value == background:
        raise param_error(owner, name, expected, value)
    if num_classes is not None and value >= num_classes:
        raise param_error(owner, name, expected, value)
    return int(value)


def _check_classes(owner: str, value: Any, background: int, num_classes: int | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    values = [value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise param_error(owner, "classes", "None, an int or a non-empty sequence of ints", value)
    return tuple(sorted({_check_class(owner, "classes", v, background, num_classes) for v in values}))


def _check_fill(owner: str, value: Any, num_classes: int | None) -> int | str:
    if value == "nearest":
        return "nearest"
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0
    if not ok or (num_classes is not None and value >= num_classes):
        raise param_error(owner, "fill", "'nearest' or a label (an int >= 0)", value)
    return int(value)


def _check_radius_range(owner: str, value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        r = check_int(owner, "radius", value, minimum=0)
        return r, r
    expected = "an int >= 0 or a pair (low, high) of ints with 0 <= low <= high"
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise param_error(owner, "radius", expected, value)
    lo, hi = value
    ints = all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (lo, hi))
    if not ints or not 0 <= lo <= hi:
        raise param_error(owner, "radius", expected, value)
    return int(lo), int(hi)


def _check_offset(owner: str, value: Any) -> tuple[int, ...]:
    expected = "a sequence of 2 or 3 ints (voxels per spatial axis), not all 0"
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) not in (2, 3):
        raise param_error(owner, "offset", expected, value)
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value) or not any(value):
        raise param_error(owner, "offset", expected, value)
    return tuple(int(v) for v in value)


# ---------------------------------------------------------------------------------------------
# transforms
# ---------------------------------------------------------------------------------------------


class _LabelNoiseTransform(RandomizableTransform):
    """Shared machinery: checks, prob draw, per-sample seeding, apply, provenance (not public)."""

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]  # noqa: RUF012 (MONAI convention)
    kind = ""

    def __init__(
        self, prob: float, background: int, num_classes: int | None, fixed_per_sample: bool, seed: int
    ) -> None:
        name = type(self).__name__
        super().__init__(prob=1.0)
        self.prob = check_probability(name, "prob", prob)
        self.num_classes = None if num_classes is None else check_int(name, "num_classes", num_classes, minimum=2)
        bg_max = None if self.num_classes is None else self.num_classes - 1
        self.background = check_int(name, "background", background, minimum=0, maximum=bg_max)
        if not isinstance(fixed_per_sample, bool):
            raise param_error(name, "fixed_per_sample", "a bool", fixed_per_sample)
        self.fixed_per_sample = fixed_per_sample
        self.seed = check_int(name, "seed", seed, minimum=0)
        self._ops: list[dict[str, Any]] | None = None
        self._sample_id: str | None = None
        self.last_record: dict[str, Any] | None = None
        """The provenance record of the most recent call (also for numpy / plain-tensor inputs)."""

    # -- randomness ---------------------------------------------------------------------------

    def _draw_ops(self, label: torch.Tensor, rng: np.random.RandomState) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _present(self, label: torch.Tensor, classes: tuple[int, ...] | None) -> list[int]:
        found = [v for v in F.present_labels(label) if v != self.background]
        return found if classes is None else [c for c in classes if c in found]

    def _rng_for(self, img: Any, sample_id: str | None) -> tuple[np.random.RandomState, str | None]:
        sid = sample_id if sample_id is not None else sample_id_of(img)
        if not self.fixed_per_sample:
            return self.R, sid
        if sid is None:
            raise ValueError(
                f"{type(self).__name__}: fixed_per_sample=True needs a sample id: pass sample_id=..., or give a "
                "MetaTensor whose meta has 'filename_or_obj' (the dictionary transforms also use the data's 'id')."
            )
        return np.random.RandomState(stable_seed(self.seed, sid)), sid

    def _randomize(self, label: torch.Tensor, img: Any, sample_id: str | None) -> None:
        rng, self._sample_id = self._rng_for(img, sample_id)
        self._do_transform = bool(rng.rand() < self.prob)
        self._ops = self._draw_ops(label, rng) if self._do_transform else []

    def randomize(self, data: Any, sample_id: str | None = None) -> None:
        """Draw whether to corrupt ``data`` and how (the operations :func:`apply_label_noise` replays).

        With ``fixed_per_sample=True`` the draw comes from ``stable_seed(seed, sample_id)`` (the id is
        ``sample_id`` or the MetaTensor's ``filename_or_obj``) and not from :attr:`R`: the same sample
        gets the same corruption in every epoch and every worker, whatever ``set_random_state`` did.
        """
        t, _ = split_meta(data)
        self._randomize(F.check_label(type(self).__name__, "label", t, self.num_classes), data, sample_id)

    # -- apply ---------------------------------------------------------------------------------

    def __call__(self, img: Any, randomize: bool = True, sample_id: str | None = None) -> Any:
        """Corrupt ``img`` (channel-first, one channel) and record what was done.

        Args:
            img: the label map; numpy, torch or MetaTensor, any integer dtype (or float with whole values).
            randomize: draw new parameters; ``False`` reuses the last draw (as dictionary transforms do).
            sample_id: identity of the sample for ``fixed_per_sample``; default the meta ``filename_or_obj``.
        """
        name = type(self).__name__
        t, meta_src = split_meta(img)
        label = F.check_label(name, "label", t, self.num_classes)
        if randomize:
            self._randomize(label, img, sample_id)
        if self._ops is None:
            raise RuntimeError(f"{name}: call randomize() before __call__(..., randomize=False).")
        self._check_ops(label)
        out = F.apply_ops(label, self._ops)
        changed = F.count_changed(out, label)
        classes: list[int] = []
        for op in self._ops:
            if "class" in op and op["class"] not in classes:
                classes.append(int(op["class"]))
        self.last_record = {
            "transform": name,
            "kind": self.kind,
            "class": classes,
            "applied": self._do_transform,
            "corrupted": changed > 0,
            "changed_voxels": changed,
            "params": {"ops": [dict(op) for op in self._ops]},
            "sample_id": self._sample_id,
        }
        return _restore(out, img, meta_src, self.last_record)

    def _check_ops(self, label: torch.Tensor) -> None:
        """Hook for checks that need the label's shape (see RandLabelBias's offset)."""


class RandLabelNoise(_LabelNoiseTransform):
    """Random label errors: each structure eroded or dilated (equal odds), radius drawn from a range.

    The "random errors" of the echo label-noise study (docs/methods/label_noise.md): each structure is eroded
    or dilated by a disk/ball whose radius is drawn from ``radius``, and optionally shifted by up to
    ``max_shift`` voxels per axis; then the whole map may get an elastic boundary jitter of at most
    ``jitter`` voxels. Over samples the errors have zero mean bias (with ``dilate_prob=0.5``).

    The structures are changed one after another in ascending class order, each change acting on the
    result of the previous ones, so the map stays a consistent partition after every step: a dilated
    structure overwrites the neighbours it grows into (a later class wins over an earlier one), an
    eroded one hands its border to the nearest other structure (``fill="nearest"``, e.g. an eroded LV
    cavity thickens the myocardium) or to a given label. See :mod:`.functional` for the exact rules.

    Args:
        prob: probability of corrupting a sample.
        classes: the structures to corrupt; ``None`` means every non-background class present.
        radius: an int, or a pair ``(low, high)`` to draw the radius uniformly from (inclusive), voxels.
        dilate_prob: probability that a structure is dilated rather than eroded.
        max_shift: each structure is also shifted by an offset drawn uniformly from
            ``[-max_shift, max_shift]`` per axis (0: no shift).
        jitter: largest displacement of the elastic jitter in voxels (0: none).
        jitter_spacing: control-point spacing of the jitter field, voxels.
        fill: label given to voxels an eroded or shifted structure frees: ``"nearest"`` or an int.
        background: the background label.
        num_classes: if given, labels must lie in ``[0, num_classes)``.
        fixed_per_sample: same corruption for the same sample in every epoch and worker.
        seed: the transform's seed for ``fixed_per_sample`` (independent of ``set_random_state``).

    Raises:
        ValueError: bad parameters; at call time a label that is not an integer, single-channel,
            channel-first 2D/3D map with values in range.

    Example:
        >>> import numpy as np
        >>> from monai_noisylabel.data.synthetic import make_echo_case
        >>> label = make_echo_case(0, 0, size=(128, 128))["label"][None]  # (1, H, W), 0..3
        >>> t = RandLabelNoise(radius=(1, 3))
        >>> _ = t.set_random_state(1)
        >>> noisy = t(label)
        >>> noisy.dtype == label.dtype, set(np.unique(noisy).tolist()) <= {0, 1, 2, 3}, t.last_record["corrupted"]
        (True, True, True)
        >>> [op["op"] in ("erode", "dilate") for op in t.last_record["params"]["ops"]]
        [True, True, True]
    """

    kind = "random"

    def __init__(
        self,
        prob: float = 1.0,
        classes: int | Sequence[int] | None = None,
        radius: int | Sequence[int] = (1, 3),
        dilate_prob: float = 0.5,
        max_shift: int = 0,
        jitter: float = 0.0,
        jitter_spacing: int = 16,
        fill: int | str = "nearest",
        background: int = 0,
        num_classes: int | None = None,
        fixed_per_sample: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(prob, background, num_classes, fixed_per_sample, seed)
        name = type(self).__name__
        self.classes = _check_classes(name, classes, self.background, self.num_classes)
        self.radius = _check_radius_range(name, radius)
        self.dilate_prob = check_probability(name, "dilate_prob", dilate_prob)
        self.max_shift = check_int(name, "max_shift", max_shift, minimum=0)
        self.jitter = check_number(name, "jitter", jitter, 0.0)
        self.jitter_spacing = check_int(name, "jitter_spacing", jitter_spacing, minimum=1)
        self.fill = _check_fill(name, fill, self.num_classes)

    def _draw_ops(self, label: torch.Tensor, rng: np.random.RandomState) -> list[dict[str, Any]]:
        present = self._present(label, None)
        candidates = present if self.classes is None else list(self.classes)
        ndim = label.ndim - 1
        ops: list[dict[str, Any]] = []
        for c in candidates:  # draws for every configured class, so absent ones do not shift the others
            dilate = bool(rng.rand() < self.dilate_prob)
            r = int(rng.randint(self.radius[0], self.radius[1] + 1))
            offset = [int(v) for v in rng.randint(-self.max_shift, self.max_shift + 1, size=ndim)]
            if c not in present:
                continue
            if dilate:
                ops.append({"op": "dilate", "class": c, "radius": r})
            else:
                ops.append({"op": "erode", "class": c, "radius": r, "fill": self.fill, "background": self.background})
            if any(offset):
                ops.append(
                    {"op": "shift", "class": c, "offset": offset, "fill": self.fill, "background": self.background}
                )
        if self.jitter > 0:
            seed = int(rng.randint(0, 2**31 - 1))
            ops.append({"op": "jitter", "magnitude": self.jitter, "spacing": self.jitter_spacing, "seed": seed})
        return ops


class RandLabelBias(_LabelNoiseTransform):
    """Systematic label bias: the same signed change of one structure on every affected sample.

    ``mode="dilate"`` over-segments ``label_class`` by ``radius`` voxels (a disk/ball), ``"erode"``
    under-segments it, ``"shift"`` moves it by ``offset`` voxels (one boundary forward, the opposite one
    back). Only whether a sample is affected is random (``prob``); the change itself is fixed, which is
    what makes a bias hard to detect by loss or gradient variance (docs/methods/label_noise.md). Chain two
    transforms for two biased classes; with ``fixed_per_sample=True`` and the same ``seed`` both hit
    the same samples.

    Args:
        prob: probability of corrupting a sample.
        label_class: the biased structure (default 1, the LV cavity of an echo label).
        mode: ``"dilate"``, ``"erode"`` or ``"shift"``.
        radius: voxels to dilate or erode by.
        offset: voxels per spatial axis for ``mode="shift"``, e.g. ``(0, 3)``.
        fill: label given to voxels an eroded or shifted structure frees: ``"nearest"`` or an int.
        background: the background label.
        num_classes: if given, labels must lie in ``[0, num_classes)``.
        fixed_per_sample: same decision for the same sample in every epoch and worker.
        seed: the transform's seed for ``fixed_per_sample``.

    Example:
        >>> import torch
        >>> lab = torch.zeros(1, 9, 9, dtype=torch.uint8)
        >>> lab[0, 3:6, 3:6] = 1
        >>> out = RandLabelBias()(lab)  # LV cavity dilated by 3 px
        >>> int((out == 1).sum()), out.dtype
        (61, torch.uint8)
    """

    kind = "bias"

    def __init__(
        self,
        prob: float = 1.0,
        label_class: int = 1,
        mode: str = "dilate",
        radius: int = 3,
        offset: Sequence[int] | None = None,
        fill: int | str = "nearest",
        background: int = 0,
        num_classes: int | None = None,
        fixed_per_sample: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(prob, background, num_classes, fixed_per_sample, seed)
        name = type(self).__name__
        self.label_class = _check_class(name, "label_class", label_class, self.background, self.num_classes)
        self.mode = check_choice(name, "mode", mode, ("dilate", "erode", "shift"))
        self.radius = check_int(name, "radius", radius, minimum=0)
        if mode == "shift":
            self.offset: tuple[int, ...] | None = _check_offset(name, offset)
        elif offset is not None:
            raise param_error(name, "offset", "None unless mode='shift'", offset)
        else:
            self.offset = None
        self.fill = _check_fill(name, fill, self.num_classes)

    def _draw_ops(self, label: torch.Tensor, rng: np.random.RandomState) -> list[dict[str, Any]]:
        c = self.label_class
        if self.mode == "dilate":
            return [{"op": "dilate", "class": c, "radius": self.radius}]
        if self.mode == "erode":
            return [
                {"op": "erode", "class": c, "radius": self.radius, "fill": self.fill, "background": self.background}
            ]
        offset = list(self.offset or ())
        return [{"op": "shift", "class": c, "offset": offset, "fill": self.fill, "background": self.background}]

    def _check_ops(self, label: torch.Tensor) -> None:
        if self.offset is not None and len(self.offset) != label.ndim - 1:
            expected = f"{label.ndim - 1} ints for a label of shape {tuple(label.shape)}"
            raise param_error(type(self).__name__, "offset", expected, self.offset)


class RandLabelOmission(_LabelNoiseTransform):
    """Label omission: a whole structure, or one of its connected components, set to background.

    ``mode="class"`` drops one structure drawn uniformly from the ``classes`` present in the label;
    ``mode="component"`` drops one connected component (full connectivity), drawn uniformly among the
    components of such a structure: a missed lesion, a forgotten slice of an organ. Nothing happens
    (``corrupted=False``) when none of ``classes`` is present.

    Args:
        prob: probability of corrupting a sample.
        classes: candidate structures; default 3 (the left atrium of an echo label); ``None`` means
            every non-background class present.
        mode: ``"class"`` or ``"component"``.
        background: the label the omitted voxels get.
        num_classes: if given, labels must lie in ``[0, num_classes)``.
        fixed_per_sample: same omission for the same sample in every epoch and worker.
        seed: the transform's seed for ``fixed_per_sample``.

    Example:
        >>> import torch
        >>> lab = torch.tensor([[[3, 3, 0, 1], [0, 0, 0, 3]]])
        >>> RandLabelOmission()(lab).tolist()
        [[[0, 0, 0, 1], [0, 0, 0, 0]]]
        >>> t = RandLabelOmission(mode="component")
        >>> _ = t.set_random_state(1)
        >>> out = t(lab)
        >>> int((out == 3).sum()) in (1, 2), t.last_record["params"]["ops"][0]["op"]
        (True, 'drop_component')
    """

    kind = "omission"

    def __init__(
        self,
        prob: float = 1.0,
        classes: int | Sequence[int] | None = 3,
        mode: str = "class",
        background: int = 0,
        num_classes: int | None = None,
        fixed_per_sample: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(prob, background, num_classes, fixed_per_sample, seed)
        name = type(self).__name__
        self.classes = _check_classes(name, classes, self.background, self.num_classes)
        self.mode = check_choice(name, "mode", mode, ("class", "component"))

    def _draw_ops(self, label: torch.Tensor, rng: np.random.RandomState) -> list[dict[str, Any]]:
        present = self._present(label, self.classes)
        if not present:
            return []
        c = present[int(rng.randint(len(present)))]
        if self.mode == "class":
            return [{"op": "drop", "class": c, "background": self.background}]
        points = F.component_points(F.class_mask(label[0], c))
        point = points[int(rng.randint(len(points)))]
        return [{"op": "drop_component", "class": c, "point": point, "background": self.background}]
