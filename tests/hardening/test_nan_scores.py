"""A sample whose scores are NaN/inf (a NaN image trained with ``nan_loss=skip``, a NaN loss) is reported in
``label_scores.csv`` (``inf`` cells, flagged, ranked first as the most suspect), is never refurbished, and does not
change the GMM split or the ranking of the other samples."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from monai.bundle import ConfigWorkflow
from scipy.stats import rankdata
from test_malformed_inputs import BUNDLES, TINY
from test_nan_loss import _entries

from monai_noisylabel.detection import combine_scores, gmm_noisy_probability, reference_flags
from monai_noisylabel.refurbish import SPLIT_SOURCES, split_noisy


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_gmm_and_combination_of_the_others_do_not_change(bad):
    rng = np.random.default_rng(0)
    losses = np.r_[rng.normal(0.2, 0.05, 30), rng.normal(1.0, 0.1, 10)]
    with_bad = np.insert(losses, 7, bad)
    p = gmm_noisy_probability(with_bad)
    np.testing.assert_allclose(np.delete(p, 7), gmm_noisy_probability(losses), atol=1e-12)
    assert np.isnan(p[7]) if np.isnan(bad) else p[7] == 1.0  # documented: NaN = not measured, inf = suspect
    offsets = rng.random(40)
    combined = combine_scores({"loss": with_bad, "offset": np.insert(offsets, 7, bad)})
    clean = combine_scores({"loss": losses, "offset": offsets})
    assert np.all(np.isfinite(np.delete(combined, 7)))
    # the others keep their order (ties compared as ties: a different N rescales the fractional ranks)
    np.testing.assert_array_equal(rankdata(np.round(np.delete(combined, 7), 9)), rankdata(np.round(clean, 9)))


def test_nan_is_never_flagged_in_place_of_a_minus_inf():
    flags = reference_flags(np.array([np.nan, -np.inf, 1.0]), None, fraction=1.0)
    assert flags.tolist() == [False, True, True]


def test_split_never_holds_a_non_finite_sample():
    table = {
        f"s{i}": {"loss": 0.1 + 0.01 * i, "gmm_noisy_prob": 0.05, "offset": 0.1, "flagged": False} for i in range(6)
    }
    table["s1"].update(loss=0.9, gmm_noisy_prob=0.99, offset=9.0, flagged=True)  # a real suspect
    table["bad"] = {"loss": np.inf, "gmm_noisy_prob": 1.0, "offset": 50.0, "flagged": True, "nonfinite": {"loss"}}
    table["nan_vog"] = {"vog": np.nan, "loss": 0.95, "gmm_noisy_prob": 0.99, "offset": 9.5, "flagged": True}
    for source in SPLIT_SOURCES:
        noisy, why = split_noisy(table, source=source)
        assert noisy is not None and "s1" in noisy, (source, why)
        assert "bad" not in noisy and "nan_vog" not in noisy, source


@pytest.mark.slow
def test_nan_image_is_reported_flagged_and_never_refurbished(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    train, val = _entries(data, 8, bad=5), _entries(data, 2)
    labels_before = {e["label"]: open(e["label"], "rb").read() for e in train}
    configs = BUNDLES["echo"] / "configs"
    wf = ConfigWorkflow(
        config_file=str(configs / "train.json"),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        workflow_type="train",
        **{**TINY["echo"], "bundle_root": str(BUNDLES["echo"]), "output_dir": str(tmp_path / "out"),
           "ckpt_dir": str(tmp_path / "models"), "noise_kind": None, "nan_loss": "skip", "val_interval": 1,
           "max_epochs": 2, "refurbish_every": 1, "refurbish_max_change": 1.0, "flag_fraction": 0.3,
           "train#dataset#data": train, "validate#dataset#data": val},
    )  # fmt: skip
    wf.initialize()
    wf.run()
    wf.finalize()
    with open(tmp_path / "out" / "label_scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["id"] == "case5"  # ranked first: the most suspect
    bad = rows[0]
    assert bad["loss"] == "inf" and bad["flagged"] == "1" and bad["refurbished_label"] == ""
    others = rows[1:]
    assert all(0 <= float(r["gmm_noisy_prob"]) <= 1 and np.isfinite(float(r["combined"])) for r in others)
    refurbished = {p.name for p in (tmp_path / "out" / "refurbished").glob("*.nii.gz")}
    assert refurbished and "case5.nii.gz" not in refurbished  # the others were refurbished, the NaN one never
    store = wf.parser.get_parsed_content("label_store")
    assert "case5" not in set(store.ids())
    assert {p: open(p, "rb").read() for p in labels_before} == labels_before  # the input labels untouched
