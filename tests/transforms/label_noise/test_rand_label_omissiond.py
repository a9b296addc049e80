"""RandLabelOmissiond: agrees with RandLabelOmission, one component choice for every key, aliases."""

from __future__ import annotations

import numpy as np

from monai_noisylabel.transforms.label_noise import (
    RandLabelOmission,
    RandLabelOmissionD,
    RandLabelOmissiond,
    RandLabelOmissionDict,
)

from ._label_noise_helpers import label_3d


def test_aliases():
    assert RandLabelOmissionD is RandLabelOmissiond and RandLabelOmissionDict is RandLabelOmissiond


def test_same_component_dropped_on_every_key(global_rng_guard):
    lab = label_3d(16)
    t = RandLabelOmissiond(["a", "b"], mode="component").set_random_state(1)
    ref = RandLabelOmission(mode="component").set_random_state(1)
    for _ in range(6):
        out = t({"a": lab, "b": lab.astype(np.float32)})
        expected = ref(lab)
        assert np.array_equal(out["a"], expected) and np.array_equal(out["b"], expected.astype(np.float32))
        assert out["b"].dtype == np.float32
        assert t.last_record["params"] == ref.last_record["params"]
