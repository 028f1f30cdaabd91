"""A real `build` process SIGKILLed mid-way leaves the previous index usable, and the next
build succeeds and cleans up the leftovers (see `tests/slow_build.py`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.retrieval import RetrievalParams
from assistant.service import Assistant
from assistant.settings import Settings
from embeddings.store import current_version
from tests.fakes import FAKE_MODEL, FakeEmbedder

REPO = Path(__file__).resolve().parent.parent
PARAMS = RetrievalParams()  # never abstains
NEW = "Le marché des zorglubettes\n\nUne coopérative de zorglubettes vend en circuit court.\n"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")


def _env(settings: Settings, markers: Path, stage: str = "") -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ESS_ASSISTANT_DATA_DIR=str(settings.data_dir),
        ESS_ASSISTANT_CORPUS_DIR=str(settings.corpus_dir),
        ESS_ASSISTANT_MODEL=FAKE_MODEL,
        ESS_TEST_MARKERS=str(markers),
        ESS_TEST_SLOW_STAGE=stage,
        PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    return env


def _run_build(settings: Settings, markers: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.slow_build", "build", *args],
        cwd=REPO,
        env=_env(settings, markers),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _kill_at(settings: Settings, markers: Path, stage: str) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.slow_build", "build", "--full"],
        cwd=REPO,
        env=_env(settings, markers, stage),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while not (markers / stage).exists():
            if proc.poll() is not None:
                raise AssertionError(f"build ended before {stage}: {proc.communicate()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"stage {stage} never reached")
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def _answers_from(settings: Settings, version: str) -> None:
    """A fresh assistant loads `version` and answers from it."""
    assistant = Assistant(settings, embedder=FakeEmbedder())
    index = assistant.index()
    assert index.version == version
    assert "zorglubettes" not in index.resources
    retrieval = assistant.retrieve("financer un projet d'ESS en milieu rural", params=PARAMS)
    assert retrieval.resources
    assistant.ask("Comment financer un projet d'ESS en milieu rural ?")


@pytest.mark.parametrize("stage", ["embed", "fsync", "current"])
def test_killed_build_keeps_the_previous_index(
    fake_settings: Settings, tmp_path: Path, stage: str
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    index_dir = fake_settings.resolved_index_dir

    first = _run_build(fake_settings, markers)
    assert first.returncode == 0, first.stderr
    assert "added 9, changed 0, removed 0, unchanged 0, errors 0" in first.stdout
    previous = current_version(index_dir)
    assert previous is not None

    (fake_settings.corpus_dir / "zorglubettes.txt").write_text(NEW, encoding="utf-8")
    _kill_at(fake_settings, markers, stage)

    assert current_version(index_dir) == previous
    leftovers = list(index_dir.glob(".tmp-*"))
    if stage == "fsync":
        assert leftovers, "the kill should have interrupted the write of a .tmp-* version"
    if stage == "current":
        assert len(list((index_dir / "versions").iterdir())) == 2  # complete but not current
    _answers_from(fake_settings, previous)

    # The next build is not blocked by the dead process's lock, and cleans up.
    after = _run_build(fake_settings, markers)
    assert after.returncode == 0, after.stderr
    assert "added 1, changed 0, removed 0, unchanged 9, errors 0" in after.stdout
    assert not list(index_dir.glob(".tmp-*"))
    new_version = current_version(index_dir)
    assert new_version not in (None, previous)
    assistant = Assistant(fake_settings, embedder=FakeEmbedder())
    assert assistant.index().version == new_version
    top = assistant.retrieve("zorglubettes", params=PARAMS).resources[0].resource
    assert top.id == "zorglubettes"
