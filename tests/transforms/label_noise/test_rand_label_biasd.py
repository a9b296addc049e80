"""RandLabelBiasd: agrees with RandLabelBias, same change on every key, aliases."""

from __future__ import annotations

import numpy as np
import torch

from monai_noisylabel.transforms.label_noise import RandLabelBias, RandLabelBiasD, RandLabelBiasd, RandLabelBiasDict

from ._label_noise_helpers import echo_label, label_3d


def test_aliases():
    assert RandLabelBiasD is RandLabelBiasd and RandLabelBiasDict is RandLabelBiasd


def test_matches_the_array_transform_on_every_key(global_rng_guard):
    lab = label_3d(14)
    data = {"label": torch.as_tensor(lab), "seg": lab.copy(), "image": lab.astype(np.float32)}
    t = RandLabelBiasd(["label", "seg"], prob=0.7, mode="erode", radius=1).set_random_state(8)
    ref = RandLabelBias(prob=0.7, mode="erode", radius=1).set_random_state(8)
    for _ in range(5):
        out = t(data)
        expected = ref(lab)
        assert np.array_equal(out["label"].numpy(), expected) and np.array_equal(out["seg"], expected)
        assert out["image"] is data["image"]
        assert t.last_record == ref.last_record


def test_fixed_per_sample_by_id():
    t = RandLabelBiasd("label", prob=0.5, fixed_per_sample=True, seed=3)
    lab = echo_label(0)
    first = [t({"label": lab, "id": i})["label"].tobytes() for i in range(8)]
    again = [t({"label": lab, "id": i})["label"].tobytes() for i in range(8)]
    assert first == again and len(set(first)) == 2  # corrupted or not; the same bias when corrupted
