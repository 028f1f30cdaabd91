"""The Gradio app: the chat for elected officials, the sources panel, the resource viewer,
feedback, and (when an admin password is set) the « Espace équipe » tab.

Layout only: the handlers live in `ui.chat`, the HTML in `ui.render`, the answers in
`assistant`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.feedback import FeedbackStore
from assistant.llm import STREAMING
from assistant.models import Answer
from assistant.review import review_jsonl
from assistant.service import Assistant
from ui.chat import VIEWER_EMPTY, ChatHandlers, filter_choices, source_choices
from ui.render import PASSAGE_ANCHOR, citations_html
from ui.staff import StaffAuth, add_staff_routes

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

TITLE = "Assistant ESS du RTES"
INTRO = (
    "Posez vos questions sur l'économie sociale et solidaire : l'assistant répond à partir "
    "des ressources du réseau et cite ses sources [1], [2]… à vérifier dans le panneau à droite."
)
EXAMPLES = [
    "Comment financer l'ESS en milieu rural ?",
    "Qu'est-ce qu'une SCIC ?",
    "Quelles initiatives ESS dans les quartiers prioritaires ?",
    "Qui organisait le débat sur les pratiques informelles ?",
]
# The viewer may be mounted (accordion opened) after its value is set: scroll on load too,
# after a short delay so the accordion has laid out its content.
SCROLL_TO_PASSAGE = (
    "const go = () => setTimeout(() => { const m = element.querySelector('#"
    + PASSAGE_ANCHOR
    + "'); if (m) m.scrollIntoView({block: 'center', behavior: 'smooth'}); }, 250);"
    " go(); watch('value', go);"
)
CSS = """
.visually-hidden { position: absolute !important; width: 1px; height: 1px; padding: 0;
  margin: -1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
.cite-n1::before { content: "[1]" / ""; }
.cite-n2::before { content: "[2]" / ""; }
.cite-n3::before { content: "[3]" / ""; }
.cite-n4::before { content: "[4]" / ""; }
.cite-n5::before { content: "[5]" / ""; }
.cite-n6::before { content: "[6]" / ""; }
.cite-n7::before { content: "[7]" / ""; }
.cite-n8::before { content: "[8]" / ""; }
.cite-n9::before { content: "[9]" / ""; }
.cite-n10::before { content: "[10]" / ""; }
.cite-n11::before { content: "[11]" / ""; }
.cite-n12::before { content: "[12]" / ""; }
.cite-n13::before { content: "[13]" / ""; }
.cite-n14::before { content: "[14]" / ""; }
.cite-n15::before { content: "[15]" / ""; }
.cite-n16::before { content: "[16]" / ""; }
.cite-n17::before { content: "[17]" / ""; }
.cite-n18::before { content: "[18]" / ""; }
.cite-n19::before { content: "[19]" / ""; }
.cite-n20::before { content: "[20]" / ""; }
.cite-badge a { font-size: .8em; padding: 0 .25em; border-radius: .4em; text-decoration: none;
  background: var(--color-accent-soft); color: var(--color-accent); font-weight: 600; }
.notice { font-size: .9em; padding: .3em .6em; margin-bottom: .4em; border-left: 3px solid #d08c00;
  background: rgba(208, 140, 0, .08); }
.error { color: #b3261e; }
.answer.abstained { font-style: italic; }
.notice.low-confidence { border-left-color: #b45309; background: #fff7ed; color: #7c2d12; }
.answer.low-confidence { border-left: 3px dashed #b45309; padding-left: .6em; }
.source { border: 1px solid var(--border-color-primary); border-radius: .5em; padding: .6em .8em;
  margin-bottom: .7em; }
.source-n { font-weight: 700; color: var(--color-accent); }
.source-title { font-weight: 600; }
.source-meta { font-size: .85em; opacity: .85; margin: .2em 0; }
.relevance { font-size: .8em; display: inline-flex; align-items: center; gap: .4em; }
.relevance-bar { display: inline-block; width: 5em; height: .45em; border-radius: .3em;
  background: var(--border-color-primary); overflow: hidden; }
.relevance-bar > span { display: block; height: 100%; background: var(--color-accent); }
.passage { margin: .5em 0 0; padding-left: .7em; border-left: 3px solid var(--border-color-primary);
  font-size: .9em; }
.passage mark, .resource mark { background: #ffe58a; color: inherit; padding: 0 .1em; }
.passage strong.used, .resource strong.used { font-weight: 650; }
.resource mark.cited { background: #fff3bf; }
.resource-meta dt { font-weight: 600; float: left; clear: left; width: 7em; }
.resource-meta dd { margin-left: 7.5em; }
.resource-summary { font-style: italic; }
.no-sources { opacity: .7; font-style: italic; }
/* A focus ring that shows on every control reached with the keyboard (RGAA 10.7). */
:is(button, a, input, textarea, select, summary, [tabindex]):focus-visible {
  outline: 3px solid #1e3a8a !important; outline-offset: 2px !important; }
.staff-login input { padding: .4em .6em; border: 1px solid var(--border-color-primary);
  border-radius: .4em; min-width: 16em; }
.staff-login button, .staff-session button { padding: .4em 1em; border-radius: .4em; }
.staff-session { display: flex; gap: 1em; align-items: center; justify-content: flex-end; }
"""


# Gradio serves `<html lang="en">`: the page is French (RGAA 8.3), for screen readers too.
HEAD = "<script>document.documentElement.lang = 'fr';</script>"


def theme() -> gr.themes.Base:
    """Gradio's Soft theme with the accent one shade darker where it is text or holds text,
    so that everything meets the WCAG AA contrast ratio of 4.5:1 (axe-core, browser tests)."""
    return gr.themes.Soft().set(
        color_accent="*primary_700",
        color_accent_soft="*primary_50",
        button_primary_background_fill="*primary_700",
        button_primary_background_fill_hover="*primary_800",
        block_label_text_color="*primary_800",
        block_title_text_color="*primary_800",
        link_text_color="*primary_700",
        input_placeholder_color="*neutral_500",
        body_text_color_subdued="*neutral_500",
        checkbox_label_background_fill_selected="*primary_700",
        checkbox_background_color_selected="*primary_700",
    )


def build_app(
    assistant: Assistant,
    *,
    feedback: FeedbackStore | None = None,
    auth: StaffAuth | None = None,
) -> gr.Blocks:
    """The whole app; `feedback` defaults to the store at `assistant.settings.feedback_db`.
    With an admin password, the staff tab checks sessions with `auth` (whose routes
    `make_server` adds; a fresh one otherwise)."""
    if feedback is None:
        feedback = FeedbackStore(assistant.settings.feedback_db)
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        if assistant.settings.admin_password:
            from ui.admin import build_admin_tab

            auth = auth or StaffAuth(assistant.settings.admin_password)
            with gr.Tabs() as tabs:
                with gr.Tab("Assistant", id="assistant", elem_id="tab-assistant"):
                    _build_chat(demo, assistant, feedback)
                with gr.Tab("Espace équipe", id="equipe", elem_id="tab-equipe"):
                    build_admin_tab(assistant, feedback, auth, tabs=tabs, demo=demo)
        else:
            _build_chat(demo, assistant, feedback)
    return demo


def make_server(assistant: Assistant, *, feedback: FeedbackStore | None = None) -> FastAPI:
    """The ASGI app `serve` runs: the Gradio app mounted at `/`, plus the staff routes
    (login, logout, CSV export, staff-only uploads) when an admin password is set."""
    from fastapi import FastAPI

    settings = assistant.settings
    if feedback is None:
        feedback = FeedbackStore(settings.feedback_db)
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    auth = StaffAuth(settings.admin_password)
    staff = bool(settings.admin_password)
    add_staff_routes(
        app,
        auth,
        feedback.to_csv if staff else None,
        partial(review_jsonl, feedback) if staff else None,
    )
    demo = build_app(assistant, feedback=feedback, auth=auth)
    demo.queue(default_concurrency_limit=4)
    return gr.mount_gradio_app(
        app,
        demo,
        path="",
        show_error=True,
        max_file_size=int(settings.max_upload_mb * 1024 * 1024),
        css=CSS,
        theme=theme(),
        head=HEAD,
        footer_links=[],  # Gradio's footer links are light grey on white (contrast 2.5:1)
    )


def _build_chat(demo: gr.Blocks, assistant: Assistant, feedback: FeedbackStore) -> None:
    """Lay out the chat in the current Blocks context and wire its events."""
    h = ChatHandlers(assistant, feedback)
    types, themes, zones = filter_choices(assistant)
    private: dict[str, Any] = {"api_visibility": "private"}

    history = gr.State([])  # previous questions of this conversation
    last_answer = gr.State(None)  # the latest Answer
    rating = gr.State(None)  # "up" / "down" while choosing

    gr.Markdown(f"# {TITLE}\n{INTRO}")
    with gr.Row():
        with gr.Column(scale=3):
            chatbot = gr.Chatbot(
                label="Conversation",
                elem_id="chatbot",
                height=480,
                render_markdown=False,  # our HTML is escaped; markdown would re-interpret it
                sanitize_html=True,
                feedback_options=None,
                buttons=["copy"],
                placeholder="Posez une question sur l'ESS pour commencer.",
            )
            with gr.Row():
                question = gr.Textbox(
                    show_label=False,
                    placeholder="Votre question, par ex. « Qu'est-ce qu'une SCIC ? »",
                    scale=5,
                    max_lines=6,
                    autofocus=True,
                    elem_id="question",
                )
                send = gr.Button(
                    "Envoyer", variant="primary", scale=1, min_width=100, elem_id="send"
                )
            gr.Examples(examples=[[q] for q in EXAMPLES], inputs=[question], label="Exemples")
            with gr.Row():
                new_chat = gr.Button("Nouvelle conversation", size="sm")
            with gr.Accordion("Filtres", open=False):
                with gr.Row():
                    f_types = gr.Dropdown(types, label="Type", multiselect=True)
                    f_themes = gr.Dropdown(themes, label="Thème", multiselect=True)
                    f_zones = gr.Dropdown(zones, label="Zone", multiselect=True)
                with gr.Row():
                    f_from = gr.Textbox(label="Depuis (AAAA ou AAAA-MM)", max_lines=1)
                    f_to = gr.Textbox(label="Jusqu'à (AAAA ou AAAA-MM)", max_lines=1)
            with gr.Accordion("Votre avis sur la dernière réponse", open=True):
                with gr.Row():
                    up = gr.Button("👍 Utile", size="sm", elem_id="feedback-up")
                    down = gr.Button("👎 Pas utile", size="sm", elem_id="feedback-down")
                comment = gr.Textbox(
                    label="Commentaire (facultatif)",
                    max_lines=4,
                    max_length=2000,
                    elem_id="feedback-comment",
                )
                send_feedback = gr.Button("Envoyer l'avis", size="sm", elem_id="feedback-send")
                feedback_msg = gr.Markdown(elem_id="feedback-msg")
        with gr.Column(scale=2):
            gr.Markdown("### Sources de la dernière réponse")
            sources = gr.HTML(citations_html(None), js_on_load=None, elem_id="sources")
            pick = gr.Dropdown([], label="Source à afficher", elem_id="source-pick")
            view = gr.Button("Voir la ressource", elem_id="view-resource")
            with gr.Accordion("Ressource complète", open=False) as viewer_box:
                viewer = gr.HTML(
                    VIEWER_EMPTY,
                    js_on_load=SCROLL_TO_PASSAGE,
                    max_height=600,
                    elem_id="resource-viewer",
                )

    filters = [f_types, f_themes, f_zones, f_from, f_to]

    def on_ask(q: str, chat: list, hist: list, *fields: Any) -> Iterator[tuple]:
        # A generator: with a language model the answer grows in the chat, then the final
        # answer (validated, or the extractive one replacing it) fills the panels.
        for messages, questions, answer, left in h.respond_stream(q, chat, hist, *fields):
            if answer is None:  # error: keep the previous answer's panels
                yield messages, questions, gr.skip(), left, *[gr.skip()] * 4
            elif answer.mode == STREAMING:  # the chat only; the panels wait for the end
                yield messages, gr.skip(), gr.skip(), "", *[gr.skip()] * 4
            else:
                choices = source_choices(answer)
                yield (
                    messages,
                    questions,
                    answer,
                    left,
                    h.sources(answer),
                    gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
                    VIEWER_EMPTY,
                    "",
                )

    ask_outputs = [chatbot, history, last_answer, question, sources, pick, viewer, feedback_msg]
    ask_inputs = [question, chatbot, history, *filters]
    send.click(on_ask, ask_inputs, ask_outputs, api_name="chat", api_visibility="undocumented")
    question.submit(on_ask, ask_inputs, ask_outputs, **private)

    def on_view(answer: Answer | None, number: int | None) -> tuple[str, Any]:
        return h.view_resource(answer, number), gr.Accordion(open=True)

    view.click(on_view, [last_answer, pick], [viewer, viewer_box], **private)

    def on_new() -> tuple:
        return (
            [],
            [],
            None,
            None,
            citations_html(None),
            gr.Dropdown(choices=[], value=None),
            VIEWER_EMPTY,
            "",
            "",
        )

    new_chat.click(
        on_new,
        None,
        [chatbot, history, last_answer, rating, sources, pick, viewer, feedback_msg, question],
        **private,
    )

    def choose(value: str) -> Any:
        def pick_rating() -> tuple[str, str]:
            icon = "👍" if value == "up" else "👎"
            return (
                value,
                f"Avis choisi : {icon}. Ajoutez un commentaire si vous le souhaitez, "
                "puis « Envoyer l'avis ».",
            )

        return pick_rating

    up.click(choose("up"), None, [rating, feedback_msg], **private)
    down.click(choose("down"), None, [rating, feedback_msg], **private)

    def on_feedback(answer: Answer | None, value: str | None, text: str) -> tuple:
        message, stored = h.send_feedback(answer, value, text)
        return message, ("" if stored else gr.skip()), (None if stored else gr.skip())

    send_feedback.click(
        on_feedback, [last_answer, rating, comment], [feedback_msg, comment, rating], **private
    )

    gr.api(h.api_ask, api_name="ask")

    def refresh_filters() -> tuple:  # the index may have been rebuilt since the app started
        t, th, z = filter_choices(assistant)
        return gr.Dropdown(choices=t), gr.Dropdown(choices=th), gr.Dropdown(choices=z)

    demo.load(refresh_filters, None, [f_types, f_themes, f_zones], **private)


def serve(assistant: Assistant) -> None:
    """Run the app on `settings.host:port` (uvicorn; no share link, analytics off)."""
    import uvicorn

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    settings = assistant.settings
    log.info("serving on http://%s:%s", settings.host, settings.port)
    uvicorn.run(make_server(assistant), host=settings.host, port=settings.port, log_level="warning")
