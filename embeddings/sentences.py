"""Sentence vectors: every sentence of every passage embedded at build time, stored compactly.

A passage vector averages about 200 tokens; a question that shares the passage's topic but asks
something it does not say (« coopérative funéraire » against a passage on cooperatives) scores
almost as high as one the passage answers. The best cosine between the question and a single
sentence of the top passages separates them better (`assistant.retrieval.Signals.sentence`;
the ablation is in the calibration file). Embedding those sentences at question time costs
0.1–0.5 s per question on one core, so they are embedded once, with their passage, by the
builder, and only the dot products are left to the question.

Storage: for `n` passages, `offsets` (n + 1 int64: the sentences of passage `row` are
`offsets[row]:offsets[row + 1]`), `codes` (int8, one row per sentence: the unit vector divided
by `scales`) and `scales` (float32, max |component| / 127 of each vector). Int8 codes keep the
cosine within ~0.005 of the float vector at a quarter of its size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.text import split_sentences

MIN_CHARS = 20  # shorter pieces (headings, list labels) say too little to be matched alone
MAX_PER_PASSAGE = 12  # bounds the storage of passages made of many short lines
FILES = ("offsets.npy", "codes.npy", "scales.npy")


def passage_sentences(text: str) -> list[str]:
    """The sentences of a passage that get a vector; a passage without a sentence of
    `MIN_CHARS` is its own single sentence."""
    sentences = [s.text for s in split_sentences(text) if len(s.text) >= MIN_CHARS]
    if not sentences and text.strip():
        sentences = [text.strip()]
    return sentences[:MAX_PER_PASSAGE]


def quantize(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, float32 scales) of unit vectors, one scale per vector."""
    vectors = np.asarray(vectors, dtype=np.float32)
    scales = np.abs(vectors).max(axis=1) / 127.0
    scales = np.where(scales > 0, scales, 1.0).astype(np.float32)
    codes = np.rint(vectors / scales[:, None]).clip(-127, 127).astype(np.int8)
    return codes, scales


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenated `arange(start, start + length)` for each pair, vectorized."""
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(lengths)
    shift = np.repeat(np.asarray(starts, dtype=np.int64) - ends + lengths, lengths)
    return shift + np.arange(total, dtype=np.int64)


@dataclass(frozen=True)
class SentenceVectors:
    """The sentence vectors of an index's passages (see the module docstring)."""

    offsets: np.ndarray
    codes: np.ndarray
    scales: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.codes)
        if (
            self.offsets.ndim != 1
            or len(self.offsets) == 0
            or self.offsets[0] != 0
            or self.offsets[-1] != n
            or np.any(np.diff(self.offsets) < 0)
            or self.codes.ndim != 2
            or self.scales.shape != (n,)
        ):
            raise ValueError("sentence vectors: offsets, codes and scales do not match")

    @property
    def passages(self) -> int:
        return len(self.offsets) - 1

    @property
    def dimension(self) -> int:
        return int(self.codes.shape[1])

    def __len__(self) -> int:
        return len(self.codes)

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, counts: Sequence[int]) -> SentenceVectors:
        """From float vectors of the passages' sentences, in passage order (`counts[i]`
        sentences for passage i)."""
        offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(np.asarray(counts, dtype=np.int64), out=offsets[1:])
        codes, scales = quantize(vectors)
        return cls(offsets, codes, scales)

    @classmethod
    def embed(
        cls,
        texts: Sequence[str],
        embed: Callable[[list[str]], np.ndarray],
        dimension: int,
    ) -> SentenceVectors:
        """Split each passage text into sentences and embed them all with `embed` (a list of
        texts → unit vectors, in order)."""
        per_passage = [passage_sentences(t) for t in texts]
        flat = [s for sentences in per_passage for s in sentences]
        vectors = embed(flat) if flat else np.zeros((0, dimension), dtype=np.float32)
        return cls.from_vectors(vectors, [len(s) for s in per_passage])

    def best_similarity(self, rows: Iterable[int], query: np.ndarray) -> float:
        """The best cosine between `query` (a unit vector) and a sentence of passages `rows`."""
        rows = np.fromiter(rows, dtype=np.int64)
        if not len(rows):
            return 0.0
        picked = _ranges(self.offsets[rows], self.offsets[rows + 1] - self.offsets[rows])
        if not len(picked):
            return 0.0
        scores = (self.codes[picked].astype(np.float32) @ query) * self.scales[picked]
        return float(scores.max())

    @classmethod
    def arrange(
        cls,
        dimension: int,
        old_of: np.ndarray,
        previous: SentenceVectors | None,
        fresh: SentenceVectors,
        fresh_rows: np.ndarray,
    ) -> SentenceVectors:
        """The sentence vectors of a new index: row `r` takes previous passage `old_of[r]`'s
        when `old_of[r] >= 0` and `r` is not in `fresh_rows`, else the next passage of `fresh`
        (whose passages are those of `fresh_rows`, in order)."""
        n = len(old_of)
        fresh_rows = np.asarray(fresh_rows, dtype=np.int64)
        if fresh.passages != len(fresh_rows):
            raise ValueError("fresh sentence vectors do not match their rows")
        from_fresh = np.zeros(n, dtype=bool)
        from_fresh[fresh_rows] = True
        reused = np.flatnonzero(~from_fresh)
        if len(reused) and (previous is None or np.any(old_of[reused] < 0)):
            raise ValueError("rows without sentence vectors")
        counts = np.zeros(n, dtype=np.int64)
        counts[fresh_rows] = np.diff(fresh.offsets)
        if len(reused):
            assert previous is not None
            old = old_of[reused]
            counts[reused] = previous.offsets[old + 1] - previous.offsets[old]
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        codes = np.empty((int(offsets[-1]), dimension), dtype=np.int8)
        scales = np.empty(int(offsets[-1]), dtype=np.float32)
        target = _ranges(offsets[fresh_rows], counts[fresh_rows])
        codes[target] = fresh.codes
        scales[target] = fresh.scales
        if len(reused):
            assert previous is not None
            target = _ranges(offsets[reused], counts[reused])
            source = _ranges(previous.offsets[old_of[reused]], counts[reused])
            codes[target] = previous.codes[source]
            scales[target] = previous.scales[source]
        return cls(offsets, codes, scales)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, array in zip(FILES, (self.offsets, self.codes, self.scales), strict=True):
            np.save(folder / name, array, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> SentenceVectors:
        offsets, codes, scales = (np.load(folder / name, allow_pickle=False) for name in FILES)
        if offsets.dtype != np.int64 or codes.dtype != np.int8 or scales.dtype != np.float32:
            raise ValueError("sentence vectors of unexpected types")
        return cls(offsets, codes, scales)
