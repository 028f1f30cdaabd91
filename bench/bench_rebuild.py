"""Benchmark: one-edit rebuild of a large base (30 k / 100 k chunks), stage by stage.

The vectors come from a fast deterministic stand-in embedder (a seeded random vector per
text, 384 dimensions, like the default model), so a 100 k-chunk base is built in minutes
instead of hours; everything else — reading the corpus, chunking, the lexical index, FAISS,
saving the version — is the production code. The real model's cost for the few re-embedded
chunks is measured separately (`bench_build.py` gives chunks/s; one edit re-embeds 1–5 chunks).

    python bench/bench_rebuild.py                    # 30 k and 100 k chunks
    python bench/bench_rebuild.py --chunks 30000     # one size
    python bench/bench_rebuild.py --quick            # 3 k chunks
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from bench_incremental import edit_one, generate_corpus
from common import dir_size_mb, load_average, machine_line, print_table

from assistant.service import CORPUS_CACHE
from corpus.chunking import ChunkingSettings
from corpus.loaders import load_corpus
from embeddings.base import Embedder
from embeddings.builder import build_index

CHUNKS_PER_RESOURCE = 3.0  # measured on the generated resources (≈ 1 500 characters each)


class RandomEmbedder(Embedder):
    """A seeded random unit vector per text: fast, deterministic, 384 dimensions."""

    name = "bench-random-384"
    dimension = 384
    max_tokens = 512

    def embed_batch(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            out[i] = np.random.default_rng(seed).standard_normal(self.dimension)
        return out

    def count_tokens(self, text: str) -> int:
        return len(text) // 4 + 2


def timed_build(corpus_dir: Path, index_dir: Path, chunking: ChunkingSettings) -> dict[str, float]:
    """Seconds of each stage of one `load_corpus` + `build_index`, and the total."""
    t0 = time.perf_counter()
    loaded = load_corpus(corpus_dir, cache=index_dir / CORPUS_CACHE)  # as `build` reads it
    t_load = time.perf_counter() - t0
    report = build_index(
        loaded.resources, embedder=RandomEmbedder(), index_dir=index_dir, chunking=chunking
    )
    total = time.perf_counter() - t0
    stages = {"read corpus": t_load, **dict(report.timings), "total": total}
    stages["chunks"] = report.total_chunks
    stages["embedded"] = report.chunks_embedded
    return stages


def run(size: int, work: Path, chunking: ChunkingSettings) -> list[tuple[str, dict[str, float]]]:
    count = max(1, round(size / CHUNKS_PER_RESOURCE))
    corpus_dir, index_dir = work / f"corpus-{size}", work / f"index-{size}"
    if not corpus_dir.is_dir() or len(list(corpus_dir.glob("*.md"))) != count:
        shutil.rmtree(corpus_dir, ignore_errors=True)
        generate_corpus(corpus_dir, count)
    shutil.rmtree(index_dir, ignore_errors=True)
    full = timed_build(corpus_dir, index_dir, chunking)
    edit_one(corpus_dir)
    one = timed_build(corpus_dir, index_dir, chunking)
    noop = timed_build(corpus_dir, index_dir, chunking)
    print(f"{size} chunks requested: index on disk {dir_size_mb(index_dir):.0f} MB")
    return [("full", full), ("one edit", one), ("nothing changed", noop)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", default="30000,100000", help="comma-separated sizes")
    parser.add_argument("--quick", action="store_true", help="3 000 chunks only")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/ess-bench-rebuild"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = [3000] if args.quick else [int(s) for s in args.chunks.split(",")]
    chunking = ChunkingSettings()
    print(machine_line())
    for size in sizes:
        rows = run(size, args.work_dir, chunking)
        stages = [k for k in rows[0][1] if k not in ("chunks", "embedded")]
        header = ["build", "chunks", "embedded", *stages]
        table = [
            [label, f"{int(r['chunks'])}", f"{int(r['embedded'])}"]
            + [f"{r.get(s, 0.0):.2f}" for s in stages]
            for label, r in rows
        ]
        print_table(header, table)
    print(f"load average at the end: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
