"""Tests of `FeedbackStore`: opinions, CSV export, question log and unanswered grouping."""

from __future__ import annotations

import csv
import io
import sqlite3
import threading
from pathlib import Path

import pytest

from assistant.feedback import MAX_COMMENT_CHARS, FeedbackEntry, FeedbackStore, csv_safe

CITATIONS = [{"n": 1, "title": "Mode d’emploi « ESS & ruralités »", "score": 0.9}]


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "sub" / "feedback.sqlite3")


def test_created_on_first_use_in_wal_mode(store: FeedbackStore) -> None:
    assert not store.path.exists()
    assert store.list() == []
    assert store.path.exists()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_add_and_list_newest_first(store: FeedbackStore) -> None:
    first = store.add(
        question="Qu'est-ce qu'une SCIC ?",
        answer_text="Une société coopérative d’intérêt collectif [1]",
        citations=CITATIONS,
        rating="up",
        abstained=False,
    )
    second = store.add(
        question="Et en ville ?",
        answer_text="Je n'ai pas trouvé",
        citations=[],
        rating="down",
        comment="  pas de réponse  ",
        abstained=True,
    )
    assert second > first
    entries = store.list()
    assert [e.id for e in entries] == [second, first]
    newest, oldest = entries
    assert isinstance(newest, FeedbackEntry)
    assert newest.rating == "down" and newest.abstained and newest.comment == "pas de réponse"
    assert oldest.citations == tuple(CITATIONS)
    assert oldest.answer_text.endswith("[1]")
    assert oldest.created_at[:2] == "20"
    assert store.list(limit=1) == [newest]


def test_comment_is_capped_and_rating_checked(store: FeedbackStore) -> None:
    store.add(
        question="q",
        answer_text="a",
        citations=[],
        rating="up",
        comment="é" * 5000,
        abstained=False,
    )
    assert len(store.list()[0].comment) == MAX_COMMENT_CHARS
    with pytest.raises(ValueError):
        store.add(
            question="q",
            answer_text="a",
            citations=[],
            rating="meh",  # type: ignore[arg-type]
            abstained=False,
        )


def test_csv_export_guards_against_formulas(store: FeedbackStore) -> None:
    store.add(
        question='=HYPERLINK("http://x")',
        answer_text="+1 [1]",
        citations=CITATIONS,
        rating="down",
        comment="@SUM(A1)",
        abstained=False,
    )
    store.add(
        question="-2+3",
        answer_text="Réponse, avec « guillemets »\nsur deux lignes",
        citations=[],
        rating="up",
        abstained=True,
    )
    rows = list(csv.reader(io.StringIO(store.to_csv())))
    assert rows[0][:3] == ["id", "date", "question"]
    assert len(rows) == 3
    newer, older = rows[1], rows[2]
    assert newer[2] == "'-2+3"
    assert newer[3] == "Réponse, avec « guillemets »\nsur deux lignes"
    assert older[2] == '\'=HYPERLINK("http://x")'
    assert older[3] == "'+1 [1]"
    assert older[5] == "'@SUM(A1)"
    assert "Mode d’emploi" in older[7]
    for row in rows[1:]:
        for cell in row:
            assert not cell or cell[0] not in "=+-@"


def test_csv_safe() -> None:
    assert csv_safe("=1") == "'=1"
    assert csv_safe("\t=1") == "'\t=1"
    assert csv_safe("ok") == "ok"
    assert csv_safe(None) == ""
    assert csv_safe(3) == "3"


def test_unanswered_grouped_case_and_space_insensitively(store: FeedbackStore) -> None:
    store.log_question("Qu'est-ce qu'une SCIC ?", abstained=False)
    store.log_question("Combien coûte  un tiers-lieu ?", abstained=True)
    store.log_question("Aides pour les cafés associatifs ?", abstained=True)
    store.log_question("combien coûte un TIERS-LIEU ?", abstained=True)
    store.log_question("  COMBIEN coûte un tiers-lieu ?\n", abstained=True)
    store.log_question("   ", abstained=True)  # ignored
    assert store.question_count() == 5
    unanswered = store.unanswered()
    assert unanswered == [
        ("COMBIEN coûte un tiers-lieu ?", 3),
        ("Aides pour les cafés associatifs ?", 1),
    ]
    assert store.unanswered(limit=1) == unanswered[:1]


def test_question_log_holds_no_personal_data(store: FeedbackStore) -> None:
    store.log_question("Qu'est-ce qu'une SCIC ?", abstained=False)
    with sqlite3.connect(store.path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(questions)")]
    assert columns == [
        "id",
        "created_at",
        "question",
        "abstained",
        "outcome",
        "answer",
        "citations",
        "rating",
        "comment",
        "review",
        "label_resources",
        "label_out_of_scope",
        "label_fact",
        "reviewed_at",
    ]  # fmt: skip — no address, no user id, no session


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            "CREATE TABLE questions (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT"
            " NULL, question TEXT NOT NULL, abstained INTEGER NOT NULL);"
            "INSERT INTO questions (created_at, question, abstained) VALUES"
            " ('2026-01-01T00:00:00+00:00', 'Vieille question', 1);"
        )
    store = FeedbackStore(path)
    assert store.question_count() == 1
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        outcome = conn.execute("SELECT outcome, review FROM questions").fetchone()
    assert outcome == ("abstained", "pending")


def test_purge_keeps_only_the_retention_window(store: FeedbackStore) -> None:
    old = store.log_question("Question ancienne ?", abstained=True)
    store.log_question("Question récente ?", abstained=True)
    with sqlite3.connect(store.path) as conn:
        conn.execute(
            "UPDATE questions SET created_at = '2020-01-01T00:00:00+00:00' WHERE id = ?", (old,)
        )
    assert store.purge(365) == 1
    assert store.question_count() == 1


def test_concurrent_adds_from_threads(store: FeedbackStore) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in range(10):
                store.add(
                    question=f"q{i}-{j}",
                    answer_text="a",
                    citations=CITATIONS,
                    rating="up" if j % 2 else "down",
                    abstained=False,
                )
                store.log_question(f"q{i}", abstained=True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = store.list(limit=1000)
    assert len(entries) == 80
    assert len({e.id for e in entries}) == 80
    assert sorted(count for _, count in store.unanswered()) == [10] * 8
