"""BM25 lexical retrieval over chunks, with the French analyzer of `embeddings.french`.

`LexicalIndex.build(chunks, resources=...)` (or `extra_texts=...`) indexes, for each chunk, a
*field text*: the chunk title twice (titles are short and on topic, so they weigh more), then
an extra text (the resource summary, keywords and themes, or the caller's own), then the chunk
text. Rows are the
positions of the chunks in the given list, so they line up with the dense index rows.

Scoring is bm25s' `lucene` variant (Lucene's BM25: idf = ln(1 + (N - df + 0.5) / (df + 0.5)),
always positive) with k1 = 1.2 and b = 0.75, the usual defaults. Scores are precomputed per
(token, chunk) into a sparse matrix at build time, so a query only sums a few sparse columns:
a few milliseconds at 100 k chunks. An update rebuilds from the full chunk list (`build` is
cheap next to embedding); `save`/`load` keep the result on disk.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import bm25s
import numpy as np

from corpus.errors import ModelMismatchError
from corpus.models import Chunk, Resource
from embeddings.french import ANALYZER_VERSION, analyze

__all__ = ["LexicalIndex", "analyze", "resource_field_text"]

log = logging.getLogger(__name__)

METHOD = "lucene"
K1 = 1.2
B = 0.75
TITLE_REPEAT = 2
FORMAT_VERSION = 1
_META = "lexical.json"


class AnalyzerChangedError(ModelMismatchError):
    """The lexical index was built by another version of the analyzer (a build fixes it)."""


class LexicalIndex:
    """A BM25 index over chunk rows; `search` returns (row, score) pairs, best first."""

    def __init__(self, retriever: bm25s.BM25 | None, num_rows: int) -> None:
        """Wrap a built bm25s retriever (None when there are no rows); use `build` or `load`."""
        self._bm25 = retriever
        self.num_rows = num_rows
        vocab: dict[str, int] = retriever.vocab_dict if retriever is not None else {}
        self._vocab = vocab

    def __len__(self) -> int:
        return self.num_rows

    @classmethod
    def build(
        cls,
        chunks: Sequence[Chunk],
        extra_texts: Sequence[str] | None = None,
        *,
        resources: Mapping[str, Resource] | None = None,
        k1: float = K1,
        b: float = B,
    ) -> LexicalIndex:
        """Index `chunks` (row i = chunks[i]); `extra_texts[i]` is added to chunk i's field text.

        Instead of `extra_texts`, pass `resources` (id → Resource) and each chunk gets its
        resource's `resource_field_text` (summary, keywords, themes), so a question can match a
        resource by what it is about, not only by the passage wording.
        """
        if extra_texts is not None and resources is not None:
            raise ValueError("pass extra_texts or resources, not both")
        if resources is not None:
            extra_texts = [_field_text(resources.get(c.resource_id)) for c in chunks]
        if extra_texts is not None and len(extra_texts) != len(chunks):
            raise ValueError(f"{len(extra_texts)} extra texts for {len(chunks)} chunks")
        if not chunks:
            return cls(None, 0)
        vocab: dict[str, int] = {}
        corpus_ids: list[list[int]] = []
        shared: dict[str, list[int]] = {}  # titles and summaries repeat across chunks
        for i, chunk in enumerate(chunks):
            ids: list[int] = []
            ids += _ids(chunk.title, vocab, shared) * TITLE_REPEAT
            if extra_texts is not None:
                ids += _ids(extra_texts[i], vocab, shared)
            ids += [vocab.setdefault(t, len(vocab)) for t in analyze(chunk.text)]
            corpus_ids.append(ids)
        retriever = bm25s.BM25(method=METHOD, k1=k1, b=b)
        if not vocab:  # nothing indexable (only stopwords): keep an index that finds nothing
            return cls(None, len(chunks))
        retriever.index((corpus_ids, vocab), create_empty_token=False, show_progress=False)
        log.info("lexical index: %d chunks, %d distinct tokens", len(chunks), len(vocab))
        return cls(retriever, len(chunks))

    def idf_of(self, tokens: Sequence[str]) -> dict[str, float]:
        """Lucene idf of each token; a token unknown to the index gets the largest possible
        idf (as if it occurred in no row)."""
        n = self.num_rows
        indptr = self._bm25.scores["indptr"] if self._bm25 is not None else None
        out = {}
        for token in tokens:
            i = self._vocab.get(token)
            df = 0 if i is None or indptr is None else int(indptr[i + 1] - indptr[i])
            out[token] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return out

    def max_idf(self) -> float:
        """The idf of a token in no row: the largest possible (idf shares divide by it)."""
        n = self.num_rows
        return math.log(1 + (n + 0.5) / 0.5)

    def idf_sum(self, query: str) -> float:
        """Sum of the idf of the query's distinct tokens (unknown tokens count fully)."""
        return sum(self.idf_of(list(dict.fromkeys(analyze(query)))).values())

    def query_tokens(self, query: str) -> list[str]:
        """The analyzed query tokens that the index knows, without duplicates."""
        return [t for t in dict.fromkeys(analyze(query)) if t in self._vocab]

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for `query` (float32, zeros when no token is known)."""
        return self._scores(self.query_tokens(query))

    def _scores(self, tokens: list[str]) -> np.ndarray:
        if self._bm25 is None or not tokens:
            return np.zeros(self.num_rows, dtype=np.float32)
        ids = [self._vocab[t] for t in tokens]
        return np.asarray(self._bm25.get_scores_from_ids(ids), dtype=np.float32)

    def search(
        self,
        query: str,
        k: int,
        allowed: np.ndarray | None = None,
        *,
        context: str = "",
        weight: float = 1.0,
    ) -> list[tuple[int, float]]:
        """Up to `k` (row, score) pairs with a positive score, best first (ties: lower row).

        `context` (a follow-up's previous question) adds its tokens that `query` lacks, their
        scores multiplied by `weight`. `allowed` is an optional boolean mask over rows
        (metadata filters, private resources); only allowed rows are returned. An empty list
        when no query token is in the index.
        """
        tokens = self.query_tokens(query)
        extra = [t for t in self.query_tokens(context) if t not in tokens] if context else []
        if k <= 0 or not (tokens or extra):
            return []
        scores = self._scores(tokens)
        if extra:
            scores = scores + np.float32(weight) * self._scores(extra)
        if allowed is not None:
            allowed = np.asarray(allowed, dtype=bool)
            if allowed.shape != (self.num_rows,):
                raise ValueError(
                    f"allowed mask has shape {allowed.shape}, expected ({self.num_rows},)"
                )
            scores = np.where(allowed, scores, np.float32(0))
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:  # keep everything tied with the k-th score, then cut after sorting
            kth = np.partition(scores[candidates], len(candidates) - k)[len(candidates) - k]
            candidates = candidates[scores[candidates] >= kth]
        order = np.lexsort((candidates, -scores[candidates]))[:k]
        return [(int(r), float(scores[r])) for r in candidates[order]]

    def save(self, directory: Path) -> None:
        """Write the index files into `directory` (created if needed; the caller renames)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        meta = {
            "format": FORMAT_VERSION,
            "analyzer": ANALYZER_VERSION,
            "rows": self.num_rows,
            "empty": self._bm25 is None,
        }
        if self._bm25 is not None:
            self._bm25.save(str(directory), show_progress=False)
        (directory / _META).write_text(json.dumps(meta), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = False) -> LexicalIndex:
        """Read an index written by `save`; `mmap=True` maps the score arrays instead."""
        directory = Path(directory)
        meta_path = directory / _META
        if not meta_path.is_file():
            raise FileNotFoundError(f"no lexical index in {directory} (missing {_META})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(
                f"lexical index format {meta.get('format')} in {directory}, "
                f"expected {FORMAT_VERSION}: rebuild the index"
            )
        if meta.get("analyzer", 1) != ANALYZER_VERSION:
            raise AnalyzerChangedError(
                f"l'index lexical de {directory} a été construit avec une autre version de "
                f"l'analyseur français ({meta.get('analyzer', 1)} → {ANALYZER_VERSION}) : "
                "lancez `ess-assistant build`"
            )
        if meta["empty"]:
            return cls(None, int(meta["rows"]))
        retriever = bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False)
        return cls(retriever, int(meta["rows"]))


def resource_field_text(resource: Resource) -> str:
    """The resource-level text indexed with each of its chunks: summary, keywords, themes."""
    return "\n".join([resource.summary, " ".join(resource.keywords), " ".join(resource.themes)])


def _field_text(resource: Resource | None) -> str:
    return resource_field_text(resource) if resource is not None else ""


def _ids(text: str, vocab: dict[str, int], cache: dict[str, list[int]]) -> list[int]:
    """Token ids of a text that repeats across chunks (title, summary), analyzed once."""
    if not text:
        return []
    ids = cache.get(text)
    if ids is None:
        ids = cache[text] = [vocab.setdefault(t, len(vocab)) for t in analyze(text)]
    return ids
