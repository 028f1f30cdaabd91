"""Content gaps: the questions the assistant could not answer well, grouped by meaning.

Abstained and low-confidence questions of the log are embedded with the assistant's model and
grouped by average-linkage clustering on cosine similarity: two wordings join when they are at
least as close as the calibration's `gap_similarity` (the 99th percentile of the similarity
between *different* questions written for the domain gate), so three phrasings of one need
make one gap and two different needs stay apart. Each gap has a representative wording (the
one closest to the others), its count, its first and last dates and a few variants — the
list content staff write new resources from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.feedback import FeedbackStore

if TYPE_CHECKING:
    from assistant.service import Assistant

MAX_QUESTIONS = 5_000  # the most recent ones; clustering is quadratic
MAX_VARIANTS = 5


@dataclass(frozen=True)
class Gap:
    question: str  # the representative wording
    count: int
    first: str
    last: str
    variants: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "count": self.count,
            "first": self.first,
            "last": self.last,
            "variants": list(self.variants),
        }

    def as_list(self) -> list[Any]:
        return [
            self.question,
            self.count,
            self.first[:10],
            self.last[:10],
            " | ".join(self.variants),
        ]


def gap_questions(store: FeedbackStore, since: str | None = None) -> list[tuple[str, str]]:
    """(date, question) of the abstained and low-confidence questions, newest first."""
    sql = (
        "SELECT created_at, question FROM questions"
        " WHERE outcome IN ('abstained', 'low_confidence')"
    )
    params: tuple[Any, ...] = ()
    if since:
        sql += " AND created_at >= ?"
        params = (since,)
    with store._connect() as conn:
        rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, MAX_QUESTIONS)).fetchall()
    return [(str(r[0]), str(r[1])) for r in rows]


def find_gaps(assistant: Assistant, store: FeedbackStore, since: str | None = None) -> list[Gap]:
    """The content gaps, most asked first."""
    rows = gap_questions(store, since)
    if not rows:
        return []
    texts = [q for _, q in rows]
    vectors = np.vstack(
        [assistant.embedder.embed_queries(texts[i : i + 64]) for i in range(0, len(texts), 64)]
    )
    labels = cluster(vectors, assistant.calibration.gap_similarity)
    gaps = []
    for label in sorted(set(labels)):
        members = [i for i, x in enumerate(labels) if x == label]
        sims = vectors[members] @ vectors[members].T
        center = members[int(np.argmax(sims.sum(axis=1)))]
        dates = sorted(rows[i][0] for i in members)
        variants = list(dict.fromkeys(texts[i] for i in members if i != center))
        gaps.append(
            Gap(
                question=texts[center],
                count=len(members),
                first=dates[0],
                last=dates[-1],
                variants=tuple(variants[:MAX_VARIANTS]),
            )
        )
    gaps.sort(key=lambda g: (g.count, g.last), reverse=True)  # most asked, then most recent
    return gaps


def cluster(vectors: np.ndarray, similarity: float) -> list[int]:
    """Average-linkage clusters of normalized vectors: members at cosine ≥ `similarity` on
    average (a single vector is its own cluster)."""
    if len(vectors) == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering

    model = AgglomerativeClustering(
        n_clusters=None,
        metric="cosine",
        linkage="average",
        distance_threshold=1.0 - similarity,
    )
    return [int(x) for x in model.fit_predict(vectors)]
