"""Combine the per-sample scores of the detection handlers and write ``label_scores.csv``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.utils import IgniteInfo, min_version, optional_import

from monai_noisylabel.handlers import _common as C
from monai_noisylabel.label_scores import SCORE_COLUMNS
from monai_noisylabel.utils import check_choice, check_number, check_probability, param_error

Events, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", IgniteInfo.OPT_IMPORT_VERSION, min_version, "Engine")

__all__ = ["LabelQualityReportHandler"]

_OWNER = "LabelQualityReportHandler"


class LabelQualityReportHandler:
    """Set how ``combined`` and ``flagged`` are computed, and write ``<output_dir>/label_scores.csv``.

    The score handlers (:class:`~monai_noisylabel.handlers.VarianceOfGradientsHandler`,
    :class:`~monai_noisylabel.handlers.SampleLossHandler`) publish their columns to
    ``engine.state.label_scores``; after each update ``combined`` and ``flagged`` are recomputed for every
    row with the options of this handler (stored on ``engine.state.label_scores_options``), or the defaults
    when it is not attached. This handler writes the table on rank 0 (atomically, ranked by ``combined``)
    after every epoch (``epoch_level=True``, attach it after the score handlers so it sees their update) and
    when training completes, plus a TensorBoard histogram ``label_scores/combined``.

    Args:
        output_dir: folder of ``label_scores.csv``.
        include: score columns that ``combined`` rank-averages (:func:`~monai_noisylabel.detection.combine_scores`);
            default: its documented default (``loss`` and ``offset`` when present, else every present score).
        weights: ``"auto"`` (default): ``"reference"`` when the score handlers publish the same scores on a
            trusted clean set (``SampleLossHandler`` with ``reference_loader``: each score weighs how many more
            training samples than expected lie beyond its reference,
            :func:`~monai_noisylabel.detection.combine_with_reference`), else ``"separation"`` (the fallback
            without a clean set: each score weighs how cleanly it splits the samples in two,
            :func:`~monai_noisylabel.detection.separation_weight`); or ``"reference"``, ``"separation"``,
            ``"equal"``, or a mapping from score name to weight.
        flag_rule: ``"auto"`` (default): ``"reference"`` when ``combined`` was weighed against a reference,
            else ``"gmm"``. ``"reference"``: flag as many of the top ``combined`` samples as the data put
            beyond the reference's combined scores (:func:`~monai_noisylabel.detection.reference_flags`; about
            none on clean data); ``"gmm"``: ``gmm_noisy_prob > gmm_threshold``; ``"none"``: only NaN/inf
            losses and ``flag_fraction``.
        flag_level: the reference tail of the ``"reference"`` rule, in (0, 1) (default 0.1).
        gmm_threshold: with the ``"gmm"`` rule, a sample with ``gmm_noisy_prob`` above it is flagged (DivideMix: 0.5).
        flag_fraction: also flag this fraction of samples with the highest ``combined`` (default: off).
        summary_writer: a TensorBoard ``SummaryWriter``, or ``None``.
        epoch_level: write after every epoch too (default True), not only at the end.
        name: logger name; default: ``engine.logger``.

    Example:
        >>> import tempfile, torch
        >>> from monai.engines import SupervisedTrainer
        >>> from monai_noisylabel.handlers import SampleLossHandler, read_label_scores
        >>> net = torch.nn.Conv2d(1, 2, 3, padding=1)
        >>> data = [{"image": torch.rand(1, 8, 8), "label": torch.zeros(1, 8, 8, dtype=torch.long), "id": f"s{i}"}
        ...         for i in range(4)]
        >>> loader = torch.utils.data.DataLoader(data, batch_size=2)
        >>> ce = torch.nn.CrossEntropyLoss(reduction="none")
        >>> trainer = SupervisedTrainer("cpu", 2, loader, net, torch.optim.SGD(net.parameters(), 0.1),
        ...                             lambda p, y: ce(p, y[:, 0]).mean())
        >>> SampleLossHandler(loader, loss_fn=lambda p, y: ce(p, y[:, 0])).attach(trainer)
        >>> out = tempfile.mkdtemp()
        >>> LabelQualityReportHandler(out, flag_fraction=0.25).attach(trainer)
        >>> trainer.run()
        >>> rows = read_label_scores(f"{out}/label_scores.csv")
        >>> len(rows), sum(r["flagged"] for r in rows) >= 1, rows[0]["combined"]
        (4, True, 1.0)
    """

    def __init__(
        self,
        output_dir: str | Path,
        *,
        include: Sequence[str] | None = None,
        weights: Mapping[str, float] | str | None = "auto",
        flag_rule: str = "auto",
        flag_level: float = 0.1,
        gmm_threshold: float = 0.5,
        flag_fraction: float | None = None,
        summary_writer: Any = None,
        epoch_level: bool = True,
        name: str | None = None,
    ) -> None:
        if output_dir is None:
            raise param_error(_OWNER, "output_dir", "a folder path", None)
        if include is not None:
            include = list(include)
            if not include or any(n not in SCORE_COLUMNS for n in include):
                raise param_error(_OWNER, "include", f"None or a non-empty subset of {list(SCORE_COLUMNS)}", include)
        if isinstance(weights, str):
            check_choice(_OWNER, "weights", weights, ("auto", "reference", "separation", "equal"))
        elif weights is not None:
            if not isinstance(weights, Mapping) or any(k not in SCORE_COLUMNS for k in weights):
                raise param_error(
                    _OWNER, "weights", f"None or a mapping from {list(SCORE_COLUMNS)} to weights", weights
                )
            weights = {k: check_number(_OWNER, "weights", v, 0.0) for k, v in weights.items()}
        flag_fraction = None if flag_fraction is None else check_probability(_OWNER, "flag_fraction", flag_fraction)
        self.output_dir = output_dir
        self.options = {
            "include": include,
            "weights": weights,
            "flag_rule": check_choice(_OWNER, "flag_rule", flag_rule, ("auto", "reference", "gmm", "none")),
            "flag_level": check_number(_OWNER, "flag_level", flag_level, 0.0, 1.0, open_min=True, open_max=True),
            "gmm_threshold": check_probability(_OWNER, "gmm_threshold", gmm_threshold),
            "flag_fraction": flag_fraction,
        }
        self.summary_writer = summary_writer
        self.epoch_level = bool(epoch_level)
        self.logger = logging.getLogger(name)
        self._name = name

    def attach(self, engine: Engine) -> None:
        """Store the options on ``engine.state`` and register the writes."""
        C.set_logger(self, engine)
        self._set_options(engine)
        engine.add_event_handler(Events.STARTED, self._set_options)
        if self.epoch_level:
            engine.add_event_handler(Events.EPOCH_COMPLETED, self)
        engine.add_event_handler(Events.COMPLETED, self)

    def _set_options(self, engine: Engine) -> None:
        setattr(engine.state, C.OPTIONS_ATTR, dict(self.options))

    def __call__(self, engine: Engine) -> None:
        """Recompute ``combined`` and ``flagged`` and write the table (rank 0)."""
        table = C.label_scores_of(engine)
        if not table:
            return
        C.refresh_combined(table, self.options, getattr(engine.state, C.REFERENCE_ATTR, None))
        combined = [row["combined"] for row in table.values() if row.get("combined") is not None]
        C.write_outputs(
            engine, self.output_dir, self.summary_writer, {"label_scores/combined": combined}, engine.state.epoch
        )

    def state_dict(self) -> dict[str, Any]:
        """Stateless (the scores live in the score handlers); present so it can sit in a ``CheckpointSaver`` dict."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Nothing to restore."""
