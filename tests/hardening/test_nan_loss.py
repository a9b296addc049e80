"""A NaN training loss in a real bundle run (MONAI Label style data, which skip the bundle's data checks) stops
the run before the weights change, naming the sample; ``nan_loss`` is a config value."""

from __future__ import annotations

import numpy as np
import pytest
from monai.bundle import ConfigWorkflow
from test_malformed_inputs import BUNDLES, TINY, _causes

from monai_noisylabel.data import save_nifti
from monai_noisylabel.data.synthetic import make_echo_case


def _entries(root, n, bad=None):
    out = []
    for i in range(n):
        case = make_echo_case(0, i, size=(32, 32))
        image = case["image"].astype(np.float32)
        if i == bad:
            image[:] = np.nan
        out.append({
            "id": f"case{i}",
            "image": str(save_nifti(image, root / f"img{i}.nii.gz")),
            "label": str(save_nifti(case["label"], root / f"lab{i}.nii.gz")),
        })  # fmt: skip
    return out


@pytest.mark.parametrize("action", ["stop", "skip"])
def test_nan_loss_in_the_echo_bundle(tmp_path, action):
    (tmp_path / "data").mkdir()
    train, val = _entries(tmp_path / "data", 8, bad=5), _entries(tmp_path / "data", 2)
    configs = BUNDLES["echo"] / "configs"
    wf = ConfigWorkflow(
        config_file=str(configs / "train.json"),
        meta_file=str(configs / "metadata.json"),
        logging_file=str(configs / "logging.conf"),
        workflow_type="train",
        **{**TINY["echo"], "bundle_root": str(BUNDLES["echo"]), "output_dir": str(tmp_path / "out"),
           "ckpt_dir": str(tmp_path / "models"), "noise_kind": None, "nan_loss": action, "val_interval": 1,
           "train#dataset#data": train, "validate#dataset#data": val},
    )  # fmt: skip
    wf.initialize()
    handler = wf.parser.get_parsed_content("nan_loss_handler")
    assert handler.action == action
    if action == "stop":
        with pytest.raises(RuntimeError) as info:
            wf.run()
        chain = _causes(info.value)
        assert any(c.startswith("FloatingPointError") and "'case5'" in c and "non-finite input" in c for c in chain)
        assert not list((tmp_path / "out").rglob("*.pt"))  # stopped inside epoch 1: no checkpoint of NaN weights
        return
    trainer = wf.parser.get_parsed_content("train#trainer")
    trainer.run()  # the training alone: detection over a NaN image is the detection handlers' concern
    assert [s for s in handler.skipped if "case5" in s["ids"]]
    assert all(np.isfinite(v.float().numpy()).all() for v in trainer.network.state_dict().values())
