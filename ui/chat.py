"""The chat's event handlers, free of layout: each takes plain values and returns plain values
(Gradio wires them in `ui.app`), so they can be tested without a browser.

Per-session state lives in `gr.State` values passed in and out: the previous questions of
the conversation (`history`), the last `Answer` and the rating being chosen. Nothing here
keeps mutable state between sessions.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sqlite3
from collections.abc import Iterator, Sequence

from assistant.feedback import FeedbackStore, log_answer
from assistant.llm import STREAMING
from assistant.models import Answer, Filters
from assistant.service import Assistant
from corpus.errors import AssistantError
from corpus.text import clean_text, fold
from ui.render import answer_html, citations_html, esc, resource_html

log = logging.getLogger(__name__)

Message = dict[str, str]

UNEXPECTED = (
    "Une erreur inattendue est survenue. Réessayez dans un instant ; si elle persiste, "
    "signalez-la à l'équipe du RTES."
)
NO_ANSWER_YET = "Posez d'abord une question : l'avis porte sur la dernière réponse."
CHOOSE_RATING = "Choisissez 👍 ou 👎 avant d'envoyer votre avis."
THANKS = "Merci ! Votre avis a été enregistré."
FEEDBACK_FAILED = "Votre avis n'a pas pu être enregistré. Réessayez plus tard."
BAD_HISTORY = (
    "historique invalide : attendu une liste JSON de questions, "
    "par ex. [\"Qu'est-ce qu'une SCIC ?\"]"
)
RESOURCE_GONE = "Cette ressource n'est plus dans l'index (elle a peut-être été retirée)."
PICK_RESOURCE = "Choisissez une source de la dernière réponse."
VIEWER_EMPTY = '<p class="no-sources">Choisissez une source puis « Voir la ressource ».</p>'


def filter_choices(assistant: Assistant) -> tuple[list[str], list[str], list[str]]:
    """The (types, themes, zones) offered by the filters: those of the public resources."""
    try:
        resources = [r for r in assistant.index().resources.values() if not r.private]
    except AssistantError as exc:  # no index yet: the filters stay empty
        log.warning("filters left empty: %s", exc)
        return [], [], []
    types = {t for r in resources for t in (r.kind, r.type) if t}
    themes = {t for r in resources for t in r.themes if t}
    zones = {r.zone for r in resources if r.zone}
    return sorted(types, key=fold), sorted(themes, key=fold), sorted(zones, key=fold)


def make_filters(
    types: Sequence[str] | None,
    themes: Sequence[str] | None,
    zones: Sequence[str] | None,
    date_from: str | None,
    date_to: str | None,
) -> Filters | None:
    """`Filters` from the accordion's fields, or None when nothing is selected.

    Raises `ConfigurationError` (French message) for a date that is not AAAA or AAAA-MM(-JJ).
    """
    filters = Filters(
        types=tuple(types or ()),
        themes=tuple(themes or ()),
        zones=tuple(zones or ()),
        date_from=(date_from or "").strip() or None,
        date_to=(date_to or "").strip() or None,
    )
    return filters if filters.active else None


def source_choices(answer: Answer | None) -> list[tuple[str, int]]:
    """(label, number) of each cited source, for the « Voir la ressource » selector."""
    if answer is None:
        return []
    return [(f"[{c.n}] {c.title}", c.n) for c in answer.citations]


class ChatHandlers:
    """The chat's operations, bound to one assistant and one feedback store."""

    def __init__(self, assistant: Assistant, feedback: FeedbackStore | None) -> None:
        self.assistant = assistant
        self.feedback = feedback

    # ------------------------------------------------------------------ asking

    def _log(self, answer: Answer) -> Answer:
        """Log the question with its outcome and sources; the answer gets its log id."""
        if self.feedback is None:
            return answer
        try:
            log_id = log_answer(self.feedback, answer)
        except sqlite3.Error:
            log.exception("could not log the question")
            return answer
        return dataclasses.replace(answer, log_id=log_id)

    def ask(
        self,
        question: str,
        history: Sequence[str],
        filters: Filters | None = None,
    ) -> Answer:
        """Ask the assistant and log the question (errors propagate as `AssistantError`)."""
        answer = self.assistant.ask(question, history=list(history), filters=filters)
        return self._log(answer)

    def respond(
        self,
        question: str,
        chat: list[Message] | None,
        history: list[str] | None,
        types: Sequence[str] | None = None,
        themes: Sequence[str] | None = None,
        zones: Sequence[str] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> tuple[list[Message], list[str], Answer | None, str]:
        """One chat turn: returns (messages, history, last answer or None, text left in the box).

        Errors become a French message in the chat; on error the question stays in the box
        and the previous answer stays current.
        """
        *_, last = self.respond_stream(
            question, chat, history, types, themes, zones, date_from, date_to
        )
        return last

    def respond_stream(
        self,
        question: str,
        chat: list[Message] | None,
        history: list[str] | None,
        types: Sequence[str] | None = None,
        themes: Sequence[str] | None = None,
        zones: Sequence[str] | None = None,
        date_from: str | None = None,
        date_to: str | None = None,
    ) -> Iterator[tuple[list[Message], list[str], Answer | None, str]]:
        """`respond` as a generator, for a chat that shows the answer growing.

        With a language model, yields (messages, history, partial answer, "") as its tokens
        arrive — partial answers have `mode == STREAMING` and the history is not extended yet —
        then the final item, exactly what `respond` returns (the validated model answer, or
        the extractive one that replaces the streamed text). Without a model, yields once.
        """
        chat = list(chat or [])
        history = list(history or [])
        question = clean_text(question) if isinstance(question, str) else ""
        text = question.strip()
        answer: Answer | None = None
        try:
            filters = make_filters(types, themes, zones, date_from, date_to)
            for answer in self.assistant.ask_stream(question, history=history, filters=filters):
                if answer.mode == STREAMING:
                    yield self._turn(chat, answer), history, answer, ""
        except AssistantError as exc:
            yield self._error(chat, text, str(exc)), history, None, question
            return
        except Exception:
            log.exception("unexpected error while answering %r", text[:200])
            yield self._error(chat, text, UNEXPECTED), history, None, question
            return
        if answer is None or answer.mode == STREAMING:  # cannot happen: ask_stream ends final
            log.error("the answer stream ended without a final answer for %r", text[:200])
            yield self._error(chat, text, UNEXPECTED), history, None, question
            return
        answer = self._log(answer)
        yield self._turn(chat, answer), [*history, answer.question], answer, ""

    @staticmethod
    def _turn(chat: list[Message], answer: Answer) -> list[Message]:
        """`chat` followed by the question and `answer` (a new list)."""
        return [
            *chat,
            {"role": "user", "content": esc(answer.question)},
            {"role": "assistant", "content": answer_html(answer)},
        ]

    @staticmethod
    def _error(chat: list[Message], question: str, message: str) -> list[Message]:
        if question:
            chat.append({"role": "user", "content": esc(question)})
        chat.append({"role": "assistant", "content": f'<div class="error">⚠️ {esc(message)}</div>'})
        return chat

    def api_ask(self, question: object, history_json: object) -> str:
        """The `ask` API: the answer as JSON, or `{"question", "error"}` with a French message
        (for any input: a non-text question, bad history JSON, undecodable characters)."""
        shown = clean_text(question) if isinstance(question, str) else ""
        try:
            if history_json is not None and not isinstance(history_json, str):
                raise ValueError(BAD_HISTORY)
            history = json.loads(history_json) if history_json and history_json.strip() else []
            if not isinstance(history, list) or not all(isinstance(q, str) for q in history):
                raise ValueError(BAD_HISTORY)
        except ValueError:
            return json.dumps({"question": shown, "error": BAD_HISTORY}, ensure_ascii=False)
        try:
            answer = self.ask(question, [clean_text(q) for q in history])  # type: ignore[arg-type]
        except AssistantError as exc:
            return json.dumps({"question": shown, "error": str(exc)}, ensure_ascii=False)
        return json.dumps(answer.to_json(), ensure_ascii=False)

    # ------------------------------------------------------------------ sources

    def sources(self, answer: Answer | None) -> str:
        """The sources panel of the last answer."""
        return citations_html(answer)

    def view_resource(self, answer: Answer | None, number: int | None) -> str:
        """The whole cited resource, with the cited passage highlighted."""
        if answer is None or number is None:
            return f'<p class="no-sources">{esc(PICK_RESOURCE)}</p>'
        citation = next((c for c in answer.citations if c.n == int(number)), None)
        if citation is None:
            return f'<p class="no-sources">{esc(PICK_RESOURCE)}</p>'
        try:
            resource = self.assistant.index().resources.get(citation.resource_id)
        except AssistantError as exc:
            return f'<p class="error">{esc(exc)}</p>'
        if resource is None or resource.private:
            return f'<p class="error">{esc(RESOURCE_GONE)}</p>'
        return resource_html(resource, citation)

    # ------------------------------------------------------------------ feedback

    def send_feedback(
        self, answer: Answer | None, rating: str | None, comment: str
    ) -> tuple[str, bool]:
        """Store the opinion on the last answer; returns (message, stored)."""
        if answer is None:
            return NO_ANSWER_YET, False
        if rating not in ("up", "down"):
            return CHOOSE_RATING, False
        if self.feedback is None:
            return FEEDBACK_FAILED, False
        try:
            self.feedback.add(
                question=answer.question,
                answer_text=answer.text,
                citations=[c.to_json() for c in answer.citations],
                rating=rating,  # type: ignore[arg-type]
                comment=comment or "",
                abstained=answer.abstained,
            )
            if answer.log_id is not None:
                self.feedback.rate(answer.log_id, rating, comment or "")  # type: ignore[arg-type]
        except sqlite3.Error:
            log.exception("could not store feedback")
            return FEEDBACK_FAILED, False
        return THANKS, True
