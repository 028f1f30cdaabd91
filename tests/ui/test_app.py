"""Tests of the Gradio app: handlers, the `ask` API through gradio_client, the layout."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.feedback import FeedbackStore
from assistant.retrieval import RetrievalParams
from assistant.service import EMPTY_QUESTION, Assistant
from assistant.settings import Settings
from tests.fakes import FakeEmbedder
from ui.app import build_app
from ui.chat import CHOOSE_RATING, NO_ANSWER_YET, THANKS, ChatHandlers, filter_choices

RURAL = "Comment financer l'ESS en milieu rural ?"


def _lenient_params() -> RetrievalParams:
    """Retrieval params that never abstain on what the fake embedder finds."""
    changes: dict[str, float] = {}
    for f in dataclasses.fields(RetrievalParams):
        if "threshold" in f.name:
            changes[f.name] = -1e9
        elif f.name.startswith("min_"):
            changes[f.name] = 0.0
    return RetrievalParams(**changes)  # type: ignore[arg-type]


@pytest.fixture
def assistant(fake_settings: Settings, fake_embedder: FakeEmbedder) -> Assistant:
    built = Assistant(fake_settings, embedder=fake_embedder, params=_lenient_params())
    built.build()
    return built


@pytest.fixture
def store(tmp_path: Path) -> FeedbackStore:
    return FeedbackStore(tmp_path / "feedback.sqlite3")


@pytest.fixture
def handlers(assistant: Assistant, store: FeedbackStore) -> ChatHandlers:
    return ChatHandlers(assistant, store)


# ---------------------------------------------------------------------- handlers


def test_answer_with_markers_history_and_logged_question(
    handlers: ChatHandlers, store: FeedbackStore
) -> None:
    chat, history, answer, left = handlers.respond(RURAL, [], [])
    assert answer is not None and not answer.abstained and answer.citations
    assert left == ""
    assert history == [RURAL]
    assert [m["role"] for m in chat] == ["user", "assistant"]
    assert chat[0]["content"] == "Comment financer l&#x27;ESS en milieu rural ?"
    assert 'class="cite-n1"><span class="visually-hidden">source 1 : ' in chat[1]["content"]
    assert store.question_count() == 1

    chat, history, _, _ = handlers.respond("Qu'est-ce qu'une SCIC ?", chat, history)
    assert len(chat) == 4 and history == [RURAL, "Qu'est-ce qu'une SCIC ?"]


def test_empty_question_gives_french_message(handlers: ChatHandlers) -> None:
    chat, history, answer, _ = handlers.respond("   ", [], ["avant"])
    assert answer is None and history == ["avant"]
    assert chat[-1]["role"] == "assistant"
    assert "Veuillez saisir une question" in chat[-1]["content"]


def test_bad_date_filter_gives_french_message(handlers: ChatHandlers) -> None:
    chat, _, answer, left = handlers.respond(RURAL, [], [], None, None, None, "sept. 2020", "")
    assert answer is None and left == RURAL
    assert "utilisez AAAA, AAAA-MM" in chat[-1]["content"]


def test_filters_are_applied(handlers: ChatHandlers) -> None:
    _, _, answer, _ = handlers.respond(RURAL, [], [], ["Compte rendu de webinaire"], [], [], "", "")
    assert answer is not None
    assert {c.kind for c in answer.citations} <= {"Compte rendu de webinaire"}


def test_long_question_shows_truncation_notice(handlers: ChatHandlers) -> None:
    question = RURAL + " " + "financement " * 400
    chat, _, answer, _ = handlers.respond(question, [], [])
    assert answer is not None and answer.notices
    assert 'class="notice"' in chat[-1]["content"]
    assert "très longue" in chat[-1]["content"]


def test_unexpected_error_is_not_a_traceback(
    handlers: ChatHandlers, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(handlers.assistant, "ask_stream", boom)
    chat, _, answer, _ = handlers.respond(RURAL, [], [])
    assert answer is None
    assert "erreur inattendue" in chat[-1]["content"]
    assert "secret" not in chat[-1]["content"]


def test_question_html_is_escaped_in_chat(handlers: ChatHandlers) -> None:
    chat, _, _, _ = handlers.respond("<script>alert(1)</script> SCIC ?", [], [])
    assert chat[0]["content"].startswith("&lt;script&gt;")


def test_view_resource_highlights_cited_passage(handlers: ChatHandlers) -> None:
    _, _, answer, _ = handlers.respond(RURAL, [], [])
    assert answer is not None
    out = handlers.view_resource(answer, 1)
    assert 'id="passage-cite"' in out and '<mark class="cited"' in out
    assert "Choisissez" in handlers.view_resource(None, None)


def test_feedback_flow(handlers: ChatHandlers, store: FeedbackStore) -> None:
    assert handlers.send_feedback(None, "up", "") == (NO_ANSWER_YET, False)
    _, _, answer, _ = handlers.respond(RURAL, [], [])
    assert handlers.send_feedback(answer, None, "") == (CHOOSE_RATING, False)
    assert handlers.send_feedback(answer, "down", "Source trop ancienne") == (THANKS, True)
    (entry,) = store.list()
    assert entry.rating == "down" and entry.comment == "Source trop ancienne"
    assert entry.question == RURAL and entry.citations[0]["n"] == 1


def test_filter_choices_come_from_public_resources(assistant: Assistant) -> None:
    types, themes, zones = filter_choices(assistant)
    assert "Guide" in types and "Ressources RTES" in types
    assert types.index("Compte rendu de débat") < types.index("Étude") < types.index("Guide")
    assert "ruralité" in themes
    assert zones == ["Haute-Marne"]


def test_api_handler_rejects_bad_history(handlers: ChatHandlers) -> None:
    out = json.loads(handlers.api_ask(RURAL, "{pas du json"))
    assert "historique invalide" in out["error"]


# ---------------------------------------------------------------------- the app


def _config_text(assistant: Assistant, store: FeedbackStore) -> str:
    demo = build_app(assistant, feedback=store)
    return json.dumps(demo.config, ensure_ascii=False, default=repr)


def test_no_staff_tab_without_password(assistant: Assistant, store: FeedbackStore) -> None:
    text = _config_text(assistant, store)
    assert "Espace équipe" not in text
    assert "Envoyer" in text and "Filtres" in text and "Voir la ressource" in text


def test_staff_tab_with_password(assistant: Assistant, store: FeedbackStore) -> None:
    pytest.importorskip("ui.admin")
    assistant.settings = assistant.settings.with_(admin_password="secret")
    assert "Espace équipe" in _config_text(assistant, store)


@pytest.fixture
def served(assistant: Assistant, store: FeedbackStore) -> Iterator[str]:
    """The ASGI app that `serve` runs, on a free local port."""
    from tests.ui.server import run_server
    from ui.app import make_server

    with run_server(make_server(assistant, feedback=store)) as url:
        yield url


def test_app_answers_through_its_api(served: str, store: FeedbackStore) -> None:
    from gradio_client import Client

    client = Client(served, verbose=False)
    answer = json.loads(client.predict(RURAL, "", api_name="/ask"))
    assert answer["question"] == RURAL
    assert not answer["abstained"]
    assert answer["citations"] and "[1]" in answer["answer"]
    assert {"n", "title", "type", "date", "url", "passage", "score"} <= set(answer["citations"][0])

    follow = json.loads(client.predict("et en ville ?", json.dumps([RURAL]), api_name="/ask"))
    assert "answer" in follow

    empty = json.loads(client.predict("", "[]", api_name="/ask"))
    assert empty["error"] == EMPTY_QUESTION
    assert store.question_count() == 2


@pytest.mark.parametrize(
    ("question", "history"),
    [(123, "[]"), (None, "[]"), ("SCIC \udcff", "[]"), ("SCIC", 42), ("SCIC", '["\udcff"]')],
)
def test_api_returns_its_error_shape_for_any_input(
    fake_assistant: Assistant, question: object, history: object
) -> None:
    from ui.chat import ChatHandlers

    out = json.loads(ChatHandlers(fake_assistant, None).api_ask(question, history))
    assert "error" in out or "answer" in out
    assert set(out) >= {"question"}
    json.dumps(out, ensure_ascii=False).encode("utf-8")  # no lone surrogate left
