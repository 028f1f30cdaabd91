"""The ONNX Runtime embedder (fp32 and int8) against the sentence-transformers model.

Tests marked slow rebuild the real default model and export it to ONNX once per session
(about 40 s), then compare on the committed texts of `tests/data/embedding_texts.jsonl`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from corpus.errors import ModelLoadError
from embeddings import onnx_embedder
from embeddings.e5_rebuild import ensure_default_model
from embeddings.loading import DEFAULT_MODEL_NAME
from embeddings.onnx_embedder import (
    MARKER_FILE,
    MODEL_FILES,
    OnnxEmbedder,
    check_onnx_dir,
    ensure_onnx_model,
)
from embeddings.sentence_embedder import SentenceTransformerEmbedder

REPO = Path(__file__).resolve().parents[2]
FP32_MIN_COSINE = 0.9999
INT8_MIN_COSINE = 0.99
LONG_TEXT = " ".join(f"mot{i % 97} économie sociale" for i in range(1700))  # > 5000 tokens


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def onnx_model_cache(offline_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    cache = tmp_path_factory.mktemp("onnx-e5-cache")
    yield cache
    shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def model_dir(onnx_model_cache: Path) -> Path:
    return ensure_default_model(onnx_model_cache)


@pytest.fixture(scope="session")
def onnx_dir(model_dir: Path) -> Path:
    return ensure_onnx_model(model_dir, "int8").parent


@pytest.fixture(scope="session")
def reference(onnx_model_cache: Path, model_dir: Path) -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder(str(model_dir), name=DEFAULT_MODEL_NAME)


@pytest.fixture(scope="session")
def fp32(onnx_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(onnx_dir, name=DEFAULT_MODEL_NAME, precision="fp32", threads=2)


@pytest.fixture(scope="session")
def int8(onnx_dir: Path) -> OnnxEmbedder:
    return OnnxEmbedder(onnx_dir, name=DEFAULT_MODEL_NAME, precision="int8", threads=2)


@pytest.fixture(scope="session")
def reference_vectors(
    reference: SentenceTransformerEmbedder, texts: list[str]
) -> dict[str, np.ndarray]:
    return {"query": reference.embed_queries(texts), "passage": reference.embed_documents(texts)}


def _embed(embedder: OnnxEmbedder, mode: str, texts: list[str]) -> np.ndarray:
    return embedder.embed_queries(texts) if mode == "query" else embedder.embed_documents(texts)


def _worst(ours: np.ndarray, theirs: np.ndarray, texts: list[str]) -> tuple[float, str]:
    cosines = np.sum(ours * theirs, axis=1)
    i = int(np.argmin(cosines))
    return float(cosines[i]), texts[i][:80]


# ---------------------------------------------------------------------- without the model


def test_missing_export_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no complete ONNX export"):
        OnnxEmbedder(tmp_path, name="e5", precision="int8")
    (tmp_path / MARKER_FILE).write_text('{"format": 1, "dimension": 384}', encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"model-int8\.onnx is missing"):
        OnnxEmbedder(tmp_path, name="e5", precision="int8")


def test_unknown_precision_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="precision"):
        OnnxEmbedder(tmp_path, name="e5", precision="fp16")
    with pytest.raises(ValueError, match="precision"):
        ensure_onnx_model(tmp_path, "int4")


def test_export_of_a_non_model_directory_fails_cleanly(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a readable sentence-transformers"):
        onnx_embedder.export_onnx(tmp_path, tmp_path / "onnx")


# ---------------------------------------------------------------------- with the real model


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["query", "passage"])
def test_fp32_matches_sentence_transformers(
    fp32: OnnxEmbedder, reference_vectors: dict[str, np.ndarray], texts: list[str], mode: str
) -> None:
    cosine, text = _worst(_embed(fp32, mode, texts), reference_vectors[mode], texts)
    assert cosine >= FP32_MIN_COSINE, f"cosine {cosine:.6f} for {text!r}"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["query", "passage"])
def test_int8_stays_close_to_fp32(
    int8: OnnxEmbedder, reference_vectors: dict[str, np.ndarray], texts: list[str], mode: str
) -> None:
    cosine, text = _worst(_embed(int8, mode, texts), reference_vectors[mode], texts)
    assert cosine >= INT8_MIN_COSINE, f"cosine {cosine:.5f} for {text!r}"


@pytest.mark.slow
def test_single_and_batched_embeddings_agree(fp32: OnnxEmbedder, texts: list[str]) -> None:
    """Padding inside length-sorted sub-batches does not change a text's vector."""
    sample = texts[:70]  # three sub-batches
    batched = fp32.embed_documents(sample)
    alone = np.stack([fp32.embed_documents([t])[0] for t in sample])
    np.testing.assert_allclose(batched, alone, atol=1e-4)


@pytest.mark.slow
def test_token_counts_match_sentence_transformers(
    fp32: OnnxEmbedder, reference: SentenceTransformerEmbedder, texts: list[str]
) -> None:
    samples = [*texts, *("query: " + t for t in texts), "", LONG_TEXT]
    assert [fp32.count_tokens(t) for t in samples] == [reference.count_tokens(t) for t in samples]
    assert fp32.count_tokens("") == 2


@pytest.mark.slow
def test_long_texts_are_truncated_like_sentence_transformers(
    fp32: OnnxEmbedder, reference: SentenceTransformerEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    assert fp32.count_tokens(LONG_TEXT) > 512
    batch = ["", LONG_TEXT, "court", LONG_TEXT[:3000]]
    with caplog.at_level(logging.WARNING, logger="embeddings.onnx_embedder"):
        ours = fp32.embed_documents(batch)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "truncated" in warnings[0].getMessage()
    assert "2 of 4 texts" in warnings[0].getMessage()
    theirs = reference.embed_documents(batch)
    assert np.isfinite(ours).all()
    assert np.sum(ours * theirs, axis=1).min() >= FP32_MIN_COSINE


@pytest.mark.slow
def test_vectors_are_normalized_float32(int8: OnnxEmbedder, texts: list[str]) -> None:
    assert (int8.name, int8.dimension, int8.max_tokens) == (DEFAULT_MODEL_NAME, 384, 512)
    assert (int8.query_prefix, int8.document_prefix) == ("query: ", "passage: ")
    vectors = int8.embed_documents(texts[:40])
    assert vectors.dtype == np.float32 and vectors.shape == (40, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    query = int8.embed_query("Qu’est-ce qu’une SCIC ?")
    assert query.dtype == np.float32 and query.shape == (384,)
    assert int8.embed_batch([]).shape == (0, 384)


@pytest.mark.slow
def test_embedding_does_not_import_torch(onnx_dir: Path) -> None:
    code = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from embeddings.onnx_embedder import OnnxEmbedder\n"
        "for precision in ('int8', 'fp32'):\n"
        f"    e = OnnxEmbedder(Path({str(onnx_dir)!r}), name='multilingual-e5-small',\n"
        "                     precision=precision, threads=1)\n"
        "    assert e.embed_query('Comment créer une SCIC ?').shape == (384,)\n"
        "    assert e.embed_documents(['Une coopérative.'] * 40).shape == (40, 384)\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers')\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


@pytest.mark.slow
def test_valid_export_is_reused(
    model_dir: Path, onnx_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(onnx_embedder, "export_onnx", lambda src, dst: calls.append(dst))
    marker = onnx_dir / MARKER_FILE
    before = marker.stat().st_mtime_ns
    for precision, file in MODEL_FILES.items():
        assert ensure_onnx_model(model_dir, precision) == onnx_dir / file
    assert calls == [] and marker.stat().st_mtime_ns == before


@pytest.mark.slow
def test_touched_but_unchanged_source_is_not_stale(model_dir: Path, onnx_dir: Path) -> None:
    config = model_dir / "config.json"
    stat = config.stat()
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert check_onnx_dir(onnx_dir, model_dir) is None  # same checksum


@pytest.mark.slow
def test_stale_marker_triggers_a_new_export(
    model_dir: Path, onnx_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A marker recording other source checksums (the model was rebuilt) → export again."""
    marker = onnx_dir / MARKER_FILE
    manifest = json.loads(marker.read_text(encoding="utf-8"))
    manifest["sources"]["config.json"].update(mtime_ns=1, sha256="0" * 64)
    marker.write_text(json.dumps(manifest), encoding="utf-8")
    assert check_onnx_dir(onnx_dir, model_dir) == "source config.json changed content"

    calls: list[Path] = []
    real_export = onnx_embedder.export_onnx

    def counting_export(src: Path, dst: Path) -> None:
        calls.append(dst)
        real_export(src, dst)

    monkeypatch.setattr(onnx_embedder, "export_onnx", counting_export)
    assert ensure_onnx_model(model_dir, "int8") == onnx_dir / MODEL_FILES["int8"]
    assert calls == [onnx_dir]
    assert check_onnx_dir(onnx_dir, model_dir) is None
    assert ensure_onnx_model(model_dir, "fp32") == onnx_dir / MODEL_FILES["fp32"]
    assert calls == [onnx_dir]  # reused afterwards
    assert not [p for p in onnx_dir.iterdir() if p.name.startswith(".")]  # no leftovers
    vector = OnnxEmbedder(onnx_dir, name=DEFAULT_MODEL_NAME).embed_query("SCIC")
    assert vector.shape == (384,)


@pytest.mark.slow
def test_truncated_model_file_is_detected(model_dir: Path, onnx_dir: Path) -> None:
    int8_file = onnx_dir / MODEL_FILES["int8"]
    backup = onnx_dir / "int8.backup"
    shutil.copyfile(int8_file, backup)
    try:
        with int8_file.open("r+b") as fh:
            fh.truncate(int8_file.stat().st_size // 2)
        assert check_onnx_dir(onnx_dir, model_dir) == "exported model-int8.onnx changed size"
        with pytest.raises(ModelLoadError, match="cannot load the ONNX model"):
            OnnxEmbedder(onnx_dir, name=DEFAULT_MODEL_NAME, precision="int8")
    finally:
        os.replace(backup, int8_file)


@pytest.mark.slow
def test_questions_run_on_their_own_session(
    onnx_dir: Path, fp32: OnnxEmbedder, texts: list[str]
) -> None:
    """`query_threads` (the server's 1 thread per question) gives the same vectors; the
    document session (every core, for builds) is only created when documents come."""
    served = OnnxEmbedder(
        onnx_dir, name=DEFAULT_MODEL_NAME, precision="fp32", threads=2, query_threads=1
    )
    assert served._doc_session is None
    np.testing.assert_allclose(
        served.embed_queries(texts[:5]), fp32.embed_queries(texts[:5]), atol=1e-5
    )
    assert served._doc_session is None
    np.testing.assert_allclose(
        served.embed_documents(texts[:3]), fp32.embed_documents(texts[:3]), atol=1e-5
    )
    assert served._doc_session is not None and served._doc_session is not served._query_session
