"""The review queue: logged questions staff should look at, and what they say of them.

A question enters the queue when its answer got 👎, or when the assistant abstained or
answered with low confidence. Oldest first, each with the answer given and its sources. Staff
label it — the resource(s) that answer it, or « hors du champ du réseau », and optionally the
fact the answer must contain — or dismiss it. `export_cases` writes the labelled ones in the
evaluation format (`tests/data/README.md`), ready for `ess-assistant eval` and `calibrate`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.feedback import FeedbackStore
from corpus.errors import ConfigurationError

_COLUMNS = (
    "id, created_at, question, outcome, answer, citations, rating, comment, review,"
    " label_resources, label_out_of_scope, label_fact"
)
IN_QUEUE = "(rating = 'down' OR outcome IN ('abstained', 'low_confidence'))"


@dataclass(frozen=True)
class LoggedQuestion:
    id: int
    created_at: str
    question: str
    outcome: str
    answer: str
    citations: tuple[dict[str, Any], ...]
    rating: str | None
    comment: str
    review: str  # "pending", "labelled" or "dismissed"
    label_resources: tuple[str, ...] = ()
    label_out_of_scope: bool = False
    label_fact: str = ""

    @property
    def why(self) -> str:
        """Why it is in the queue, in French."""
        reasons = []
        if self.rating == "down":
            reasons.append("👎")
        if self.outcome == "abstained":
            reasons.append("sans réponse")
        elif self.outcome == "low_confidence":
            reasons.append("réponse incertaine")
        return ", ".join(reasons)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "date": self.created_at,
            "question": self.question,
            "outcome": self.outcome,
            "why": self.why,
            "answer": self.answer,
            "sources": [c.get("resource_id") for c in self.citations],
            "rating": self.rating,
            "comment": self.comment,
            "review": self.review,
        }


def _row(r: Sequence[Any]) -> LoggedQuestion:
    return LoggedQuestion(
        id=int(r[0]),
        created_at=r[1],
        question=r[2],
        outcome=r[3],
        answer=r[4],
        citations=tuple(json.loads(r[5] or "[]")),
        rating=r[6],
        comment=r[7],
        review=r[8],
        label_resources=tuple(json.loads(r[9] or "[]")),
        label_out_of_scope=bool(r[10]),
        label_fact=r[11] or "",
    )


def queue(store: FeedbackStore, limit: int = 500) -> list[LoggedQuestion]:
    """Questions waiting for review, oldest first."""
    with store._connect() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM questions WHERE review = 'pending' AND {IN_QUEUE}"
            " ORDER BY id LIMIT ?",
            (int(limit),),
        ).fetchall()
    return [_row(r) for r in rows]


def get(store: FeedbackStore, question_id: int) -> LoggedQuestion:
    with store._connect() as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM questions WHERE id = ?", (int(question_id),)
        ).fetchone()
    if row is None:
        raise ConfigurationError(f"aucune question n°{question_id} dans le journal")
    return _row(row)


def label(
    store: FeedbackStore,
    question_id: int,
    *,
    resources: Sequence[str] = (),
    out_of_scope: bool = False,
    fact: str | None = None,
    known: Sequence[str] | None = None,
) -> LoggedQuestion:
    """Label a logged question: the resources that answer it, or out of scope (not both);
    `known` (the index's resource ids) rejects an unknown id."""
    if bool(resources) == bool(out_of_scope):
        raise ConfigurationError(
            "indiquez soit les ressources qui répondent (--resource), soit --out-of-scope"
        )
    unknown = [r for r in resources if known is not None and r not in known]
    if unknown:
        raise ConfigurationError(f"ressource(s) inconnue(s) dans l'index : {', '.join(unknown)}")
    get(store, question_id)  # exists
    store._write(
        "UPDATE questions SET review = 'labelled', label_resources = ?, label_out_of_scope = ?,"
        " label_fact = ?, reviewed_at = ? WHERE id = ?",
        (
            json.dumps(list(resources), ensure_ascii=False),
            int(bool(out_of_scope)),
            (fact or "").strip()[:500],
            datetime.now(UTC).isoformat(timespec="seconds"),
            int(question_id),
        ),
    )
    return get(store, question_id)


def dismiss(store: FeedbackStore, question_id: int) -> None:
    get(store, question_id)
    store._write(
        "UPDATE questions SET review = 'dismissed', reviewed_at = ? WHERE id = ?",
        (datetime.now(UTC).isoformat(timespec="seconds"), int(question_id)),
    )


def labelled(store: FeedbackStore) -> list[LoggedQuestion]:
    with store._connect() as conn:
        rows = conn.execute(
            f"SELECT {_COLUMNS} FROM questions WHERE review = 'labelled' ORDER BY id"
        ).fetchall()
    return [_row(r) for r in rows]


def review_jsonl(store: FeedbackStore) -> str:
    """The labelled questions as evaluation cases, one JSON object per line."""
    return "".join(json.dumps(case_json(q), ensure_ascii=False) + "\n" for q in labelled(store))


def export_cases(store: FeedbackStore, path: Path) -> int:
    """Write the labelled questions as evaluation cases (JSON Lines); returns how many."""
    text = review_jsonl(store)
    Path(path).write_text(text, encoding="utf-8")
    return text.count("\n")


def case_json(q: LoggedQuestion) -> dict[str, Any]:
    """A labelled question in the evaluation format."""
    return {
        "id": f"review-{q.id}",
        "question": q.question,
        "style": "review",
        "relevant": {rid: 2 for rid in q.label_resources},
        "out_of_scope": True if q.label_out_of_scope else None,
        "expect": q.label_fact or None,
        "history": [],
    }
