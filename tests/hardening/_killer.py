"""Test-only: end a bundle training with a real ``SIGKILL`` at an exact point (no cleanup, no ``finally``).

Layered on ``train.json`` by :func:`killer_config`; the kill-and-resume tests then run the bundle again to resume.

- ``KillAt(engine, iteration=N)``: after global training iteration ``N`` (in the middle of an epoch).
- ``KillAt(engine, epoch=E, target="module:function", calls=K)``: in epoch ``E``, right after the ``K``-th call of
  ``function`` (the module attribute is wrapped), e.g. in the middle of the detection pass or between two
  refurbished-label writes.
"""

from __future__ import annotations

import functools
import importlib
import os
import signal
from typing import Any

from ignite.engine import Engine, Events


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt:
    """SIGKILL this process at a given training iteration, or after the ``calls``-th call of ``target`` in ``epoch``."""

    def __init__(
        self, engine: Engine, iteration: int | None = None, epoch: int | None = None, target: str = "", calls: int = 1
    ) -> None:
        self.engine = engine
        if iteration is not None:
            engine.add_event_handler(Events.ITERATION_COMPLETED(once=iteration), lambda _: _kill())
            return
        module_name, name = target.split(":")
        module = importlib.import_module(module_name)
        original = getattr(module, name)
        count = [0]

        @functools.wraps(original)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if engine.state.epoch == epoch:
                count[0] += 1
                if count[0] == calls:
                    _kill()
            return result

        setattr(module, name, wrapped)


def killer_config(train_json: str, **kill: Any) -> dict[str, Any]:
    """A config layered after ``train_json`` that attaches :class:`KillAt` (``kill`` are its arguments) first."""
    return {
        "killer": {"_target_": "_killer.KillAt", "engine": "@train#trainer", **kill},
        "run": ["$@killer", f"%{train_json}::run"],
    }
