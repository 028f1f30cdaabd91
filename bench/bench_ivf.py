"""IVF recall and latency at large sizes, on the same generated vectors as `bench_query.py`.

Prints recall@10 against exact search and single-question latency for several `nprobe`, for
an `IndexIVFFlat` trained as `embeddings.store.make_faiss_index` trains it. Questions are the
first 100 of the evaluation set, embedded with the default model.

    python bench/bench_ivf.py                  # 1 M vectors, nlist 4096
    python bench/bench_ivf.py --quick          # 200 k vectors, nlist 1024
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_query import generated_vectors, real_embeddings
from common import setup_offline

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 k vectors, nlist 1024")
    parser.add_argument("--size", type=int, default=None, help="default 1 000 000")
    parser.add_argument("--nlist", type=int, default=None, help="default 4096")
    parser.add_argument("--nprobe", default="32,64,128,256,384")
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/ess-bench"))
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "ess-assistant")
    args = parser.parse_args(argv)
    setup_offline()
    from embeddings.loading import load_embedder

    size = args.size or (200_000 if args.quick else 1_000_000)
    nlist = args.nlist or (1024 if args.quick else 4096)
    embedder = load_embedder(None, cache_dir=args.cache_dir, precision="fp32")
    real = real_embeddings(embedder, 200 if args.quick else 600, args.work_dir)
    vectors = generated_vectors(real, size)
    lines = (REPO / "tests" / "data" / "eval_questions.jsonl").read_text(encoding="utf-8")
    questions = [json.loads(line)["question"] for line in lines.splitlines()[:100]]
    queries = embedder.embed_queries(questions)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]

    t0 = time.perf_counter()
    ivf = faiss.IndexIVFFlat(
        faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT
    )
    sample = np.random.default_rng(0).choice(size, min(size, 50 * nlist), replace=False)
    ivf.train(vectors[np.sort(sample)])
    trained = time.perf_counter() - t0
    ivf.add(vectors)
    built = time.perf_counter() - t0
    print(f"{size} vectors, IVF{nlist}: train {trained:.1f} s, train + add {built:.1f} s")
    print(f"{'nprobe':>7} {'recall@10':>10} {'p50 ms':>8} {'p95 ms':>8}")
    for nprobe in (int(x) for x in args.nprobe.split(",")):
        ivf.nprobe = nprobe
        latencies, hits = [], []
        for i in range(len(queries)):
            t = time.perf_counter()
            _, ids = ivf.search(queries[i : i + 1], 10)
            latencies.append(time.perf_counter() - t)
            hits.append(len(set(ids[0].tolist()) & set(truth[i].tolist())) / 10)
        p50, p95 = (np.percentile(latencies, q) * 1000 for q in (50, 95))
        print(f"{nprobe:>7} {np.mean(hits):>10.3f} {p50:>8.2f} {p95:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
