"""The knee bundle's data checks, training target and class-balanced loss."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_noisylabel.bundle import KneeLesionLoss, KneeTargetd, prepare_knee_data
from monai_noisylabel.data import save_nifti


def _case(root: Path, cid: str, *, raters=3, shape=(16, 16, 16), bone=True, rater_shape=None, bone_shape=None):
    rng = np.random.default_rng(len(cid))
    save_nifti(rng.random(shape).astype(np.float32), root / f"{cid}_img.nii.gz")
    entry = {"id": cid, "image": f"{cid}_img.nii.gz", "raters": []}
    for r in range(raters):
        mask = np.zeros(rater_shape or shape, np.uint8)
        mask[4 : 8 + r, 4:8, 4:8] = 1
        save_nifti(mask, root / f"{cid}_r{r}.nii.gz")
        entry["raters"].append(f"{cid}_r{r}.nii.gz")
    if bone:
        save_nifti(np.ones(bone_shape or shape, np.uint8), root / f"{cid}_bone.nii.gz")
        entry["bone"] = f"{cid}_bone.nii.gz"
    return entry


def _datalist(root: Path, training, validation=None) -> Path:
    validation = validation or [_case(root, "val0")]
    path = root / "datalist.json"
    path.write_text(json.dumps({"training": training, "validation": validation}))
    return path


def _digest(root: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.glob("*.nii.gz"))}


def test_user_datalist_any_number_of_raters(tmp_path):
    path = _datalist(tmp_path, [_case(tmp_path, "a", raters=3, bone=False), _case(tmp_path, "b", raters=1)])
    data = prepare_knee_data(tmp_path / "unused", datalist=path)
    assert data["source"] == "datalist" and not (tmp_path / "unused").exists()
    a, b = data["training"]
    assert len(a["raters"]) == 3 and "bone" not in a and len(b["raters"]) == 1 and Path(b["bone"]).is_absolute()


@pytest.mark.parametrize(
    ("case_kwargs", "error", "match"),
    [
        ({"raters": 0}, ValueError, r"entry 0 \(id 'bad'\) needs a non-empty 'raters'"),
        ({"rater_shape": (16, 16, 12)}, ValueError, r"id 'bad'.*spatial shapes differ.*bad_r0"),
        ({"bone_shape": (8, 16, 16)}, ValueError, r"id 'bad'.*spatial shapes differ.*bad_bone"),
    ],
)
def test_bad_cases_fail_before_training(tmp_path, case_kwargs, error, match):
    path = _datalist(tmp_path, [_case(tmp_path, "bad", **case_kwargs)])
    before = _digest(tmp_path)
    with pytest.raises(error, match=match):
        prepare_knee_data(tmp_path / "unused", datalist=path)
    assert _digest(tmp_path) == before  # no input file touched


def test_non_binary_rater_and_missing_file(tmp_path):
    entry = _case(tmp_path, "bad")
    save_nifti(np.full((16, 16, 16), 2, np.uint8), tmp_path / "bad_r1.nii.gz")
    path = _datalist(tmp_path, [entry])
    with pytest.raises(
        ValueError, match=r"id 'bad'.*'raters' file .*bad_r1.nii.gz' must hold 0/1 masks. Got values \[2\]"
    ):
        prepare_knee_data(tmp_path / "unused", datalist=path)
    (tmp_path / "bad_r1.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"id 'bad'.*'raters' file .*bad_r1.nii.gz' does not exist"):
        prepare_knee_data(tmp_path / "unused", datalist=path)


def test_bad_parameters():
    with pytest.raises(ValueError, match="'image_size' parameter of prepare_knee_data"):
        prepare_knee_data("unused", image_size=(32, 32))
    with pytest.raises(ValueError, match="'target' parameter of KneeTargetd must be one of"):
        KneeTargetd(target="majority")
    with pytest.raises(ValueError, match="'fg_weight' parameter of KneeLesionLoss"):
        KneeLesionLoss(fg_weight=0.5)
    with pytest.raises(ValueError, match="'input' parameter of KneeLesionLoss"):
        KneeLesionLoss()(torch.zeros(1, 2, 4, 4, 4), torch.zeros(1, 2, 4, 4, 4))


def _raters():
    x = torch.zeros(3, 8, 8, 8)
    x[:, 2:6, 2:6, 2:6] = 1  # all three agree
    x[0, 1, 2:6, 2:6] = 1  # rater 0 alone
    x[:2, 6, 2:6, 2:6] = 1  # two of three
    return x


def test_target_vote_soft_and_prior():
    x = _raters()
    image = torch.rand(1, 8, 8, 8, generator=torch.Generator().manual_seed(0))
    vote = KneeTargetd(target="vote")({"raters": x, "image": image})["label"]
    assert torch.equal(vote[0], (x.sum(0) >= 2).float()) and torch.equal(vote[1], (x.sum(0) > 0).float())
    soft = KneeTargetd(target="soft")({"raters": x, "image": image})["label"]
    assert torch.allclose(soft[0], x.mean(0))
    bone = torch.zeros(1, 8, 8, 8)
    bone[:, :, :4] = 1
    out = KneeTargetd(target="soft")({"raters": x, "image": image, "bone": bone})
    assert "bone" not in out and float(out["label"][0][bone[0] == 0].max()) == 0.0
    assert float(out["label"][0][bone[0] > 0].max()) > 0
    off = KneeTargetd(target="soft", anatomical_prior=False)({"raters": x, "image": image, "bone": bone})["label"]
    assert torch.allclose(off[0], x.mean(0))


def test_weight_map_from_the_vote_or_the_union():
    x = _raters()
    image = torch.rand(1, 8, 8, 8)
    union = KneeTargetd(target="soft")({"raters": x, "image": image})["label"][1]
    vote = KneeTargetd(target="soft", weight_map="vote")({"raters": x, "image": image})["label"]
    assert torch.equal(vote[1], (x.sum(0) >= 2).float()) and torch.equal(union, (x.sum(0) > 0).float())
    assert vote[1].sum() < union.sum() and torch.allclose(vote[0], x.mean(0))  # the target is unchanged
    with pytest.raises(ValueError, match="'weight_map' parameter of KneeTargetd must be one of"):
        KneeTargetd(weight_map="raters")


def test_target_from_a_plain_label_and_reference():
    mask = torch.zeros(1, 8, 8, 8)
    mask[0, 2:5, 2:5, 2:5] = 1
    out = KneeTargetd(target="soft", reference_key="reference")({"label": mask, "image": torch.rand(1, 8, 8, 8)})
    assert out["label"].shape == (2, 8, 8, 8) and torch.equal(out["label"][0], mask[0])
    assert out["reference_kind"] == "majority vote" and torch.equal(out["reference"], mask)
    truth = torch.zeros(1, 8, 8, 8)
    out = KneeTargetd(reference_key="reference")({"raters": _raters(), "image": torch.rand(1, 8, 8, 8), "truth": truth})
    assert out["reference_kind"] == "truth" and float(out["reference"].sum()) == 0 and "truth" not in out


def test_auto_weight_balances_marked_and_background():
    label = torch.zeros(1, 2, 10, 10, 10)
    label[:, :, :1, :1, :10] = 1  # 10 marked voxels of 1000
    logits = torch.zeros(1, 1, 10, 10, 10, requires_grad=True)
    KneeLesionLoss("bce", dice_weight=0.0)(logits, label).backward()
    g = logits.grad[0, 0]
    # weighted mean: each group carries half the weight, so the gradients' totals are equal and opposite
    assert torch.isclose(g[label[0, 1] > 0].sum(), -g[label[0, 1] == 0].sum(), rtol=1e-4)
    plain = KneeLesionLoss("bce", dice_weight=0.0, fg_weight=1.0)
    logits.grad = None
    plain(logits, label).backward()
    assert abs(float(logits.grad[0, 0][label[0, 1] > 0].sum())) < abs(float(g[label[0, 1] > 0].sum())) / 10


def _fit_lesion(kind: str, **kwargs) -> float:
    """Dice of a tiny net trained on a 0.2 %-sized lesion."""
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 16, 16, 16, generator=gen) * 0.2
    label = torch.zeros(2, 2, 16, 16, 16)
    label[:, :, 7:9, 7:9, 7:9] = 1
    image[label[:, :1] > 0] += 0.8
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 1, 1))
    opt = torch.optim.Adam(net.parameters(), 0.05)
    loss_fn = KneeLesionLoss(kind, **kwargs)
    for _ in range(60):
        opt.zero_grad()
        loss_fn(net(image), label).backward()
        opt.step()
    pred, target = net(image)[:, 0] > 0, label[:, 0] > 0
    assert KneeLesionLoss(kind, reduction="none")(net(image), label).shape == (2,)
    return float(2 * (pred & target).sum() / (pred.sum() + target.sum()).clamp_min(1))


@pytest.mark.parametrize("kind", ["nap", "bce"])
def test_balanced_loss_trains_a_small_lesion(kind):
    """With the default balancing both losses learn the lesion; the plain per-voxel loss collapses to empty."""
    assert _fit_lesion(kind) > 0.8
    assert _fit_lesion(kind, fg_weight=1.0, dice_weight=0.0) < 0.5
