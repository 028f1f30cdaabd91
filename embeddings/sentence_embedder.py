"""An `Embedder` backed by a sentence-transformers model (on CPU)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from corpus.errors import ModelLoadError
from embeddings.base import DEFAULT_MODEL_NAME, Embedder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

E5_QUERY_PREFIX = "query: "
E5_DOCUMENT_PREFIX = "passage: "
BATCH_SIZE = 32
_E5_NAME = re.compile(r"(?<![a-z0-9])e5(?![a-z0-9])")


def is_e5_model(name_or_path: str) -> bool:
    """True for E5-family names or paths (`intfloat/multilingual-e5-small`, `e5-base-v2`…)."""
    return bool(_E5_NAME.search(str(name_or_path).lower()))


class SentenceTransformerEmbedder(Embedder):
    """Wraps `SentenceTransformer(path_or_name, device="cpu")`.

    E5-family models (the name or the path matches `e5`) get the `query: ` / `passage: `
    prefixes, other models none. Texts longer than the model's token limit are truncated,
    with one logged warning per batch.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        name: str | None = None,
        batch_size: int = BATCH_SIZE,
        show_progress: bool = False,
        model: SentenceTransformer | None = None,
    ) -> None:
        """Load `model_name_or_path` (hub name or local directory); `name` is what the index
        manifest records (defaults to `model_name_or_path`). Raises `ModelLoadError`."""
        self.name = name or str(model_name_or_path)
        self.batch_size = batch_size
        self.show_progress = show_progress
        self._model = model if model is not None else _load(str(model_name_or_path))
        self.dimension = int(_embedding_dimension(self._model))
        self.max_tokens = int(self._model.max_seq_length or 512)
        if is_e5_model(self.name) or is_e5_model(str(model_name_or_path)):
            self.query_prefix, self.document_prefix = E5_QUERY_PREFIX, E5_DOCUMENT_PREFIX
        else:
            self.query_prefix, self.document_prefix = "", ""

    @property
    def model(self) -> SentenceTransformer:
        """The wrapped sentence-transformers model."""
        return self._model

    def _token_lengths(self, texts: Sequence[str]) -> list[int]:
        encoded = self._model.tokenizer(
            list(texts), add_special_tokens=True, truncation=False, verbose=False
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text` without prefix, special tokens included."""
        return self._token_lengths([text])[0]

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed already-prefixed texts (truncated to `max_tokens`), shape (n, dimension)."""
        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self.warn_truncated(self._token_lengths(texts))
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=self.show_progress,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def _embedding_dimension(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:  # sentence-transformers < 6
        getter = model.get_sentence_embedding_dimension
    dimension = getter()
    if not dimension:
        raise ModelLoadError(
            "the embedding model does not declare its output dimension; use a sentence-"
            "transformers model with a pooling module"
        )
    return int(dimension)


def _load(name_or_path: str) -> SentenceTransformer:
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # no «Loading weights» bar on every start
    try:
        return SentenceTransformer(name_or_path, device="cpu")
    except Exception as exc:  # hub, file system and format errors all mean "cannot load"
        where = "local directory" if Path(name_or_path).exists() else "model name"
        raise ModelLoadError(
            f"cannot load the embedding model {name_or_path!r} ({where}): {exc}. Give the path "
            "of a sentence-transformers directory or a model name already in the Hugging Face "
            f"cache (no hub is reachable offline), or use the default {DEFAULT_MODEL_NAME!r}"
        ) from exc
