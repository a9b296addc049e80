"""What MONAI Label needs from the echo bundle, checked without MONAI Label (main environment).

MONAI Label's ``BundleTrainTask`` overrides ``train#dataset#data``, ``validate#dataset#data``, ``device``,
``bundle_root`` and ``train#trainer#max_epochs``, and inserts a ``CheckpointLoader`` dict at ``train#handlers[0]``
when ``models/model.pt`` exists; its ``BundleInferTask`` builds ``network_def``, loads ``models/model.pt`` and runs
``preprocessing`` / ``postprocessing`` without ``SaveImaged``, reading keys, labels and dimensions from the metadata.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from ignite.engine import Events
from monai.bundle import ConfigParser, ConfigWorkflow
from monai.transforms import SaveImaged

from monai_noisylabel.data import generate_echo_dataset
from monai_noisylabel.handlers import read_label_scores
from monai_noisylabel.monailabel.app import NoisyLabelApp

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "echo_noisylabel_segmentation"
FAST = {"image_size": [32, 32], "batch_size": 4, "num_workers": 0, "cache_rate": 0.0, "vog_epochs": 1}


def _parser(*files: str) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / f) for f in files])
    return parser


def _network_state(parser: ConfigParser) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in parser.get_parsed_content("network_def").state_dict().items()}


def _monai_label_train(bundle: Path, train: list, val: list, max_epochs: int) -> tuple[ConfigWorkflow, list]:
    """Configure a training exactly as MONAI Label 0.8.5's BundleTrainTask (+ NoisyLabelApp) does."""
    parser = _parser("train.json")
    handlers = parser.get("train#handlers", [])
    model = bundle / "models" / "model.pt"
    if model.exists() and not [h for h in handlers if h.get("_target_") == "CheckpointLoader"]:
        loader = {"_target_": "CheckpointLoader", "load_path": str(model), "load_dict": {"model": "$@network"}}
        handlers.insert(0, {**loader, "strict": False})
    overrides = {
        "bundle_root": str(bundle),
        "train#trainer#max_epochs": max_epochs,
        "train#dataset#data": train,
        "device": "cpu",
        "train#handlers": handlers,
        "validate#dataset#data": val,
        **NoisyLabelApp.TRAIN_OVERRIDES,
        **FAST,
    }
    wf = ConfigWorkflow(
        config_file=str(bundle / "configs" / "train.json"),
        meta_file=str(bundle / "configs" / "metadata.json"),
        workflow_type="train",
        **overrides,
    )
    inserted = copy.deepcopy(handlers)  # the workflow rewrites the list it is given
    wf.initialize()
    return wf, inserted


@pytest.fixture(scope="module")
def labelstore(tmp_path_factory):
    root = tmp_path_factory.mktemp("labelstore")
    full = json.loads(generate_echo_dataset(root / "data", num=10, size=(32, 32)).read_text())

    def plain(section):
        return [
            {"image": str(root / "data" / e["image"]), "label": str(root / "data" / e["label"])} for e in full[section]
        ]

    bundle = root / "bundle"
    shutil.copytree(BUNDLE / "configs", bundle / "configs")
    return bundle, plain("training"), plain("validation")


@pytest.mark.slow
def test_checkpoint_loader_inserted_at_position_0_trains_and_warm_starts(labelstore):
    bundle, train, val = labelstore
    labels_before = {e["label"]: Path(e["label"]).read_bytes() for e in train}
    first, handlers = _monai_label_train(bundle, train, val, max_epochs=1)
    assert handlers[0]["_target_"] == "ValidationHandler"  # no model yet: nothing inserted
    first.run()
    model = bundle / "models" / "model.pt"
    assert model.is_file()  # validated (and saved) within a 1-epoch run

    second, handlers = _monai_label_train(bundle, train, val, max_epochs=1)
    assert handlers[0]["_target_"] == "CheckpointLoader"
    assert handlers[1:] == _parser("train.json").get("train#handlers")  # every other entry shifted by one
    trainer = second.parser.get_parsed_content("train#trainer")
    network = second.parser.get_parsed_content("network")
    saved = torch.load(model, weights_only=True)
    loaded: dict[str, bool] = {}

    def check_loaded(engine):  # runs after the inserted CheckpointLoader (attached first)
        loaded["same"] = all(torch.equal(v, saved[k]) for k, v in network.state_dict().items())

    trainer.add_event_handler(Events.STARTED, check_loaded)
    steps: list[int] = []
    trainer.add_event_handler(Events.ITERATION_COMPLETED, lambda e: steps.append(e.state.iteration))
    second.run()
    assert loaded == {"same": True}
    assert steps  # it trained from that model, it did not resume the first run's finished trainer
    # every named handler still did its job with the shifted list: scores per label, checkpoint of the trainer
    rows = read_label_scores(bundle / "outputs" / "label_scores.csv")
    assert sorted(r["label"] for r in rows) == sorted(e["label"] for e in train)
    ckpt = next((bundle / "outputs" / "checkpoints").glob("*.pt"))
    state = torch.load(ckpt, weights_only=False)
    assert {"model", "optimizer", "trainer", "sample_loss", "refurbish", "progress"} <= set(state)
    assert {e["label"]: Path(e["label"]).read_bytes() for e in train} == labels_before  # labels never written


def test_demo_trains_the_network_inference_serves():
    served = _network_state(_parser("inference.json"))
    assert _network_state(_parser("train.json", "demo_cpu.json")) == served
    assert _network_state(_parser("train.json")) == served


def test_metadata_and_inference_fit_monai_label():
    meta = json.loads((BUNDLE / "configs" / "metadata.json").read_text())
    (image_key, image), (pred_key, pred) = (
        next(iter(meta["network_data_format"][k].items())) for k in ("inputs", "outputs")
    )
    assert (image_key, pred_key) == ("image", "pred") and len(image["spatial_shape"]) == 2  # MONAI Label: 2D
    assert {v.lower() for v in pred["channel_def"].values()} >= {"background", "lv cavity", "myocardium", "left atrium"}
    parser = _parser("inference.json")
    parser["bundle_root"] = str(BUNDLE)
    post = [t for t in parser.get_parsed_content("postprocessing").transforms if not isinstance(t, SaveImaged)]
    data = {"pred": torch.rand(4, 24, 20)}
    for t in post[2:]:  # after softmax + Invertd: argmax, largest component, channel squeeze
        data = t(data)
    assert tuple(data["pred"].shape) == (24, 20)  # a 2D mask without a channel axis
    assert set(np.unique(np.asarray(data["pred"])).tolist()) <= {0, 1, 2, 3}
    train = _parser("train.json")
    assert train.get("validate#dataset#data") is not None and train.get("network") is not None
