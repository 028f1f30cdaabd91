"""Freshness: archived resources are never cited, a superseded one gives way to its successor,
old or past-review sources carry a notice, the staff list, and status changes written back."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from assistant.compose import freshness_notice
from assistant.freshness import resources_to_review, set_status
from assistant.service import Assistant
from corpus.errors import InvalidResourceError
from corpus.loaders import load_file
from corpus.models import Resource

TODAY = dt.date(2026, 11, 28)


def _md(folder: Path, rid: str, title: str, extra: str = "", date: str = "2025-01") -> Path:
    path = folder / f"{rid}.md"
    path.write_text(
        f"---\nid: {rid}\ntitle: {title}\ndate: {date}\n{extra}---\n\n"
        f"Les zorglubettes de {title} financent les épiceries solidaires du canton.\n",
        encoding="utf-8",
    )
    return path


def test_archived_is_never_cited_and_superseded_gives_way(fake_assistant: Assistant) -> None:
    corpus = fake_assistant.corpus_dir
    _md(
        corpus,
        "guide-2018",
        "Guide zorglubettes 2018",
        "status: superseded\nsuperseded_by: guide-2025\n",
    )
    _md(corpus, "guide-2025", "Guide zorglubettes 2025")
    _md(corpus, "archive", "Archive zorglubettes", "status: archived\n")
    fake_assistant.build()
    ids = [g.resource.id for g in fake_assistant.retrieve("zorglubettes guide archive").resources]
    assert "archive" not in ids
    assert "guide-2025" in ids and "guide-2018" not in ids  # both matched: the new one stays
    (corpus / "guide-2025.md").unlink()
    fake_assistant.build()
    ids = [g.resource.id for g in fake_assistant.retrieve("zorglubettes guide").resources]
    assert "guide-2018" in ids  # no successor in the base: the old one is still an answer


def test_old_or_past_review_sources_carry_one_notice() -> None:
    old = Resource(id="a", title="A", body="x", date="2019-05")
    recent = Resource(id="b", title="B", body="x", date="2024-02")
    due = Resource(id="c", title="C", body="x", date="2025-01", review_by="2026-06")
    assert freshness_notice([(1, recent)], TODAY, 5) is None
    assert (
        freshness_notice([(1, old)], TODAY, 5)
        == "Source [1] de 2019 : vérifiez qu'elle est à jour."
    )
    both = freshness_notice([(1, old), (2, recent), (3, due)], TODAY, 5)
    assert (
        both == "Sources [1] de 2019, [3] à revoir depuis 2026-06 : vérifiez qu'elles sont à jour."
    )


def test_answers_carry_the_notice(fake_assistant: Assistant) -> None:
    answer = fake_assistant.ask("Comment financer l'ESS en milieu rural ?")
    assert answer.citations
    assert any("vérifiez qu'elle" in n for n in answer.notices)  # the bundled corpus is from 2020


def test_staff_list_of_resources_to_review() -> None:
    resources = {
        r.id: r
        for r in (
            Resource(id="old", title="Vieux", body="x", date="2018-01"),
            Resource(id="due", title="À revoir", body="x", date="2025-01", review_by="2026-01"),
            Resource(
                id="orphan", title="Remplacée", body="x", status="superseded", superseded_by="gone"
            ),
            Resource(id="fine", title="Récente", body="x", date="2025-06"),
            Resource(id="arch", title="Archivée", body="x", date="2010-01", status="archived"),
        )
    }
    rows = resources_to_review(resources, today=TODAY, stale_years=5)
    assert [r.id for r in rows] == ["orphan", "due", "old"]
    assert "absente de la base" in rows[0].reason and "2026-01" in rows[1].reason


def test_a_status_change_is_written_back_and_keeps_everything_else(tmp_path: Path) -> None:
    path = _md(tmp_path, "fiche", "Fiche", "themes:\n- ruralité\n")
    set_status(path, "superseded", superseded_by="fiche-2026")
    r = load_file(path)
    assert (r.status, r.superseded_by, r.themes) == ("superseded", "fiche-2026", ("ruralité",))
    assert "financent les épiceries" in r.body
    set_status(path, "current")
    assert load_file(path).status == "current" and "superseded_by" not in path.read_text("utf-8")
    with pytest.raises(InvalidResourceError, match="remplace"):
        set_status(path, "superseded")
    txt = tmp_path / "note.txt"
    txt.write_text("Titre\n\nCorps.\n", encoding="utf-8")
    with pytest.raises(InvalidResourceError, match="Markdown"):
        set_status(txt, "archived")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("status: oublié\n", "status"),
        ("status: superseded\n", "superseded_by"),
        ("review_by: demain\n", "review_by"),
    ],
)
def test_bad_freshness_fields_are_file_errors(tmp_path: Path, extra: str, match: str) -> None:
    with pytest.raises(InvalidResourceError, match=match):
        load_file(_md(tmp_path, "f", "F", extra))
