"""Hot reload: questions keep being answered while the index is rebuilt, by the same
`Assistant`, which then answers from the new version without being recreated."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

import numpy as np

from assistant.retrieval import RetrievalParams
from assistant.service import Assistant
from tests.fakes import FakeEmbedder

PARAMS = RetrievalParams()  # the default rule never abstains: rank only
QUESTIONS = (
    "Comment financer un projet d'ESS en milieu rural ?",
    "zorglubettes en circuit court",
    "tartempions et recycleries",
)
ZORG = "Le marché des zorglubettes\n\nUne coopérative de zorglubettes vend en circuit court.\n"
TARTE = "Les tartempions\n\nLa recyclerie des tartempions emploie des personnes en insertion.\n"


def test_questions_during_two_rebuilds_never_fail(
    fake_assistant: Assistant, fake_embedder: FakeEmbedder
) -> None:
    assistant = fake_assistant
    corpus = assistant.corpus_dir
    versions_ids = [set(assistant.index().resources)]
    stop = threading.Event()
    failures: list[BaseException] = []
    seen: list[tuple[str, frozenset[str]]] = []
    building = threading.Event()
    during_build = [0]

    def asker(offset: int) -> None:
        n = offset
        while not stop.is_set():
            question = QUESTIONS[n % len(QUESTIONS)]
            n += 1
            try:
                answer = assistant.ask(question)
                retrieval = assistant.retrieve(question, params=PARAMS)
                assert answer.question == question
            except BaseException as exc:  # collected and reported by the main thread
                failures.append(exc)
                return
            # Each call reads one version (the two calls may straddle a switch).
            seen.append((question, frozenset(c.resource_id for c in answer.citations)))
            seen.append((question, frozenset(r.resource.id for r in retrieval.resources)))
            if building.is_set():
                during_build[0] += 1

    original = fake_embedder.embed_batch

    def slow_embed(texts: Sequence[str]) -> np.ndarray:
        time.sleep(0.02 * len(texts))  # long enough for questions to overlap the build
        return original(texts)

    threads = [threading.Thread(target=asker, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    try:
        fake_embedder.embed_batch = slow_embed  # type: ignore[method-assign]
        time.sleep(0.05)
        (corpus / "zorglubettes.txt").write_text(ZORG, encoding="utf-8")
        building.set()
        first = assistant.build(full=True)  # full: a long build, questions run meanwhile
        versions_ids.append(set(assistant.index().resources))
        (corpus / "zorglubettes.txt").unlink()
        (corpus / "tartempions.txt").write_text(TARTE, encoding="utf-8")
        second = assistant.build()
        building.clear()
        versions_ids.append(set(assistant.index().resources))
        time.sleep(0.05)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures[0]
    assert first.summary_line() == "added 10, changed 0, removed 0, unchanged 0, errors 0"
    assert second.summary_line() == "added 1, changed 0, removed 1, unchanged 9, errors 0"
    assert during_build[0] > 10  # the chat was not blocked by the builds

    # Every answer came entirely from one of the three versions.
    for question, ids in seen:
        assert any(ids <= v for v in versions_ids), (question, ids)

    # The same Assistant now answers from the newest version.
    assert assistant.index().version == second.version
    top = assistant.retrieve("tartempions", params=PARAMS).resources[0].resource
    assert top.id == "tartempions"
    assert all(
        r.resource.id != "zorglubettes"
        for r in assistant.retrieve("zorglubettes", params=PARAMS).resources
    )


def test_index_reloads_when_current_changes(fake_assistant: Assistant) -> None:
    before = fake_assistant.index()
    assert fake_assistant.index() is before  # no reload without a new version
    (fake_assistant.corpus_dir / "tartempions.txt").write_text(TARTE, encoding="utf-8")
    fake_assistant.build()
    after = fake_assistant.index()
    assert after is not before and "tartempions" in after.resources
