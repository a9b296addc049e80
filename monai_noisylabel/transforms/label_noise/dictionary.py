"""Dictionary versions of the label-noise transforms (``d`` suffix, with ``D`` and ``Dict`` aliases).

Each one owns its array transform from :mod:`.array`, forwards ``set_random_state`` to it, draws once
per sample from the first key present and applies that draw to every key (MONAI's ``RandGaussianNoised``
pattern). With ``fixed_per_sample=True`` the sample id is ``data[id_key]`` (the datalist ``"id"``),
else the ``filename_or_obj`` of the first key's meta. Provenance goes to each label's
``meta["label_noise"]``; with ``provenance_postfix="label_noise"`` the same JSON string is also written
under ``data[f"{key}_label_noise"]``, which keeps it for numpy / plain-tensor pipelines too. The input
dict is never modified (a new dict is returned).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

from monai_noisylabel.transforms.label_noise.array import (
    RandLabelBias,
    RandLabelNoise,
    RandLabelOmission,
    _decode,
    _LabelNoiseTransform,
    encode_label_noise,
)
from monai_noisylabel.utils import param_error, sample_id_of

__all__ = [
    "RandLabelNoised",
    "RandLabelNoiseD",
    "RandLabelNoiseDict",
    "RandLabelBiasd",
    "RandLabelBiasD",
    "RandLabelBiasDict",
    "RandLabelOmissiond",
    "RandLabelOmissionD",
    "RandLabelOmissionDict",
]


class _LabelNoiseDict(RandomizableTransform, MapTransform):
    """Shared dictionary adapter around a label-noise array transform (not public)."""

    backend = _LabelNoiseTransform.backend

    def __init__(
        self,
        keys: KeysCollection,
        transform: _LabelNoiseTransform,
        id_key: str,
        provenance_postfix: str | None,
        allow_missing_keys: bool,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob=1.0)
        name = type(self).__name__
        self.transform = transform
        self.prob = transform.prob
        if not isinstance(id_key, str) or not id_key:
            raise param_error(name, "id_key", "a non-empty str", id_key)
        self.id_key = id_key
        if provenance_postfix is not None and (not isinstance(provenance_postfix, str) or not provenance_postfix):
            raise param_error(name, "provenance_postfix", "None or a non-empty str", provenance_postfix)
        self.provenance_postfix = provenance_postfix

    def set_random_state(self, seed: int | None = None, state: Any = None) -> _LabelNoiseDict:
        super().set_random_state(seed, state)
        self.transform.set_random_state(seed, state)
        return self

    @property
    def last_record(self) -> dict[str, Any] | None:
        """The provenance record of the most recent call (the same draw for every key)."""
        return self.transform.last_record

    def _sample_id(self, data: Mapping[Hashable, Any], key: Hashable) -> str | None:
        sid = sample_id_of(data, id_key=self.id_key, label_key=key)  # type: ignore[arg-type]
        if sid is None and self.transform.fixed_per_sample:
            raise ValueError(
                f"{type(self).__name__}: fixed_per_sample=True needs a sample id, but the data has no "
                f"{self.id_key!r} entry and {key!r} has no meta 'filename_or_obj'. Add an id to the datalist "
                "(or set id_key) or load the label with LoadImaged."
            )
        return sid

    def randomize(self, data: Any) -> None:
        """Draw the corruption of the sample ``data`` (a dict) from its first key present."""
        keys = list(self.key_iterator(dict(data)))
        if keys:
            self.transform.randomize(data[keys[0]], sample_id=self._sample_id(data, keys[0]))

    def __call__(self, data: Mapping[Hashable, Any], randomize: bool = True) -> dict[Hashable, Any]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        sid = self._sample_id(d, keys[0])
        if randomize:
            self.transform.randomize(d[keys[0]], sample_id=sid)
        for key in keys:
            d[key] = self.transform(d[key], randomize=False, sample_id=sid)
            if self.provenance_postfix is not None:
                extra = f"{key}_{self.provenance_postfix}"
                d[extra] = encode_label_noise([*_decode(d.get(extra)), self.transform.last_record or {}])
        return d


class RandLabelNoised(_LabelNoiseDict):
    """Dictionary version of :class:`~monai_noisylabel.transforms.label_noise.array.RandLabelNoise`.

    Args:
        keys: label key(s); one draw per sample, applied to every key.
        prob, classes, radius, dilate_prob, max_shift, jitter, jitter_spacing, fill, background,
            num_classes, fixed_per_sample, seed: see the array transform.
        id_key: data key of the sample id used by ``fixed_per_sample`` (default ``"id"``).
        provenance_postfix: also write the provenance JSON under ``f"{key}_{provenance_postfix}"``.
        allow_missing_keys: don't raise if a key is missing.

    Example:
        >>> import numpy as np
        >>> from monai_noisylabel.data.synthetic import make_echo_case
        >>> case = {"id": "0000_ED", "label": make_echo_case(0, 0, size=(64, 64))["label"][None]}
        >>> t = RandLabelNoised("label", fixed_per_sample=True, seed=7, provenance_postfix="label_noise")
        >>> a, b = t(case), t(case)  # the same sample: the same corruption, every epoch
        >>> np.array_equal(a["label"], b["label"]), "label_label_noise" in a
        (True, True)
    """

    def __init__(
        self,
        keys: KeysCollection,
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
        id_key: str = "id",
        provenance_postfix: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = RandLabelNoise(
            prob=prob,
            classes=classes,
            radius=radius,
            dilate_prob=dilate_prob,
            max_shift=max_shift,
            jitter=jitter,
            jitter_spacing=jitter_spacing,
            fill=fill,
            background=background,
            num_classes=num_classes,
            fixed_per_sample=fixed_per_sample,
            seed=seed,
        )
        super().__init__(keys, transform, id_key, provenance_postfix, allow_missing_keys)


class RandLabelBiasd(_LabelNoiseDict):
    """Dictionary version of :class:`~monai_noisylabel.transforms.label_noise.array.RandLabelBias`.

    Args:
        keys: label key(s); one draw per sample, applied to every key.
        prob, label_class, mode, radius, offset, fill, background, num_classes, fixed_per_sample, seed:
            see the array transform.
        id_key: data key of the sample id used by ``fixed_per_sample`` (default ``"id"``).
        provenance_postfix: also write the provenance JSON under ``f"{key}_{provenance_postfix}"``.
        allow_missing_keys: don't raise if a key is missing.

    Example:
        >>> import torch
        >>> lab = torch.zeros(1, 8, 8, dtype=torch.long)
        >>> lab[0, 2:6, 2:6] = 1
        >>> out = RandLabelBiasd("label", mode="shift", offset=(0, 2))({"label": lab})["label"]
        >>> out[0, 2].tolist()
        [0, 0, 0, 0, 1, 1, 1, 1]
    """

    def __init__(
        self,
        keys: KeysCollection,
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
        id_key: str = "id",
        provenance_postfix: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = RandLabelBias(
            prob=prob,
            label_class=label_class,
            mode=mode,
            radius=radius,
            offset=offset,
            fill=fill,
            background=background,
            num_classes=num_classes,
            fixed_per_sample=fixed_per_sample,
            seed=seed,
        )
        super().__init__(keys, transform, id_key, provenance_postfix, allow_missing_keys)


class RandLabelOmissiond(_LabelNoiseDict):
    """Dictionary version of :class:`~monai_noisylabel.transforms.label_noise.array.RandLabelOmission`.

    Args:
        keys: label key(s); one draw per sample, applied to every key.
        prob, classes, mode, background, num_classes, fixed_per_sample, seed: see the array transform.
        id_key: data key of the sample id used by ``fixed_per_sample`` (default ``"id"``).
        provenance_postfix: also write the provenance JSON under ``f"{key}_{provenance_postfix}"``.
        allow_missing_keys: don't raise if a key is missing.

    Example:
        >>> import torch
        >>> from monai.data import MetaTensor
        >>> from monai_noisylabel.transforms.label_noise import read_label_noise
        >>> lab = MetaTensor(torch.tensor([[[0, 1, 3, 3]]]), meta={"filename_or_obj": "case_7.nii.gz"})
        >>> out = RandLabelOmissiond("label")({"label": lab})["label"]
        >>> out.tolist(), read_label_noise(out)[0][0]["class"]
        ([[[0, 1, 0, 0]]], [3])
    """

    def __init__(
        self,
        keys: KeysCollection,
        prob: float = 1.0,
        classes: int | Sequence[int] | None = 3,
        mode: str = "class",
        background: int = 0,
        num_classes: int | None = None,
        fixed_per_sample: bool = False,
        seed: int = 0,
        id_key: str = "id",
        provenance_postfix: str | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        transform = RandLabelOmission(
            prob=prob,
            classes=classes,
            mode=mode,
            background=background,
            num_classes=num_classes,
            fixed_per_sample=fixed_per_sample,
            seed=seed,
        )
        super().__init__(keys, transform, id_key, provenance_postfix, allow_missing_keys)


RandLabelNoiseD = RandLabelNoiseDict = RandLabelNoised
RandLabelBiasD = RandLabelBiasDict = RandLabelBiasd
RandLabelOmissionD = RandLabelOmissionDict = RandLabelOmissiond
