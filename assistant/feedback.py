"""Answer feedback and question log, stored in SQLite.

`FeedbackStore` keeps two tables: the 👍/👎 opinions people leave on answers (with the
question, the answer text and its citations) and a log of every question asked (text, time
and whether the assistant abstained — no IP address, no user id). The staff page reads both:
the opinions as a list or a CSV export, and the questions left unanswered, grouped.

Gradio calls handlers from worker threads: every operation opens its own short-lived
connection, and a lock serializes writes inside one process (WAL mode lets readers run
alongside).
"""

from __future__ import annotations

import builtins
import csv
import io
import json
import logging
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

log = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 2000
MAX_TEXT_CHARS = 20_000  # questions and answers are capped too, to keep the file small

Rating = Literal["up", "down"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    comment TEXT NOT NULL DEFAULT '',
    abstained INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    question TEXT NOT NULL,
    abstained INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS questions_abstained ON questions (abstained);
"""

SCHEMA_VERSION = 2
# Each migration takes the database from version i to i + 1 (PRAGMA user_version).
_MIGRATIONS: dict[int, str] = {
    1: """
ALTER TABLE questions ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
ALTER TABLE questions ADD COLUMN answer TEXT NOT NULL DEFAULT '';
ALTER TABLE questions ADD COLUMN citations TEXT NOT NULL DEFAULT '[]';
ALTER TABLE questions ADD COLUMN rating TEXT;
ALTER TABLE questions ADD COLUMN comment TEXT NOT NULL DEFAULT '';
ALTER TABLE questions ADD COLUMN review TEXT NOT NULL DEFAULT 'pending';
ALTER TABLE questions ADD COLUMN label_resources TEXT NOT NULL DEFAULT '[]';
ALTER TABLE questions ADD COLUMN label_out_of_scope INTEGER NOT NULL DEFAULT 0;
ALTER TABLE questions ADD COLUMN label_fact TEXT NOT NULL DEFAULT '';
ALTER TABLE questions ADD COLUMN reviewed_at TEXT;
UPDATE questions SET outcome = CASE abstained WHEN 1 THEN 'abstained' ELSE 'answered' END
    WHERE outcome = '';
CREATE INDEX IF NOT EXISTS questions_created ON questions (created_at);
CREATE INDEX IF NOT EXISTS questions_review ON questions (review);
""",
}

_CSV_HEADER = (
    "id",
    "date",
    "question",
    "réponse",
    "avis",
    "commentaire",
    "sans réponse",
    "sources",
)


@dataclass(frozen=True)
class FeedbackEntry:
    """One opinion left on an answer."""

    id: int
    created_at: str
    question: str
    answer_text: str
    citations: tuple[dict[str, Any], ...]
    rating: Rating
    comment: str
    abstained: bool


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _normalize_question(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def log_answer(store: FeedbackStore, answer: Any) -> int | None:
    """Log an `assistant.models.Answer`: its question, outcome, text and cited resources."""
    return store.log_question(
        answer.question,
        abstained=answer.abstained,
        outcome=answer.outcome,
        answer=answer.text,
        citations=[
            {"n": c.n, "resource_id": c.resource_id, "title": c.title} for c in answer.citations
        ],
    )


def csv_safe(value: object) -> str:
    """A CSV cell that spreadsheets will not run as a formula (=, +, -, @, tab, CR prefixes)."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


class FeedbackStore:
    """Opinions on answers and the log of asked questions, in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._ready = False

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    conn = sqlite3.connect(self.path, timeout=30)
                    try:
                        conn.execute("PRAGMA journal_mode=WAL")
                        conn.executescript(_SCHEMA)
                        version = int(conn.execute("PRAGMA user_version").fetchone()[0]) or 1
                        while version < SCHEMA_VERSION:
                            conn.executescript(_MIGRATIONS[version])
                            version += 1
                            conn.execute(f"PRAGMA user_version = {version}")
                        conn.commit()
                    finally:
                        conn.close()
                    self._ready = True
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA synchronous=NORMAL")  # safe with WAL, much faster commits
            yield conn
        finally:
            conn.close()

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        with self._lock, self._connect() as conn:
            cursor = conn.execute(sql, params)
            conn.commit()
            return int(cursor.lastrowid or 0)

    # ------------------------------------------------------------------ opinions

    def add(
        self,
        *,
        question: str,
        answer_text: str,
        citations: list[dict[str, Any]],
        rating: Rating,
        comment: str = "",
        abstained: bool,
    ) -> int:
        """Store an opinion; returns its id. The comment is capped at 2000 characters."""
        if rating not in ("up", "down"):
            raise ValueError(f"rating must be 'up' or 'down', not {rating!r}")
        row_id = self._write(
            "INSERT INTO feedback"
            " (created_at, question, answer, citations, rating, comment, abstained)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                _now(),
                (question or "")[:MAX_TEXT_CHARS],
                (answer_text or "")[:MAX_TEXT_CHARS],
                json.dumps(list(citations), ensure_ascii=False),
                rating,
                (comment or "").strip()[:MAX_COMMENT_CHARS],
                int(bool(abstained)),
            ),
        )
        log.info("feedback %s stored (%s)", row_id, rating)
        return row_id

    def list(self, limit: int = 200) -> builtins.list[FeedbackEntry]:
        """The latest opinions, newest first."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT id, created_at, question, answer, citations, rating, comment, abstained"
                " FROM feedback ORDER BY id DESC LIMIT ?",
                (int(limit),),
            ).fetchall()
        return [
            FeedbackEntry(
                id=r[0],
                created_at=r[1],
                question=r[2],
                answer_text=r[3],
                citations=tuple(json.loads(r[4] or "[]")),
                rating=r[5],
                comment=r[6],
                abstained=bool(r[7]),
            )
            for r in rows
        ]

    def to_csv(self, limit: int = 100_000) -> str:
        """Every opinion as CSV (French header), safe to open in a spreadsheet."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(_CSV_HEADER)
        for e in self.list(limit):
            sources = "; ".join(
                f"[{c.get('n', '')}] {c.get('title', '')}"
                for c in e.citations
                if isinstance(c, dict)
            )
            writer.writerow(
                [
                    csv_safe(v)
                    for v in (
                        e.id,
                        e.created_at,
                        e.question,
                        e.answer_text,
                        "👍" if e.rating == "up" else "👎",
                        e.comment,
                        "oui" if e.abstained else "non",
                        sources,
                    )
                ]
            )
        return out.getvalue()

    # ------------------------------------------------------------------ question log

    def log_question(
        self,
        question: str,
        *,
        abstained: bool,
        outcome: str | None = None,
        answer: str = "",
        citations: builtins.list[dict[str, Any]] | None = None,
    ) -> int | None:
        """Record an asked question with its outcome, answer and cited resources (time and
        text only: nothing about the person). Returns the log id (None for an empty one)."""
        text = (question or "").strip()
        if not text:
            return None
        return self._write(
            "INSERT INTO questions (created_at, question, abstained, outcome, answer, citations)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                _now(),
                text[:MAX_TEXT_CHARS],
                int(bool(abstained)),
                outcome or ("abstained" if abstained else "answered"),
                (answer or "")[:MAX_TEXT_CHARS],
                json.dumps(list(citations or ()), ensure_ascii=False),
            ),
        )

    def rate(self, question_id: int, rating: Rating, comment: str = "") -> None:
        """Attach 👍/👎 (and the comment) to a logged question."""
        self._write(
            "UPDATE questions SET rating = ?, comment = ? WHERE id = ?",
            (rating, (comment or "").strip()[:MAX_COMMENT_CHARS], int(question_id)),
        )

    def purge(self, days: int) -> int:
        """Delete logged questions and opinions older than `days`; returns how many rows."""
        cutoff = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
        with self._lock, self._connect() as conn:
            removed = conn.execute("DELETE FROM questions WHERE created_at < ?", (cutoff,))
            count = removed.rowcount
            count += conn.execute("DELETE FROM feedback WHERE created_at < ?", (cutoff,)).rowcount
            conn.commit()
        if count:
            log.info("purged %d log rows older than %d days", count, days)
        return int(count)

    def unanswered(self, limit: int = 50) -> builtins.list[tuple[str, int]]:
        """Questions the assistant abstained on, grouped ignoring case and spacing, most
        frequent first (the most recent wording of each group is shown)."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT question FROM questions WHERE abstained = 1 ORDER BY id DESC"
            ).fetchall()
        groups: dict[str, builtins.list[Any]] = {}  # key → [shown wording, count, first seen order]
        for order, (question,) in enumerate(rows):
            key = _normalize_question(question)
            if key in groups:
                groups[key][1] += 1
            else:
                groups[key] = [re.sub(r"\s+", " ", question).strip(), 1, order]
        ranked = sorted(groups.values(), key=lambda g: (-g[1], g[2]))
        return [(g[0], g[1]) for g in ranked[: int(limit)]]

    def question_count(self) -> int:
        """How many questions were logged."""
        with self._connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM questions").fetchone()[0])
