"""visualize: the three figures, suspects_from_scores and the HTML report."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.image import imread
from monai.data import MetaTensor

from monai_noisylabel.data import save_nifti
from monai_noisylabel.handlers import read_label_scores, write_label_scores
from monai_noisylabel.visualize import (
    plot_score_histograms,
    plot_suspects,
    plot_training_curves,
    suspects_from_scores,
    write_report,
)
from monai_noisylabel.visualize.plots import _prepare

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path):
    """(width, height) of a valid PNG file."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    h, w = imread(path).shape[:2]
    return w, h


def square_label(shape, lo=3, hi=9, value=1):
    label = np.zeros(shape, np.int64)
    label[lo:hi, lo:hi] = value
    return label


def make_rows(n=6):
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": f"case_{i}",
                "vog": None,
                "loss": 0.1 * i,
                "gmm_noisy_prob": math.inf if i == 0 else i / n,
                "offset": None,
                "combined": i / (n - 1),
                "flagged": i >= n - 2,
                "refurbished_label": "",
            }
        )
    return rows


# ------------------------------------------------------------------------------------------ histograms
def test_score_histograms_one_subplot_per_column_with_data(tmp_path):
    rows = make_rows()
    w1, h1 = png_size(plot_score_histograms(rows, tmp_path / "a.png", columns=("loss", "vog")))
    w3, h3 = png_size(plot_score_histograms(rows, tmp_path / "sub" / "b.png", is_corrupted={"case_5": True}))
    assert (w1, h1) == (360, 300)  # vog has no value: one subplot
    assert (w3, h3) == (3 * 360, 300)  # loss, gmm_noisy_prob (inf dropped), combined


def test_score_histograms_errors(tmp_path):
    with pytest.raises(ValueError, match="'rows' parameter of plot_score_histograms"):
        plot_score_histograms([{"id": "a", "loss": math.inf, "vog": None}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'rows' parameter"):
        plot_score_histograms([{"loss": 1.0}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'columns' parameter"):
        plot_score_histograms(make_rows(), tmp_path / "x.png", columns=())
    with pytest.raises(ValueError, match="'is_corrupted' parameter"):
        plot_score_histograms(make_rows(), tmp_path / "x.png", is_corrupted=["case_1"])
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------------------------- training curves
def test_training_curves_numbers_and_pairs(tmp_path):
    history = {"train_loss": [1.0, 0.7, 0.5, 0.4], "val_mean_dice": [(2, 0.6), (4, 0.8)], "empty": []}
    assert png_size(plot_training_curves(history, tmp_path / "c.png")) == (900, 320)
    assert png_size(plot_training_curves({"loss": torch.tensor([1.0, 0.5])}, tmp_path / "d.png")) == (450, 320)


def test_training_curves_errors(tmp_path):
    with pytest.raises(ValueError, match="'history' parameter"):
        plot_training_curves({}, tmp_path / "c.png")
    with pytest.raises(ValueError, match="'history' parameter"):
        plot_training_curves([1.0, 2.0], tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"history\['loss'\]"):
        plot_training_curves({"loss": [(1, 2, 3)]}, tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"history\['loss'\]"):
        plot_training_curves({"loss": "abc"}, tmp_path / "c.png")


# -------------------------------------------------------------------------------------------- suspects
def test_suspects_numpy_torch_metatensor_and_refurbished_column(tmp_path):
    rng = np.random.default_rng(0)
    label = square_label((16, 16))
    suspects = [
        {"id": "np", "image": rng.random((16, 16)), "label": label, "prediction": np.roll(label, 2, 0), "score": 0.9},
        {
            "id": "torch",
            "image": torch.rand(1, 16, 16),
            "label": torch.as_tensor(label[None] * 2),
            "refurbished": MetaTensor(torch.as_tensor(label[None])),
            "corrupted": False,
        },
    ]
    assert png_size(plot_suspects(suspects, tmp_path / "s.png")) == (3 * 280, 2 * 290)
    # only the drawn suspects decide the columns: the first one has no refurbished label
    assert png_size(plot_suspects(suspects, tmp_path / "t.png", max_rows=1)) == (2 * 280, 290)
    assert png_size(plot_suspects(suspects[1:2], tmp_path / "u.png", num_classes=4)) == (2 * 280, 290)


def test_suspects_3d_shows_slice_with_most_foreground(tmp_path):
    image = np.random.default_rng(1).random((1, 12, 12, 8)).astype(np.float32)
    label = np.zeros((1, 12, 12, 8), np.int64)
    label[0, 2:8, 2:8, 5] = 1
    label[0, 4:6, 4:6, 2] = 2
    prepared = _prepare("plot_suspects", 0, {"id": "vol", "image": image, "label": label}, ["label"])
    assert "slice 5/8" in prepared["title"] and prepared["image"].shape == (12, 12)
    np.testing.assert_array_equal(prepared["maps"]["label"], label[0, ..., 5])
    empty = _prepare("plot_suspects", 0, {"id": "e", "image": image[0], "label": np.zeros((12, 12, 8))}, ["label"])
    assert "slice 4/8" in empty["title"]
    suspect = {"id": "vol", "image": torch.as_tensor(image), "label": label, "prediction": label, "score": 0.5}
    assert png_size(plot_suspects([suspect], tmp_path / "v.png")) == (2 * 280, 290)


def test_suspects_volume_with_a_trailing_singleton_axis():
    """A (H, W, D, 1) NIfTI volume, as some converters write them, is shown like its (H, W, D) self."""
    image = np.random.default_rng(2).random((12, 10, 6, 1)).astype(np.float32)
    label = np.zeros((12, 10, 6), np.int64)
    label[2:6, 3:7, 4] = 1
    prepared = _prepare("plot_suspects", 0, {"id": "vol4d", "image": image, "label": label}, ["label"])
    assert "slice 4/6" in prepared["title"] and prepared["image"].shape == (12, 10)
    np.testing.assert_array_equal(prepared["image"], image[..., 4, 0])


def test_suspects_errors_name_key_and_id(tmp_path):
    image, label = np.zeros((8, 8)), np.zeros((8, 8), np.int64)
    with pytest.raises(ValueError, match=r"prediction.*'bad_case'"):
        plot_suspects(
            [{"id": "bad_case", "image": image, "label": label, "prediction": np.zeros((8, 9))}], tmp_path / "x.png"
        )
    with pytest.raises(ValueError, match=r"label.*'c2'"):
        plot_suspects([{"id": "c2", "image": image, "label": np.zeros((4, 4))}], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"label.*'c3'"):
        plot_suspects([{"id": "c3", "image": image, "label": label - 1}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'suspects' parameter"):
        plot_suspects([], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'num_classes' parameter"):
        plot_suspects([{"id": "c4", "image": image, "label": label + 3}], tmp_path / "x.png", num_classes=2)
    with pytest.raises(ValueError, match=r"score.*'c6'"):
        plot_suspects([{"id": "c6", "image": image, "label": label, "score": "high"}], tmp_path / "x.png")
    with pytest.raises(ValueError, match="'max_rows' parameter"):
        plot_suspects([{"id": "c5", "image": image, "label": label}], tmp_path / "x.png", max_rows=0)
    assert not (tmp_path / "x.png").exists()


def test_suspects_from_scores_loads_top_rows(tmp_path):
    rows = make_rows(4)
    for i, row in enumerate(rows):
        row["image"] = str(save_nifti(np.full((8, 8), i, np.float32), tmp_path / f"img{i}.nii.gz"))
        row["label"] = str(save_nifti(square_label((8, 8), 2, 5).astype(np.uint8), tmp_path / f"lab{i}.nii"))
    rows[3]["refurbished_label"] = rows[3]["label"]
    rows[2]["refurbished_label"] = "store"
    suspects = suspects_from_scores(rows, top_k=2)
    assert [s["id"] for s in suspects] == ["case_3", "case_2"]
    assert suspects[0]["image"].shape == (8, 8) and float(suspects[0]["image"].mean()) == 3.0
    assert "refurbished" in suspects[0] and "refurbished" not in suspects[1]
    calls = []
    loaded = suspects_from_scores(rows, top_k=1, loader=lambda p: calls.append(p) or np.zeros((8, 8)))
    assert len(loaded) == 1 and len(calls) == 3
    rows[3]["label"] = str(tmp_path / "gone.nii.gz")
    with pytest.raises(ValueError, match="gone.nii.gz"):
        suspects_from_scores(rows, top_k=1)
    with pytest.raises(ValueError, match="'loader' parameter"):
        suspects_from_scores(rows, loader="nibabel")


# ---------------------------------------------------------------------------------------------- report
def test_write_report_html_images_escaping_and_rewrite(tmp_path):
    rows = make_rows()
    rows[-1]["id"] = "<script>alert(1)</script>"
    write_label_scores(tmp_path / "label_scores.csv", rows)
    label = square_label((10, 10))
    suspects = [{"id": rows[-1]["id"], "image": np.ones((10, 10)), "label": label, "score": 1.0}]
    index = write_report(
        tmp_path,
        history={"train_loss": [1.0, 0.5], "val_dice": [0.5, 0.7]},
        suspects=suspects,
        is_corrupted={"case_4": True, "case_0": False},
        summary={"detection AUROC": 0.875, "note <b>": "a & b"},
        top_k=3,
    )
    assert index == tmp_path / "report" / "index.html"
    text = index.read_text()
    pngs = sorted(p.name for p in index.parent.glob("*.png"))
    assert pngs == ["score_histograms.png", "suspects.png", "training_curves.png"]
    assert all(f'src="{name}"' in text for name in pngs)
    assert "<script" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "case_4" in text and "case_3" in text and "case_0" not in text  # top 3 by combined
    assert "0.875" in text and "note &lt;b&gt;" in text and "a &amp; b" in text and "0.800" in text
    assert "http" not in text.replace("http-equiv", "")
    assert not list(index.parent.glob(".*.tmp"))

    again = write_report(tmp_path, rows=read_label_scores(tmp_path / "label_scores.csv"), top_k=2)
    text = again.read_text()
    assert sorted(p.name for p in again.parent.glob("*.png")) == ["score_histograms.png"]
    assert "training_curves.png" not in text and "suspects.png" not in text and "case_3" not in text


def test_write_report_without_inputs_and_errors(tmp_path):
    index = write_report(tmp_path, title="Run <1>")
    assert "Run &lt;1&gt;" in index.read_text() and not list(index.parent.glob("*.png"))
    with pytest.raises(ValueError, match="'top_k' parameter"):
        write_report(tmp_path, rows=make_rows(), top_k=0)
    with pytest.raises(ValueError, match="'summary' parameter"):
        write_report(tmp_path, summary=[("auroc", 1.0)])
    with pytest.raises(ValueError, match="'rows' parameter"):
        write_report(tmp_path, rows="label_scores.csv")


@pytest.mark.slow
def test_import_package_without_matplotlib():
    # MONAI itself imports matplotlib when it is installed, so block it: the package must import without it
    # and must not import the visualize subpackage.
    code = (
        "import sys; sys.modules['matplotlib'] = None; import monai_noisylabel; "
        "assert 'monai_noisylabel.visualize' not in sys.modules; "
        "assert not any(m.startswith('matplotlib.') for m in sys.modules)"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
