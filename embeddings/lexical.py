"""BM25 lexical retrieval over chunks, with the French analyzer of `embeddings.french`.

`LexicalIndex.build(chunks, resources=...)` (or `extra_texts=...`) indexes, for each chunk, a
*field text*: the chunk title twice (titles are short and on topic, so they weigh more), then
an extra text (the resource summary, keywords and themes, or the caller's own), then the chunk
text. Rows are the positions of the chunks in the given list, so they line up with the dense
index rows.

Scoring is Lucene's BM25 (the `lucene` variant of bm25s: idf = ln(1 + (N - df + 0.5) /
(df + 0.5)), always positive; tf part tf / (tf + k1 (1 - b + b dl / avgdl))) with k1 = 1.2 and
b = 0.75, the usual defaults; a test checks the scores against bm25s.

Two sparse matrices are kept:
- the *term counts* per row (row-major): the analysis of each chunk, the only costly part
  (about 0.3 ms a chunk). An incremental build (`build(..., reuse=...)`) copies the counts of
  the rows it keeps from the previous index and analyzes only new or changed chunks;
- the *postings* (term-major) with each (term, row) weight idf × tf part, recomputed from the
  counts on every build (vectorized: well under a second at 100 k chunks, since N, df and the
  average length change with any edit). A query sums a few columns: a few milliseconds.

The vocabulary is sorted and holds only terms present in some row, so an incremental build
writes exactly the arrays a full build of the same chunks writes (a test checks it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from corpus.errors import ModelMismatchError
from corpus.models import Chunk, Resource
from embeddings import french, thesaurus
from embeddings.french import ANALYZER_VERSION, analyze

__all__ = ["LexicalIndex", "analyze", "analyzer_fingerprint", "resource_field_text"]

log = logging.getLogger(__name__)

K1 = 1.2
B = 0.75
TITLE_REPEAT = 2
FORMAT_VERSION = 2
_META = "lexical.json"
_ARRAYS = ("row_indptr", "row_terms", "row_counts", "post_indptr", "post_rows", "post_weights")


class AnalyzerChangedError(ModelMismatchError):
    """The lexical index was built by another version of the analyzer (a build fixes it)."""


def analyzer_fingerprint() -> str:
    """A digest of everything that decides the term counts of a row: the analyzer's and the
    thesaurus' source, the field text layout and the format. Counts are reused by an
    incremental build only when the fingerprint is the same."""
    digest = hashlib.sha256(f"{FORMAT_VERSION}:{ANALYZER_VERSION}:{TITLE_REPEAT}".encode())
    for module in (french, thesaurus):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Reuse:
    """Rows of a previous index to copy instead of analyzing: `rows[i]` is the previous row of
    new row i, or -1 for a row to analyze."""

    previous: LexicalIndex
    rows: np.ndarray


class LexicalIndex:
    """A BM25 index over chunk rows; `search` returns (row, score) pairs, best first."""

    def __init__(
        self,
        vocab: Sequence[str],
        arrays: Mapping[str, np.ndarray],
        num_rows: int,
        *,
        fingerprint: str = "",
    ) -> None:
        """Wrap built arrays; use `build`, `empty` or `load`."""
        self.vocab = list(vocab)
        self._vocab = {t: i for i, t in enumerate(self.vocab)}
        self._arrays = dict(arrays)
        self.num_rows = num_rows
        self.fingerprint = fingerprint

    @classmethod
    def empty(cls, num_rows: int) -> LexicalIndex:
        """An index over `num_rows` rows that finds nothing (and has nothing to reuse)."""
        zero = np.zeros(1, dtype=np.int64)
        arrays: dict[str, np.ndarray] = {
            "row_indptr": np.zeros(num_rows + 1, dtype=np.int64),
            "row_terms": np.zeros(0, dtype=np.int32),
            "row_counts": np.zeros(0, dtype=np.int32),
            "post_indptr": zero,
            "post_rows": np.zeros(0, dtype=np.int32),
            "post_weights": np.zeros(0, dtype=np.float32),
        }
        return cls([], arrays, num_rows)

    def __len__(self) -> int:
        return self.num_rows

    @classmethod
    def build(
        cls,
        chunks: Sequence[Chunk],
        extra_texts: Sequence[str] | None = None,
        *,
        resources: Mapping[str, Resource] | None = None,
        reuse: Reuse | None = None,
        k1: float = K1,
        b: float = B,
    ) -> LexicalIndex:
        """Index `chunks` (row i = chunks[i]); `extra_texts[i]` is added to chunk i's field text.

        Instead of `extra_texts`, pass `resources` (id → Resource) and each chunk gets its
        resource's `resource_field_text` (summary, keywords, themes), so a question can match a
        resource by what it is about, not only by the passage wording. With `reuse`, the rows
        it maps are copied from the previous index (when its analyzer fingerprint is the
        current one) instead of analyzed again; the result is the same as without.
        """
        if extra_texts is not None and resources is not None:
            raise ValueError("pass extra_texts or resources, not both")
        if extra_texts is not None and len(extra_texts) != len(chunks):
            raise ValueError(f"{len(extra_texts)} extra texts for {len(chunks)} chunks")
        fingerprint = analyzer_fingerprint()
        n = len(chunks)
        old_rows = np.full(n, -1, dtype=np.int64)
        previous = None
        if reuse is not None and reuse.previous.fingerprint == fingerprint:
            if len(reuse.rows) != n:
                raise ValueError(f"{len(reuse.rows)} reuse rows for {n} chunks")
            previous, old_rows = reuse.previous, np.asarray(reuse.rows, dtype=np.int64)

        # Term counts of the rows to analyze, with ids in a vocabulary of their own.
        vocab: dict[str, int] = {}
        shared: dict[str, list[int]] = {}  # titles and summaries repeat across chunks
        new_rows = np.flatnonzero(old_rows < 0)
        lengths = np.zeros(n, dtype=np.int64)  # distinct terms of each row
        new_terms: list[np.ndarray] = []
        new_counts: list[np.ndarray] = []
        for i in new_rows.tolist():
            chunk = chunks[i]
            ids: list[int] = []
            ids += _ids(chunk.title, vocab, shared) * TITLE_REPEAT
            if resources is not None:  # only for the rows analyzed (a resource's text repeats)
                ids += _ids(_field_text(resources.get(chunk.resource_id)), vocab, shared)
            elif extra_texts is not None:
                ids += _ids(extra_texts[i], vocab, shared)
            ids += [vocab.setdefault(t, len(vocab)) for t in analyze(chunk.text)]
            counts = Counter(ids)
            new_terms.append(np.fromiter(counts.keys(), dtype=np.int64, count=len(counts)))
            new_counts.append(np.fromiter(counts.values(), dtype=np.int32, count=len(counts)))
            lengths[i] = len(counts)
        # One vocabulary for both sources: the union, sorted.
        words = sorted(vocab.keys() | set(previous.vocab) if previous is not None else vocab)
        position = {t: i for i, t in enumerate(words)}
        own_map = np.fromiter((position[t] for t in vocab), dtype=np.int64, count=len(vocab))

        kept = np.flatnonzero(old_rows >= 0)
        if previous is not None and len(kept):
            pa = previous._arrays
            prev_map = np.fromiter(
                (position[t] for t in previous.vocab), dtype=np.int64, count=len(previous.vocab)
            )
            starts, ends = pa["row_indptr"][old_rows[kept]], pa["row_indptr"][old_rows[kept] + 1]
            lengths[kept] = ends - starts
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        terms = np.empty(int(indptr[-1]), dtype=np.int64)
        counts_all = np.empty(int(indptr[-1]), dtype=np.int32)
        for j, i in enumerate(new_rows.tolist()):
            terms[indptr[i] : indptr[i + 1]] = own_map[new_terms[j]]
            counts_all[indptr[i] : indptr[i + 1]] = new_counts[j]
        if previous is not None and len(kept):
            source = concat_ranges(starts, ends)
            target = concat_ranges(indptr[kept], indptr[kept + 1])
            terms[target] = prev_map[pa["row_terms"][source]]
            counts_all[target] = pa["row_counts"][source]
        index = cls._from_counts(words, indptr, terms, counts_all, n, k1=k1, b=b)
        index.fingerprint = fingerprint
        log.info(
            "lexical index: %d chunks (%d analyzed, %d reused), %d distinct tokens",
            n, len(new_rows), len(kept) if previous is not None else 0, len(index.vocab),
        )  # fmt: skip
        return index

    @classmethod
    def _from_counts(
        cls,
        words: list[str],
        indptr: np.ndarray,
        terms: np.ndarray,
        counts: np.ndarray,
        n: int,
        *,
        k1: float,
        b: float,
    ) -> LexicalIndex:
        """Compact the vocabulary to the terms in use, then compute the weighted postings."""
        if n == 0 or len(terms) == 0:
            return cls.empty(n)
        used = np.zeros(len(words), dtype=bool)
        used[terms] = True
        remap = np.cumsum(used) - 1
        vocab = [w for w, u in zip(words, used, strict=True) if u]
        terms = remap[terms]
        # Rows keep their terms in ascending order, as a full build writes them.
        rows_m = sp.csr_matrix((counts, terms, indptr), shape=(n, len(vocab)))
        rows_m.sort_indices()
        cols = rows_m.tocsc()
        cols.sort_indices()
        # Per row, then per posting, in float32 (the scores are float32 anyway): the length
        # normalization k1 (1 - b + b dl / avgdl), then tf / (tf + norm), then × idf.
        total = np.concatenate(([0], np.cumsum(rows_m.data, dtype=np.int64)))
        doc_len = (total[rows_m.indptr[1:]] - total[rows_m.indptr[:-1]]).astype(np.float64)
        avgdl = float(doc_len.mean()) or 1.0
        row_norm = (k1 * ((1.0 - b) + b * doc_len / avgdl)).astype(np.float32)
        df = np.diff(cols.indptr)
        idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
        tf = cols.data.astype(np.float32)
        weights = tf / (tf + row_norm[cols.indices])
        weights *= np.repeat(idf, df)
        arrays = {
            "row_indptr": np.asarray(rows_m.indptr, dtype=np.int64),
            "row_terms": np.asarray(rows_m.indices, dtype=np.int32),
            "row_counts": np.asarray(rows_m.data, dtype=np.int32),
            "post_indptr": np.asarray(cols.indptr, dtype=np.int64),
            "post_rows": np.asarray(cols.indices, dtype=np.int32),
            "post_weights": weights,
        }
        return cls(vocab, arrays, n)

    def idf_of(self, tokens: Sequence[str]) -> dict[str, float]:
        """Lucene idf of each token; a token unknown to the index gets the largest possible
        idf (as if it occurred in no row)."""
        n = self.num_rows
        indptr = self._arrays["post_indptr"]
        out = {}
        for token in tokens:
            i = self._vocab.get(token)
            df = 0 if i is None else int(indptr[i + 1] - indptr[i])
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
        scores = np.zeros(self.num_rows, dtype=np.float32)
        indptr, rows, weights = (
            self._arrays[k] for k in ("post_indptr", "post_rows", "post_weights")
        )
        for token in tokens:
            i = self._vocab[token]
            start, end = int(indptr[i]), int(indptr[i + 1])
            scores[rows[start:end]] += weights[start:end]
        return scores

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
        for name in _ARRAYS:
            np.save(directory / f"{name}.npy", self._arrays[name], allow_pickle=False)
        meta = {
            "format": FORMAT_VERSION,
            "analyzer": ANALYZER_VERSION,
            "fingerprint": self.fingerprint,
            "rows": self.num_rows,
            "vocab": self.vocab,
        }
        (directory / _META).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = False) -> LexicalIndex:
        """Read an index written by `save`; `mmap=True` maps the arrays instead."""
        directory = Path(directory)
        meta_path = directory / _META
        if not meta_path.is_file():
            raise FileNotFoundError(f"no lexical index in {directory} (missing {_META})")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        if meta.get("analyzer", 1) != ANALYZER_VERSION:
            raise AnalyzerChangedError(
                f"l'index lexical de {directory} a été construit avec une autre version de "
                f"l'analyseur français ({meta.get('analyzer', 1)} → {ANALYZER_VERSION}) : "
                "lancez `ess-assistant build`"
            )
        if meta.get("format") != FORMAT_VERSION:
            raise AnalyzerChangedError(
                f"l'index lexical de {directory} est au format {meta.get('format')}, "
                f"le format attendu est {FORMAT_VERSION} : lancez `ess-assistant build`"
            )
        arrays = {
            name: np.load(directory / f"{name}.npy", mmap_mode="r" if mmap else None)
            for name in _ARRAYS
        }
        rows = int(meta["rows"])
        vocab = list(meta["vocab"])
        if len(arrays["row_indptr"]) != rows + 1 or len(arrays["post_indptr"]) != max(
            len(vocab) + 1, 1
        ):
            raise ValueError(f"lexical index in {directory} does not match its metadata")
        return cls(vocab, arrays, rows, fingerprint=str(meta.get("fingerprint", "")))


def concat_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The concatenation of range(s, e) for each pair, without a Python loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(total, dtype=np.int64)


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
