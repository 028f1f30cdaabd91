"""Side by side with a plain LangChain pipeline: same model, same chunk texts.

LangChain: `FAISS.from_documents` (langchain_community) with `HuggingFaceEmbeddings`
(langchain_huggingface) pointing at the directory of the rebuilt default model, with the e5
prefixes (`passage: ` / `query: `) given as sentence-transformers prompts, then
`similarity_search(k=10)`. It has no incremental path: after one edit a user rebuilds
everything (measured), or deletes and re-adds the edited resource's chunks by ids they kept
themselves (measured too, as the best case).

Ours: `build_index` full, `build_index` after the same one-resource edit (incremental), and
`Assistant.ask` (hybrid retrieval + answer composition, query embedding included). The chunk
texts given to LangChain are the ones our build produced. Queries alternate question by
question between the two.

    python bench/bench_langchain.py [--quick] [--resources N] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

from common import (
    DEFAULT_WORK,
    edit_resource,
    generate_resources,
    load_average,
    machine_line,
    ms_stats,
    print_table,
    questions,
    setup_offline,
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 resources, 60 questions")
    parser.add_argument("--resources", type=int, default=None, help="default 100 (quick 30)")
    parser.add_argument("--work-dir", type=Path, default=DEFAULT_WORK)
    args = parser.parse_args(argv)
    setup_offline()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)

    import torch
    from langchain_community.vectorstores import FAISS
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings

    from assistant.service import Assistant
    from assistant.settings import Settings
    from corpus.chunking import ChunkingSettings
    from embeddings.builder import build_index
    from embeddings.e5_rebuild import ensure_default_model
    from embeddings.loading import load_embedder
    from embeddings.store import ResourceIndex

    torch.set_num_threads(2)
    count = args.resources or (30 if args.quick else 100)
    qs = questions(60 if args.quick else 220)
    cache = args.work_dir / "cache"
    data_dir = args.work_dir / "langchain"
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = Settings(data_dir=data_dir)
    embedder = load_embedder(None, cache_dir=cache)
    lc_embeddings = HuggingFaceEmbeddings(
        model_name=str(ensure_default_model(cache)),
        model_kwargs={"device": "cpu"},
        encode_kwargs={"prompt": "passage: ", "batch_size": 32, "normalize_embeddings": True},
        query_encode_kwargs={"prompt": "query: ", "normalize_embeddings": True},
    )
    embedder.embed_documents(["échauffement"] * 4)
    lc_embeddings.embed_documents(["échauffement"] * 4)
    resources = generate_resources(count)
    chunking = ChunkingSettings(size=settings.chunk_size, overlap=settings.chunk_overlap)
    index_dir = settings.resolved_index_dir

    def ours(res: list) -> float:
        t0 = time.perf_counter()
        build_index(res, embedder=embedder, index_dir=index_dir, chunking=chunking)
        return time.perf_counter() - t0

    def documents() -> tuple[list[Document], list[str]]:
        index = ResourceIndex.load(index_dir)
        docs = [Document(page_content=c.embedding_text(), metadata={"resource_id": c.resource_id,
                "position": c.position}) for c in index.chunks]  # fmt: skip
        ids = [f"{c.resource_id}#{c.position}" for c in index.chunks]
        return docs, ids

    def lc_build(docs: list[Document], ids: list[str]) -> tuple[FAISS, float]:
        t0 = time.perf_counter()
        store = FAISS.from_documents(docs, lc_embeddings, ids=ids)
        return store, time.perf_counter() - t0

    load_start = load_average()
    ours_full = ours(resources)
    docs, ids = documents()
    store, lc_full = lc_build(docs, ids)

    edited = edit_resource(resources[0])
    resources2 = [edited, *resources[1:]]
    ours_incr = ours(resources2)
    docs2, ids2 = documents()
    store, lc_rebuild = lc_build(docs2, ids2)
    # Best case by hand: delete the edited resource's chunks by id and add its new ones.
    _, old_store_ids = docs, ids
    lc_store_manual, _ = lc_build(docs, ids)
    old = [i for i in old_store_ids if i.startswith(edited.id + "#")]
    new = [(d, i) for d, i in zip(docs2, ids2, strict=True) if i.startswith(edited.id + "#")]
    t0 = time.perf_counter()
    lc_store_manual.delete(old)
    lc_store_manual.add_documents([d for d, _ in new], ids=[i for _, i in new])
    lc_manual = time.perf_counter() - t0
    del lc_store_manual

    assistant = Assistant(settings, embedder=embedder)
    for q in qs[:3]:
        assistant.ask(q)
        store.similarity_search(q, k=10)
    lat_ours: list[float] = []
    lat_lc: list[float] = []
    for q in qs:
        t0 = time.perf_counter()
        assistant.ask(q)
        lat_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        store.similarity_search(q, k=10)
        lat_lc.append(time.perf_counter() - t0)

    n = len(docs2)
    print(machine_line())
    print(f"{count} resources, {n} chunks (same texts for both); {len(qs)} questions; "
          f"load average at start {load_start}, at end {load_average()}")  # fmt: skip
    o50, o95, _ = ms_stats(lat_ours)
    l50, l95, _ = ms_stats(lat_lc)
    print_table(
        ["pipeline", "full build s", "after 1 edit s", "how", "query p50 ms", "query p95 ms"],
        [
            ("ours (build_index, Assistant.ask)", ours_full, ours_incr,
             "incremental (1 resource re-embedded)", o50, o95),
            ("LangChain FAISS + HuggingFaceEmbeddings", lc_full, lc_rebuild,
             "full rebuild (no incremental path)", l50, l95),
            ("LangChain, delete+add by ids (by hand)", lc_full, lc_manual,
             "user keeps chunk ids and re-splits", "", ""),
        ],
    )  # fmt: skip
    print(
        "note: our query is hybrid retrieval + grouping + extractive answer with citations; "
        "LangChain's is a dense top-10 only."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
