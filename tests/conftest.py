"""Shared fixtures: keep torch to the 2 CI cores and make GPU tests skip cleanly."""

from __future__ import annotations

import functools
import hashlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(min(2, torch.get_num_threads()))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("gpu") is not None:  # not "gpu" in keywords: a checkout folder named gpu
            item.add_marker(skip)


@pytest.fixture
def global_rng_guard():
    """Fail a test that changes the global numpy or torch RNG state."""
    np_state = np.random.get_state()
    torch_state = torch.random.get_rng_state()
    yield
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:], (
        "the global numpy RNG was touched"
    )
    assert torch.equal(torch_state, torch.random.get_rng_state()), "the global torch RNG was touched"


# ------------------------------------------------------------------ dataset trees: nothing in them ever changes
# Every tree the package's generators create during the session (synthetic echo / knee / LUS datasets, also those a
# bundle generates in-process) is hashed file by file when created and again when the session ends; a file changed,
# added or removed in between fails the session, naming the tree, the files and the test that created it. (The
# tests run as root here, so making the trees read-only would not stop a write: the hash check is what counts.)
# A test that edits its own generated tree on purpose is marked ``@pytest.mark.dataset_edits``.
_DATASET_TREES: dict[Path, tuple[dict[str, str], str]] = {}


def _tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _watch_generator(function):
    @functools.wraps(function)
    def generate(out_dir, *args, **kwargs):
        result = function(out_dir, *args, **kwargs)
        root = Path(out_dir).resolve()
        _DATASET_TREES[root] = (_tree_digest(root), os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0])
        return result

    return generate


def _watch_dataset_generators() -> None:
    import monai_noisylabel.data as data_pkg
    from monai_noisylabel.data import synthetic

    for kind, function in list(synthetic._GENERATORS.items()):
        wrapped = _watch_generator(function)
        synthetic._GENERATORS[kind] = wrapped
        for module in (synthetic, data_pkg):
            setattr(module, function.__name__, wrapped)


_watch_dataset_generators()


_TREE_REPORT: list[str] = []
_EDITS_MARKER = "dataset_edits"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        f"{_EDITS_MARKER}: the test edits a dataset tree it generated (to build a malformed input); that tree's "
        "hashes are taken again when the test ends, and from then on nothing may change it",
    )


@pytest.fixture(autouse=True)
def _dataset_edits_baseline(request):
    yield
    if request.node.get_closest_marker(_EDITS_MARKER) is not None:
        for root, (_, creator) in list(_DATASET_TREES.items()):
            if creator == request.node.nodeid and root.is_dir():
                _DATASET_TREES[root] = (_tree_digest(root), creator)


def pytest_sessionfinish(session):
    if not _DATASET_TREES:
        return
    changed = []
    for root, (before, creator) in _DATASET_TREES.items():
        after = _tree_digest(root) if root.is_dir() else {}
        diff = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
        if diff:
            changed.append(f"\n  CHANGED {root} (created by {creator}): {diff[:5]}")
    files = sum(len(before) for before, _ in _DATASET_TREES.values())
    _TREE_REPORT.append(f"dataset trees: {len(_DATASET_TREES)} checked ({files} files), {len(changed)} changed")
    _TREE_REPORT.extend(changed)
    if changed:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if _TREE_REPORT:
        terminalreporter.write_line("".join(_TREE_REPORT))
    proplib = sys.modules.get("_proplib")  # the property tests ran (tests/hardening/_proplib.py): their count
    if proplib is not None and proplib.CASES:
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(proplib.OUTCOMES.items()))
        terminalreporter.write_line(
            f"hypothesis ({proplib.PROFILE} profile): {sum(proplib.CASES.values())} cases over "
            f"{len(proplib.CASES)} functions ({outcomes})"
        )
