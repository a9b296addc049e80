from __future__ import annotations

import hashlib
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from monai_noisylabel.data import (
    generate_dataset,
    generate_echo_dataset,
    generate_knee_dataset,
    generate_lus_dataset,
    make_echo_case,
    make_knee_case,
    make_lus_case,
)


def _tree_hashes(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "gen, kwargs",
    [
        (generate_echo_dataset, {"size": (48, 48)}),
        (generate_knee_dataset, {"size": (24, 24, 24)}),
        (generate_lus_dataset, {"size": (48, 48)}),
    ],
)
def test_same_seed_same_bytes(tmp_path, gen, kwargs, global_rng_guard):
    a = gen(tmp_path / "a", num=6, seed=3, **kwargs)
    b = gen(tmp_path / "b", num=6, seed=3, **kwargs)
    c = gen(tmp_path / "c", num=6, seed=4, **kwargs)
    assert _tree_hashes(a.parent) == _tree_hashes(b.parent)
    assert _tree_hashes(a.parent) != _tree_hashes(c.parent)


def test_prefix_independent_of_num():
    a = make_echo_case(7, 3, (32, 32))
    assert np.array_equal(a["image"], make_echo_case(7, 3, (32, 32))["image"])
    assert not np.array_equal(a["image"], make_echo_case(7, 4, (32, 32))["image"])


def test_echo_case_contents():
    ed, es = make_echo_case(0, 0), make_echo_case(0, 1)
    assert ed["image"].shape == (256, 256) and ed["image"].dtype == np.uint8
    assert set(np.unique(ed["label"])) == {0, 1, 2, 3}
    assert (ed["patient"], ed["phase"], es["phase"]) == ("patient0000", "ED", "ES")
    # ES: smaller cavity, same patient.
    assert (es["label"] == 1).sum() < (ed["label"] == 1).sum()
    # Blood is dark and muscle bright; the sector leaves the top corners empty.
    img, lab = ed["image"].astype(float), ed["label"]
    assert img[lab == 2].mean() > 2 * img[lab == 1].mean()
    assert img[:20, :20].max() == 0 and lab[:20, :20].max() == 0


def test_echo_speckle_is_rayleigh_like():
    img, lab = make_echo_case(0, 0)["image"].astype(float), make_echo_case(0, 0)["label"]
    myo = img[lab == 2]
    # Multiplicative speckle: wide spread relative to the mean (a plain smooth image would have ~0).
    assert myo.std() / myo.mean() > 0.25


def test_knee_case_contents():
    case = make_knee_case(1, 2, size=(32, 32, 32), num_raters=4)
    assert case["image"].shape == (32, 32, 32) and case["image"].dtype == np.float32
    assert len(case["raters"]) == 4
    truth, bone = case["truth"].astype(bool), case["bone"].astype(bool)
    assert truth.any() and not (truth & ~bone).any()  # lesions lie in bone
    assert case["image"][truth].mean() > case["image"][bone & ~truth].mean()  # and are bright
    raters = np.stack(case["raters"]).astype(bool)
    assert not all(np.array_equal(raters[0], r) for r in raters[1:])  # raters disagree
    assert raters[0].sum() >= np.median(raters.sum(axis=(1, 2, 3)))  # rater 0 over-segments
    assert set(np.unique(case["consensus"])) <= {0, 1}


def test_lus_case_contents():
    cases = [make_lus_case(0, i, size=(64, 64)) for i in range(12)]
    for c in cases:
        assert c["confidence"].shape == (64, 64, 4)
        assert 0.0 <= c["confidence"].min() and c["confidence"].max() <= 1.0
        assert set(np.unique(c["truth"])) <= {0, 1, 2, 3, 4}
        assert 90 <= c["sf_ratio"] <= 480 and c["sf_change"] in (0, 1) and c["readmission_30d"] in (0, 1)
    # Clinical targets follow severity: more severe frames have lower S/F on average.
    sev = np.array([c["severity"] for c in cases])
    sf = np.array([c["sf_ratio"] for c in cases])
    assert np.corrcoef(sev, sf)[0, 1] < -0.3


def test_datalist_layout(tmp_path):
    path = generate_dataset("echo", tmp_path, num=10, seed=0, size=(32, 32))
    data = json.loads(path.read_text())
    entries = data["training"] + data["validation"] + data["test"]
    assert len(entries) == 10 and len({e["id"] for e in entries}) == 10
    assert data["validation"] and data["test"]
    for split in ("training", "validation", "test"):  # both frames of a patient stay together
        others = {e["patient"] for s in ("training", "validation", "test") if s != split for e in data[s]}
        assert not {e["patient"] for e in data[split]} & others
    img = nib.load(tmp_path / entries[0]["image"])
    assert img.shape == (32, 32) and np.allclose(np.diag(img.affine)[:2], 2.4)


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="'num' parameter of generate_echo_dataset must be an int >= 1. Got 0"):
        generate_echo_dataset(tmp_path, num=0)
    with pytest.raises(ValueError, match="'kind' parameter of generate_dataset"):
        generate_dataset("heart", tmp_path)
    with pytest.raises(ValueError, match="val_frac"):
        generate_echo_dataset(tmp_path, num=4, val_frac=0.6, test_frac=0.5)


@pytest.mark.slow
def test_unet_learns_echo_phantom():
    """A small U-Net trained for a few epochs on CPU clearly beats chance on held-out phantoms."""
    from monai.losses import DiceCELoss
    from monai.metrics import DiceMetric
    from monai.networks.nets import UNet
    from monai.networks.utils import one_hot

    size = (64, 64)
    cases = [make_echo_case(11, i, size) for i in range(48)]
    x = torch.from_numpy(np.stack([c["image"] for c in cases])[:, None].astype(np.float32) / 255.0)
    y = torch.from_numpy(np.stack([c["label"] for c in cases])[:, None].astype(np.int64))
    xt, yt, xv, yv = x[:40], y[:40], x[40:], y[40:]
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = UNet(2, 1, 4, channels=(16, 32, 64), strides=(2, 2), num_res_units=1)
        order = torch.randperm(40)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    for _ in range(25):
        net.train()
        for i in range(0, 40, 8):
            idx = order[i : i + 8]
            opt.zero_grad()
            loss_fn(net(xt[idx]), yt[idx]).backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        pred = net(xv).argmax(1, keepdim=True)
    dice = DiceMetric(include_background=False, reduction="mean_batch")(one_hot(pred, 4), one_hot(yv, 4)).mean()
    assert float(dice) > 0.6, f"mean foreground Dice {float(dice):.3f}"
