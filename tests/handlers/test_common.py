"""The handlers' shared helpers: sample ids of a batch, gathering without DDP, the combined/flagged refresh."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor, list_data_collate

from monai_noisylabel.handlers import _common as C


def _collate(items):
    return list_data_collate(items)


def test_batch_ids_from_id_key_str_and_int():
    batch = _collate([{"image": torch.zeros(1, 2, 2), "id": "a"}, {"image": torch.zeros(1, 2, 2), "id": "b"}])
    assert C.batch_ids(batch, 2, id_key="id", label_key="label", owner="X") == ["a", "b"]
    batch = _collate([{"image": torch.zeros(1, 2, 2), "id": 3}, {"image": torch.zeros(1, 2, 2), "id": 4}])
    assert isinstance(batch["id"], torch.Tensor)
    assert C.batch_ids(batch, 2, id_key="id", label_key="label", owner="X") == ["3", "4"]


def test_batch_ids_fall_back_to_label_meta():
    items = [
        {
            "image": torch.zeros(1, 2, 2),
            "label": MetaTensor(torch.zeros(1, 2, 2), meta={"filename_or_obj": f"l{i}.nii"}),
        }
        for i in range(2)
    ]
    batch = _collate(items)
    assert C.batch_ids(batch, 2, id_key="id", label_key="label", owner="X") == ["l0.nii", "l1.nii"]
    assert C.batch_paths(batch, "label", 2) == ["l0.nii", "l1.nii"]
    assert C.batch_paths(batch, "image", 2) == ["", ""]


def test_batch_ids_errors():
    batch = _collate([{"image": torch.zeros(1, 2, 2), "label": torch.zeros(1, 2, 2)}] * 2)
    with pytest.raises(ValueError, match=r"The 'id_key' parameter of SampleLossHandler must be a key of every batch"):
        C.batch_ids(batch, 2, id_key="id", label_key="label", owner="SampleLossHandler")
    batch = _collate([{"image": torch.zeros(1, 2, 2), "id": "same"}] * 2)
    with pytest.raises(ValueError, match=r"must be a key whose ids are unique .*Got 'same' instead"):
        C.batch_ids(batch, 2, id_key="id", label_key="label", owner="X")
    with pytest.raises(ValueError, match="The 'image_key' parameter of X"):
        C.batch_size_of({"img": torch.zeros(2, 1, 2, 2)}, "image", "X")


def test_gather_records_single_process_dedupes():
    ids, (values, maps) = C.gather_records(["a", "b"], np.array([1.0, 2.0]), np.zeros((2, 3, 3)))
    assert ids == ["a", "b"] and values.tolist() == [1.0, 2.0] and maps.shape == (2, 3, 3)
    ids, (values,) = C.gather_records([], np.zeros(0))
    assert ids == [] and values.shape == (0,)


def test_refresh_combined_default_include_and_flags():
    table = {}
    for i, (vog, loss, gmm) in enumerate([(3.0, 0.1, 0.1), (2.0, 0.9, 0.8), (1.0, 0.5, 0.2)]):
        table[f"s{i}"] = C.new_row(f"s{i}")
        table[f"s{i}"].update(vog=vog, loss=loss, gmm_noisy_prob=gmm)
    table["s2"]["nonfinite"].add("vog")
    C.refresh_combined(table)
    # default: loss (and offset when present) only
    assert [table[k]["combined"] for k in ("s0", "s1", "s2")] == [0.0, 1.0, 0.5]
    assert [table[k]["flagged"] for k in ("s0", "s1", "s2")] == [False, True, True]
    C.refresh_combined(table, {"include": ["vog", "loss"], "gmm_threshold": 0.9})
    assert [table[k]["combined"] for k in ("s0", "s1", "s2")] == [0.5, 0.75, 0.25]
    assert [table[k]["flagged"] for k in ("s0", "s1", "s2")] == [False, False, True]
    table["s2"]["nonfinite"].clear()
    C.refresh_combined(table, {"include": ["vog"], "flag_fraction": 1 / 3})
    assert [table[k]["flagged"] for k in ("s0", "s1", "s2")] == [True, True, False]  # s0: top third; s1: GMM


def _table(loss, offset):
    table = {}
    for i, (a, b) in enumerate(zip(loss, offset)):
        table[f"s{i:03d}"] = C.new_row(f"s{i:03d}")
        table[f"s{i:03d}"].update(loss=float(a), offset=float(b))
    return table


def test_refresh_combined_with_a_reference_flags_only_what_lies_beyond_it():
    rng = np.random.default_rng(0)
    reference = {"loss": rng.gamma(4.0, 0.1, 24), "offset": rng.gamma(2.0, 1.0, 24)}
    # no corrupted label: training scores like the reference's (a bit lower: memorized) -> (almost) nothing flagged
    clean = _table(0.9 * rng.gamma(4.0, 0.1, 160), 0.9 * rng.gamma(2.0, 1.0, 160))
    C.refresh_combined(clean, None, reference)
    assert sum(r["flagged"] for r in clean.values()) <= 3
    # 30 % of the offsets far beyond the reference, the loss unrelated: those are flagged, ranked first
    wrong = np.arange(160) < 48
    table = _table(rng.gamma(4.0, 0.1, 160), rng.gamma(2.0, 1.0, 160) + 12.0 * wrong)
    C.refresh_combined(table, None, reference)
    flagged = np.array([table[f"s{i:03d}"]["flagged"] for i in range(160)])
    assert flagged[wrong].mean() >= 0.8 and not flagged[~wrong].any()
    # the GMM fallback stays available
    C.refresh_combined(table, {"flag_rule": "gmm"}, reference)
    assert not any(r["flagged"] for r in table.values())  # no gmm_noisy_prob column here
