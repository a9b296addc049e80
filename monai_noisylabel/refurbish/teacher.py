"""An exponential-moving-average (mean) teacher, and model probabilities for pseudo-labelling.

Mean teacher: Tarvainen and Valpola, "Mean teachers are better role models", NeurIPS 2017,
https://arxiv.org/abs/1703.01780. The teacher's weights follow the student's,
``ema = a * ema + (1 - a) * param`` with ``a = min(1 - 1 / (step + 1), decay)``: the first update
copies the student, later ones average over roughly ``1 / (1 - decay)`` steps.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from monai_noisylabel.utils import check_choice, check_int, check_number, param_error, unwrap_network

__all__ = ["ema_decay", "EMATeacher", "predict_probabilities"]


def ema_decay(step: int, decay: float = 0.99) -> float:
    """The averaging weight ``a = min(1 - 1 / (step + 1), decay)`` of update number ``step`` (from 0).

    Example:
        >>> ema_decay(0), ema_decay(1), ema_decay(1000)
        (0.0, 0.5, 0.99)
    """
    step = check_int("ema_decay", "step", step, 0)
    decay = check_number("ema_decay", "decay", decay, 0.0, 1.0)
    return min(1.0 - 1.0 / (step + 1), decay)


class EMATeacher:
    """A frozen copy of a model whose weights are an exponential moving average of the model's.

    The teacher holds a deep copy of ``model`` (DataParallel, DistributedDataParallel and ``torch.compile``
    wrappers are unwrapped)
    in eval mode with ``requires_grad=False``. :meth:`update` averages every parameter with the rule
    above and copies every buffer (BatchNorm running statistics, counters) from the student. Calling
    the teacher runs the copy under :func:`torch.no_grad`. ``state_dict``/``load_state_dict`` keep the
    weights and the step count, so ignite's ``Checkpoint``/MONAI's ``CheckpointLoader`` can resume it.

    Args:
        model: the student network.
        decay: the upper bound of the averaging weight, in [0, 1] (default 0.99).

    Example:
        >>> import torch
        >>> net = torch.nn.Linear(2, 1)
        >>> teacher = EMATeacher(net)
        >>> _ = torch.nn.init.zeros_(net.weight)
        >>> teacher.update(net)  # step 0: a = 0, the teacher copies the student
        >>> bool((teacher.module.weight == 0).all()), teacher.step
        (True, 1)
    """

    def __init__(self, model: nn.Module, decay: float = 0.99) -> None:
        if not isinstance(model, nn.Module):
            raise param_error("EMATeacher", "model", "a torch.nn.Module", type(model).__name__)
        self.decay = check_number("EMATeacher", "decay", decay, 0.0, 1.0)
        self.module: nn.Module = copy.deepcopy(unwrap_network(model))
        self.module.eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.step = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the teacher towards ``model`` by one EMA step and copy its buffers."""
        student = unwrap_network(model)
        a = ema_decay(self.step, self.decay)
        t_params = dict(self.module.named_parameters())
        s_params = dict(student.named_parameters())
        if t_params.keys() != s_params.keys():
            missing = sorted(set(t_params) ^ set(s_params))[:5]
            raise param_error("EMATeacher.update", "model", "the architecture the teacher was built from", missing)
        for name, t in t_params.items():
            s = s_params[name].detach()
            if s.shape != t.shape:
                raise param_error(
                    "EMATeacher.update", "model", f"a parameter {name!r} of shape {tuple(t.shape)}", tuple(s.shape)
                )
            if t.is_floating_point():
                t.mul_(a).add_(s.to(device=t.device, dtype=t.dtype), alpha=1.0 - a)
            else:
                t.copy_(s)
        s_buffers = dict(student.named_buffers())
        for name, buf in self.module.named_buffers():
            if name in s_buffers:
                buf.copy_(s_buffers[name].detach())
        self.step += 1

    @torch.no_grad()
    def restart(self, model: nn.Module) -> None:
        """Start the average again from ``model``: the teacher becomes a copy of it and the step count restarts,
        so the following updates warm up as after construction (``a = 0, 1/2, 2/3, ...`` up to ``decay``).

        Example:
            >>> import torch
            >>> net = torch.nn.Linear(2, 1)
            >>> teacher = EMATeacher(net)
            >>> for _ in range(50):
            ...     teacher.update(net)
            >>> _ = torch.nn.init.zeros_(net.weight)
            >>> teacher.restart(net)
            >>> bool((teacher.module.weight == 0).all()), teacher.step
            (True, 1)
        """
        self.step = 0
        self.update(model)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the teacher (eval mode, no gradients)."""
        with torch.no_grad():
            return self.module(*args, **kwargs)

    def to(self, *args: Any, **kwargs: Any) -> EMATeacher:
        """Move the teacher like :meth:`torch.nn.Module.to`; returns ``self``."""
        self.module.to(*args, **kwargs)
        return self

    def state_dict(self) -> dict[str, Any]:
        """``{"step", "decay", "model"}``: plain values and tensors only (``torch.load(weights_only=True)`` safe)."""
        return {"step": self.step, "decay": self.decay, "model": self.module.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if not isinstance(state, Mapping) or not {"step", "decay", "model"} <= set(state):
            raise param_error(
                "EMATeacher.load_state_dict", "state", "a mapping with keys 'step', 'decay', 'model'", state
            )
        self.module.load_state_dict(state["model"])
        self.step = check_int("EMATeacher.load_state_dict", "step", state["step"], 0)
        self.decay = check_number("EMATeacher.load_state_dict", "decay", state["decay"], 0.0, 1.0)


def predict_probabilities(
    model: nn.Module | EMATeacher | Callable[..., Any],
    inputs: torch.Tensor,
    *,
    activation: str | None = "softmax",
    inferer: Callable[..., Any] | None = None,
) -> torch.Tensor:
    """Class probabilities of ``model`` (a network or an :class:`EMATeacher`) on a batch, for pseudo-labels.

    An ``nn.Module`` is switched to eval mode for the call and restored afterwards; the call runs under
    :func:`torch.no_grad`. Deep-supervision outputs (a tuple or list) use their first element.

    Args:
        model: the network, an :class:`EMATeacher`, or any callable returning logits.
        inputs: ``(B, C_in, H, W[, D])`` batch.
        activation: ``"softmax"`` (over channels), ``"sigmoid"`` or ``None`` (the model returns probabilities).
        inferer: optional MONAI inferer, called as ``inferer(inputs, network)`` (e.g. a sliding window).

    Returns:
        ``(B, C, H, W[, D])`` probabilities.

    Example:
        >>> import torch
        >>> net = torch.nn.Conv2d(1, 3, 1)
        >>> predict_probabilities(net, torch.zeros(2, 1, 4, 4)).sum(1).allclose(torch.ones(2, 4, 4))
        True
    """
    check_choice("predict_probabilities", "activation", activation, ("softmax", "sigmoid", None))
    network: Any = model.module if isinstance(model, EMATeacher) else model
    was_training = isinstance(network, nn.Module) and network.training
    if isinstance(network, nn.Module):
        network.eval()
    try:
        with torch.no_grad():
            out = inferer(inputs, network) if inferer is not None else network(inputs)
    finally:
        if was_training:
            network.train()
    if isinstance(out, (tuple, list)):
        out = out[0]
    if activation == "softmax":
        return torch.softmax(out.float(), dim=1)
    if activation == "sigmoid":
        return torch.sigmoid(out.float())
    return out
