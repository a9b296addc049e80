"""The LUS bundle's label transforms, loss and data checks."""

from __future__ import annotations

import pytest
import torch
from monai.transforms import Compose

from monai_noisylabel.bundle import lus_label_transforms, lus_loss, prepare_lus_data
from monai_noisylabel.bundle.lus import ConfidenceWeightedDiceCELoss


def _confidence():
    c = torch.zeros(4, 2, 3)
    c[0, 0, 0] = 0.65  # pleural line, above 0.6
    c[2, 0, 1] = 0.55  # B-line in [0.5, 0.6): in at 0.5, ignored in the band, out at 0.6
    c[3, 1, 2] = 0.9
    return c


@pytest.mark.parametrize(
    ("mode", "threshold", "expected"),
    [
        ("hard", 0.6, [[[1, 0, 0], [0, 0, 4]]]),
        ("hard", 0.5, [[[1, 3, 0], [0, 0, 4]]]),
        ("ignore_band", 0.6, [[[1, 255, 0], [0, 0, 4]]]),
    ],
)
def test_hard_labels(mode, threshold, expected):
    out = Compose(lus_label_transforms(mode, threshold=threshold))({"confidence": _confidence()})
    assert out["label"].tolist() == expected and "confidence" not in out


def test_soft_targets_and_scale():
    out = Compose(lus_label_transforms("soft", confidence_scale="0-100"))({"confidence": _confidence() * 100})
    label = out["label"]
    assert label.shape == (5, 2, 3) and torch.allclose(label.sum(0), torch.ones(2, 3))
    assert label[3, 0, 1].item() == pytest.approx(0.55)


def test_losses_learn_signal():
    logits = torch.zeros(2, 5, 4, 4, requires_grad=True)
    hard = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    hard[:, 0, 0, 0] = 255  # ignored
    loss = lus_loss("ignore_band")
    value = loss(logits, hard)
    value.backward()
    assert torch.isfinite(value) and logits.grad is not None
    # the ignored pixel's cross-entropy is left out: a confident wrong logit there costs less than where labelled
    wrong = torch.zeros(2, 5, 4, 4)
    wrong[:, 4, 0, 0] = 20.0
    labelled = hard.clone()
    labelled[:, 0, 0, 0] = 0
    assert loss(wrong, hard) < loss(wrong, labelled)
    soft = torch.softmax(torch.randn(2, 5, 4, 4), 1)
    assert lus_loss("soft")(logits, soft).item() > 0


def test_confidence_weighted_labels_and_loss():
    out = Compose(lus_label_transforms("confidence_weighted", threshold=0.6))({"confidence": _confidence()})
    label = out["label"]
    assert label.shape == (2, 2, 3) and label.dtype == torch.float32
    assert label[0].tolist() == [[1, 0, 0], [0, 0, 4]]  # the class map at the threshold
    assert torch.allclose(label[1], torch.tensor([[0.3, 0.1, 1.0], [1.0, 1.0, 0.8]]))  # |2 m - 1|
    loss = lus_loss("confidence_weighted")
    assert isinstance(loss, ConfidenceWeightedDiceCELoss)
    y = torch.zeros(1, 1, 4, 4)
    y[..., :2, :] = 2
    logits = torch.zeros(1, 5, 4, 4)
    logits[:, 2, :2, :] = 4.0
    logits[:, 1, 0, 0], logits[:, 2, 0, 0] = 8.0, 0.0  # a confident error on one labelled pixel
    full = loss(logits, torch.cat([y, torch.ones_like(y)], 1))
    weight = torch.ones_like(y)
    weight[..., 0, 0] = 0.0  # the expert was unsure there
    down = loss(logits, torch.cat([y, weight], 1))
    assert down < full  # the uncertain pixel's error costs less
    assert torch.isclose(full, lus_loss("hard")(logits, y.long()))  # weight 1 everywhere: the hard-label loss
    with pytest.raises(ValueError, match="'target' parameter of ConfidenceWeightedDiceCELoss"):
        loss(logits, y)


def test_bad_parameters(tmp_path):
    with pytest.raises(ValueError, match="'label_mode' parameter of lus_label_transforms"):
        lus_label_transforms("weighted")
    with pytest.raises(ValueError, match="'band_low' parameter"):
        lus_label_transforms("ignore_band", threshold=0.5, band_low=0.6)
    with pytest.raises(ValueError, match="'confidence_scale' parameter of prepare_lus_data"):
        prepare_lus_data(tmp_path, confidence_scale="0-5")
    with pytest.raises(ValueError, match="'confidence_channel_dim' parameter"):
        prepare_lus_data(tmp_path, confidence_channel_dim=1)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="'dataset_dir' parameter"):
        prepare_lus_data(tmp_path / "junk")


def test_a_saved_label_is_the_confidence_map(tmp_path):
    """MONAI Label trains on ``{"image", "label"}``: a class map is confidence 0/1 per class, a 4-channel map is the
    confidence map itself; both then become targets at the bundle's threshold; bad labels name the file."""
    import numpy as np

    from monai_noisylabel.bundle.lus import LoadLusConfidenced
    from monai_noisylabel.data import save_nifti

    affine = np.diag([0.3, 0.4, 1.0, 1.0])
    classes = np.array([[0, 1, 2], [3, 4, 0]], np.uint8)
    save_nifti(classes, tmp_path / "classes.nii.gz", affine)
    before = (tmp_path / "classes.nii.gz").read_bytes()
    conf = _confidence().permute(1, 2, 0).numpy() * 100  # (H, W, 4) on the 0-100 scale
    save_nifti(conf, tmp_path / "conf.nii.gz", affine)
    load = LoadLusConfidenced(confidence_scale="0-100")
    targets = lus_label_transforms("hard", threshold=0.6, confidence_scale="0-100")
    out = Compose([load, *targets])({"label": str(tmp_path / "classes.nii.gz")})
    assert out["label"].tolist() == [classes.tolist()]  # binary confidences give the class map back
    assert np.allclose(out["label"].affine, affine)
    assert (tmp_path / "classes.nii.gz").read_bytes() == before
    out = Compose([load, *targets])({"label": str(tmp_path / "conf.nii.gz")})
    assert out["label"].tolist() == [[[1, 0, 0], [0, 0, 4]]]  # thresholded at 0.6 as a confidence datalist is
    save_nifti(np.array([[0, 7]], np.uint8), tmp_path / "bad.nii.gz")
    with pytest.raises(ValueError, match=r"bad.nii.gz.*values 0..4.*Got values 0..7"):
        load({"label": str(tmp_path / "bad.nii.gz")})
    save_nifti(np.zeros((2, 3, 2), np.float32), tmp_path / "two.nii.gz")
    with pytest.raises(ValueError, match=r"two.nii.gz.*4 class channels.*Got shape \(2, 3, 2\)"):
        load({"label": str(tmp_path / "two.nii.gz")})
