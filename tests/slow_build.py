"""`python -m tests.slow_build build …`: the real CLI with the fake embedder, slowed down at one
stage so `tests/test_build_kill.py` can SIGKILL a real build process at a known moment.

`ESS_TEST_SLOW_STAGE`: "embed" (while embedding), "fsync" (while the new version is being
written in its `.tmp-*` folder) or "current" (version complete, `CURRENT` not switched yet).
On reaching the stage the process creates `$ESS_TEST_MARKERS/<stage>` and sleeps.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import embeddings.store as store
from assistant.cli import main
from embeddings.base import register_embedder
from tests.fakes import FAKE_MODEL, FakeEmbedder

STAGE = os.environ.get("ESS_TEST_SLOW_STAGE", "")
PAUSE = 60.0  # the test kills the process long before this


def _reached(stage: str) -> None:
    markers = Path(os.environ["ESS_TEST_MARKERS"])
    (markers / stage).touch()
    time.sleep(PAUSE)


class SlowEmbedder(FakeEmbedder):
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        vectors = super().embed_batch(texts)
        if STAGE == "embed":
            _reached("embed")
        return vectors


def _pause_before(stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _reached(stage)
        return fn(*args, **kwargs)

    return wrapper


if STAGE == "fsync":
    store._fsync_tree = _pause_before("fsync", store._fsync_tree)  # type: ignore[assignment]
elif STAGE == "current":
    store._atomic_write = _pause_before("current", store._atomic_write)  # type: ignore[assignment]

if __name__ == "__main__":
    register_embedder(FAKE_MODEL, SlowEmbedder)
    sys.exit(main(sys.argv[1:]))
