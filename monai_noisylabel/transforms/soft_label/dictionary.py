"""Dictionary versions of the soft-label transforms (``d`` suffix, with ``D`` and ``Dict`` aliases).

Each one owns its array transform from :mod:`.array` and applies it to the selected keys; the input
dict is never modified (a new dict is returned).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import torch
from monai.config import DtypeLike, KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform

from monai_noisylabel.transforms.soft_label.array import (
    AnatomicalPrior,
    ConfidenceToSoftLabel,
    MultiRaterSoftLabel,
    ThresholdBinarize,
)
from monai_noisylabel.utils import param_error

__all__ = [
    "MultiRaterSoftLabeld",
    "MultiRaterSoftLabelD",
    "MultiRaterSoftLabelDict",
    "AnatomicalPriord",
    "AnatomicalPriorD",
    "AnatomicalPriorDict",
    "ConfidenceToSoftLabeld",
    "ConfidenceToSoftLabelD",
    "ConfidenceToSoftLabelDict",
    "ThresholdBinarized",
    "ThresholdBinarizeD",
    "ThresholdBinarizeDict",
]


def _check_key(owner: str, name: str, key: Any) -> Hashable:
    if key is None or not isinstance(key, Hashable) or isinstance(key, bool):
        raise param_error(owner, name, "a key (e.g. a non-empty str)", key)
    return key


class MultiRaterSoftLabeld(MapTransform):
    """Dictionary version of :class:`~monai_noisylabel.transforms.soft_label.array.MultiRaterSoftLabel`.

    ``keys`` is either one key per rater (each holding a ``(1, *spatial)`` mask) or a single key holding
    the stacked raters ``(R, *spatial)`` (or a list of ``(1, *spatial)`` masks), e.g. a datalist field
    with a list of rater files loaded by ``LoadImaged`` + ``EnsureChannelFirstd``. The soft label is
    written to ``output_key``. With one key per rater, raters missing from a case (absent, or ``None``)
    are allowed by default: the ones present are combined, ``weights`` (one per key) are restricted to
    them and the per-rater meta lists (STAPLE estimates, rater weights) have one entry per key, NaN for
    the missing ones. A case without any rater raises ``ValueError``.

    Args:
        keys: the rater keys, or one key holding all raters.
        output_key: where to write the soft label (may be one of ``keys``).
        method, weights, prior, max_iter, tol, dtype: see the array transform; ``weights`` has one
            entry per key (per stacked rater with a single key).
        allow_missing_keys: allow raters missing from a case (default ``True``); ``False`` raises
            ``KeyError`` for a missing key, as MONAI's dictionary transforms do.

    Example:
        >>> import numpy as np
        >>> t = MultiRaterSoftLabeld(["r0", "r1", "r2"], output_key="soft", method="mean")
        >>> case = {"r0": np.ones((1, 2, 2)), "r2": np.zeros((1, 2, 2))}  # rater r1 did not read this case
        >>> t(case)["soft"].tolist()
        [[[0.5, 0.5], [0.5, 0.5]]]
    """

    backend = MultiRaterSoftLabel.backend

    def __init__(
        self,
        keys: KeysCollection,
        output_key: Hashable = "label",
        method: str = "mean",
        weights: Sequence[float] | NdarrayOrTensor | None = None,
        prior: float | None = None,
        max_iter: int = 100,
        tol: float = 1e-6,
        dtype: DtypeLike | torch.dtype | None = None,
        allow_missing_keys: bool = True,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.output_key = _check_key(type(self).__name__, "output_key", output_key)
        self.transform = MultiRaterSoftLabel(
            method=method, weights=weights, prior=prior, max_iter=max_iter, tol=tol, dtype=dtype
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        present = [k for k in self.key_iterator(d) if d[k] is not None]
        if not present:
            raise param_error(
                type(self).__name__, "keys", "keys of which at least one holds a rater in the data", tuple(self.keys)
            )
        if len(self.keys) == 1:
            d[self.output_key] = self.transform(d[present[0]])
        else:
            flags = [k in present for k in self.keys]
            d[self.output_key] = self.transform([d[k] for k in present], present=flags)
        return d


class AnatomicalPriord(MapTransform):
    """Dictionary version of :class:`~monai_noisylabel.transforms.soft_label.array.AnatomicalPrior`.

    Shapes the soft label(s) under ``keys`` in place (in the returned dict) with the region mask under
    ``region_key`` and the image under ``image_key``.

    Args:
        keys: soft-label key(s).
        region_key: key of the ``(1, *spatial)`` region mask (e.g. bone).
        image_key: key of the ``(1, *spatial)`` image.
        centre, width, normalize, combine, decay, core_threshold, spacing, dtype: see the array transform.
        allow_missing_keys: don't raise if a key of ``keys`` is missing.

    Example:
        Knee BML soft labels from three raters (``"raters"`` holds the stacked rater masks after
        loading): average the raters, then keep the average only inside bone, scaled by how bright the
        voxel is within the bone, with a gentle decay away from voxels most raters marked.

        >>> import numpy as np
        >>> from monai.transforms import Compose
        >>> from monai_noisylabel.data.synthetic import make_knee_case
        >>> case = make_knee_case(0, 1, size=(32, 32, 32))
        >>> data = {"image": case["image"][None], "raters": np.stack(case["raters"]), "bone": case["bone"][None]}
        >>> recipe = Compose([
        ...     MultiRaterSoftLabeld("raters", output_key="label", method="mean"),
        ...     AnatomicalPriord("label", region_key="bone", image_key="image", centre=1.0, width=0.5, decay=4.0),
        ... ])
        >>> q = recipe(data)["label"]
        >>> float(q[data["bone"] == 0].max()), bool(0 <= q.min() and q.max() <= 1)
        (0.0, True)
    """

    backend = AnatomicalPrior.backend

    def __init__(
        self,
        keys: KeysCollection = "label",
        region_key: Hashable = "bone",
        image_key: Hashable = "image",
        centre: float = 1.0,
        width: float = 0.5,
        normalize: str = "zscore",
        combine: str = "multiply",
        decay: float | None = None,
        core_threshold: float = 0.5,
        spacing: float | Sequence[float] | None = None,
        dtype: DtypeLike | torch.dtype | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        name = type(self).__name__
        self.region_key = _check_key(name, "region_key", region_key)
        self.image_key = _check_key(name, "image_key", image_key)
        self.prior = AnatomicalPrior(
            centre=centre,
            width=width,
            normalize=normalize,
            combine=combine,
            decay=decay,
            core_threshold=core_threshold,
            spacing=spacing,
            dtype=dtype,
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for name, key in (("region_key", self.region_key), ("image_key", self.image_key)):
            if key not in d:
                raise param_error(type(self).__name__, name, "a key present in the data", key)
        for key in self.key_iterator(d):
            d[key] = self.prior(d[key], region=d[self.region_key], image=d[self.image_key])
        return d


class ConfidenceToSoftLabeld(MapTransform):
    """Dictionary version of :class:`~monai_noisylabel.transforms.soft_label.array.ConfidenceToSoftLabel`.

    Args:
        keys: confidence-map key(s), each ``(C, *spatial)``.
        scale, overlap, dtype: see the array transform.
        allow_missing_keys: don't raise if a key is missing.

    Example:
        >>> import numpy as np
        >>> t = ConfidenceToSoftLabeld("confidence", scale="0-10")
        >>> t({"confidence": np.full((2, 1, 1), 5.0)})["confidence"].tolist()
        [[[0.5]], [[0.5]]]
    """

    backend = ConfidenceToSoftLabel.backend

    def __init__(
        self,
        keys: KeysCollection,
        scale: str = "0-1",
        overlap: str = "independent",
        dtype: DtypeLike | torch.dtype | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = ConfidenceToSoftLabel(scale=scale, overlap=overlap, dtype=dtype)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d


class ThresholdBinarized(MapTransform):
    """Dictionary version of :class:`~monai_noisylabel.transforms.soft_label.array.ThresholdBinarize`.

    Args:
        keys: soft or confidence map key(s), each ``(C, *spatial)`` in [0, 1].
        threshold, low, ignore_index, background_channel, dtype, ignore_value: see the array transform.
        allow_missing_keys: don't raise if a key is missing.

    Example:
        >>> import numpy as np
        >>> t = ThresholdBinarized("label", threshold=0.6, low=0.5, ignore_index=255)
        >>> t({"label": np.array([[[0.3, 0.55, 0.8]]])})["label"].tolist()
        [[[0.0, 255.0, 1.0]]]
    """

    backend = ThresholdBinarize.backend

    def __init__(
        self,
        keys: KeysCollection,
        threshold: float = 0.6,
        low: float | None = None,
        ignore_index: int = 255,
        background_channel: bool = False,
        dtype: DtypeLike | torch.dtype | None = None,
        allow_missing_keys: bool = False,
        ignore_value: int | None = None,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.binarizer = ThresholdBinarize(
            threshold=threshold,
            low=low,
            ignore_index=ignore_index,
            background_channel=background_channel,
            dtype=dtype,
            ignore_value=ignore_value,
        )

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.binarizer(d[key])
        return d


MultiRaterSoftLabelD = MultiRaterSoftLabelDict = MultiRaterSoftLabeld
AnatomicalPriorD = AnatomicalPriorDict = AnatomicalPriord
ConfidenceToSoftLabelD = ConfidenceToSoftLabelDict = ConfidenceToSoftLabeld
ThresholdBinarizeD = ThresholdBinarizeDict = ThresholdBinarized
