"""End to end: synthetic echo, 25 % of training labels systematically corrupted, a short CPU SupervisedTrainer run
with both handlers attached; VoG (checkpoint and online) and the loss find the corrupted labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer
from monai.losses import DiceLoss
from monai.networks.nets import UNet
from monai.transforms.utils_morphological_ops import dilate

from monai_noisylabel.data.synthetic import make_echo_case
from monai_noisylabel.detection import detection_metrics
from monai_noisylabel.handlers import (
    LABEL_SCORES_COLUMNS,
    LabelQualityReportHandler,
    SampleLossHandler,
    VarianceOfGradientsHandler,
    read_label_scores,
)

NUM_TRAIN, NUM_VAL, SIZE, EPOCHS, LV, RADIUS = 64, 16, 64, 12, 1, 6


def _echo_samples(start: int, num: int, corrupted: np.ndarray | None) -> list[dict]:
    """In-memory echo cases; the LV cavity of each corrupted label is dilated by RADIUS px (overwriting the wall)."""
    out = []
    for i in range(start, start + num):
        case = make_echo_case(0, i, size=(SIZE, SIZE))
        label = torch.as_tensor(case["label"].astype(np.int64))[None]
        if corrupted is not None and corrupted[i - start]:
            grown = dilate((label == LV).float()[None], 2 * RADIUS + 1)[0] > 0.5
            label = torch.where(grown, torch.tensor(LV), label)
        image = torch.as_tensor(case["image"], dtype=torch.float32)[None] / 255.0
        out.append({"image": image, "label": label, "id": f"echo{i:03d}"})
    return out


@pytest.mark.slow
def test_echo_systematic_noise(tmp_path):
    rng = np.random.default_rng(0)
    corrupted = np.zeros(NUM_TRAIN, bool)
    corrupted[rng.choice(NUM_TRAIN, NUM_TRAIN // 4, replace=False)] = True
    train, val = _echo_samples(0, NUM_TRAIN, corrupted), _echo_samples(NUM_TRAIN, NUM_VAL, None)
    train_loader = DataLoader(Dataset(train), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    probe_loader = DataLoader(Dataset(train), batch_size=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = UNet(2, 1, 4, channels=(8, 16, 32), strides=(2, 2), num_res_units=1)
    ce = torch.nn.CrossEntropyLoss(reduction="none")
    dice = DiceLoss(to_onehot_y=True, softmax=True, reduction="none")

    def dice_ce_per_sample(logits, labels):
        return ce(logits, labels[:, 0]).flatten(1).mean(1) + dice(logits, labels).flatten(1).mean(1)

    trainer = SupervisedTrainer(
        device=torch.device("cpu"),
        max_epochs=EPOCHS,
        train_data_loader=train_loader,
        network=net,
        optimizer=torch.optim.Adam(net.parameters(), 3e-3),
        loss_function=lambda logits, labels: ce(logits, labels[:, 0]).mean(),
    )
    vog = VarianceOfGradientsHandler(probe_loader)
    online = VarianceOfGradientsHandler(mode="online")
    loss = SampleLossHandler(
        probe_loader, loss_fn=dice_ce_per_sample, reference_loader=DataLoader(Dataset(val), batch_size=16)
    )
    for h in (vog, online, loss, LabelQualityReportHandler(tmp_path)):
        h.attach(trainer)
    trainer.run()

    ids = [s["id"] for s in train]
    scores = loss.scores()
    columns = {
        "vog (checkpoint)": [vog.scores()[i] for i in ids],
        "vog (online)": [online.scores()[i] for i in ids],
        "loss": [scores[i]["loss"] for i in ids],
        "gmm_noisy_prob": [scores[i]["gmm_noisy_prob"] for i in ids],
        "offset": [scores[i]["offset"] for i in ids],
        "combined": [trainer.state.label_scores[i]["combined"] for i in ids],
    }
    auroc = {name: detection_metrics(np.array(v), corrupted)["auroc"] for name, v in columns.items()}
    print("AUROC:", {k: round(v, 3) for k, v in auroc.items()})
    assert auroc["vog (checkpoint)"] > 0.8
    assert auroc["vog (online)"] > 0.8
    assert auroc["loss"] > 0.8

    rows = read_label_scores(tmp_path / "label_scores.csv")
    assert (tmp_path / "label_scores.csv").read_text().splitlines()[0] == ",".join(LABEL_SCORES_COLUMNS)
    assert sorted(r["id"] for r in rows) == sorted(ids)
    assert all(r[c] is not None for r in rows for c in ("vog", "loss", "gmm_noisy_prob", "offset", "combined"))
    flagged = np.array([trainer.state.label_scores[i]["flagged"] for i in ids])
    print("flagged:", int(flagged.sum()), "of which corrupted:", int((flagged & corrupted).sum()))
    # the reference flag rule (default with a reference_loader) flags what lies beyond the clean validation set's
    # scores: (almost) only corrupted labels, and here the half of them whose loss exceeds the clean spread
    assert (flagged & corrupted).sum() >= 0.9 * flagged.sum() and (flagged & corrupted).sum() >= 0.4 * corrupted.sum()
