"""Refurbishment on synthetic echo data: systematic LV dilation, simulated model outputs, oracle flags."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import corrupt_dilate_lv, dice_fg, simulated_probs
from monai.data import CacheDataset
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, RandFlipd

from monai_noisylabel.data.io import save_nifti
from monai_noisylabel.data.synthetic import generate_echo_dataset
from monai_noisylabel.refurbish import (
    ApplyStoredLabeld,
    LabelStore,
    build_pseudo_labels,
    check_store_not_cached,
    lcm_soft_target,
    read_refurbish_manifest,
    write_refurbished_label,
)


def test_pseudo_labels_close_most_of_the_dice_gap(echo_noisy, global_rng_guard):
    clean = np.stack([c for c, _, _ in echo_noisy])
    noisy = np.stack([n for _, n, _ in echo_noisy])[:, None]
    probs = np.stack([p for _, _, p in echo_noisy])
    gated = build_pseudo_labels(probs, noisy, delta=0.5)
    ungated = build_pseudo_labels(probs, noisy, delta=0.0)
    for i in range(len(echo_noisy)):
        d_noisy = dice_fg(noisy[i, 0], clean[i])
        d_gated = dice_fg(gated.labels[i, 0], clean[i])
        assert d_noisy < 0.6  # the corruption is severe at 64x64 (small structures)
        assert d_gated > 0.85
        assert (d_gated - d_noisy) / (1 - d_noisy) > 0.7  # most of the gap to the clean label recovered
        assert dice_fg(ungated.labels[i, 0], clean[i]) > 0.97
        assert 0.02 < gated.fraction_changed[i] < 0.2
    assert gated.refurbished.all()


def _sha_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.nii.gz"))
    }


@pytest.mark.dataset_edits  # writes the noisy labels into the generated tree
def test_oracle_refurbishment_through_a_cached_dataset(tmp_path, global_rng_guard):
    root = generate_echo_dataset(tmp_path / "data", num=6, seed=2, size=(32, 32)).parent
    dl = json.loads((root / "datalist.json").read_text())
    entries = [e for split in ("training", "validation", "test") for e in dl[split]]
    clean = {
        e["id"]: np.asarray(LoadImaged("label", image_only=True)({"label": str(root / e["label"])})["label"])
        for e in entries
    }
    flagged = {e["id"] for e in entries[::2]}  # 50% systematically corrupted; oracle flags
    data = []
    for e in entries:
        label = str(root / e["label"])
        if e["id"] in flagged:
            label = str(root / "noisy" / f"{e['id']}.nii.gz")
            save_nifti(
                corrupt_dilate_lv(clean[e["id"]].astype(np.uint8), filter_size=5), label, np.diag([2.4, 2.4, 1, 1])
            )
        data.append({"id": e["id"], "image": str(root / e["image"]), "label": label})
    hashes_before = _sha_tree(root)

    store = LabelStore()
    pipeline = Compose(
        [
            LoadImaged(("image", "label"), image_only=True),
            EnsureChannelFirstd(("image", "label")),
            ApplyStoredLabeld("label", store=store),
            RandFlipd(("image", "label"), prob=0.0),
        ]
    )
    ds = CacheDataset(data, pipeline, progress=False)
    assert check_store_not_cached(ds) == 1
    before = {
        item["id"]: dice_fg(item["label"][0].numpy(), clean[item["id"]]) for item in (ds[i] for i in range(len(ds)))
    }

    out = tmp_path / "run"
    for i in range(len(ds)):
        item = ds[i]
        if item["id"] not in flagged:
            continue
        probs = simulated_probs(clean[item["id"]].astype(np.int64), seed=i, sigma=0.7)[None]  # stands in for the model
        res = build_pseudo_labels(torch.as_tensor(probs), item["label"][None], delta=0.4)
        assert res.refurbished[0]
        store.put(
            item["id"], res.labels[0], epoch=1, score=1.0, meta={"fraction_changed": float(res.fraction_changed[0])}
        )
        write_refurbished_label(
            res.labels[0], out, item["id"], epoch=1, score=1.0, fraction_changed=float(res.fraction_changed[0])
        )

    after = {
        item["id"]: dice_fg(item["label"][0].numpy(), clean[item["id"]]) for item in (ds[i] for i in range(len(ds)))
    }
    noisy_before = np.mean([before[k] for k in flagged])
    noisy_after = np.mean([after[k] for k in flagged])
    assert noisy_after > noisy_before + 0.2 and noisy_after > 0.85
    assert all(after[k] == before[k] for k in before if k not in flagged)  # clean samples untouched

    rows = read_refurbish_manifest(out)
    assert sorted(r["id"] for r in rows) == sorted(flagged)
    assert all(r["original_path"].endswith(f"noisy/{r['id']}.nii.gz") for r in rows)
    assert _sha_tree(root) == hashes_before  # no original (or noisy input) label file was written

    # resume: a fresh store loaded from a checkpoint gives the same training labels
    buf = io.BytesIO()
    torch.save({"store": store.state_dict()}, buf)
    buf.seek(0)
    resumed = LabelStore()
    resumed.load_state_dict(torch.load(buf, weights_only=True)["store"])
    ds2 = CacheDataset(
        data, Compose([*pipeline.transforms[:2], ApplyStoredLabeld("label", store=resumed)]), progress=False
    )
    for i in range(len(ds)):
        assert torch.equal(ds2[i]["label"].as_tensor(), ds[i]["label"].as_tensor())


def test_lcm_soft_targets_follow_the_model_on_suspect_samples(echo_noisy):
    clean = np.stack([c for c, _, _ in echo_noisy])
    noisy = torch.as_tensor(np.stack([n for _, n, _ in echo_noisy])[:, None])
    probs = torch.as_tensor(np.stack([p for _, _, p in echo_noisy]))
    suspect = lcm_soft_target(noisy, probs, [0.1, 0.1, 0.1])  # P(clean) low: mostly the prediction
    trusted = lcm_soft_target(noisy, probs, [0.9, 0.9, 0.9])  # P(clean) high: the given label wins
    for i in range(len(echo_noisy)):
        assert dice_fg(suspect[i].argmax(0).numpy(), clean[i]) > 0.95
        assert torch.equal(trusted[i].argmax(0), noisy[i, 0])
        assert float(suspect[i].max(0).values.mean()) > float(probs[i].max(0).values.mean())  # sharpened
