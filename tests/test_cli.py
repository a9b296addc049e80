from __future__ import annotations

import json
import subprocess
import sys

from monai_noisylabel.cli import main


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


def test_make_data_bad_size(tmp_path, capsys):
    assert main(["make-data", "knee", "--out", str(tmp_path), "--size", "32,32", "--quiet"]) == 2
    assert "needs 3 values" in capsys.readouterr().err


def test_make_data_bad_num(tmp_path, capsys):
    assert main(["make-data", "echo", "--out", str(tmp_path), "--num", "0", "--quiet"]) == 2
    assert "'num' parameter" in capsys.readouterr().err
