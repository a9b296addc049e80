"""Every bundle config a user reads: references by name, and no long ``$`` one-liners (logic lives in helpers)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "bundles").glob("*/configs/*.json"))
#: ``@train#handlers#4`` and ``train#handlers#4``-style keys: a list position instead of a name
POSITIONAL = re.compile(r"(?:^|@)[\w]+(?:#[\w]+)*#\d+\b")


def _strings(node, where=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{where}#{k}", k
            yield from _strings(v, f"{where}#{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _strings(v, f"{where}[{i}]")
    elif isinstance(node, str):
        yield where, node


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_configs_refer_by_name_and_keep_expressions_short(path):
    assert CONFIGS, "no bundle configs found"
    for where, text in _strings(json.loads(path.read_text())):
        assert not POSITIONAL.search(text), f"{where}: {text}"
        assert not (text.startswith("$") and len(text) > 120), f"{where}: {len(text)} characters"
