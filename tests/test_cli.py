from __future__ import annotations

import json
import subprocess
import sys

import pytest

from monai_noisylabel.cli import build_parser, main


def test_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "monai_noisylabel", "--help"], capture_output=True, text=True, check=True
    )
    assert "make-data" in out.stdout and "camus-datalist" in out.stdout
    sub = subprocess.run(
        [sys.executable, "-m", "monai_noisylabel", "make-data", "--help"], capture_output=True, text=True, check=True
    )
    assert "--num" in sub.stdout and "--seed" in sub.stdout


def test_make_data_cli(tmp_path, capsys):
    assert main(["make-data", "lus", "--out", str(tmp_path), "--num", "5", "--size", "32,32", "--quiet"]) == 0
    data = json.loads((tmp_path / "datalist.json").read_text())
    assert sum(len(data[k]) for k in ("training", "validation", "test")) == 5
    assert main(["check-datalist", str(tmp_path / "datalist.json"), "--keys", "image", "confidence", "truth"]) == 0


@pytest.mark.dataset_edits  # deletes a file of the tree make-data wrote
@pytest.mark.parametrize(("kind", "size", "files"), [("lus", "32,32", "confidence"), ("knee", "24,24,24", "raters")])
def test_check_datalist_every_kind(tmp_path, capsys, kind, size, files):
    """Every section and every file key of the datalists make-data writes are checked by default."""
    assert main(["make-data", kind, "--out", str(tmp_path), "--num", "7", "--size", size, "--quiet"]) == 0
    assert main(["check-datalist", str(tmp_path / "datalist.json"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "training:" in out and "validation:" in out and "test:" in out and files in out
    data = json.loads((tmp_path / "datalist.json").read_text())
    missing = data["test"][0][files]
    (tmp_path / (missing[0] if isinstance(missing, list) else missing)).unlink()
    assert main(["check-datalist", str(tmp_path / "datalist.json"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["check-datalist", str(tmp_path / "datalist.json"), "--sections", "nope", "--quiet"]) == 2
    assert "'nope'" in capsys.readouterr().err


def test_help_and_version_do_not_import_monai():
    code = (
        "import sys\n"
        "from monai_noisylabel.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "try:\n    main(['corrupt', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert not any(m == 'monai' or m.startswith(('monai.', 'torch')) for m in sys.modules), sorted(sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "0." in out.stdout and "--kind" in out.stdout
    version = subprocess.run(
        [sys.executable, "-m", "monai_noisylabel", "--version"], capture_output=True, text=True, check=True
    )
    assert version.stdout.startswith("python -m monai_noisylabel ")


def test_make_data_bad_size(tmp_path, capsys):
    assert main(["make-data", "knee", "--out", str(tmp_path), "--size", "32,32", "--quiet"]) == 2
    assert "needs 3 values" in capsys.readouterr().err


def test_make_data_bad_num(tmp_path, capsys):
    assert main(["make-data", "echo", "--out", str(tmp_path), "--num", "0", "--quiet"]) == 2
    assert "'num' parameter" in capsys.readouterr().err


def _run_dir(tmp_path):
    """A run folder: label_scores.csv over 4 small NIfTI cases, case_3 and case_2 the most suspicious."""
    import numpy as np

    from monai_noisylabel.data import save_nifti
    from monai_noisylabel.handlers import write_label_scores

    rows = []
    for i in range(4):
        label = np.zeros((12, 12), np.uint8)
        label[3 : 6 + i, 3:9] = 1
        image = save_nifti(np.full((12, 12), float(i), np.float32), tmp_path / "data" / f"img{i}.nii.gz")
        lab = save_nifti(label, tmp_path / "data" / f"lab{i}.nii.gz")
        rows.append({"id": f"case_{i}", "image": str(image), "label": str(lab), "loss": i / 3, "combined": i / 3})
    write_label_scores(tmp_path / "run" / "label_scores.csv", rows)
    return tmp_path / "run", rows


def test_report_cli(tmp_path, capsys):
    run, rows = _run_dir(tmp_path)
    samples = [{"id": f"case_{i}", "selected": i >= 2, "corrupted": i >= 2, "new": rows[i]["label"]} for i in range(3)]
    samples.append({"id": "renamed", "selected": True, "corrupted": True, "new": rows[3]["label"]})  # matched by path
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"kind": "omission", "samples": samples}))
    args = ["report", str(run), "--top-k", "2", "--corruption-manifest", str(manifest)]
    assert build_parser().parse_args(args).func.__name__ == "_cmd_report"
    assert main(args) == 0
    index = run / "report" / "index.html"
    assert capsys.readouterr().out.strip() == str(index)
    text = index.read_text()
    assert 'detection AUROC (combined)</td><td class="num">1.000' in text and "detection AP (combined)" in text
    assert {p.name for p in index.parent.glob("*.png")} == {"score_histograms.png", "suspects.png"}
    assert "case_3" in text and "case_2" in text and "case_1" not in text


def test_report_cli_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "label_scores.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # no run folder given
        main(["report"])
    assert "RUN_DIR" in capsys.readouterr().err
    run, _ = _run_dir(tmp_path)
    (tmp_path / "data" / "lab3.nii.gz").unlink()
    assert main(["report", "--output-dir", str(run)]) == 2  # the pre-0.2 option name still works
    assert "lab3.nii.gz" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text(json.dumps({"samples": [{"id": "other", "corrupted": True}]}))
    assert main(["report", str(run), "--corruption-manifest", str(tmp_path / "bad.json")]) == 2
    assert "no sample" in capsys.readouterr().err
