"""Content gaps: abstained and low-confidence questions grouped by meaning."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.feedback import FeedbackStore
from assistant.gaps import cluster, find_gaps
from assistant.service import Assistant


def test_clusters_follow_the_similarity_bar() -> None:
    a = np.array([1.0, 0.0, 0.0])
    near = np.array([0.97, 0.24, 0.0])
    other = np.array([0.0, 0.0, 1.0])
    vectors = np.vstack([v / np.linalg.norm(v) for v in (a, near, other)])
    labels = cluster(vectors, similarity=0.9)
    assert labels[0] == labels[1] != labels[2]
    assert len(set(cluster(vectors, similarity=0.999))) == 3
    assert cluster(vectors[:1], similarity=0.9) == [0]


def test_only_unanswered_questions_are_gaps(fake_assistant: Assistant, tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "log.sqlite3")
    store.log_question("Qu'est-ce qu'une SCIC ?", abstained=False)
    store.log_question("zorglub tartempion", abstained=True)
    store.log_question("zorglub tartempion !", abstained=False, outcome="low_confidence")
    gaps = find_gaps(fake_assistant, store)
    assert sum(g.count for g in gaps) == 2
    assert all("SCIC" not in g.question for g in gaps)
    assert find_gaps(fake_assistant, store, since="2999-01-01") == []


@pytest.mark.slow
def test_wordings_of_one_need_make_one_gap(real_assistant: Assistant, tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "log.sqlite3")
    same = [
        "Comment créer une coopérative funéraire dans ma commune ?",
        "Une commune peut-elle monter une coopérative funéraire ?",
        "coopérative funéraire intercommunale comment faire",
        "Aides pour lancer une coopérative de pompes funèbres sur notre territoire ?",
    ]
    other = [
        "Quelles sont les règles de la taxe GEMAPI pour une intercommunalité ?",
        "Comment organiser le ramassage scolaire avec une association ?",
    ]
    for question in [*same, *other]:
        store.log_question(question, abstained=True)
    gaps = find_gaps(real_assistant, store)
    top = gaps[0]
    assert top.count >= 3 and ("funéraire" in top.question or "funèbres" in top.question)
    grouped = {top.question, *top.variants}
    assert sum(1 for q in same if q in grouped) >= 3
    assert not grouped & set(other)  # the two other needs stay apart
    assert len({g.question for g in gaps if g.question in other}) == 2
