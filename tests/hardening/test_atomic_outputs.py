"""A failure injected in the middle of each output write leaves the old file or the new one, never a truncated one;
a run killed while MONAI's ``CheckpointSaver`` writes a checkpoint resumes from the previous complete one."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from monai_noisylabel.bundle import ResumeFromLatestCheckpoint
from monai_noisylabel.data import write_datalist
from monai_noisylabel.handlers import read_label_scores, write_label_scores
from monai_noisylabel.refurbish import read_refurbish_manifest, write_refurbished_label
from monai_noisylabel.visualize import write_report


class _FailingFile:
    """Wraps the temp file of ``atomic_write_bytes``: the write stores half the payload, then the disk is full."""

    def __init__(self, f):
        self._f = f

    def write(self, payload):
        self._f.write(payload[: len(payload) // 2])
        self._f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def _label(value: int) -> np.ndarray:
    return np.full((1, 6, 6), value, np.uint8)


def _scores(tmp: Path, version: int) -> list[Path]:
    return [write_label_scores(tmp / "label_scores.csv", [{"id": f"s{i}", "loss": version + i} for i in range(50)])]


def _refurbished(tmp: Path, version: int) -> list[Path]:
    path = write_refurbished_label(_label(version), tmp, "case 1", epoch=version, score=0.5)
    return [path, path.parent / "manifest.csv"]


def _report(tmp: Path, version: int) -> list[Path]:
    index = write_report(tmp, rows=[{"id": f"s{i}", "loss": float(version + i)} for i in range(20)], top_k=2)
    return sorted(index.parent.iterdir())  # index.html and its PNGs


def _datalist(tmp: Path, version: int) -> list[Path]:
    return [write_datalist({"training": [{"id": f"s{i}", "v": version} for i in range(50)]}, tmp / "datalist.json")]


WRITERS = {"label_scores.csv": _scores, "refurbished label + manifest": _refurbished, "report": _report,
           "datalist": _datalist}  # fmt: skip


@pytest.mark.parametrize("writer", list(WRITERS))
def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch, writer):
    write = WRITERS[writer]
    paths = write(tmp_path, 1)
    old = {p: p.read_bytes() for p in paths}
    real_fdopen = os.fdopen
    monkeypatch.setattr("monai_noisylabel.utils.os.fdopen", lambda fd, mode: _FailingFile(real_fdopen(fd, mode)))
    with pytest.raises(OSError, match="No space left on device") as info:
        write(tmp_path, 2)
    assert "not written" in str(info.value) and info.value.filename in {str(p) for p in paths}
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in paths} == old  # the old files, whole
    assert not [p for p in tmp_path.rglob(".*.tmp")]  # no temp file left behind
    new = write(tmp_path, 2)  # and the next write goes through
    assert {p: p.read_bytes() for p in new} != old
    if writer == "label_scores.csv":
        assert read_label_scores(new[0])[0]["loss"] == 2.0
    if writer.startswith("refurbished"):
        assert read_refurbish_manifest(tmp_path)[0]["epoch"] == "2"


def test_a_checkpoint_cut_short_is_skipped_on_resume(tmp_path, caplog):
    net = torch.nn.Linear(3, 2)
    torch.save({"model": net.state_dict()}, tmp_path / "checkpoint_epoch=1.pt")
    payload = (tmp_path / "checkpoint_epoch=1.pt").read_bytes()
    (tmp_path / "checkpoint_epoch=2.pt").write_bytes(payload[: len(payload) // 2])  # killed while saving epoch 2
    resume = ResumeFromLatestCheckpoint(tmp_path, {"model": torch.nn.Linear(3, 2)})
    assert resume.latest() == tmp_path / "checkpoint_epoch=1.pt"
    assert "checkpoint_epoch=2.pt: not a complete checkpoint" in caplog.text
    assert (tmp_path / "checkpoint_epoch=2.pt").exists()  # kept, not deleted
    (tmp_path / "checkpoint_epoch=1.pt").unlink()  # nothing complete left: the newest is loaded and fails by name
    assert resume.latest() == tmp_path / "checkpoint_epoch=2.pt"
