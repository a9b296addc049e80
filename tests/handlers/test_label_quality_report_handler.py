"""LabelQualityReportHandler: combine options shared with the score handlers, writes, errors."""

from __future__ import annotations

import numpy as np
import pytest
from handler_testlib import HistogramRecorder, ce_per_sample, make_loader, make_net, make_samples, make_trainer
from scipy.stats import rankdata

from monai_noisylabel.handlers import (
    LabelQualityReportHandler,
    SampleLossHandler,
    VarianceOfGradientsHandler,
    read_label_scores,
)

OWNER = "The {!r} parameter of LabelQualityReportHandler must be"


def test_combines_vog_and_loss_with_weights_and_flags(tmp_path):
    samples = make_samples(6)
    net = make_net()
    trainer = make_trainer(net, make_loader(samples, 2), max_epochs=3)
    vog = VarianceOfGradientsHandler(make_loader(samples, 3))
    loss = SampleLossHandler(make_loader(samples, 3), loss_fn=ce_per_sample)
    writer = HistogramRecorder()
    report = LabelQualityReportHandler(
        tmp_path, include=["vog", "loss"], weights={"vog": 3.0}, flag_fraction=0.5, summary_writer=writer
    )
    for h in (vog, loss, report):
        h.attach(trainer)
    trainer.run()
    rows = read_label_scores(tmp_path / "label_scores.csv")
    ids = [r["id"] for r in rows]
    v = np.array([vog.scores()[i] for i in ids])
    lo = np.array([loss.scores()[i]["loss"] for i in ids])
    want = (3 * (rankdata(v) - 1) / 5 + (rankdata(lo) - 1) / 5) / 4
    np.testing.assert_allclose([r["combined"] for r in rows], want, atol=1e-12)
    assert np.all(np.diff(want) <= 0)  # ranked, most suspicious first
    assert sum(r["flagged"] for r in rows) >= 3 and all(r["flagged"] for r in rows[:3])
    # the score handlers used the same options when they refreshed the table
    assert trainer.state.label_scores_options["include"] == ["vog", "loss"]
    assert {tag for tag, _, _ in writer.calls} == {"label_scores/combined"}
    assert [step for _, _, step in writer.calls] == [1, 2, 3, 3]  # after every epoch, and at the end
    assert report.state_dict() == {}


def test_writes_nothing_without_scores(tmp_path):
    trainer = make_trainer(make_net(), make_loader(make_samples(2), 2), max_epochs=1)
    LabelQualityReportHandler(tmp_path).attach(trainer)
    trainer.run()
    assert not (tmp_path / "label_scores.csv").exists()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"output_dir": None}, "output_dir"),
        ({"include": []}, "include"),
        ({"include": ["dice"]}, "include"),
        ({"weights": {"dice": 1.0}}, "weights"),
        ({"weights": {"vog": -1.0}}, "weights"),
        ({"gmm_threshold": 1.5}, "gmm_threshold"),
        ({"flag_fraction": 2}, "flag_fraction"),
    ],
)
def test_bad_arguments(kwargs, name, tmp_path):
    args = {"output_dir": tmp_path, **kwargs}
    with pytest.raises(ValueError, match=OWNER.format(name)):
        LabelQualityReportHandler(args.pop("output_dir"), **args)
