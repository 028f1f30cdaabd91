"""Index persistence: round trip, atomic versions, checked load."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from corpus.bundled import bundled_corpus_dir
from corpus.chunking import ChunkingSettings
from corpus.errors import IndexCorruptError, IndexNotFoundError, ModelMismatchError
from corpus.loaders import load_corpus
from embeddings.builder import build_index
from embeddings.store import ResourceIndex, current_version, read_manifest
from tests.fakes import FAKE_MODEL, FakeEmbedder


@pytest.fixture
def built(tmp_path: Path, fake_embedder: FakeEmbedder) -> Path:
    loaded = load_corpus(bundled_corpus_dir())
    build_index(
        loaded.resources,
        embedder=fake_embedder,
        index_dir=tmp_path / "idx",
        chunking=ChunkingSettings(),
    )
    return tmp_path / "idx"


def test_round_trip(built: Path, fake_embedder: FakeEmbedder) -> None:
    index = ResourceIndex.load(built, model=FAKE_MODEL, dimension=64)
    assert len(index.resources) == 9
    assert index.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-5)
    for chunk in index.chunks:
        assert index.resources[chunk.resource_id].body[chunk.start : chunk.end] == chunk.text
    m = read_manifest(built)
    assert m.model == FAKE_MODEL and m.dimension == 64 and m.chunk_count == len(index)
    assert m.chunking == ChunkingSettings().as_dict()
    assert set(m.resources) == set(index.resources) and m.index_type == "flat"
    assert {"python", "faiss"} <= set(m.versions)
    q = fake_embedder.embed_query("coopération")
    assert index.search_dense(q, 3) == ResourceIndex.load(built).search_dense(q, 3)


def test_missing_index_says_how_to_build(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="ess-assistant build"):
        ResourceIndex.load(tmp_path / "nothing")


def test_model_or_dimension_mismatch(built: Path) -> None:
    with pytest.raises(ModelMismatchError, match="build --full"):
        ResourceIndex.load(built, model="another-model")
    with pytest.raises(ModelMismatchError, match="dimension"):
        ResourceIndex.load(built, dimension=384)


@pytest.mark.parametrize(
    "victim", ["vectors.npy", "chunks.npy", "resources.jsonl", "manifest.json"]
)
def test_corrupt_file_is_a_clear_error(built: Path, victim: str) -> None:
    folder = built / "versions" / current_version(built)
    path = folder / victim
    path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
    with pytest.raises(IndexCorruptError, match="build --full"):
        ResourceIndex.load(built)


def test_manifest_disagreeing_with_files(built: Path) -> None:
    path = built / "versions" / current_version(built) / "manifest.json"
    data = json.loads(path.read_text())
    data["chunk_count"] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(IndexCorruptError):
        ResourceIndex.load(built)


def test_failed_save_keeps_the_previous_version(
    built: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = current_version(built)
    index = ResourceIndex.load(built)

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disque plein")

    monkeypatch.setattr(index.lexical, "save", boom)
    with pytest.raises(OSError):
        index.save(built)
    assert current_version(built) == before
    assert not list(built.glob(".tmp-*"))
    assert len(ResourceIndex.load(built)) == len(index)


def test_old_versions_are_pruned(built: Path) -> None:
    index = ResourceIndex.load(built)
    for _ in range(4):
        index.save(built)
    assert len(list((built / "versions").iterdir())) == 3  # current + 2 previous


@pytest.mark.parametrize(
    ("exact_max", "kind"),
    [(10**9, "flat"), (1000, "ivf")],
)
def test_filtered_search_on_large_indexes(
    monkeypatch: pytest.MonkeyPatch, exact_max: int, kind: str
) -> None:
    """The FAISS selector path (≥ 20 000 allowed rows) honours the mask for each index type,
    and the search settings survive a save/load round trip."""
    import embeddings.store as store
    from corpus.models import Chunk
    from embeddings.lexical import LexicalIndex

    monkeypatch.setattr(store, "EXACT_SEARCH_MAX", exact_max)
    monkeypatch.setattr(store, "IVF_NLIST", 64)
    rng = np.random.default_rng(0)
    n, dim = 40_000, 16
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(resource_id=f"r{i}", position=0, start=0, end=1, text="x") for i in range(n)]
    manifest = store.Manifest(
        model="m", dimension=dim, chunking={}, resources={}, chunk_count=n, index_type=""
    )
    index = store.ResourceIndex(
        manifest=manifest,
        resources={},
        chunks=chunks,
        vectors=vectors,
        lexical=LexicalIndex.empty(n),
    )
    assert store.index_type_name(index.faiss_index) == kind
    allowed = np.zeros(n, dtype=bool)
    allowed[: n // 2] = True
    query = vectors[n - 1]  # its own row is not allowed
    got = index.search_dense(query, 10, allowed)
    assert len(got) == 10 and all(allowed[r] for r, _ in got)
    exact = np.argsort(-(vectors[: n // 2] @ query))[:10]
    assert len({r for r, _ in got} & set(exact.tolist())) >= 8
    if kind != "flat":
        assert index.faiss_index.nprobe == round(64 * store.IVF_PROBE_SHARE)


def test_an_incremental_build_keeps_the_inverted_file_training(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Reusing the centroids gives the index that adding every vector to them gives, and the
    kept rows are not assigned again."""
    import embeddings.store as store

    monkeypatch.setattr(store, "EXACT_SEARCH_MAX", 1000)
    rng = np.random.default_rng(1)
    n, dim = 8000, 16
    old = rng.normal(size=(n, dim)).astype(np.float32)
    old /= np.linalg.norm(old, axis=1, keepdims=True)
    before = store.make_faiss_index(old)
    assert store.index_type_name(before) == "ivf" and before.nlist == n // 40
    # Drop the first 100 rows, keep the rest in order, add 150 new vectors at the end.
    fresh = rng.normal(size=(150, dim)).astype(np.float32)
    fresh /= np.linalg.norm(fresh, axis=1, keepdims=True)
    new = np.concatenate([old[100:], fresh])
    rows = np.concatenate([np.arange(100, n), np.full(150, -1)])
    after = store.make_faiss_index(new, store.DenseReuse(before, rows))
    assert after.nlist == before.nlist and after.ntotal == len(new)
    expected = faiss.IndexIVFFlat(before.quantizer, dim, before.nlist, faiss.METRIC_INNER_PRODUCT)
    expected.is_trained = True
    expected.nprobe = after.nprobe
    expected.add(new)
    queries = new[::97]
    assert np.array_equal(after.search(queries, 10)[1], expected.search(queries, 10)[1])
    # A base that grew beyond twice the lists' size is trained again.
    grown = np.concatenate([new, new, new])
    again = store.make_faiss_index(grown, store.DenseReuse(after, np.full(len(grown), -1)))
    assert again.nlist == len(grown) // 40


def test_a_large_index_round_trips_without_storing_anything_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Chunks are stored as offsets into the resource bodies (a chunk that is not a slice of
    its body keeps its own text), the inverted file as centroids + lists; loading gives the
    same chunks and the same search results."""
    import embeddings.store as store
    from corpus.models import Chunk, Resource
    from embeddings.lexical import LexicalIndex

    monkeypatch.setattr(store, "EXACT_SEARCH_MAX", 1000)
    rng = np.random.default_rng(2)
    resources = {
        f"r{i}": Resource(id=f"r{i}", title=f"Titre {i}", body=f"Corps {i} " * 40)
        for i in range(300)
    }
    chunks = [
        Chunk(rid, p, p * 10, p * 10 + 30, r.body[p * 10 : p * 10 + 30], r.title)
        for rid, r in resources.items()
        for p in range(10)
    ]
    chunks[5] = Chunk("r0", 5, 0, 4, "un texte à part", "un titre à part")
    vectors = rng.normal(size=(len(chunks), 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    manifest = store.Manifest(
        model="m", dimension=16, chunking={}, chunk_count=len(chunks), index_type="ivf",
        resources={rid: r.content_hash for rid, r in resources.items()},
    )  # fmt: skip
    index = store.ResourceIndex(
        manifest=manifest, resources=resources, chunks=chunks, vectors=vectors,
        lexical=LexicalIndex.build(chunks),
    )  # fmt: skip
    index.save(tmp_path)
    folder = tmp_path / "versions" / current_version(tmp_path)
    assert {p.name for p in folder.iterdir()} >= {
        "chunks.npy",
        "ivf-centroids.npy",
        "ivf-lists.npy",
    }
    assert not (folder / "faiss.index").exists()
    loaded = store.ResourceIndex.load(tmp_path)
    assert loaded.chunks == chunks
    assert loaded.faiss_index.nprobe == index.faiss_index.nprobe
    for q in vectors[::50]:
        assert loaded.search_dense(q, 10) == index.search_dense(q, 10)
    assert loaded.lexical.search("Corps 7", 5) == index.lexical.search("Corps 7", 5)
