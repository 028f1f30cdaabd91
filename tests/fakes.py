"""A tiny deterministic embedder for logic tests: bag of analyzed words hashed into 64 dims.

Two texts sharing words get a positive cosine, exact and reproducible, with no model at all.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from embeddings.base import Embedder
from embeddings.french import analyze

FAKE_MODEL = "fake-bow-64"


class FakeEmbedder(Embedder):
    name = FAKE_MODEL
    dimension = 64
    max_tokens = 512
    query_prefix = ""
    document_prefix = ""

    def __init__(self) -> None:
        self.embedded: list[str] = []  # every text embedded, in order (to count calls)

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded.extend(texts)
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            for token in analyze(text):
                h = zlib.crc32(token.encode("utf-8"))
                out[i, h % self.dimension] += 1.0 if (h >> 8) & 1 else -1.0
            out[i, 0] += 0.01  # never an all-zero vector
        return out

    def count_tokens(self, text: str) -> int:
        return len(text.split())
