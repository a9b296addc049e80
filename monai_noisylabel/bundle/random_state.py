"""The random state a resumed training needs to go on exactly as an uninterrupted one: a ``save_dict`` entry.

A bundle training draws its randomness from two places the network/optimizer/trainer checkpoint does not hold:
the random transforms of the training pipeline (each MONAI ``Randomizable`` owns a ``numpy`` ``RandomState``,
seeded once when the ``Compose`` is built) and the data loader's ``torch.Generator`` (the shuffle order). A run
resumed from ``checkpoint_epoch=N.pt`` without them replays epoch 1's augmentations and order in epoch ``N + 1``.
:class:`TrainingRandomState` saves them with the checkpoint and puts them back on resume; it never touches the
global numpy or torch RNG.

:class:`BestModelState` does the same for the best-model record: the key-metric list of the ``CheckpointSaver``
that writes ``models/model.pt`` and the evaluator's best metric, so that after a resume ``model.pt`` is replaced
only by an epoch better than every epoch before the kill.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.transforms import Randomizable

from monai_noisylabel.utils import param_error

__all__ = ["BestModelState", "TrainingRandomState"]


def _random_states(obj: Any, seen: set[int]) -> Iterator[np.random.RandomState]:
    """Every ``RandomState`` reachable from ``obj`` through its ``Randomizable``/``Compose`` members, in a fixed order.

    MONAI's dictionary transforms own an array transform with its own state (``RandAffined.rand_affine``), so the
    attributes of each transform are searched, not only its ``R``.
    """
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, np.random.RandomState):
        yield obj
        return
    if isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _random_states(item, seen)
        return
    if isinstance(obj, Randomizable) or hasattr(obj, "transforms"):
        for name in sorted(vars(obj)):
            value = vars(obj)[name]
            if isinstance(value, (np.random.RandomState, Randomizable, list, tuple)) or hasattr(value, "transforms"):
                yield from _random_states(value, seen)


def _encode(state: Any) -> dict[str, Any]:
    """A ``RandomState.get_state()`` tuple as tensors and plain numbers (loadable with ``weights_only=True``)."""
    name, keys, pos, has_gauss, cached = state
    return {
        "name": str(name),
        "keys": torch.as_tensor(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
    }


def _decode(state: Mapping[str, Any]) -> tuple[Any, ...]:
    keys = np.asarray(state["keys"].cpu().numpy() if torch.is_tensor(state["keys"]) else state["keys"], np.uint32)
    return (state["name"], keys, int(state["pos"]), int(state["has_gauss"]), float(state["cached"]))


class TrainingRandomState:
    """``state_dict``/``load_state_dict`` over the random states of the training transforms and data loaders.

    Put it in the trainer's ``save_dict`` (the ``CheckpointSaver`` and the resume loader share that dict): the
    checkpoint of epoch ``N`` then holds the states as they were after epoch ``N``, and a resumed run draws the
    same augmentations and the same shuffle order as a run that never stopped.

    Args:
        transforms: the training pipeline (a ``Compose``, a transform or a list of them); every ``RandomState``
            reachable from its random transforms is kept.
        loaders: data loaders whose ``generator`` (the shuffle order) is kept; loaders without one are skipped.

    Raises:
        ValueError: a checkpoint whose states do not match this pipeline (another number of random transforms or
            loaders), named in the message.

    Example:
        >>> import torch
        >>> from monai.transforms import Compose, RandGaussianNoise
        >>> pipeline = Compose([RandGaussianNoise(prob=1.0)]).set_random_state(seed=0)
        >>> state = TrainingRandomState(pipeline)
        >>> saved = state.state_dict()
        >>> first = pipeline(torch.zeros(1, 4))
        >>> state.load_state_dict(saved)
        >>> torch.equal(pipeline(torch.zeros(1, 4)), first)
        True
    """

    #: a checkpoint written before this entry existed still resumes (``ResumeFromLatestCheckpoint`` warns)
    optional_in_checkpoint = True

    def __init__(self, transforms: Any = (), loaders: Sequence[Any] = ()) -> None:
        self.states = list(_random_states(transforms, set()))
        self.generators = [g for g in (getattr(loader, "generator", None) for loader in loaders) if g is not None]
        for g in self.generators:
            if not isinstance(g, torch.Generator):
                raise param_error(
                    "TrainingRandomState", "loaders", "data loaders whose generator is a torch.Generator", g
                )

    def state_dict(self) -> dict[str, Any]:
        """The transforms' ``RandomState`` states and the loaders' generator states, as they are now."""
        return {
            "transforms": [_encode(s.get_state(legacy=True)) for s in self.states],
            "generators": [g.get_state() for g in self.generators],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Put back what :meth:`state_dict` returned."""
        saved, gens = list(state.get("transforms", [])), list(state.get("generators", []))
        if len(saved) != len(self.states) or len(gens) != len(self.generators):
            raise ValueError(
                f"The checkpoint's random state has {len(saved)} transform and {len(gens)} loader states; this "
                f"training pipeline has {len(self.states)} and {len(self.generators)} (another pipeline?)."
            )
        for rs, s in zip(self.states, saved):
            rs.set_state(_decode(s))
        for g, s in zip(self.generators, gens):
            g.set_state(s)


class BestModelState:
    """``state_dict``/``load_state_dict`` over a key-metric ``CheckpointSaver``'s record and its evaluator's best metric.

    A fresh ``CheckpointSaver(save_key_metric=True)`` has no record, so without this the first validation after a
    resume writes the best-model file even when an epoch before the kill scored higher. Put it in the trainer's
    ``save_dict`` (the trainer checkpoint is written after the epoch's validation).

    Args:
        saver: the MONAI ``CheckpointSaver`` with ``save_key_metric=True``.
        evaluator: the evaluator whose ``state.best_metric``/``best_metric_epoch`` go with it (optional).

    Example:
        >>> import tempfile, torch
        >>> from monai.handlers import CheckpointSaver
        >>> saver = CheckpointSaver(tempfile.mkdtemp(), {"model": torch.nn.Linear(1, 1)}, save_key_metric=True)
        >>> BestModelState(saver).state_dict()
        {'saved': []}
    """

    optional_in_checkpoint = True

    def __init__(self, saver: Any, evaluator: Any = None) -> None:
        checkpoint = getattr(saver, "_key_metric_checkpoint", None)
        if checkpoint is None:
            raise param_error("BestModelState", "saver", "a CheckpointSaver with save_key_metric=True", saver)
        self.checkpoint: Any = checkpoint
        self.key = next(iter(checkpoint.state_dict()))  # ignite's name of its record ("_saved" in 0.5)
        self.evaluator = evaluator

    def state_dict(self) -> dict[str, Any]:
        """The saver's ``(score, filename)`` list and, with an evaluator, its best metric and epoch."""
        out: dict[str, Any] = {"saved": [[float(p), str(f)] for p, f in self.checkpoint.state_dict()[self.key]]}
        if self.evaluator is not None:
            out["best_metric"] = float(self.evaluator.state.best_metric)
            out["best_metric_epoch"] = int(self.evaluator.state.best_metric_epoch)
        return out

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Put back what :meth:`state_dict` returned."""
        self.checkpoint.load_state_dict({self.key: [(float(p), str(f)) for p, f in state.get("saved", [])]})
        if self.evaluator is not None and "best_metric" in state:
            self.evaluator.state.best_metric = float(state["best_metric"])
            self.evaluator.state.best_metric_epoch = int(state["best_metric_epoch"])
