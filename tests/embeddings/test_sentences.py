"""Sentence vectors: splitting, int8 storage, the best-sentence similarity, incremental
arrangement, persistence and the upgrade of a format-2 index."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from assistant.service import Assistant
from corpus.errors import IndexCorruptError
from embeddings.sentences import (
    MAX_PER_PASSAGE,
    MIN_CHARS,
    SentenceVectors,
    passage_sentences,
    quantize,
)
from embeddings.store import ResourceIndex, current_version
from tests.fakes import FakeEmbedder


def _unit(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


CONTEXT = {"model": "m", "precision": "fp32"}


def _same(a: SentenceVectors, b: SentenceVectors) -> None:
    """Same sentence vectors for every passage, whatever the layout of `codes`."""
    every = np.arange(a.passages)
    np.testing.assert_array_equal(a.counts, b.counts)
    for x, y in zip(a.gather(every), b.gather(every), strict=True):
        np.testing.assert_array_equal(x, y)


def test_passage_sentences_drop_short_pieces_and_keep_short_passages_whole() -> None:
    text = "Titre\nLe réseau accompagne les collectivités rurales. Il publie des guides pratiques."
    assert passage_sentences(text) == [
        "Le réseau accompagne les collectivités rurales.",
        "Il publie des guides pratiques.",
    ]
    assert passage_sentences("Contact : RTES") == ["Contact : RTES"]  # nothing ≥ MIN_CHARS
    assert passage_sentences("   ") == []
    many = " ".join(f"Phrase numéro {i} assez longue pour compter." for i in range(30))
    assert len(passage_sentences(many)) == MAX_PER_PASSAGE
    assert all(len(s) >= MIN_CHARS for s in passage_sentences(many))


def test_int8_codes_keep_the_cosine() -> None:
    rng = np.random.default_rng(0)
    vectors, queries = _unit(rng, 200, 384), _unit(rng, 20, 384)
    codes, scales = quantize(vectors)
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    approx = (codes.astype(np.float32) * scales[:, None]) @ queries.T
    assert np.abs(approx - vectors @ queries.T).max() < 0.01


def test_best_similarity_is_the_best_sentence_of_the_given_passages() -> None:
    rng = np.random.default_rng(1)
    vectors = _unit(rng, 10)
    sv = SentenceVectors.from_vectors(vectors, [3, 0, 4, 3])
    q = vectors[5]
    assert sv.best_similarity([2], q) == pytest.approx(1.0, abs=0.01)
    assert sv.best_similarity([0, 3], q) == pytest.approx(
        max(vectors[[0, 1, 2, 7, 8, 9]] @ q), abs=0.01
    )
    assert sv.best_similarity([1], q) == 0.0  # a passage without sentences
    assert sv.best_similarity([], q) == 0.0


def test_arrange_matches_a_layout_made_from_scratch() -> None:
    rng = np.random.default_rng(2)
    counts = rng.integers(0, 5, size=40)
    vectors = _unit(rng, int(counts.sum()))
    previous = SentenceVectors.from_vectors(vectors, counts.tolist())
    starts = np.concatenate([[0], np.cumsum(counts)])
    # New layout: previous passages in another order, some dropped, and three new passages.
    kept = rng.permutation(40)[:30]
    new_counts = [2, 0, 3]
    new_vectors = _unit(rng, sum(new_counts))
    old_of = np.concatenate([kept, [-1, -1, -1]])
    order = rng.permutation(len(old_of))
    old_of = old_of[order]
    fresh_rows = np.flatnonzero(old_of < 0)
    fresh = SentenceVectors.from_vectors(new_vectors, new_counts)
    arranged = SentenceVectors.arrange(old_of, previous, fresh, fresh_rows)

    expected: list[np.ndarray] = []
    fresh_starts = np.concatenate([[0], np.cumsum(new_counts)])
    for row, old in enumerate(old_of):
        if old >= 0:
            expected.append(vectors[starts[old] : starts[old + 1]])
        else:
            k = int(np.flatnonzero(fresh_rows == row)[0])
            expected.append(new_vectors[fresh_starts[k] : fresh_starts[k + 1]])
    scratch = SentenceVectors.from_vectors(np.concatenate(expected), [len(e) for e in expected])
    _same(arranged, scratch)


def test_arrange_refuses_rows_it_cannot_fill() -> None:
    rng = np.random.default_rng(3)
    fresh = SentenceVectors.from_vectors(_unit(rng, 2), [2])
    with pytest.raises(ValueError, match="without sentence vectors"):
        SentenceVectors.arrange(np.array([-1, 0]), None, fresh, np.array([0]))
    with pytest.raises(ValueError, match="do not match"):
        SentenceVectors.arrange(np.array([-1, -1]), None, fresh, np.array([0, 1]))


def test_save_load_round_trip_in_shards_and_inconsistent_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    ids = [f"ressource-{i // 3}" for i in range(60)]  # 20 resources of 3 passages
    counts = rng.integers(0, 6, size=60)
    sv = SentenceVectors.from_vectors(_unit(rng, int(counts.sum())), counts.tolist())
    content = dict.fromkeys(ids, "h1")
    sv.save(tmp_path / "s", resource_ids=ids, content=content, context=CONTEXT)
    assert len(list((tmp_path / "s").glob("*.codes.npy"))) > 5  # spread over shards
    loaded = SentenceVectors.load(tmp_path / "s")
    _same(loaded, sv)
    assert loaded.passages == 60 and len(loaded) == int(counts.sum())
    np.save(tmp_path / "s" / "counts.npy", (counts + 1).astype(np.int32))
    with pytest.raises(ValueError, match="does not match its rows"):
        SentenceVectors.load(tmp_path / "s")
    with pytest.raises(ValueError, match="one resource id per passage"):
        sv.save(tmp_path / "t", resource_ids=ids[:5], content=content, context=CONTEXT)


def test_unchanged_shards_are_linked_and_changed_ones_written(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    ids = [f"ressource-{i // 2}" for i in range(80)]
    sv = SentenceVectors.from_vectors(_unit(rng, 160), [2] * 80)
    content = dict.fromkeys(ids, "h1")
    sv.save(tmp_path / "v1", resource_ids=ids, content=content, context=CONTEXT)
    edited = {**content, "ressource-7": "h2"}
    v1 = tmp_path / "v1"
    sv.save(tmp_path / "v2", resource_ids=ids, content=edited, context=CONTEXT, link_from=v1)
    first = {p.name: p.stat().st_ino for p in v1.glob("*.codes.npy")}
    second = {p.name: p.stat().st_ino for p in (tmp_path / "v2").glob("*.codes.npy")}
    linked = [n for n in second if first.get(n) == second[n]]
    assert len(second) - len(linked) == 1  # only the edited resource's shard is new
    _same(SentenceVectors.load(tmp_path / "v2"), sv)
    # Another model (or chunking): nothing is linked, even for the same resources.
    other = {**CONTEXT, "model": "autre"}
    sv.save(tmp_path / "v3", resource_ids=ids, content=content, context=other, link_from=v1)
    assert not {p.name for p in (tmp_path / "v3").glob("*.codes.npy")} & set(first)


def test_the_index_keeps_one_sentence_set_per_passage(fake_assistant: Assistant) -> None:
    index = fake_assistant.index()
    assert index.sentences is not None and index.sentences.passages == len(index)
    for row in (0, len(index) // 2, len(index) - 1):
        assert index.sentences.counts[row] == len(passage_sentences(index.chunks[row].text))


def test_the_sentence_signal_is_the_best_sentence_of_the_top_passages(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    question = "Comment financer un tiers-lieu dans une ancienne gare ?"
    r = fake_assistant.retrieve(question)
    q = fake_embedder.embed_query(question)
    sentences = [
        s
        for group in r.resources[:3]
        for hit in group.hits[:2]
        for s in passage_sentences(hit.chunk.text)
    ]
    best = float(max(fake_embedder.embed_documents(sentences) @ q))
    assert r.signals.sentence == pytest.approx(best, abs=0.01)
    assert r.signals.sentence > r.signals.dense - 0.5  # a real similarity, not a default


def _downgrade_to_format_2(index_dir: Path) -> None:
    """Make the current version look like one written before sentence vectors existed."""
    folder = index_dir / "versions" / (current_version(index_dir) or "")
    shutil.rmtree(folder / "sentences")
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    manifest["format_version"] = 2
    manifest["files"] = {
        k: v for k, v in manifest["files"].items() if not k.startswith("sentences/")
    }
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_a_format_2_index_is_refused_then_upgraded_without_reembedding_passages(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    before = fake_assistant.index()
    assert before.sentences is not None
    _downgrade_to_format_2(fake_assistant.index_dir)
    with pytest.raises(IndexCorruptError, match=r"format 2.*`ess-assistant build` pour le mettre"):
        ResourceIndex.load(fake_assistant.index_dir)
    embedded = len(fake_embedder.embedded)
    report = fake_assistant.build()
    assert not report.full and report.chunks_embedded == 0  # passage vectors reused
    assert report.sentences_embedded == len(before.sentences)
    assert len(fake_embedder.embedded) - embedded == len(before.sentences)
    after = ResourceIndex.load(fake_assistant.index_dir)
    assert after.manifest.format_version == 3 and after.sentences is not None
    np.testing.assert_array_equal(after.vectors, before.vectors)
    _same(after.sentences, before.sentences)


def test_an_incremental_build_writes_only_the_edited_resources_shard(
    fake_assistant: Assistant,
) -> None:
    def shard_files() -> dict[str, int]:
        folder = (
            fake_assistant.index_dir
            / "versions"
            / (current_version(fake_assistant.index_dir) or "")
        )
        return {p.name: p.stat().st_ino for p in (folder / "sentences").glob("*.codes.npy")}

    before = shard_files()
    edited = sorted(fake_assistant.corpus_dir.glob("*.md"))[0]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nUne phrase ajoutée au guide.\n")
    assert fake_assistant.build().changed
    after = shard_files()
    assert len(after) == len(before)
    assert sum(before.get(name) == inode for name, inode in after.items()) == len(after) - 1
    full = fake_assistant.build(full=True)  # a full build writes every shard again
    assert full.full and not set(shard_files().values()) & set(after.values())
