"""Safe uploads, removals and the resource list of the staff page (`assistant.corpus_admin`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.corpus_admin import (
    STATUS_CHANGED,
    STATUS_INDEXED,
    STATUS_NEW,
    STATUS_REMOVED,
    list_resources,
    remove_resource,
    sanitize_filename,
    save_upload,
)
from assistant.service import Assistant
from corpus.errors import InvalidResourceError
from tests.corpus.pdf_factory import make_pdf

MB = 1024 * 1024
NOTE = "Note sur les tiers-lieux\n\nLes tiers-lieux ruraux accueillent des initiatives d’ESS.\n"


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("Guide ESS.md", "guide-ess.md"),
        ("../../etc/x.md", "x.md"),
        ("/etc/passwd.md", "passwd.md"),
        ("..\\..\\x.md", "x.md"),
        ("C:\\Users\\élu\\Fiche n°3 — Économie.PDF", "fiche-n-3-economie.pdf"),
        ("Coopérative d’habitants (2021).html", "cooperative-d-habitants-2021.html"),
        (".cache.md", "cache.md"),
        ("é.md", "e.md"),
        ("...---.txt.md", "txt.md"),
        ("a" * 500 + ".md", "a" * 117 + ".md"),
    ],
)
def test_sanitize_filename(given: str, expected: str) -> None:
    assert sanitize_filename(given) == expected


@pytest.mark.parametrize(
    "given",
    [
        "",
        "..",
        "/",
        ".md",
        "—.txt",
        "’’.md",
        "rapport.exe",
        "script.md.sh",
        "sans-extension",
        "README.md",
    ],
)
def test_sanitize_filename_refuses(given: str) -> None:
    with pytest.raises(InvalidResourceError):
        sanitize_filename(given)


@pytest.mark.parametrize("name", ["../../etc/x.md", "/etc/passwd.md", "..\\..\\x.md", "../x.md"])
def test_traversal_names_stay_inside_the_corpus(tmp_path: Path, name: str) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    outside_before = _tree(tmp_path) - {str(Path("corpus") / p) for p in _tree(corpus)}
    saved = save_upload(corpus, name, NOTE.encode(), max_bytes=MB)
    assert saved.parent == corpus
    assert saved.resolve().is_relative_to(corpus.resolve())
    assert not (tmp_path / "etc").exists() and not (tmp_path / "x.md").exists()
    assert _tree(tmp_path) - {"corpus"} - {
        str(Path("corpus") / p) for p in _tree(corpus)
    } == outside_before - {"corpus"}
    assert _tree(corpus) == {saved.name}  # no temporary leftovers


def test_unicode_name_and_content_are_saved(tmp_path: Path) -> None:
    data = "Épicerie « solidaire »\n\nUne épicerie gérée par l’association.\r\n".encode()
    saved = save_upload(tmp_path, "Épicerie solidaire à Saint-Étienne.txt", data, max_bytes=MB)
    assert saved.name == "epicerie-solidaire-a-saint-etienne.txt"
    assert saved.read_bytes() == data


def test_too_large_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidResourceError, match="trop volumineux"):
        save_upload(tmp_path, "gros.txt", b"Titre\n\n" + b"x" * 2000, max_bytes=1000)
    assert _tree(tmp_path) == set()


def test_wrong_extension_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidResourceError, match="extension non prise en charge"):
        save_upload(tmp_path, "photo.jpg", b"\xff\xd8\xff", max_bytes=MB)
    assert _tree(tmp_path) == set()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("casse.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "PDF"),
        ("sans-texte.pdf", make_pdf([]), None),
        ("yaml.md", "---\ntitle: [non fermé\nthemes: :\n---\n\ncorps\n".encode(), None),
        ("latin1.txt", "Titre\n\nÉconomie sociale".encode("latin-1"), "UTF-8"),
        ("vide.md", b"   \n\n", "vide"),
    ],
)
def test_broken_files_are_refused_with_nothing_written(
    tmp_path: Path, name: str, data: bytes, reason: str | None
) -> None:
    with pytest.raises(InvalidResourceError, match=reason) as info:
        save_upload(tmp_path, name, data, max_bytes=MB)
    assert info.value.path == name  # the staff see their file name, not a temporary path
    assert _tree(tmp_path) == set()


def test_a_valid_pdf_is_accepted(tmp_path: Path) -> None:
    data = make_pdf(["Guide des achats responsables", "Les collectivités achètent local."])
    saved = save_upload(tmp_path, "achats.pdf", data, max_bytes=MB)
    assert saved.read_bytes() == data


def test_existing_name_is_refused_unless_overwrite(tmp_path: Path) -> None:
    first = save_upload(tmp_path, "note.txt", NOTE.encode(), max_bytes=MB)
    changed = NOTE.replace("ruraux", "urbains").encode()
    with pytest.raises(InvalidResourceError, match="déjà ce nom"):
        save_upload(tmp_path, "note.txt", changed, max_bytes=MB)
    assert first.read_text(encoding="utf-8") == NOTE
    save_upload(tmp_path, "note.txt", changed, max_bytes=MB, overwrite=True)
    assert first.read_bytes() == changed
    assert _tree(tmp_path) == {"note.txt"}


def test_duplicate_resource_id_in_another_file_is_refused(corpus_copy: Path) -> None:
    original = corpus_copy / "mode-d-emploi-ess-ruralites-tressons.md"
    with pytest.raises(InvalidResourceError, match="déjà utilisé"):
        save_upload(corpus_copy, "copie.md", original.read_bytes(), max_bytes=MB)
    assert not (corpus_copy / "copie.md").exists()


def test_missing_corpus_folder(tmp_path: Path) -> None:
    with pytest.raises(InvalidResourceError, match="introuvable"):
        save_upload(tmp_path / "absent", "note.txt", NOTE.encode(), max_bytes=MB)


def test_list_resources_states(fake_assistant: Assistant) -> None:
    corpus = fake_assistant.corpus_dir
    rows = list_resources(fake_assistant)
    assert len(rows) == 9 and {r.status for r in rows} == {STATUS_INDEXED}
    assert all(r.title and r.file.endswith(".md") for r in rows)

    edited = corpus / "mode-d-emploi-ess-ruralites-tressons.md"
    edited.write_text(edited.read_text(encoding="utf-8") + "\nUn ajout.\n", encoding="utf-8")
    (corpus / "reperess-developper-l-ess-dans-les-quartiers-politique-de-la-ville.md").unlink()
    save_upload(corpus, "nouvelle.txt", NOTE.encode(), max_bytes=MB)
    broken = corpus / "fiche-deniche-pour-vous-n87-collectif-gare.md"
    broken.write_text("---\ntitle: [cassé\n---\n\ncorps\n", encoding="utf-8")

    by_file = {r.file: r for r in list_resources(fake_assistant)}
    assert by_file["mode-d-emploi-ess-ruralites-tressons.md"].status == STATUS_CHANGED
    assert by_file["nouvelle.txt"].status == STATUS_NEW
    assert by_file["nouvelle.txt"].title == "Note sur les tiers-lieux"
    gone = by_file["reperess-developper-l-ess-dans-les-quartiers-politique-de-la-ville.md"]
    assert gone.status == STATUS_REMOVED and gone.title.startswith("RepèrESS")
    error = by_file["fiche-deniche-pour-vous-n87-collectif-gare.md"]
    assert error.status.startswith("erreur : ")
    assert error.id == "fiche-deniche-pour-vous-n87-collectif-gare"  # one row, old title kept
    assert "Collectif GARE" in error.title
    assert len(by_file) == 10
    assert [len(r.as_list()) for r in by_file.values()] == [5] * 10


def test_list_resources_without_index(fake_settings, fake_embedder) -> None:
    assistant = Assistant(fake_settings, embedder=fake_embedder)
    rows = list_resources(assistant)
    assert len(rows) == 9 and {r.status for r in rows} == {STATUS_NEW}


def test_remove_resource_deletes_only_its_file(fake_assistant: Assistant) -> None:
    corpus = fake_assistant.corpus_dir
    before = _tree(corpus)
    path = remove_resource(corpus, "mode-d-emploi-ess-ruralites-tressons", fake_assistant.index())
    assert path.name == "mode-d-emploi-ess-ruralites-tressons.md"
    assert _tree(corpus) == before - {path.name}
    with pytest.raises(InvalidResourceError, match="introuvable"):
        remove_resource(corpus, "mode-d-emploi-ess-ruralites-tressons", fake_assistant.index())
    # a resource not indexed yet is found by reading the folder
    save_upload(corpus, "nouvelle.txt", NOTE.encode(), max_bytes=MB)
    assert remove_resource(corpus, "nouvelle", fake_assistant.index()).name == "nouvelle.txt"


def test_remove_refuses_a_file_outside_the_corpus(
    fake_assistant: Assistant, tmp_path: Path
) -> None:
    # Index built from one folder, removal asked on another: the indexed file is outside it.
    other = tmp_path / "autre-corpus"
    other.mkdir()
    with pytest.raises(InvalidResourceError, match="hors du dossier"):
        remove_resource(other, "mode-d-emploi-ess-ruralites-tressons", fake_assistant.index())
    assert (fake_assistant.corpus_dir / "mode-d-emploi-ess-ruralites-tressons.md").exists()
