"""The label_scores.csv contract: columns, cells, ranking, atomic writes, the reader."""

from __future__ import annotations

import math

import pytest

from monai_noisylabel.handlers import LABEL_SCORES_COLUMNS, read_label_scores, write_label_scores


def test_columns_are_the_design_contract():
    expected = "id,image,label,vog,loss,gmm_noisy_prob,offset,combined,flagged,refurbished_label"
    assert ",".join(LABEL_SCORES_COLUMNS) == expected


def test_cells_ranking_and_round_trip(tmp_path):
    rows = {
        "a": {"image": "img/a.nii.gz", "label": "lab/a.nii.gz", "loss": 0.25, "combined": 0.5, "flagged": False},
        "b": {"vog": float("inf"), "loss": 1.5, "gmm_noisy_prob": 0.9, "combined": 1.0, "flagged": True},
        "c": {"vog": float("nan"), "loss": None, "combined": None, "refurbished_label": "ref/c.nii.gz"},
        "d": {"loss": 0.1, "combined": 0.5, "extra_key": "ignored"},
    }
    path = write_label_scores(tmp_path / "out" / "label_scores.csv", rows)
    lines = path.read_text().splitlines()
    assert lines[0] == ",".join(LABEL_SCORES_COLUMNS)
    # ranked by combined (highest first), ties by id, unscored last
    assert [line.split(",")[0] for line in lines[1:]] == ["b", "a", "d", "c"]
    assert lines[1] == "b,,,inf,1.5,0.9,,1.0,1,"
    assert lines[2] == "a,img/a.nii.gz,lab/a.nii.gz,,0.25,,,0.5,0,"
    assert lines[4] == "c,,,,,,,,,ref/c.nii.gz"  # NaN and None are empty cells; no flag given -> empty
    back = {r["id"]: r for r in read_label_scores(path)}
    assert back["b"]["vog"] == math.inf and back["b"]["flagged"] is True
    assert back["a"]["loss"] == 0.25 and back["a"]["vog"] is None and back["a"]["image"] == "img/a.nii.gz"
    assert back["c"]["combined"] is None
    assert sorted(p.name for p in path.parent.iterdir()) == ["label_scores.csv"]  # no temp file left


def test_rows_as_iterable_and_errors(tmp_path):
    write_label_scores(tmp_path / "s.csv", [{"id": "x", "loss": 1.0}, {"id": 7, "loss": 2.0}])
    assert [r["id"] for r in read_label_scores(tmp_path / "s.csv")] == ["7", "x"]  # no combined: by id
    with pytest.raises(ValueError, match="The 'rows' parameter of write_label_scores must be row dicts that each"):
        write_label_scores(tmp_path / "s.csv", [{"loss": 1.0}])
    with pytest.raises(ValueError, match="must be rows with unique ids. Got 'x' instead"):
        write_label_scores(tmp_path / "s.csv", [{"id": "x"}, {"id": "x"}])
    (tmp_path / "bad.csv").write_text("id,loss\nx,1\n")
    with pytest.raises(ValueError, match="The 'path' parameter of read_label_scores must be a label_scores.csv"):
        read_label_scores(tmp_path / "bad.csv")
