"""Shared fixtures: the fake embedder, isolated settings, small corpora."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One model cache for every real-model test and the servers they start: the model is rebuilt
# and exported to ONNX once (≈ 40 s), not once per data dir. Kept between runs (gitignored).
os.environ.setdefault(
    "ESS_ASSISTANT_MODEL_CACHE", str(Path(__file__).resolve().parent.parent / ".test-model-cache")
)

from assistant.calibration import Abstention, Calibration
from assistant.service import Assistant
from assistant.settings import Settings
from corpus.bundled import bundled_corpus_dir
from embeddings.base import register_embedder, unregister_embedder
from tests.fakes import FAKE_MODEL, FakeEmbedder

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"


@pytest.fixture
def fake_embedder() -> Iterator[FakeEmbedder]:
    embedder = FakeEmbedder()
    register_embedder(FAKE_MODEL, lambda: embedder)
    yield embedder
    unregister_embedder(FAKE_MODEL)


@pytest.fixture
def corpus_copy(tmp_path: Path) -> Path:
    """A writable copy of the bundled corpus."""
    target = tmp_path / "corpus"
    shutil.copytree(bundled_corpus_dir(), target)
    return target


@pytest.fixture
def fake_calibration(tmp_path: Path) -> Path:
    """A calibration for the fake model that never abstains: logic tests see answers (tests of
    abstention give their own rule)."""
    path = tmp_path / "fake-calibration.json"
    Calibration(model=FAKE_MODEL, abstention=Abstention.constant("answered")).save(path)
    return path


@pytest.fixture
def fake_settings(
    tmp_path: Path, corpus_copy: Path, fake_embedder: FakeEmbedder, fake_calibration: Path
) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        corpus_dir=corpus_copy,
        model=FAKE_MODEL,
        calibration=fake_calibration,
    )


@pytest.fixture
def fake_assistant(fake_settings: Settings, fake_embedder: FakeEmbedder) -> Assistant:
    assistant = Assistant(fake_settings, embedder=fake_embedder)
    assistant.build()
    return assistant


@pytest.fixture(scope="session")
def real_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir shared by the real-model tests (the model is rebuilt into it once)."""
    return tmp_path_factory.mktemp("real-data")


@pytest.fixture(scope="session")
def real_assistant(real_data_dir: Path) -> Assistant:
    """The assistant with the real default model on the bundled corpus (built once)."""
    assistant = Assistant(Settings.from_env(data_dir=real_data_dir))
    assistant.ensure_index()
    return assistant


@pytest.fixture(scope="session")
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """No hub and an empty Hugging Face cache for the whole session (the tests of the model
    rebuild and of its ONNX export check that nothing lands in it)."""
    hf_home = tmp_path_factory.mktemp("hf-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HOME", str(hf_home))
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield hf_home
