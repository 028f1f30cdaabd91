"""Sentence vectors: every sentence of every passage embedded at build time, stored compactly.

A passage vector averages about 200 tokens; a question that shares the passage's topic but asks
something it does not say (« coopérative funéraire » against a passage on cooperatives) scores
almost as high as one the passage answers. The best cosine between the question and a single
sentence of the top passages separates them better (`assistant.retrieval.Signals.sentence`;
the ablation is in the calibration file). Embedding those sentences at question time costs
0.1–0.5 s per question on one core, so they are embedded once, with their passage, by the
builder, and only the dot products are left to the question.

Each sentence vector is stored as int8 codes (the unit vector divided by its scale) and a
float32 scale (max |component| / 127): the cosine stays within ~0.005 at a quarter of the
float size.

On disk (`sentences/` of an index version): `counts.npy` and `shards.npy` (per passage row:
its number of sentences and the shard of its resource), and one pair of files per shard,
`<shard>-<digest>.codes.npy` / `.scales.npy`, holding the sentences of the shard's passages in
row order. The digest names what the shard's vectors depend on (the model, the chunking, the
shard's resources and their content hashes), so a build links (`os.link`) the unchanged shards
of the previous version instead of writing them again: one edit in a base of 100 000 passages
writes one shard of ~4 MB, not 270 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from corpus.text import split_sentences
from embeddings.lexical import concat_ranges

MIN_CHARS = 20  # shorter pieces (headings, list labels) say too little to be matched alone
MAX_PER_PASSAGE = 12  # bounds the storage of passages made of many short lines
SHARDS = 64
LAYOUT_VERSION = 1  # bump when the sentence splitting or the storage changes


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


def shard_of(resource_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(resource_id.encode(), digest_size=2).digest()) % SHARDS


def _contiguous_starts(counts: np.ndarray) -> np.ndarray:
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    return starts


@dataclass(frozen=True)
class SentenceVectors:
    """The sentence vectors of an index's passages (see the module docstring).

    Vectors live in blocks of (int8 codes, float32 scales): one per shard file when loaded
    (memory-mapped: a build or a question reads only the pages it needs), plus one per batch of
    fresh vectors after a build. Passage row `r` has `counts[r]` sentences at
    `starts[r]:starts[r] + counts[r]` of block `block[r]`."""

    blocks: tuple[tuple[np.ndarray, np.ndarray], ...]
    block: np.ndarray  # int32 per passage row
    starts: np.ndarray  # int64 per passage row, within its block
    counts: np.ndarray  # int64 per passage row

    def __post_init__(self) -> None:
        n = len(self.counts)
        if (
            self.block.shape != (n,)
            or self.starts.shape != (n,)
            or np.any(self.counts < 0)
            or np.any(self.starts < 0)
            or (n and (self.block.min() < 0 or self.block.max() >= len(self.blocks)))
            or any(
                c.ndim != 2 or c.dtype != np.int8 or s.shape != (len(c),) for c, s in self.blocks
            )
            or len({c.shape[1] for c, _ in self.blocks}) > 1
        ):
            raise ValueError("sentence vectors: blocks, starts and counts do not match")
        sizes = np.array([len(c) for c, _ in self.blocks], dtype=np.int64)
        if n and np.any(self.starts + self.counts > sizes[self.block]):
            raise ValueError("sentence vectors: blocks, starts and counts do not match")

    @property
    def passages(self) -> int:
        return len(self.counts)

    @property
    def dimension(self) -> int:
        return int(self.blocks[0][0].shape[1]) if self.blocks else 0

    def __len__(self) -> int:
        """Sentences of the passages."""
        return int(self.counts.sum())

    def gather(self, passages: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(codes, scales) of the sentences of `passages`, in order."""
        passages = np.asarray(passages, dtype=np.int64)
        if not len(passages):
            dim = self.dimension
            return np.zeros((0, dim), dtype=np.int8), np.zeros(0, dtype=np.float32)
        blocks = self.block[passages]
        codes, scales = [], []
        for run in np.split(passages, np.flatnonzero(np.diff(blocks)) + 1):
            block_codes, block_scales = self.blocks[int(self.block[run[0]])]
            starts = self.starts[run]
            picked = concat_ranges(starts, starts + self.counts[run])
            codes.append(np.asarray(block_codes[picked]))
            scales.append(np.asarray(block_scales[picked]))
        return np.concatenate(codes), np.concatenate(scales)

    @classmethod
    def from_vectors(cls, vectors: np.ndarray, counts: Sequence[int]) -> SentenceVectors:
        """From float vectors of the passages' sentences, in passage order (`counts[i]`
        sentences for passage i)."""
        counts_array = np.asarray(counts, dtype=np.int64)
        return cls(
            (quantize(vectors),),
            np.zeros(len(counts_array), dtype=np.int32),
            _contiguous_starts(counts_array),
            counts_array,
        )

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

    def best_similarity(self, passages: Iterable[int], query: np.ndarray) -> float:
        """The best cosine between `query` (a unit vector) and a sentence of `passages`."""
        codes, scales = self.gather(np.fromiter(passages, dtype=np.int64))
        if not len(codes):
            return 0.0
        return float(((codes.astype(np.float32) @ query) * scales).max())

    @classmethod
    def arrange(
        cls,
        old_of: np.ndarray,
        previous: SentenceVectors | None,
        fresh: SentenceVectors,
        fresh_rows: np.ndarray,
    ) -> SentenceVectors:
        """The sentence vectors of a new index: row `r` takes previous passage `old_of[r]`'s
        when `r` is not in `fresh_rows`, else the next passage of `fresh` (whose passages are
        those of `fresh_rows`, in order). Nothing is copied: the blocks are shared."""
        n = len(old_of)
        fresh_rows = np.asarray(fresh_rows, dtype=np.int64)
        if fresh.passages != len(fresh_rows):
            raise ValueError("fresh sentence vectors do not match their rows")
        from_fresh = np.zeros(n, dtype=bool)
        from_fresh[fresh_rows] = True
        reused = np.flatnonzero(~from_fresh)
        if len(reused) and (previous is None or np.any(old_of[reused] < 0)):
            raise ValueError("rows without sentence vectors")
        earlier = previous.blocks if previous is not None and len(reused) else ()
        block = np.zeros(n, dtype=np.int32)
        starts = np.zeros(n, dtype=np.int64)
        counts = np.zeros(n, dtype=np.int64)
        block[fresh_rows] = fresh.block + len(earlier)
        starts[fresh_rows] = fresh.starts
        counts[fresh_rows] = fresh.counts
        if previous is not None and len(reused):
            old = old_of[reused]
            block[reused] = previous.block[old]
            starts[reused] = previous.starts[old]
            counts[reused] = previous.counts[old]
        return cls((*earlier, *fresh.blocks), block, starts, counts)

    # ------------------------------------------------------------------ persistence

    def save(
        self,
        folder: Path,
        *,
        resource_ids: Sequence[str],
        content: Mapping[str, str],
        context: Mapping[str, Any],
        link_from: Path | None = None,
    ) -> None:
        """Write to `folder` (see the module docstring). `resource_ids[row]` is the resource
        of passage `row`, `content` maps a resource to its content hash, `context` is what
        else the vectors depend on (model, precision, chunking); a shard file of the same name
        in `link_from` (the previous version's `sentences/`) is linked instead of written."""
        if len(resource_ids) != self.passages:
            raise ValueError("one resource id per passage row is needed")
        folder.mkdir(parents=True, exist_ok=True)
        shard_by_id = {rid: shard_of(rid) for rid in dict.fromkeys(resource_ids)}
        shard_ids = np.fromiter(
            (shard_by_id[r] for r in resource_ids), dtype=np.uint16, count=len(resource_ids)
        )
        np.save(folder / "counts.npy", self.counts.astype(np.int32), allow_pickle=False)
        np.save(folder / "shards.npy", shard_ids, allow_pickle=False)
        prefix = json.dumps({**context, "layout": LAYOUT_VERSION}, sort_keys=True)
        for shard, rows in _rows_by_shard(shard_ids).items():
            digest = hashlib.sha256(prefix.encode())
            for rid in dict.fromkeys(resource_ids[r] for r in rows.tolist()):
                digest.update(f"\n{rid}\t{content.get(rid, '')}".encode())
            name = f"{shard:02x}-{digest.hexdigest()[:16]}"
            if link_from is not None and _link(link_from, folder, name):
                continue
            codes, scales = self.gather(rows)
            np.save(folder / f"{name}.codes.npy", codes, allow_pickle=False)
            np.save(folder / f"{name}.scales.npy", scales, allow_pickle=False)

    @classmethod
    def load(cls, folder: Path) -> SentenceVectors:
        """Read `folder`; the shard files are memory-mapped, not read."""
        counts = np.load(folder / "counts.npy", allow_pickle=False).astype(np.int64)
        shard_ids = np.load(folder / "shards.npy", allow_pickle=False)
        if counts.shape != shard_ids.shape or counts.ndim != 1:
            raise ValueError("sentence vectors: counts and shards do not match")
        files = {int(p.name[:2], 16): p.name[: -len(".codes.npy")]
                 for p in folder.glob("*.codes.npy")}  # fmt: skip
        blocks: list[tuple[np.ndarray, np.ndarray]] = []
        block = np.zeros(len(counts), dtype=np.int32)
        starts = np.zeros(len(counts), dtype=np.int64)
        for shard, rows in _rows_by_shard(shard_ids).items():
            name = files.get(shard)
            if name is None:
                raise ValueError(f"sentence vectors: shard {shard} is missing")
            codes = np.load(folder / f"{name}.codes.npy", mmap_mode="r", allow_pickle=False)
            scales = np.load(folder / f"{name}.scales.npy", mmap_mode="r", allow_pickle=False)
            if codes.dtype != np.int8 or scales.dtype != np.float32:
                raise ValueError("sentence vectors of unexpected types")
            if len(codes) != int(counts[rows].sum()) or len(scales) != len(codes):
                raise ValueError(f"sentence vectors: shard {shard} does not match its rows")
            block[rows] = len(blocks)
            starts[rows] = _contiguous_starts(counts[rows])
            blocks.append((codes, scales))
        return cls(tuple(blocks), block, starts, counts)


def _rows_by_shard(shard_ids: np.ndarray) -> dict[int, np.ndarray]:
    """Rows of each non-empty shard, ascending, shards in increasing order."""
    order = np.argsort(shard_ids, kind="stable")
    bounds = np.flatnonzero(np.diff(shard_ids[order])) + 1
    return {int(shard_ids[part[0]]): part for part in np.split(order, bounds) if len(part)}


def _link(source: Path, target: Path, name: str) -> bool:
    """Link (or, where links are not possible, copy) the shard `name` of `source` into
    `target`; False when `source` has no such shard."""
    pair = [f"{name}.codes.npy", f"{name}.scales.npy"]
    if not all((source / f).is_file() for f in pair):
        return False
    for f in pair:
        try:
            os.link(source / f, target / f)
        except OSError:
            shutil.copyfile(source / f, target / f)
    return True
