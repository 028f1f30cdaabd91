"""Tests of the per-format loaders and of `load_corpus`."""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfWriter

from corpus.bundled import bundled_corpus_dir
from corpus.errors import CorpusNotFoundError, InvalidResourceError
from corpus.loaders import SUPPORTED_EXTENSIONS, load_corpus, load_file
from tests.corpus.pdf_factory import make_pdf

NBSP = "\u00a0"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def test_supported_extensions() -> None:
    assert {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"} == set(SUPPORTED_EXTENSIONS)


def test_markdown_with_front_matter(tmp_path: Path) -> None:
    path = write(
        tmp_path / "guide.md",
        "---\nid: guide-ess\ntitle: Guide « ESS »\nthemes: [ruralité]\n---\n\n"
        f"L’ESS{NBSP}: des «{NBSP}coopératives{NBSP}».\r\nSuite.\r\n",
    )
    resource = load_file(path)
    assert resource.id == "guide-ess"
    assert resource.title == "Guide « ESS »"
    assert resource.body == f"L’ESS{NBSP}: des «{NBSP}coopératives{NBSP}».\nSuite.\n"
    assert resource.themes == ("ruralité",)
    assert resource.source_path == str(path)
    assert resource.content_hash and len(resource.content_hash) == 32


def test_markdown_without_front_matter(tmp_path: Path) -> None:
    path = write(tmp_path / "Économie Locale.markdown", "# Économie locale\n\nTexte.\n")
    resource = load_file(path)
    assert (resource.id, resource.title, resource.body) == (
        "economie-locale",
        "Économie locale",
        "Texte.\n",
    )


def test_txt_with_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_bytes("\ufeff\r\nTitre d’une note\r\n\r\nPremier paragraphe.\r\n".encode())
    resource = load_file(path)
    assert resource.title == "Titre d’une note"
    assert resource.body == "Premier paragraphe.\n"
    assert resource.id == "note"


def test_html_drops_scripts_and_keeps_paragraphs(tmp_path: Path) -> None:
    path = write(
        tmp_path / "page.html",
        "<html><head><title>Tiers-lieux &amp; ESS</title>"
        '<meta name="description" content="Un résumé « court ».">'
        '<meta name="date" content="2021-03-04">'
        "<style>p { color: red }</style><script>alert('x')</script></head>"
        "<body><h1>Tiers-lieux</h1><p>Premier&nbsp;: paragraphe.</p>"
        "<script>document.write('<b>pirate</b>')</script>"
        "<ul><li>un</li><li>deux</li></ul><p>Second<br>avec saut.</p></body></html>",
    )
    resource = load_file(path)
    assert resource.title == "Tiers-lieux & ESS"
    assert resource.summary == "Un résumé « court »."
    assert resource.date == "2021-03-04"
    assert "alert" not in resource.body and "pirate" not in resource.body
    assert "<" not in resource.body and "color" not in resource.body
    assert f"Premier{NBSP}: paragraphe." in resource.body
    assert "- un\n" in resource.body and "Second\navec saut." in resource.body
    assert "\n\n" in resource.body


def test_html_title_from_h1(tmp_path: Path) -> None:
    resource = load_file(write(tmp_path / "p.htm", "<h1>Économie</h1><p>Texte</p>"))
    assert resource.title == "Économie"


def test_pdf_text_layer(tmp_path: Path) -> None:
    path = tmp_path / "guide.pdf"
    path.write_bytes(
        make_pdf(
            ["Économie sociale et solidaire", "Les coopératives d’activité."], title="Guide « ESS »"
        )
    )
    resource = load_file(path)
    assert resource.title == "Guide « ESS »"
    assert "Économie sociale et solidaire" in resource.body
    assert "coopératives d’activité" in resource.body


def test_pdf_title_from_first_line(tmp_path: Path) -> None:
    path = tmp_path / "fiche.pdf"
    path.write_bytes(make_pdf(["Fiche initiative", "Un texte."]))
    resource = load_file(path)
    assert resource.title == "Fiche initiative" and resource.body.strip() == "Un texte."


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    path = tmp_path / "scan.pdf"
    with path.open("wb") as handle:
        writer.write(handle)
    with pytest.raises(InvalidResourceError, match="pas de couche texte"):
        load_file(path)


def test_corpus_reports_bad_files_and_loads_the_others(tmp_path: Path) -> None:
    write(tmp_path / "a.md", "---\ntitle: A\n---\nTexte A.\n")
    write(tmp_path / "sub" / "b.txt", "Titre B\n\nTexte B.\n")
    write(tmp_path / "c.html", "<title>C</title><p>Texte C.</p>")
    (tmp_path / "d.pdf").write_bytes(make_pdf(["Titre D", "Texte D."]))
    write(tmp_path / "bad.md", "---\ntitle: [oups\n---\ncorps\n")
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4\nceci n'est pas un PDF")
    (tmp_path / "latin1.txt").write_bytes("Titre\n\nÉconomie".encode("latin-1"))
    write(tmp_path / "empty.md", "---\ntitle: Vide\n---\n\n")
    write(tmp_path / "dup" / "a.md", "---\ntitle: Autre A\nid: a\n---\nDoublon.\n")
    write(tmp_path / ".hidden.md", "# Caché\n\ncorps")
    write(tmp_path / ".git" / "x.md", "# Caché\n\ncorps")
    write(tmp_path / "README.md", "# Lisez-moi\n\ncorps")
    write(tmp_path / "notes.docx", "ignoré")
    load = load_corpus(tmp_path)
    assert sorted(r.id for r in load.resources) == ["a", "b", "c", "d"]
    reasons = {Path(e.path).name: e.reason for e in load.errors}
    assert set(reasons) == {"bad.md", "broken.pdf", "latin1.txt", "empty.md", "a.md"}
    assert "YAML" in reasons["bad.md"]
    assert "UTF-8" in reasons["latin1.txt"]
    assert "vide" in reasons["empty.md"]
    assert "déjà utilisé" in reasons["a.md"]
    dup_error = next(e for e in load.errors if "déjà utilisé" in e.reason)
    assert "dup" in dup_error.path


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "absent"
    with pytest.raises(CorpusNotFoundError, match="absent"):
        load_corpus(missing)


def test_bundled_corpus_loads() -> None:
    load = load_corpus(bundled_corpus_dir())
    assert load.errors == ()
    assert len(load.resources) == 9
    for resource in load.resources:
        assert resource.title and resource.kind
        assert resource.type in ("Ressources RTES", "Autres")
        assert resource.body.endswith("\n") and "Résumé\n" not in resource.body


def test_parse_cache_skips_unchanged_files_and_sees_every_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from corpus import loaders

    corpus, cache = tmp_path / "corpus", tmp_path / "index" / "corpus-cache"
    shutil.copytree(bundled_corpus_dir(), corpus)
    write(corpus / "broken.md", "---\ntitle: [non fermé\n---\ncorps")
    parsed: list[str] = []
    real = loaders.load_file

    def counting(path: Path) -> object:
        parsed.append(path.name)
        return real(path)

    monkeypatch.setattr(loaders, "load_file", counting)
    first = load_corpus(corpus, cache=cache)
    assert len(parsed) == 10 and len(first.resources) == 9 and len(first.errors) == 1
    shards = {p.name: p.stat().st_mtime_ns for p in cache.glob("shard-*.json")}
    assert shards

    parsed.clear()
    second = load_corpus(corpus, cache=cache)
    assert parsed == ["broken.md"]  # files in error are parsed (and reported) every time
    assert second.resources == first.resources and second.errors == first.errors
    assert [r.content_hash for r in second.resources] == [r.content_hash for r in first.resources]

    # Edit one file, delete one, add one: only the edited and the new files are parsed.
    edited, deleted = [p for p in sorted(corpus.glob("*.md")) if p.name != "broken.md"][:2]
    edited.write_text(edited.read_text(encoding="utf-8") + "\nUne ligne de plus.\n", "utf-8")
    deleted.unlink()
    write(corpus / "nouvelle.txt", "Nouvelle ressource\n\nUn texte sur les recycleries.")
    parsed.clear()
    third = load_corpus(corpus, cache=cache)
    assert sorted(parsed) == sorted(["broken.md", edited.name, "nouvelle.txt"])
    assert third.resources == load_corpus(corpus).resources  # same as without a cache
    from corpus.loaders import _shard

    touched = {
        f"shard-{_shard(str(p)):02d}.json" for p in (edited, deleted, corpus / "nouvelle.txt")
    }
    rewritten = {
        p.name for p in cache.glob("shard-*.json") if shards.get(p.name) != p.stat().st_mtime_ns
    }
    assert rewritten == touched  # only the shards of the changed files are written again
    assert all(r.source_path != str(deleted) for r in third.resources)

    # A change of the loaders' code drops every cached parse; a corrupt cache is ignored.
    monkeypatch.setattr(loaders, "loader_fingerprint", lambda: "another-loader")
    parsed.clear()
    load_corpus(corpus, cache=cache)
    assert len(parsed) == 10
    for shard in cache.glob("shard-*.json"):
        shard.write_text("{not json", encoding="utf-8")
    parsed.clear()
    assert load_corpus(corpus, cache=cache).resources == third.resources
    assert len(parsed) == 10


def test_the_collector_is_paused_only_for_the_bulk_step() -> None:
    import gc

    from corpus.loaders import paused_gc

    assert gc.isenabled()
    with pytest.raises(RuntimeError), paused_gc():
        assert not gc.isenabled()
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not resume it early
        raise RuntimeError("a failing build")
    assert gc.isenabled()
