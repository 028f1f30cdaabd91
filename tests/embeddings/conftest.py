"""Fixtures shared by the tests of the default model (torch rebuild and ONNX export)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EMBEDDING_TEXTS = Path(__file__).resolve().parent.parent / "data" / "embedding_texts.jsonl"


@pytest.fixture(scope="session")
def texts() -> list[str]:
    """The 174 committed French test texts (questions, passages, edge cases)."""
    lines = EMBEDDING_TEXTS.read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line]
    assert len(rows) >= 150
    return [row["text"] for row in rows]
