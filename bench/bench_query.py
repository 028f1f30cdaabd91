"""Warm query latency at 10 k, 100 k and 1 M chunks: end to end through `Assistant.ask` and per
stage, for the default model in fp32 and in int8 (ONNX Runtime, one thread per question as the
server runs it), idle and — with `--background-build` — while a build embeds documents on every
core in another process; with RSS, index size on disk, and the FAISS index choice (exact vs
the inverted file, recall@10).

Data. Real embeddings: `--real` French-like chunk texts (bundled sentences recombined) are
embedded with the default model (cached in the work dir), and the questions (evaluation set +
variations, ≥ 200) with its query prefix. Large sizes are generated around them, without
embedding millions of texts: each vector is
``normalize(a·C_i + (1 − a)·C_j + s·(C_k − C_l) + e)`` with C the real chunk embeddings,
i, j, k, l drawn at random, a ~ U(0.5, 1), s ~ N(0, 0.35) and e isotropic noise of norm
about 0.1, so vectors stay on the model's (anisotropic) manifold and keep near neighbours;
the top-1 cosine of the real questions is printed for the real and the generated sets.
The lexical side indexes generated French-like chunk texts (bundled sentences recombined,
~750 characters, 8 chunks per resource). The `ResourceIndex` is built directly, saved, then
loaded by the `Assistant` as in production.

    python bench/bench_query.py [--quick] [--sizes 10000,100000] [--real 600]
    python bench/bench_query.py --quick --background-build     # the same under a build's load
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from common import (
    DEFAULT_WORK,
    dir_size_mb,
    load_average,
    machine_line,
    ms_stats,
    print_table,
    questions,
    rss_mb,
    setup_offline,
    synthetic_chunks,
)

if TYPE_CHECKING:
    from embeddings.sentences import SentenceVectors

K = 10


def generated_vectors(real: np.ndarray, count: int, *, seed: int = 3) -> np.ndarray:
    """`count` L2-normalized vectors from a mixture around the real embeddings (module doc)."""
    rng = np.random.default_rng(seed)
    n, dim = real.shape
    out = np.empty((count, dim), dtype=np.float32)
    step = 100_000
    for start in range(0, count, step):
        m = min(step, count - start)
        i, j, k, ll = (rng.integers(0, n, m) for _ in range(4))
        a = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        s = rng.normal(0.0, 0.35, (m, 1)).astype(np.float32)
        e = rng.normal(0.0, 0.1 / np.sqrt(dim), (m, dim)).astype(np.float32)
        v = a * real[i] + (1 - a) * real[j] + s * (real[k] - real[ll]) + e
        out[start : start + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def real_embeddings(embedder, count: int, work: Path) -> np.ndarray:
    """Embeddings of `count` generated chunk texts (cached in `work`)."""
    cache = work / f"real-embeddings-{count}.npy"
    if cache.is_file():
        return np.load(cache)
    chunks, _ = synthetic_chunks(count, seed=99)
    vectors = embedder.embed_documents([c.embedding_text() for c in chunks])
    work.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def dense_bench(
    vectors: np.ndarray,
    queries: np.ndarray,
    chosen: object | None = None,
    grid: Sequence[tuple[int, int, int]] = (),
) -> list[tuple[str, float, float, float, float]]:
    """(label, build s, p50 ms, p95 ms, recall@10) for exact search, the store's own index
    (`chosen`, already built) and optional HNSW settings (M, efConstruction, efSearch)."""
    import faiss

    from embeddings import store

    flat = faiss.IndexFlatIP(vectors.shape[1])
    t0 = time.perf_counter()
    flat.add(vectors)
    flat_build = time.perf_counter() - t0
    truth: list[set[int]] = []
    lat: list[float] = []
    for q in queries:
        t0 = time.perf_counter()
        _, ids = flat.search(q.reshape(1, -1), K)
        lat.append(time.perf_counter() - t0)
        truth.append(set(ids[0].tolist()))
    p50, p95, _ = ms_stats(lat)
    rows = [("exact (IndexFlatIP)", flat_build, p50, p95, 1.0)]
    del flat

    def measure(index: object) -> tuple[float, float, float]:
        lat, hits = [], 0
        for q, t in zip(queries, truth, strict=True):
            t0 = time.perf_counter()
            _, ids = index.search(q.reshape(1, -1), K)  # type: ignore[attr-defined]
            lat.append(time.perf_counter() - t0)
            hits += len(t & set(ids[0].tolist()))
        p50, p95, _ = ms_stats(lat)
        return p50, p95, hits / (K * len(queries))

    if chosen is not None and store.index_type_name(chosen) != "flat":  # type: ignore[arg-type]
        label = f"{store.index_type_name(chosen)} nlist {chosen.nlist} nprobe {chosen.nprobe}"  # type: ignore[arg-type, attr-defined]
        rows.append((f"{label} (the store's choice)", float("nan"), *measure(chosen)))
    built: dict[tuple[int, int], tuple[object, float]] = {}
    for m, efc, efs in grid:
        if (m, efc) not in built:
            index = faiss.IndexHNSWFlat(vectors.shape[1], m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = efc
            t0 = time.perf_counter()
            index.add(vectors)
            built[(m, efc)] = (index, time.perf_counter() - t0)
        index, build_s = built[(m, efc)]
        index.hnsw.efSearch = efs  # type: ignore[attr-defined]
        rows.append((f"HNSW M={m} efC={efc} efS={efs}", build_s, *measure(index)))
    return rows


@contextlib.contextmanager
def background_build(work: Path, processes: int = 1, nice: bool = True) -> Iterator[None]:
    """`processes` separate processes embedding documents on every core, as `ess-assistant
    build` does while the server answers (one: load ≈ 2 on 2 cores; two: ≈ 3 to 4), at the
    priority `build` takes (`ESS_ASSISTANT_BUILD_NICE`), or the normal one (`nice=False`)."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from pathlib import Path; from embeddings.loading import load_embedder;"
        "from assistant.cli import lower_priority; from assistant.settings import Settings;"
        "lower_priority(Settings.from_env().build_nice if sys.argv[3] == 'nice' else 0);"
        "e = load_embedder(None, cache_dir=Path(sys.argv[2]), precision='fp32');"
        "texts = ['passage de document numéro %d sur les coopératives et les territoires ' % i * 12"
        " for i in range(32)]\n"
        "while True: e.embed_documents(texts)"
    )
    root = str(Path(__file__).resolve().parent.parent)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, root, str(work / "cache"), "nice" if nice else "-"],
            env={**os.environ, "OMP_NUM_THREADS": "2"},
        )
        for _ in range(processes)
    ]
    try:
        time.sleep(60)  # the model loads and the 1-minute load average catches up
        yield
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)


def embed_latency(embedders: dict, qs: Sequence[str]) -> list[tuple[str, float, float, float]]:
    """Question embedding latency of each embedder, alternated question by question."""
    lat: dict[str, list[float]] = {name: [] for name in embedders}
    for q in qs:
        for name, embedder in embedders.items():
            t0 = time.perf_counter()
            embedder.embed_query(q)
            lat[name].append(time.perf_counter() - t0)
    return [(f"embed_query, {name}", *ms_stats(v)) for name, v in lat.items()]


def answer_everything(assistant) -> None:
    """Keep the calibration's domain gate and abstention model (their cost is timed) but with
    thresholds at 0, so that every question goes through answer composition, the costly
    path: synthetic passages and their sentences are not real text, and the questions would
    otherwise be abstained at various rates from one version to the next."""
    from dataclasses import replace

    calibration = assistant.calibration
    domain = replace(calibration.domain, threshold=-1e9) if calibration.domain else None
    abstention = replace(calibration.abstention, abstain_below=0.0, low_below=0.0)
    assistant._calibration = replace(calibration, domain=domain, abstention=abstention)


def time_stages(assistant, qs: Sequence[str]) -> dict[str, list[float]]:
    """Per question, alternately: `Assistant.ask` end to end, then each stage of `retrieve` and
    `compose_answer` called directly (same functions, same order as `retrieve`)."""
    from assistant.compose import compose_answer
    from assistant.models import Retrieval
    from assistant.retrieval import (
        _fuse,
        _group,
        _signals,
        _term_weights,
        allowed_mask,
        contextual_query,
        decide,
        embed_query,
    )

    params = assistant.params
    index = assistant.index()
    embedder = assistant.embedder
    out: dict[str, list[float]] = {k: [] for k in (
        "Assistant.ask (end to end)", "embed query", "filter mask", "dense search",
        "lexical search", "fusion + grouping", "signals + outcome", "answer composition")}  # fmt: skip
    for question in qs:
        t0 = time.perf_counter()
        assistant.ask(question)
        out["Assistant.ask (end to end)"].append(time.perf_counter() - t0)

        text, _ = assistant.prepare_question(question)
        query = contextual_query(text, ())
        t0 = time.perf_counter()
        qv = embed_query(embedder, query)
        t1 = time.perf_counter()
        mask = allowed_mask(index, None, include_private=False)
        t2 = time.perf_counter()
        dense = dict(index.search_dense(qv, params.candidates, mask))
        t3 = time.perf_counter()
        lexical = dict(index.lexical.search(query.question, params.candidates, allowed=mask))
        t4 = time.perf_counter()
        missing = [r for r in set(dense) | set(lexical) if r not in dense]
        if missing:
            dense.update(
                zip(missing, map(float, index.vectors[np.asarray(missing)] @ qv), strict=True)
            )
        fused = _fuse(dense, lexical, params)
        ranked = _group(index, fused, dense, lexical, params.passages_per_resource)
        t5 = time.perf_counter()
        weights = _term_weights(index, query, params.weight_of_context(query))
        signals = _signals(index, qv, dense, lexical, ranked, weights, params)
        probability, outcome, reason = decide(signals, params)
        retrieval = Retrieval(
            query=query.text,
            resources=tuple(ranked[:10]),
            signals=signals,
            probability=probability,
            outcome=outcome,
            reason=reason,
        )
        t5b = time.perf_counter()
        compose_answer(text, retrieval, max_sources=assistant.settings.max_sources)
        t6 = time.perf_counter()
        for key, a, b in (("embed query", t0, t1), ("filter mask", t1, t2), ("dense search", t2, t3),
                          ("lexical search", t3, t4), ("fusion + grouping", t4, t5),
                          ("signals + outcome", t5, t5b), ("answer composition", t5b, t6)):  # fmt: skip
            out[key].append(b - a)
    return out


SENTENCES_PER_CHUNK = 7  # the bundled and grown bases average 6–7 sentences per passage


def synthetic_sentences(vectors: np.ndarray) -> SentenceVectors:
    """Sentence vectors for synthetic passages: each passage's vector plus noise, quantized
    as the builder stores them (only their number and layout matter for timing)."""
    from embeddings.sentences import SentenceVectors, quantize

    rng = np.random.default_rng(1)
    n, dim = vectors.shape
    per = SENTENCES_PER_CHUNK
    codes = np.empty((n * per, dim), dtype=np.int8)
    scales = np.empty(n * per, dtype=np.float32)
    for start in range(0, n, 10_000):
        block = np.repeat(vectors[start : start + 10_000], per, axis=0)
        block = block + rng.normal(0, 0.03, block.shape).astype(np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        rows = slice(start * per, start * per + len(block))
        codes[rows], scales[rows] = quantize(block)
    counts = np.full(n, per, dtype=np.int64)
    starts = np.arange(0, n * per, per, dtype=np.int64)
    return SentenceVectors(((codes, scales),), np.zeros(n, dtype=np.int32), starts, counts)


def run_size(
    size: int,
    real: np.ndarray,
    qvecs: np.ndarray,
    qs: list[str],
    embedders: dict,
    work: Path,
    under_load: int = 0,
    same_priority: bool = False,
) -> list[tuple[int, str, float, float, float]]:
    """Build, save and load an index of `size` chunks; time dense choices and queries, per
    precision; (size, precision, ask p95 ms, on disk MB, RSS MB) rows."""
    from assistant.service import Assistant
    from assistant.settings import Settings
    from corpus.chunking import ChunkingSettings
    from embeddings import store
    from embeddings.lexical import LexicalIndex
    from embeddings.store import Manifest, ResourceIndex, index_type_name, make_faiss_index

    print(f"\n## {size:,} chunks (load average {load_average()})", flush=True)
    base_rss = rss_mb()
    t0 = time.perf_counter()
    chunks, resources = synthetic_chunks(size)
    vectors = generated_vectors(real, size)
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lexical = LexicalIndex.build(chunks, resources=resources)
    bm25_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    faiss_index = make_faiss_index(vectors)
    faiss_s = time.perf_counter() - t0
    sentences = synthetic_sentences(vectors)
    index = ResourceIndex(
        manifest=Manifest(model="multilingual-e5-small", dimension=vectors.shape[1],
                          chunking=ChunkingSettings().as_dict(),
                          resources={rid: "" for rid in resources}, chunk_count=size,
                          index_type=index_type_name(faiss_index)),
        resources=resources, chunks=chunks, vectors=vectors, lexical=lexical,
        faiss_index=faiss_index, sentences=sentences,
    )  # fmt: skip
    build_rss = rss_mb()
    top1 = np.max(vectors @ qvecs[:50].T, axis=0)
    print(f"generated in {gen_s:.1f} s; BM25 build {bm25_s:.1f} s; FAISS "
          f"{index_type_name(faiss_index)} build {faiss_s:.1f} s (EXACT_SEARCH_MAX="
          f"{store.EXACT_SEARCH_MAX:,}); RSS after build {build_rss:.0f} MB "
          f"(+{build_rss - base_rss:.0f}); question top-1 cosine p50 {np.median(top1):.3f}",
          flush=True)  # fmt: skip

    print("\ndense search alone, real question vectors, k=10, recall vs exact:")
    print_table(
        ["index", "build s", "p50 ms", "p95 ms", "recall@10"],
        dense_bench(vectors, qvecs, faiss_index),
    )

    import shutil
    from dataclasses import replace

    shutil.rmtree(work / f"query-{size}", ignore_errors=True)
    save_s = 0.0
    for precision in embedders:  # the same index, recorded once per precision
        index.manifest = replace(index.manifest, precision=precision)
        t0 = time.perf_counter()
        index.save(work / f"query-{size}" / precision / "index")
        save_s = time.perf_counter() - t0
    folder = work / f"query-{size}" / precision / "index" / "versions" / index.version
    sizes = {
        p.name: dir_size_mb(p) if p.is_dir() else p.stat().st_size / 1e6 for p in folder.iterdir()
    }
    del index, chunks, resources, vectors, lexical, faiss_index
    gc.collect()

    summary = []
    load = (
        background_build(work, under_load, nice=not same_priority)
        if under_load
        else contextlib.nullcontext()
    )
    with load:
        for precision, embedder in embedders.items():
            settings = Settings(data_dir=work / f"query-{size}" / precision, precision=precision)
            assistant = Assistant(settings, embedder=embedder)
            answer_everything(assistant)
            t0 = time.perf_counter()
            assistant.index()
            load_s = time.perf_counter() - t0
            serve_rss = rss_mb()
            for q in qs[:5]:
                assistant.ask(q)  # warm-up
            stages = time_stages(assistant, qs)
            print(f"\n{precision}: saved in {save_s:.1f} s, loaded in {load_s:.1f} s; on disk "
                  f"{sum(sizes.values()):.0f} MB ({', '.join(f'{k} {v:.0f}' for k, v in sorted(sizes.items()))}); "
                  f"RSS serving {serve_rss:.0f} MB (process, both models included); {len(qs)} "
                  f"questions, load average {load_average()}"
                  f"{' (a build runs in another process)' if under_load else ''}")  # fmt: skip
            rows = []
            for stage, values in stages.items():
                p50, p95, mean = ms_stats(values)
                rows.append((stage, p50, p95, mean))
            print_table(["stage", "p50 ms", "p95 ms", "mean ms"], rows)
            e2e_p95 = ms_stats(stages["Assistant.ask (end to end)"])[1]
            summary.append((size, precision, e2e_p95, sum(sizes.values()), serve_rss))
            del assistant
            gc.collect()
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10 k and 100 k chunks, 200 real vectors, 100 questions",
    )
    parser.add_argument("--sizes", default=None, help="comma-separated chunk counts")
    parser.add_argument(
        "--real", type=int, default=None, help="real embeddings (default 600, quick 200)"
    )
    parser.add_argument("--questions", type=int, default=None, help="default 220 (quick 100)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    parser.add_argument(
        "--query-threads",
        type=int,
        default=1,
        help="threads of one question (1: what `serve` uses, ESS_ASSISTANT_SERVE_THREADS)",
    )
    parser.add_argument("--precision", default="fp32,int8", help="precisions to compare")
    parser.add_argument(
        "--background-build",
        type=int,
        nargs="?",
        const=1,
        default=0,
        help="measure while N other processes (default 1) embed documents on every core",
    )
    parser.add_argument(
        "--same-priority",
        action="store_true",
        help="the background builds keep the normal CPU priority (`build` lowers its own)",
    )
    parser.add_argument(
        "--dense-only",
        action="store_true",
        help="only exact vs the store's index on generated vectors at each size (no index)",
    )
    parser.add_argument(
        "--grid",
        default=None,
        help="HNSW settings to compare too, e.g. 32:80:512,32:80:1024 (M:efC:efS)",
    )
    args = parser.parse_args(argv)
    setup_offline()
    logging.basicConfig(level=logging.WARNING)

    import faiss

    from embeddings.loading import load_embedder

    faiss.omp_set_num_threads(2)
    sizes = [
        int(s)
        for s in (args.sizes or ("10000,100000" if args.quick else "10000,100000,1000000")).split(
            ","
        )
    ]
    n_real = args.real or (200 if args.quick else 600)
    print(machine_line(), "(FAISS threads 2)", flush=True)
    embedders = {
        p: load_embedder(None, cache_dir=args.work_dir / "cache", precision=p,
                         query_threads=args.query_threads)
        for p in args.precision.split(",")
    }  # fmt: skip
    embedder = next(iter(embedders.values()))
    qs = questions(args.questions or (100 if args.quick else 220))
    t0 = time.perf_counter()
    real = real_embeddings(embedder, n_real, args.work_dir)
    real_s = time.perf_counter() - t0
    qvecs = np.ascontiguousarray(embedder.embed_queries(qs), dtype=np.float32)
    print(
        f"{len(real)} real chunk embeddings ({real_s:.0f} s, cached), {len(qs)} questions",
        flush=True,
    )

    print(f"\nquery embedding alone, {len(qs)} questions, {args.query_threads} thread(s) "
          f"(load average {load_average()}):")  # fmt: skip
    print_table(["what", "p50 ms", "p95 ms", "mean ms"], embed_latency(embedders, qs))
    if args.background_build:
        with background_build(args.work_dir, args.background_build, not args.same_priority):
            print(
                f"\nthe same while a build runs in another process (load average {load_average()}):"
            )
            print_table(["what", "p50 ms", "p95 ms", "mean ms"], embed_latency(embedders, qs))
    top1 = np.max(real @ qvecs.T, axis=0)
    print(f"question top-1 cosine on the real set: p50 {np.median(top1):.3f}")

    grid = [tuple(int(x) for x in g.split(":")) for g in args.grid.split(",")] if args.grid else []
    if args.dense_only:
        for size in sizes:
            print(
                f"\ndense search alone, {size:,} generated vectors (load average {load_average()}):"
            )
            from embeddings.store import make_faiss_index

            vectors = generated_vectors(real, size)
            rows = dense_bench(vectors, qvecs, make_faiss_index(vectors), grid=grid)  # type: ignore[arg-type]
            print_table(["index", "build s", "p50 ms", "p95 ms", "recall@10"], rows)
        return 0
    summary = [
        row
        for size in sizes
        for row in run_size(
            size,
            real,
            qvecs,
            qs,
            embedders,
            args.work_dir,
            args.background_build,
            args.same_priority,
        )
    ]
    print("\n## summary" + (" (a build runs in another process)" if args.background_build else ""))
    print_table(["chunks", "precision", "ask p95 ms", "on disk MB", "RSS MB"], summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
