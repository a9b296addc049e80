"""The label_scores.csv contract: columns, cells, the one ranking rule, atomic writes, the reader, the summary."""

from __future__ import annotations

import math

import pytest

from monai_noisylabel import handlers
from monai_noisylabel.handlers import label_scores as handlers_label_scores
from monai_noisylabel.label_scores import (
    LABEL_SCORES_COLUMNS,
    rank_key,
    read_label_scores,
    readable_summary,
    summarize_label_scores,
    write_label_scores,
)


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


def test_the_handlers_names_are_the_contract_module_names():
    for name in handlers_label_scores.__all__:
        assert getattr(handlers_label_scores, name) is getattr(handlers, name)
    assert handlers.write_label_scores is write_label_scores and handlers.read_label_scores is read_label_scores


def test_one_ranking_rule_for_written_and_read_rows(tmp_path):
    rows = [
        {"id": "u", "combined": None},
        {"id": "b", "combined": 0.5},
        {"id": "a", "combined": 0.5},
        {"id": "top", "combined": 0.9},
        {"id": "n", "combined": float("nan")},
    ]
    path = write_label_scores(tmp_path / "s.csv", rows)
    written = [r["id"] for r in read_label_scores(path)]
    assert written == ["top", "a", "b", "n", "u"] == [r["id"] for r in sorted(rows, key=rank_key)]
    as_strings = [{"id": r["id"], "combined": "" if r["combined"] is None else str(r["combined"])} for r in rows]
    assert [r["id"] for r in sorted(as_strings, key=rank_key)] == written  # a plain csv.DictReader's cells


def test_summary_counts_flags_and_detection():
    rows = [
        {"id": "a", "loss": 0.9, "combined": 0.9, "flagged": True, "refurbished_label": "r/a.nii.gz"},
        {"id": "b", "loss": 0.8, "combined": 0.2, "flagged": True},
        {"id": "c", "loss": 0.1, "combined": 0.1, "flagged": False},
        {"id": "d", "loss": None, "combined": 0.05, "flagged": False},
    ]
    plain = summarize_label_scores(rows)
    assert plain == {"num_samples": 4, "num_flagged": 2, "num_refurbished": 1}
    s = summarize_label_scores(rows, {"a": True, "b": False, "c": True, "d": False}, history={"val_dice": [[1, 0.5]]})
    assert s["num_corrupted"] == 2 and s["flag_precision"] == 0.5 and s["flag_recall"] == 0.5
    assert s["auroc_combined"] == 0.75 and s["precision_at_k_combined"] == 0.5
    assert "auroc_loss" not in s  # a column with an empty cell is not scored
    assert s["final_val_dice"] == 0.5
    one_class = summarize_label_scores(rows, {"a": True, "b": True})
    assert one_class["num_corrupted"] == 2 and "auroc_combined" not in one_class
    shown = readable_summary(s)
    assert shown["detection AUROC (combined)"] == 0.75 and shown["flagged"] == 2 and shown["final_val_dice"] == 0.5
