"""Keep README.md true: its example runs, and its test command is the one .ci/run calls."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    blocks = _python_blocks((ROOT / "README.md").read_text())
    assert blocks, "README.md has no python example"
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "epoch 1: loss" in out and "last batch corrupted" in out
    assert (tmp_path / "example_data" / "datalist.json").exists()


def test_ci_runs_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/run_tests.sh" in readme and "bash scripts/run_tests.sh" in ci
    assert "bash scripts/run_demo.sh" in readme


@pytest.mark.skipif(os.name != "posix", reason="shell scripts")
def test_scripts_are_executable():
    for name in ("scripts/run_tests.sh", "scripts/run_demo.sh", ".ci/run"):
        assert os.access(ROOT / name, os.X_OK), name
