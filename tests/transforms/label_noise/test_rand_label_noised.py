"""RandLabelNoised: one draw per sample for every key, sample id from the data, provenance key, aliases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_noisylabel.transforms.label_noise import (
    RandLabelNoise,
    RandLabelNoiseD,
    RandLabelNoised,
    RandLabelNoiseDict,
    read_label_noise,
)

from ._label_noise_helpers import echo_label


def test_aliases():
    assert RandLabelNoiseD is RandLabelNoised and RandLabelNoiseDict is RandLabelNoised


def test_one_draw_applied_to_every_key(global_rng_guard):
    lab = echo_label(0)
    t = RandLabelNoised(["label", "label2"]).set_random_state(5)
    out = t({"label": lab, "label2": lab.astype(np.int32)})
    assert np.array_equal(out["label"], out["label2"]) and out["label2"].dtype == np.int32
    ref = RandLabelNoise().set_random_state(5)
    assert np.array_equal(out["label"], ref(lab))
    assert t.last_record == ref.last_record


def test_fixed_per_sample_uses_the_id_key():
    lab = echo_label(1)
    t = RandLabelNoised("label", fixed_per_sample=True, seed=4, id_key="case")
    a = t({"label": lab, "case": "x1"})["label"]
    t.set_random_state(123)  # what MONAI's DataLoader workers do: no effect on fixed draws
    b = t({"label": lab, "case": "x1"})["label"]
    assert np.array_equal(a, b) and t.last_record["sample_id"] == "x1"
    meta = MetaTensor(torch.as_tensor(lab), meta={"filename_or_obj": "x1"})
    c = t({"label": meta})["label"]  # no id entry: the label's file name is the id
    assert np.array_equal(c.numpy(), a)
    with pytest.raises(ValueError, match="fixed_per_sample=True needs a sample id, but the data has no 'case' entry"):
        t({"label": lab})


def test_provenance_postfix_for_plain_arrays_and_chaining():
    lab = echo_label(0)
    t1 = RandLabelNoised("label", provenance_postfix="label_noise").set_random_state(0)
    t2 = RandLabelNoised("label", prob=0.0, provenance_postfix="label_noise")
    out = t2(t1({"label": lab}))
    records = read_label_noise(out)
    assert len(records) == 1 and [r["applied"] for r in records[0]] == [True, False]
    assert isinstance(out["label_label_noise"], str)
    assert "label_label_noise" not in RandLabelNoised("label")({"label": lab})


def test_missing_keys_and_randomize():
    lab = echo_label(0)
    with pytest.raises(KeyError):
        RandLabelNoised("label")({"image": lab})
    out = RandLabelNoised("label", allow_missing_keys=True)({"image": lab})
    assert set(out) == {"image"}
    t = RandLabelNoised("label").set_random_state(2)
    t.randomize({"label": lab})
    a = t({"label": lab}, randomize=False)["label"]
    assert np.array_equal(a, RandLabelNoise().set_random_state(2)(lab))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"id_key": ""}, "The 'id_key' parameter of RandLabelNoised must be a non-empty str. Got '' instead."),
        ({"provenance_postfix": 3}, "The 'provenance_postfix' parameter of RandLabelNoised must be None or a"),
        ({"radius": -1}, "The 'radius' parameter of RandLabelNoise must be an int >= 0. Got -1 instead."),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError) as err:
        RandLabelNoised("label", **kwargs)
    assert message in str(err.value)
