"""`ess-assistant sync` against a real local web server: first sync, a second one after
edits, politeness (robots.txt, conditional requests, no download of unchanged pages),
failures kept apart, hand-made files untouched, and a question answered from a synced page."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.service import Assistant
from assistant.settings import Settings
from corpus.errors import ConfigurationError
from corpus.loaders import load_corpus
from corpus.site import SyncSettings, read_known, resource_id_for, sync_site
from tests.corpus.site_server import NAVIGATION, Site, cms_page, default_site, pdf_bytes, serve_site
from tests.fakes import FakeEmbedder

HAND_MADE = "---\ntitle: Note de l'équipe\n---\n\nUne note écrite à la main sur les SCIC.\n"


def _settings(base: str, **changes: object) -> SyncSettings:
    values: dict[str, object] = {
        "url": f"{base}/sitemap.xml",
        "delay": 0.0,
        "concurrency": 2,
        "timeout": 0.5,
        "retries": 1,
        "backoff": 0.01,
    }
    values.update(changes)
    return SyncSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "site-corpus"
    folder.mkdir()
    (folder / "note-equipe.md").write_text(HAND_MADE, encoding="utf-8")
    return folder


def test_first_sync_then_a_second_after_edits(corpus: Path) -> None:
    site = default_site()
    with serve_site(site) as base:
        first = sync_site(_settings(base), corpus)
        assert first.summary_line() == (
            "pages 7: new 5, changed 0, removed 0, unchanged 0, errors 2"
        ), first
        assert {e.url.rsplit("/", 1)[1] for e in first.errors} == {"erreur", "lente"}
        assert any("délai dépassé" in e.reason for e in first.errors)
        assert [u.rsplit("/", 2)[-2] for u in first.skipped] == ["prive"]  # robots.txt
        assert site.requests["/prive/notes-internes"] == 0

        bodies = [p.read_text("utf-8") for p in (corpus / "site").glob("*.md")]
        assert len(bodies) == 5
        for text in bodies:
            body = text.split("\n---\n", 1)[1]
            for noise in NAVIGATION:
                assert noise not in body, noise
        scic = corpus / "site" / f"{resource_id_for(f'{base}/ressources/scic-rurales')}.md"
        front = scic.read_text("utf-8")
        assert "source: site" in front and f"url: {base}/ressources/scic-rurales" in front
        assert "title: Les SCIC en milieu rural" in front and "date: '2024-03-12'" in front
        assert "etag:" in front and "lastmod:" in front

        # The site moves on: one page edited, one added, one leaves the sitemap, one is gone.
        site.pages["/ressources/scic-rurales"] = cms_page(
            "Les SCIC en milieu rural",
            ["Mise à jour : la commune de Saint-Zorglub a porté ses parts à 8 000 euros."],
        )
        site.lastmod["/ressources/scic-rurales"] = "2024-02-01"
        site.pages["/ressources/mobilite"] = cms_page(
            "Un garage solidaire", ["Le garage solidaire répare les voitures des salariés."]
        )
        del site.pages["/ressources/epicerie"]
        site.status["/ressources/disparue"] = 404
        before = dict(site.requests)

        second = sync_site(_settings(base), corpus)
    assert second.summary_line() == (
        "pages 7: new 1, changed 1, removed 2, unchanged 2, errors 2"
    ), second
    assert {u.rsplit("/", 1)[1] for u in second.removed} == {"epicerie", "disparue"}
    # unchanged pages were not downloaded again: by lastmod, or by a 304 to a conditional GET
    assert site.requests["/ressources/tiers-lieux"] == before["/ressources/tiers-lieux"] == 1
    assert site.conditional_hits["/ressources/redirigee"] == 1
    assert "8 000 euros" in scic.read_text("utf-8")
    assert (corpus / "note-equipe.md").read_text("utf-8") == HAND_MADE  # never touched
    assert len(list((corpus / "site").glob("*.md"))) == 4


def test_a_failing_page_keeps_its_previous_version(corpus: Path) -> None:
    site = default_site()
    with serve_site(site) as base:
        sync_site(_settings(base), corpus)
        scic = corpus / "site" / f"{resource_id_for(f'{base}/ressources/scic-rurales')}.md"
        kept = scic.read_text("utf-8")
        site.status["/ressources/scic-rurales"] = 503
        site.lastmod["/ressources/scic-rurales"] = "2024-03-01"
        report = sync_site(_settings(base), corpus)
    assert any(e.url.endswith("scic-rurales") for e in report.errors)
    assert scic.read_text("utf-8") == kept


def test_dry_run_writes_nothing_and_filters_apply(corpus: Path) -> None:
    with serve_site(default_site()) as base:
        dry = sync_site(_settings(base, dry_run=True), corpus)
        assert len(dry.new) == 5 and not (corpus / "site").exists()
        only = sync_site(_settings(base, include=r"scic|tiers", exclude=r"tiers"), corpus)
    assert [u.rsplit("/", 1)[1] for u in only.new] == ["scic-rurales"]


def test_linked_pdfs_become_resources_with_their_page_as_parent(corpus: Path) -> None:
    site = Site()
    site.pages["/ressources/guide"] = cms_page(
        "Le guide des groupements d'employeurs",
        ["Téléchargez le guide complet."],
        extra='<p><a href="/documents/guide.pdf">Le guide (PDF)</a></p>',
    )
    site.binary["/documents/guide.pdf"] = (pdf_bytes(), "application/pdf")
    with serve_site(site) as base:
        report = sync_site(_settings(base, pdf=True), corpus)
        assert len(report.new) == 2, report
        known = read_known(corpus / "site")
        pdf = known[f"{base}/documents/guide.pdf"]
        assert f"parent: {base}/ressources/guide" in pdf.path.read_text("utf-8")
        again = sync_site(_settings(base, pdf=True), corpus)  # the PDF stays with its page
    assert not again.removed and (pdf.path).exists()


def test_bad_settings_are_clear_errors(corpus: Path) -> None:
    with pytest.raises(ConfigurationError, match="--include"):
        sync_site(SyncSettings(url="http://127.0.0.1:9/sitemap.xml", include="("), corpus)
    with pytest.raises(ConfigurationError, match="http"):
        sync_site(SyncSettings(url="ftp://exemple"), corpus)
    with pytest.raises(ConfigurationError, match="plan du site illisible"):
        sync_site(_settings("http://127.0.0.1:9"), corpus)


def test_a_question_is_answered_from_a_synced_page_with_its_url(
    corpus: Path, tmp_path: Path, fake_settings: Settings, fake_embedder: FakeEmbedder
) -> None:
    with serve_site(default_site()) as base:
        report = sync_site(_settings(base), corpus)
    assert len(report.new) == 5, report
    loaded = load_corpus(corpus)
    assert not loaded.errors and len(loaded.resources) == 6
    assistant = Assistant(
        fake_settings.with_(corpus_dir=corpus, data_dir=tmp_path / "data"), embedder=fake_embedder
    )
    assistant.build()
    answer = assistant.ask("Saint-Zorglub parts sociales SCIC du vieux moulin")
    assert answer.citations and answer.citations[0].url == f"{base}/ressources/scic-rurales"
    assert "Saint-Zorglub" in answer.text


def test_sync_command_then_build(
    corpus: Path,
    tmp_path: Path,
    fake_embedder: FakeEmbedder,
    fake_calibration: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from assistant.cli import main
    from tests.fakes import FAKE_MODEL

    monkeypatch.setenv("ESS_ASSISTANT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ESS_ASSISTANT_CORPUS_DIR", str(corpus))
    monkeypatch.setenv("ESS_ASSISTANT_MODEL", FAKE_MODEL)
    monkeypatch.setenv("ESS_ASSISTANT_CALIBRATION", str(fake_calibration))
    monkeypatch.setenv("ESS_ASSISTANT_SYNC_DELAY", "0")
    site = default_site()
    site.status.clear()  # no failing page: a clean run
    site.slow.clear()
    with serve_site(site) as base:
        assert main(["sync", f"{base}/sitemap.xml", "--dry-run"]) == 0
        assert "(essai" in capsys.readouterr().out and not (corpus / "site").exists()
        assert main(["sync", f"{base}/sitemap.xml", "--build"]) == 0
    out = capsys.readouterr().out
    assert "pages 7: new 7, changed 0, removed 0, unchanged 0, errors 0" in out
    assert "added 8, changed 0, removed 0, unchanged 0, errors 0" in out
    monkeypatch.delenv("ESS_ASSISTANT_SITE_URL", raising=False)
    assert main(["sync"]) == 2
    assert "ESS_ASSISTANT_SITE_URL" in capsys.readouterr().err


def test_a_sync_waits_for_no_build(corpus: Path, fake_assistant: Assistant) -> None:
    from corpus.errors import BuildLockedError
    from embeddings.builder import lock_for

    lock = lock_for(fake_assistant.index_dir)
    with lock, pytest.raises(BuildLockedError, match="déjà en cours"):
        fake_assistant.sync("http://127.0.0.1:9/sitemap.xml")
