"""Incremental builds on the fake embedder: exact counts, only changed chunks embedded,
answers follow the new content, full rebuilds, per-file errors and the build lock."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.retrieval import RetrievalParams
from assistant.service import Assistant
from assistant.settings import Settings
from corpus.chunking import ChunkingSettings, split_resource
from corpus.errors import BuildLockedError
from corpus.loaders import load_corpus, load_file
from embeddings.builder import build_index, lock_for
from embeddings.sentences import passage_sentences
from embeddings.store import ResourceIndex
from tests.fakes import FakeEmbedder

EDITED = "mode-d-emploi-ess-ruralites-tressons.md"
DELETED = "reperess-developper-l-ess-dans-les-quartiers-politique-de-la-ville.md"
DELETED_ID = "reperess-developper-l-ess-dans-les-quartiers-politique-de-la-ville"
NEW_TEXT = (
    "Le marché des zorglubettes\n\n"
    "La commune a soutenu une coopérative de zorglubettes : un marché couvert où les "
    "producteurs locaux vendent en circuit court, avec l’appui du département.\n"
)
# The fake embedder's cosines are small: never abstain, check the ranking.
PARAMS = RetrievalParams()  # never abstains


def _chunks_of(path: Path, settings: Settings, embedder: FakeEmbedder) -> int:
    return len(
        split_resource(
            load_file(path),
            settings=ChunkingSettings(size=settings.chunk_size, overlap=settings.chunk_overlap),
            count_tokens=embedder.count_tokens,
            max_tokens=embedder.max_tokens,
        )
    )


def test_edit_add_delete_rebuilds_only_what_changed(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    corpus = fake_assistant.corpus_dir
    first = fake_assistant.index()
    assert first.sentences is not None and first.sentences.passages == len(first)
    # The first build embedded everything: each passage, then each passage's sentences.
    assert len(fake_embedder.embedded) == len(first) + len(first.sentences)

    edited = corpus / EDITED
    edited.write_text(
        edited.read_text(encoding="utf-8")
        + "\nMise à jour : le guide cite désormais les recycleries intercommunales.\n",
        encoding="utf-8",
    )
    (corpus / "marche-zorglubettes.txt").write_text(NEW_TEXT, encoding="utf-8")
    (corpus / DELETED).unlink()

    before = len(fake_embedder.embedded)
    report = fake_assistant.build()
    assert report.summary_line() == "added 1, changed 1, removed 1, unchanged 7, errors 0"
    assert report.added == ("marche-zorglubettes",)
    assert report.changed == ("mode-d-emploi-ess-ruralites-tressons",)
    assert report.removed == (DELETED_ID,)
    assert not report.full and report.reason == ""

    embedded = fake_embedder.embedded[before:]
    expected = _chunks_of(edited, fake_assistant.settings, fake_embedder) + _chunks_of(
        corpus / "marche-zorglubettes.txt", fake_assistant.settings, fake_embedder
    )
    assert report.chunks_embedded == expected
    assert len(embedded) == report.chunks_embedded + report.sentences_embedded
    passages, sentences = embedded[:expected], embedded[expected:]
    assert all(
        text.startswith(("Mode d'emploi ESS & ruralités", "Le marché des zorglubettes"))
        for text in passages
    )
    new_texts = [
        c.text
        for c in fake_assistant.index().chunks
        if c.resource_id in report.added + report.changed
    ]  # embedded sorted by length, in batches
    assert sorted(sentences) == sorted(s for text in new_texts for s in passage_sentences(text))

    # The running assistant picks up the new version by itself.
    index = fake_assistant.index()
    assert index.version == report.version
    assert DELETED_ID not in index.resources
    assert all(c.resource_id != DELETED_ID for c in index.chunks)

    answer = fake_assistant.retrieve("zorglubettes", params=PARAMS)
    assert not answer.abstain
    assert answer.resources[0].resource.id == "marche-zorglubettes"
    recyclerie = fake_assistant.retrieve("recycleries intercommunales", params=PARAMS)
    assert recyclerie.resources[0].resource.id == "mode-d-emploi-ess-ruralites-tressons"
    for question in ("quartiers politique de la ville", "RepèrESS quartiers prioritaires"):
        cited = {r.resource.id for r in fake_assistant.retrieve(question, params=PARAMS).resources}
        assert DELETED_ID not in cited
        assert all(c.resource_id != DELETED_ID for c in fake_assistant.ask(question).citations)

    # The updated index holds exactly what a full build of the same corpus holds: the lexical
    # side reused the term counts of the unchanged rows and analyzed only the others.
    settings = fake_assistant.settings
    full = build_index(
        load_corpus(corpus).resources,
        embedder=FakeEmbedder(),
        index_dir=tmp_path / "full",
        chunking=ChunkingSettings(size=settings.chunk_size, overlap=settings.chunk_overlap),
        full=True,
    )
    assert full.total_chunks == len(index)
    rebuilt = ResourceIndex.load(tmp_path / "full")
    assert rebuilt.chunks == index.chunks
    assert rebuilt.lexical.vocab == index.lexical.vocab
    for name, array in rebuilt.lexical._arrays.items():
        assert np.array_equal(array, index.lexical._arrays[name]), name
    np.testing.assert_array_equal(rebuilt.vectors, index.vectors)
    assert rebuilt.sentences is not None and index.sentences is not None
    every = np.arange(len(index))
    np.testing.assert_array_equal(rebuilt.sentences.counts, index.sentences.counts)
    for x, y in zip(rebuilt.sentences.gather(every), index.sentences.gather(every), strict=True):
        np.testing.assert_array_equal(x, y)


def test_no_change_embeds_nothing(fake_assistant: Assistant, fake_embedder: FakeEmbedder) -> None:
    before = len(fake_embedder.embedded)
    report = fake_assistant.build()
    assert report.summary_line() == "added 0, changed 0, removed 0, unchanged 9, errors 0"
    assert len(fake_embedder.embedded) == before and report.chunks_embedded == 0


def test_full_rebuild_reembeds_everything(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    total = len(fake_assistant.index())
    before = len(fake_embedder.embedded)
    report = fake_assistant.build(full=True)
    assert report.full and "--full" in report.reason
    assert total == report.chunks_embedded
    assert len(fake_embedder.embedded) - before == total + report.sentences_embedded
    assert report.sentences_embedded == len(fake_assistant.index().sentences or ())
    assert report.summary_line() == "added 9, changed 0, removed 0, unchanged 0, errors 0"


def test_chunk_size_change_forces_a_full_rebuild_with_a_reason(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    fake_assistant.settings = fake_assistant.settings.with_(chunk_size=400, chunk_overlap=50)
    before = len(fake_embedder.embedded)
    report = fake_assistant.build()
    assert report.full
    assert "découpage" in report.reason and "reconstruction complète" in report.reason
    assert report.total_chunks == report.chunks_embedded
    assert len(fake_embedder.embedded) - before == report.total_chunks + report.sentences_embedded
    assert fake_assistant.index().manifest.chunking["size"] == 400


def test_broken_file_is_listed_and_the_rest_indexed(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    corpus = fake_assistant.corpus_dir
    (corpus / "cassé.md").write_text("---\ntitle: [pas fermé\n---\n\nCorps.\n", encoding="utf-8")
    (corpus / "vide.pdf").write_bytes(b"%PDF-1.4 tronque")
    report = fake_assistant.build()
    assert report.summary_line() == "added 0, changed 0, removed 0, unchanged 9, errors 2"
    names = sorted(Path(e.path).name for e in report.errors)
    assert names == ["cassé.md", "vide.pdf"]
    assert all(e.reason for e in report.errors)
    status = fake_assistant.status()
    assert status.resources == 9 and len(status.errors) == 2


def test_build_index_directly_counts_and_reuses_vectors(
    corpus_copy: Path, tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    chunking = ChunkingSettings(size=800, overlap=120)
    index_dir = tmp_path / "index"
    loaded = load_corpus(corpus_copy)
    first = build_index(
        loaded.resources, embedder=fake_embedder, index_dir=index_dir, chunking=chunking
    )
    assert first.reason == "premier index" and first.full
    (corpus_copy / EDITED).write_text(
        (corpus_copy / EDITED).read_text(encoding="utf-8").replace("Forum", "Salon"),
        encoding="utf-8",
    )
    second = build_index(
        load_corpus(corpus_copy).resources,
        embedder=fake_embedder,
        index_dir=index_dir,
        chunking=chunking,
    )
    assert second.summary_line() == "added 0, changed 1, removed 0, unchanged 8, errors 0"
    assert second.total_chunks == first.total_chunks


def test_lock_held_refuses_a_second_build(fake_assistant: Assistant) -> None:
    lock = lock_for(fake_assistant.index_dir)
    lock.acquire()
    try:
        with pytest.raises(BuildLockedError, match="déjà en cours") as info:
            fake_assistant.build()
        assert "ess-assistant build" in str(info.value)
        assert info.value.exit_code == 5
    finally:
        lock.release()
    assert fake_assistant.build().summary_line().startswith("added 0")


def test_cli_reports_the_lock(
    fake_settings: Settings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.cli import main

    monkeypatch.setenv("ESS_ASSISTANT_DATA_DIR", str(fake_settings.data_dir))
    monkeypatch.setenv("ESS_ASSISTANT_CORPUS_DIR", str(fake_settings.corpus_dir))
    monkeypatch.setenv("ESS_ASSISTANT_MODEL", fake_settings.model)
    assert main(["build"]) == 0
    assert "added 9, changed 0, removed 0, unchanged 0, errors 0" in capsys.readouterr().out
    lock = lock_for(fake_settings.resolved_index_dir)
    lock.acquire()
    try:
        assert main(["build"]) == 5
        assert "déjà en cours" in capsys.readouterr().err
    finally:
        lock.release()


def test_an_analyzer_change_is_refused_at_load_and_fixed_by_a_build_without_reembedding(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import embeddings.lexical as lexical
    from corpus.errors import ModelMismatchError
    from embeddings.store import ResourceIndex

    monkeypatch.setattr(lexical, "ANALYZER_VERSION", lexical.ANALYZER_VERSION + 1)
    with pytest.raises(ModelMismatchError, match="analyseur") as err:
        ResourceIndex.load(fake_assistant.index_dir)
    assert err.value.exit_code == 3 and "ess-assistant build" in str(err.value)
    before = len(fake_embedder.embedded)
    report = fake_assistant.build()
    assert report.chunks_embedded == 0 and len(fake_embedder.embedded) == before
    assert len(ResourceIndex.load(fake_assistant.index_dir).lexical) == report.total_chunks


def test_a_build_that_would_empty_the_index_is_refused(fake_assistant: Assistant) -> None:
    from corpus.errors import BuildRefusedError

    corpus = fake_assistant.corpus_dir
    version = fake_assistant.index().version
    for path in corpus.glob("*.md"):  # every file broken, as in the audit
        path.write_text("---\ntitle: [cassé\n---\n", encoding="utf-8")
    with pytest.raises(BuildRefusedError, match="retirerait 9 des 9") as err:
        fake_assistant.build()
    assert err.value.exit_code == 7 and "--allow-empty" in str(err.value)
    assert fake_assistant.index().version == version  # the good index is still in use
    report = fake_assistant.build(allow_removals=True)
    assert report.summary_line() == "added 0, changed 0, removed 9, unchanged 0, errors 9"


def test_removing_a_few_resources_needs_no_confirmation(fake_assistant: Assistant) -> None:
    sorted(fake_assistant.corpus_dir.glob("*.md"))[0].unlink()
    assert fake_assistant.build().summary_line().startswith("added 0, changed 0, removed 1")


def test_an_unwritable_index_is_reported_before_any_embedding(
    tmp_path: Path, fake_settings: Settings, fake_embedder: FakeEmbedder
) -> None:
    from corpus.errors import IndexNotWritableError

    target = tmp_path / "un-fichier"
    target.write_text("pas un dossier", encoding="utf-8")
    assistant = Assistant(fake_settings.with_(index_dir=target), embedder=fake_embedder)
    with pytest.raises(IndexNotWritableError, match="impossible d'écrire") as err:
        assistant.build()
    assert err.value.exit_code == 3 and fake_embedder.embedded == []


def test_a_precision_change_rebuilds_everything_and_a_mismatch_is_refused_at_load(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    from corpus.errors import ModelMismatchError

    assert fake_assistant.index().manifest.precision == "fp32"
    fake_embedder.precision = "int8"  # as ESS_ASSISTANT_PRECISION=int8 would load it
    before = len(fake_embedder.embedded)
    report = fake_assistant.build()
    assert report.full and "précision" in report.reason
    assert len(fake_embedder.embedded) - before == report.total_chunks + report.sentences_embedded
    assert fake_assistant.index().manifest.precision == "int8"
    with pytest.raises(ModelMismatchError, match=r"précision int8.*ess-assistant build"):
        ResourceIndex.load(fake_assistant.index_dir, precision="fp32")


def test_the_precision_setting_is_checked() -> None:
    from corpus.errors import ConfigurationError

    assert Settings.from_env(env={"ESS_ASSISTANT_PRECISION": "int8"}).precision == "int8"
    assert Settings().precision == "fp32" and Settings(precision="int8").index_precision == "int8"
    assert Settings(model="autre-modele", precision="int8").index_precision == "fp32"
    with pytest.raises(ConfigurationError, match="fp32 or int8"):
        Settings.from_env(env={"ESS_ASSISTANT_PRECISION": "fp16"})
