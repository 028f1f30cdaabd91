"""Build throughput: the project's full build with the default model in fp32 and in int8
(ONNX Runtime), vs raw `SentenceTransformer.encode` (torch fp32) vs the machine's compute
limit, on the same chunks, in one run.

1. `build_index(..., full=True)` on N generated resources (bundled paragraphs recombined):
   chunking, embedding (batches of 32), BM25, FAISS, atomic save; stage split from the
   build's progress callback; once with `ESS_ASSISTANT_PRECISION=fp32`, once with int8.
2. Raw `model.encode(["passage: " + chunk text …], batch_size=32)` (torch) on the chunks of
   that build, then on their sentences (the build embeds both: `embeddings/sentences.py`).
   Runs alternate (A B C C B A in full mode) so load changes hit all alike.
3. The ceiling: the fp32 matmul rate measured with torch (2048×2048, 2 threads) and the
   model's FLOPs per chunk (12 layers, hidden 384, ff 1536; 2·params_per_token·tokens +
   attention 4·layers·tokens²·hidden), summed over the passages and their sentences, give the
   chunks/s the machine could reach at best.

    python bench/bench_build.py [--quick] [--resources N] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from itertools import pairwise
from pathlib import Path

from common import (
    DEFAULT_WORK,
    generate_resources,
    load_average,
    machine_line,
    print_table,
    rss_mb,
    setup_offline,
)

LAYERS, HIDDEN, FF = 12, 384, 1536
PARAMS_PER_TOKEN = LAYERS * (4 * HIDDEN * HIDDEN + 2 * HIDDEN * FF)  # weights met per token


def chunk_flops(tokens: int) -> float:
    """Forward FLOPs of multilingual-e5-small on one sequence of `tokens` tokens."""
    return 2.0 * PARAMS_PER_TOKEN * tokens + 4.0 * LAYERS * tokens * tokens * HIDDEN


def matmul_gflops(threads: int = 2, size: int = 2048, repeats: int = 8) -> float:
    """Best fp32 matmul rate in GFLOP/s over `repeats` products of two size×size matrices."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2.0 * size**3 / best / 1e9


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 resources, one round")
    parser.add_argument("--resources", type=int, default=None, help="default 120 (quick 30)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args(argv)
    setup_offline()
    logging.basicConfig(level=logging.WARNING)

    import torch

    from corpus.chunking import ChunkingSettings
    from embeddings.builder import build_index
    from embeddings.e5_rebuild import ensure_default_model
    from embeddings.loading import DEFAULT_MODEL_NAME, load_embedder
    from embeddings.sentence_embedder import SentenceTransformerEmbedder
    from embeddings.sentences import passage_sentences
    from embeddings.store import ResourceIndex

    torch.set_num_threads(2)
    count = args.resources or (30 if args.quick else 120)
    rounds = (("fp32", "int8", "raw") if args.quick
              else ("fp32", "int8", "raw", "raw", "int8", "fp32"))  # fmt: skip
    resources = generate_resources(count)
    cache = args.work_dir / "cache"
    torch_embedder = SentenceTransformerEmbedder(
        str(ensure_default_model(cache)), name=DEFAULT_MODEL_NAME
    )
    model = torch_embedder.model
    embedders = {p: load_embedder(None, cache_dir=cache, precision=p) for p in ("fp32", "int8")}
    for embedder in (torch_embedder, *embedders.values()):
        embedder.embed_documents(["échauffement du modèle"] * 4)
    chunking = ChunkingSettings()
    index_dir = args.work_dir / "build-index"

    times: dict[str, list[float]] = {"fp32": [], "int8": [], "raw": []}
    stages: dict[str, float] = {}
    texts: list[str] = []
    sentences: list[str] = []
    load_start = load_average()
    rates = [matmul_gflops()]  # measured between rounds too: the machine's load changes
    for name in rounds:
        if name in embedders:
            embedder = embedders[name]
            shutil.rmtree(index_dir, ignore_errors=True)
            marks: list[tuple[str, float]] = []

            def progress(done: int, total: int, stage: str, marks: list = marks) -> None:
                if not marks or marks[-1][0] != stage:
                    marks.append((stage, time.perf_counter()))

            t0 = time.perf_counter()
            report = build_index(resources, embedder=embedder, index_dir=index_dir,
                                 chunking=chunking, full=True, progress=progress)  # fmt: skip
            end = time.perf_counter()
            times[name].append(end - t0)
            bounds = [("chunking", t0), *marks, ("end", end)]
            for (stage, start), (_, stop) in pairwise(bounds):
                key = f"{name}: {stage}"
                stages[key] = stages.get(key, 0.0) + stop - start
            if not texts:
                index = ResourceIndex.load(index_dir)
                texts = [embedder.document_prefix + c.embedding_text() for c in index.chunks]
                sentences = [embedder.document_prefix + s for c in index.chunks
                             for s in passage_sentences(c.text)]  # fmt: skip
                del index
        else:  # one call: sentence-transformers sorts all texts by length
            t0 = time.perf_counter()
            for batch in (texts, sentences):
                model.encode(batch, batch_size=32, convert_to_numpy=True, show_progress_bar=False)
            times["raw"].append(time.perf_counter() - t0)
        rates.append(matmul_gflops())
    load_end = load_average()

    n = len(texts)
    tokens, sentence_tokens = (
        [len(ids) for ids in model.tokenizer(batch, truncation=True, max_length=512)["input_ids"]]
        for batch in (texts, sentences)
    )
    flops = sum(chunk_flops(t) for t in tokens) + sum(chunk_flops(t) for t in sentence_tokens)
    gflops = max(rates)
    ceiling = n / (flops / (gflops * 1e9))
    rate = {name: n / (sum(t) / len(t)) for name, t in times.items()}
    raw = rate["raw"]
    print(machine_line())
    print(f"load average at start {load_start}, at end {load_end}; RSS {rss_mb():.0f} MB")
    print(f"{count} resources → {n} chunks ({report.total_chunks} in the index), "
          f"{sum(tokens) / n:.0f} tokens per chunk on average (prefix included) and "
          f"{len(sentences) / n:.1f} sentences of {sum(sentence_tokens) / len(sentences):.0f} "
          f"tokens; {flops / n / 1e9:.2f} GFLOP per chunk with its sentences; "
          f"rounds: {' '.join(rounds)}")  # fmt: skip
    print(f"fp32 matmul rate before/between rounds: {', '.join(f'{r:.0f}' for r in rates)} GFLOP/s "
          f"(ceiling uses the best)")  # fmt: skip
    print()
    print_table(
        ["what", "seconds (mean)", "chunks/s", "vs raw torch encode", "vs fp32 compute limit"],
        [
            *((f"build_index full, {p} (ONNX Runtime)", n / rate[p], rate[p],
               f"{rate[p] / raw:.2f}x", f"{rate[p] / ceiling:.2f}x") for p in ("fp32", "int8")),
            ("model.encode, batch 32 (torch fp32)", n / raw, raw, "1.00x", f"{raw / ceiling:.2f}x"),
            (f"compute limit ({gflops:.0f} GFLOP/s fp32 matmul)", n / ceiling, ceiling,
             f"{ceiling / raw:.2f}x", "1.00x"),
        ],
    )  # fmt: skip
    print()
    runs = len(times["fp32"])
    print_table(
        ["pipeline stage (mean of runs)", "seconds", "share of its build"],
        [
            (stage, s / runs, f"{100 * s / (sum(times[stage.split(':')[0]]) or 1):.1f} %")
            for stage, s in stages.items()
            if not stage.endswith("Terminé")
        ],
    )
    for p in ("fp32", "int8"):
        target = "met" if rate[p] >= 0.9 * ceiling else "MISSED"
        print(f"target build ≥ 0.9 × fp32 compute limit, {p}: {rate[p] / ceiling:.2f}x → {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
