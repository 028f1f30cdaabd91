"""Tests of chunking: offsets always point at the chunk text in `Resource.body`."""

from __future__ import annotations

import itertools
import random

import pytest

from corpus.bundled import bundled_corpus_dir
from corpus.chunking import ChunkingSettings, split_corpus, split_resource
from corpus.loaders import load_corpus
from corpus.models import Resource

NBSP = "\u00a0"
PARAGRAPH = (
    f"L’économie sociale et solidaire{NBSP}: «{NBSP}coopérer{NBSP}» plutôt que concurrencer. "
    f"Comment financer un projet{NBSP}? Par la commande publique{NBSP}! Ou par l’épargne. "
)


def conservative_tokens(text: str) -> int:
    """A pessimistic token estimate: 1 token per 2 characters, at least 1.6 per word."""
    return max(len(text) // 2 + 1, int(len(text.split()) * 1.6) + 1)


def check(body: str, settings: ChunkingSettings, **kwargs: object) -> list:
    resource = Resource(id="r", title="Titre", body=body)
    chunks = split_resource(resource, settings=settings, **kwargs)  # type: ignore[arg-type]
    for position, chunk in enumerate(chunks):
        assert body[chunk.start : chunk.end] == chunk.text
        assert chunk.position == position and chunk.title == "Titre"
        assert chunk.text.strip()
    return chunks


LITERALS = [
    "",
    "Court.",
    PARAGRAPH * 20,
    (PARAGRAPH + "\n\n") * 15,  # repeated identical paragraphs
    ("Même phrase répétée. " * 200),
    ("  • puce " + NBSP * 3 + "\n") * 80,
    "x" * 3000,
    ("Ligne un\r\nLigne deux\r\n\r\n" * 100).replace("\r\n", "\n"),
    "«" + NBSP + "citation" + NBSP + "»" + "…" * 500,
]


@pytest.mark.parametrize("body", LITERALS)
@pytest.mark.parametrize("size,overlap", [(800, 100), (120, 30), (50, 0), (30, 29)])
def test_offsets_literal(body: str, size: int, overlap: int) -> None:
    chunks = check(body, ChunkingSettings(size=size, overlap=overlap))
    assert all(len(c.text) <= size for c in chunks)


def test_offsets_random_texts() -> None:
    rng = random.Random(20240601)
    atoms = [
        "économie",
        "l’ESS",
        f"«{NBSP}ok{NBSP}»",
        f"{NBSP}:",
        "?",
        "!",
        ".",
        "\n",
        "\n\n",
        "Paragraphe répété.",
        "y" * 40,
        " ",
        "; ",
        "…",
    ]
    for _ in range(400):
        body = "".join(
            rng.choice(atoms) + rng.choice(["", " ", ". "]) for _ in range(rng.randint(0, 300))
        )
        if rng.random() < 0.3:
            body = (body + "\n\n") * 3
        size = rng.randint(10, 400)
        settings = ChunkingSettings(size=size, overlap=rng.randint(0, size - 1))
        check(body, settings)
        check(body, settings, count_tokens=lambda t: len(t.split()), max_tokens=rng.randint(2, 40))


def test_first_chunk_and_coverage() -> None:
    body = (PARAGRAPH + "\n\n") * 10
    chunks = check(body, ChunkingSettings())
    assert chunks[0].start == 0
    assert chunks[-1].end == len(body.rstrip())
    for a, b in itertools.pairwise(chunks):
        assert a.start < b.start
        assert not body[a.end : b.start].strip()  # only the blank lines between paragraphs


def test_count_tokens_splits_further() -> None:
    body = PARAGRAPH * 10
    chunks = check(
        body,
        ChunkingSettings(size=800, overlap=100),
        count_tokens=lambda t: len(t.split()),
        max_tokens=20,
    )
    assert all(len(c.text.split()) <= 20 for c in chunks)


def test_settings_validation_and_dict() -> None:
    assert ChunkingSettings().as_dict()["size"] == 800
    assert ChunkingSettings().as_dict()["overlap"] == 120
    from assistant.settings import Settings

    defaults = Settings()
    assert (defaults.chunk_size, defaults.chunk_overlap) == (800, 120)  # one source
    with pytest.raises(ValueError):
        ChunkingSettings(size=100, overlap=100)


def test_bundled_corpus_chunks_fit_the_model() -> None:
    resources = load_corpus(bundled_corpus_dir()).resources
    chunks = split_corpus(resources, settings=ChunkingSettings())
    by_id = {r.id: r for r in resources}
    assert {c.resource_id for c in chunks} == set(by_id)
    for chunk in chunks:
        assert by_id[chunk.resource_id].body[chunk.start : chunk.end] == chunk.text
        assert conservative_tokens(chunk.embedding_text()) < 512
