"""The default embedding model three ways: sentence-transformers (torch fp32) vs ONNX Runtime
fp32 vs ONNX Runtime int8, side by side in one run.

Measures (a) the latency of embedding one question (1 thread, as the server does), (b) the
document throughput on passages of ~800 characters (batch 32, 2 threads), (c) the cosine of
the ONNX vectors to the torch fp32 ones (questions, passages and the committed test texts, in
query and passage modes), and (d) import + load time of each embedder in a fresh process.
Rounds alternate between the engines, so load changes on the machine hit all three alike.
Usage:

    python bench/bench_precision.py [--quick] [--cache-dir DIR] [--seed-file FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_embedder import SEED, make_passages
from common import ROOT, machine_line, ms_stats, print_table, questions, setup_offline

from embeddings.base import DEFAULT_MODEL_NAME, Embedder
from embeddings.e5_rebuild import ensure_default_model
from embeddings.onnx_embedder import MODEL_FILES, OnnxEmbedder, ensure_onnx_model

TEST_TEXTS = ROOT / "tests" / "data" / "embedding_texts.jsonl"
ENGINES = ("torch fp32", "onnx fp32", "onnx int8")
BATCH = 32

# Run in a fresh interpreter: import the embedder's module, load it, embed one question.
CHILD = """
import json, sys, time
t0 = time.perf_counter()


def peak_rss_mb():
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


sys.path.insert(0, {root!r})
engine, model_dir = {engine!r}, {model_dir!r}
if engine == "torch fp32":
    from embeddings.sentence_embedder import SentenceTransformerEmbedder
    t1 = time.perf_counter()
    e = SentenceTransformerEmbedder(model_dir, name="multilingual-e5-small")
else:
    from pathlib import Path
    from embeddings.onnx_embedder import OnnxEmbedder
    t1 = time.perf_counter()
    e = OnnxEmbedder(Path(model_dir) / "onnx", name="multilingual-e5-small",
                     precision=engine.split()[1], threads=1)
t2 = time.perf_counter()
e.embed_query("Comment financer une SCIC en milieu rural ?")
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "load": t2 - t1, "first": t3 - t2,
                  "rss_mb": peak_rss_mb(),
                  "torch": "torch" in sys.modules}}))
"""


def load_engines(model_dir: Path, threads: int) -> dict[str, Embedder]:
    """The three embedders, ONNX ones with `threads` intra-op threads."""
    from embeddings.sentence_embedder import SentenceTransformerEmbedder

    onnx_dir = model_dir / "onnx"
    return {
        "torch fp32": SentenceTransformerEmbedder(str(model_dir), name=DEFAULT_MODEL_NAME),
        "onnx fp32": OnnxEmbedder(
            onnx_dir, name=DEFAULT_MODEL_NAME, precision="fp32", threads=threads
        ),
        "onnx int8": OnnxEmbedder(
            onnx_dir, name=DEFAULT_MODEL_NAME, precision="int8", threads=threads
        ),
    }


def set_torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def question_latency(
    engines: dict[str, Embedder], qs: list[str]
) -> tuple[dict[str, list[float]], dict[str, np.ndarray]]:
    """Seconds per `embed_query`, the engines taking turns on each question."""
    times: dict[str, list[float]] = {name: [] for name in engines}
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in engines}
    for engine in engines.values():
        for q in qs[:10]:
            engine.embed_query(q)  # warm-up
    for q in qs:
        for name, engine in engines.items():
            t0 = time.perf_counter()
            vectors[name].append(engine.embed_query(q))
            times[name].append(time.perf_counter() - t0)
    return times, {name: np.stack(v) for name, v in vectors.items()}


def document_throughput(
    engines: dict[str, Embedder], passages: list[str], round_size: int = 2 * BATCH
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Total seconds of `embed_documents` per engine, alternating rounds of `round_size`."""
    seconds = dict.fromkeys(engines, 0.0)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in engines}
    for engine in engines.values():
        engine.embed_documents(passages[:4])  # warm-up
    for start in range(0, len(passages), round_size):
        chunk = passages[start : start + round_size]
        for name, engine in engines.items():
            t0 = time.perf_counter()
            parts[name].append(engine.embed_documents(chunk))
            seconds[name] += time.perf_counter() - t0
    return seconds, {name: np.concatenate(p) for name, p in parts.items()}


def cold_start(engine: str, model_dir: Path, repeats: int) -> dict[str, float]:
    """Best of `repeats` fresh processes: import, load, first query (s), peak RSS (MB)."""
    code = CHILD.format(root=str(ROOT), engine=engine, model_dir=str(model_dir))
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["wall"] = time.perf_counter() - t0
        runs.append(result)
    return min(runs, key=lambda r: r["wall"])


def cosine_stats(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    cos = np.sum(ours * ref, axis=1)
    return float(cos.min()), float(cos.mean())


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer texts, one cold start each")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "ess-assistant")
    parser.add_argument("--seed-file", type=Path, default=SEED)
    args = parser.parse_args(argv)
    setup_offline()

    n_questions, n_passages, repeats = (60, 64, 1) if args.quick else (200, 192, 3)
    qs = questions(n_questions)
    passages = make_passages(args.seed_file.read_text(encoding="utf-8"), n_passages)
    test_texts = [
        json.loads(line)["text"]
        for line in TEST_TEXTS.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    t0 = time.perf_counter()
    model_dir = ensure_default_model(args.cache_dir)
    ensure_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ensure_onnx_model(model_dir, "int8")
    export_s = time.perf_counter() - t0
    print(machine_line())
    sizes = {p: (model_dir / "onnx" / f).stat().st_size / 1e6 for p, f in MODEL_FILES.items()}
    print(f"ensure_default_model {ensure_s:.1f} s, ensure_onnx_model {export_s:.1f} s; "
          f"ONNX files fp32 {sizes['fp32']:.0f} MB, int8 {sizes['int8']:.0f} MB")  # fmt: skip

    # (a) one question at a time, 1 thread.
    set_torch_threads(1)
    engines = load_engines(model_dir, threads=1)
    counter = engines["onnx fp32"]
    q_tokens = np.mean([counter.count_tokens("query: " + q) for q in qs])
    latency, query_vectors = question_latency(engines, qs)

    # (b) documents, batch 32, 2 threads.
    set_torch_threads(2)
    engines = {"torch fp32": engines["torch fp32"], **{
        name: e for name, e in load_engines(model_dir, threads=2).items() if name != "torch fp32"
    }}  # fmt: skip
    p_tokens = np.mean([counter.count_tokens("passage: " + p) for p in passages])
    seconds, passage_vectors = document_throughput(engines, passages)

    # (c) cosine to torch fp32 on the committed test texts too.
    embed: dict[str, Callable[[Embedder], np.ndarray]] = {
        "query": lambda e: e.embed_queries(test_texts),
        "passage": lambda e: e.embed_documents(test_texts),
    }
    test_vectors = {(name, mode): f(e) for name, e in engines.items() for mode, f in embed.items()}

    # (d) fresh processes.
    cold = {name: cold_start(name, model_dir, repeats) for name in ENGINES}

    print(f"\n(a) one question, 1 thread: {len(qs)} questions, {q_tokens:.0f} tokens on average")
    print(f"(b) documents, batch {BATCH}, 2 threads: {len(passages)} passages, "
          f"{np.mean([len(p) for p in passages]):.0f} chars, {p_tokens:.0f} tokens on average")  # fmt: skip
    rows: list[tuple[object, ...]] = []
    for name in ENGINES:
        p50, p95, mean = ms_stats(latency[name])
        rate = len(passages) / seconds[name]
        speedup = seconds["torch fp32"] / seconds[name]
        rows.append((name, p50, p95, mean, f"{rate:.1f}", f"{speedup:.2f}x"))
    print_table(["engine", "question p50 ms", "p95 ms", "mean ms", "chunks/s", "vs torch"], rows)

    print("\n(c) cosine to torch fp32 (min / mean)")
    rows = []
    for name in ENGINES[1:]:
        ref = "torch fp32"
        q = cosine_stats(query_vectors[name], query_vectors[ref])
        p = cosine_stats(passage_vectors[name], passage_vectors[ref])
        tq = cosine_stats(test_vectors[name, "query"], test_vectors[ref, "query"])
        tp = cosine_stats(test_vectors[name, "passage"], test_vectors[ref, "passage"])
        rows.append((name, *(f"{lo:.5f} / {avg:.5f}" for lo, avg in (q, p, tq, tp))))
    print_table(["engine", "bench questions (query)", "bench passages (passage)",
                 f"{len(test_texts)} test texts (query)", "test texts (passage)"], rows)  # fmt: skip

    print(f"\n(d) fresh process, best of {repeats}: import, load, first question (1 thread)")
    cold_rows: list[tuple[object, ...]] = [
        (name, c["import"], c["load"], c["first"] * 1e3, c["wall"], f"{c['rss_mb']:.0f}",
         "yes" if c["torch"] else "no")
        for name, c in cold.items()
    ]  # fmt: skip
    headers = ["engine", "module import s", "load s (incl. torch import)", "first query ms",
               "process wall s", "peak RSS MB", "torch imported"]  # fmt: skip
    print_table(headers, cold_rows)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
