"""The staff tab's loop: « À revoir » (the review queue), « Lacunes » (content gaps) and
« Ressources à revoir » (freshness). Layout and formatting only: the logic is in
`assistant.review`, `assistant.gaps` and `assistant.freshness`; every handler checks the staff
cookie through `AdminHandlers.require`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant import review
from assistant.freshness import resources_to_review, set_status
from assistant.gaps import find_gaps
from corpus.errors import AssistantError
from corpus.markdown_io import STATUSES
from ui.staff import REVIEW_PATH

if TYPE_CHECKING:
    from ui.admin import AdminHandlers

QUEUE_HEADERS = ["N°", "Date", "Pourquoi", "Question", "Réponse donnée", "Sources"]
GAP_HEADERS = ["Question type", "Nombre", "Première fois", "Dernière fois", "Autres formulations"]
FRESHNESS_HEADERS = ["Titre", "Date", "Pourquoi la revoir", "Id"]
STATUS_LABELS = {"current": "en vigueur", "archived": "archivée", "superseded": "remplacée"}


@dataclass
class ReviewHandlers:
    admin: AdminHandlers

    @property
    def store(self) -> Any:
        if self.admin.feedback is None:
            raise gr.Error("Aucun journal des questions n'est configuré.")
        return self.admin.feedback

    def _resources(self) -> dict[str, Any]:
        try:
            return dict(self.admin.assistant.index().resources)
        except AssistantError:
            return {}

    # ------------------------------------------------------------------ queue

    def queue_view(self, request: gr.Request) -> tuple[list[list[Any]], Any]:
        """(queue rows, resource picker update with every resource's title)."""
        self.admin.require(request)
        self.store.purge(self.admin.assistant.settings.log_days)
        rows = []
        for item in review.queue(self.store):
            sources = "; ".join(f"[{c.get('n')}] {c.get('title', '')}" for c in item.citations)
            rows.append(
                [item.id, item.created_at[:16], item.why, item.question, item.answer[:300], sources]
            )
        choices = sorted(
            ((f"{r.title} ({rid})", rid) for rid, r in self._resources().items()),
            key=lambda c: c[0].casefold(),
        )
        return rows, gr.update(choices=choices, value=[])

    def label(
        self,
        question_id: float | None,
        resources: list[str] | None,
        out_of_scope: bool,
        fact: str | None,
        request: gr.Request,
    ) -> str:
        self.admin.require(request)
        if question_id is None:
            return "Indiquez le numéro de la question."
        try:
            item = review.label(
                self.store,
                int(question_id),
                resources=list(resources or ()),
                out_of_scope=bool(out_of_scope),
                fact=fact,
                known=list(self._resources()),
            )
        except AssistantError as exc:
            return f"❌ {exc}"
        what = (
            "hors du champ du réseau"
            if item.label_out_of_scope
            else ", ".join(item.label_resources)
        )
        return f"✅ Question n°{item.id} étiquetée : {what}."

    def dismiss(self, question_id: float | None, request: gr.Request) -> str:
        self.admin.require(request)
        if question_id is None:
            return "Indiquez le numéro de la question."
        try:
            review.dismiss(self.store, int(question_id))
        except AssistantError as exc:
            return f"❌ {exc}"
        return f"Question n°{int(question_id)} écartée."

    # ------------------------------------------------------------------ gaps

    def gaps_view(self, request: gr.Request) -> list[list[Any]]:
        self.admin.require(request)
        try:
            return [g.as_list() for g in find_gaps(self.admin.assistant, self.store)]
        except AssistantError as exc:
            raise gr.Error(str(exc)) from exc

    # ------------------------------------------------------------------ freshness

    def freshness_view(self, request: gr.Request) -> tuple[list[list[str]], Any]:
        self.admin.require(request)
        resources = self._resources()
        rows = resources_to_review(
            resources, today=dt.date.today(), stale_years=self.admin.assistant.settings.stale_years
        )
        choices = sorted(
            ((f"{r.title} ({rid})", rid) for rid, r in resources.items()),
            key=lambda c: c[0].casefold(),
        )
        return [r.as_list() for r in rows], gr.update(choices=choices, value=None)

    def change_status(
        self,
        resource_id: str | None,
        status: str,
        successor: str | None,
        request: gr.Request,
    ) -> str:
        """Write the status into the resource's file, then rebuild (incrementally)."""
        self.admin.require(request)
        resource = self._resources().get(resource_id or "")
        if resource is None:
            return "Choisissez une ressource."
        if status not in STATUSES:
            return "Choisissez un statut."
        path = Path(resource.source_path)
        if not path.is_file() or not path.resolve().is_relative_to(
            Path(self.admin.assistant.corpus_dir).resolve()
        ):
            return "❌ Le fichier de cette ressource n'est pas dans le dossier du corpus."
        try:
            set_status(path, status, superseded_by=(successor or "").strip() or None)
            report = self.admin.assistant.build()
        except AssistantError as exc:
            return f"❌ {exc}"
        return (
            f"✅ « {resource.title} » : {STATUS_LABELS[status]}. Index mis à jour "
            f"({report.summary_line()})."
        )


def build_review_section(admin: AdminHandlers, private: dict[str, Any]) -> None:
    """Lay out the three sections inside the staff panel and wire them."""
    h = ReviewHandlers(admin)
    gr.Markdown("### À revoir : 👎, sans réponse, réponses incertaines")
    gr.HTML(
        f'<a id="review-export" href=".{REVIEW_PATH}" download>Exporter les cas étiquetés '
        "(format d'évaluation)</a>"
    )
    queue_btn = gr.Button("Afficher les questions à revoir", size="sm")
    queue = gr.Dataframe(
        headers=QUEUE_HEADERS, interactive=False, wrap=True, elem_id="review-queue"
    )
    with gr.Row():
        number = gr.Number(label="N° de la question", precision=0, elem_id="review-id")
        picked = gr.Dropdown(
            label="Ressource(s) qui répondent (tapez pour chercher)",
            choices=[],
            multiselect=True,
            filterable=True,
            elem_id="review-resources",
        )
    with gr.Row():
        out_of_scope = gr.Checkbox(label="Hors du champ du réseau", elem_id="review-oos")
        fact = gr.Textbox(label="Fait attendu dans la réponse (facultatif)", max_lines=1)
    with gr.Row():
        label_btn = gr.Button("Étiqueter", variant="primary", elem_id="review-label")
        dismiss_btn = gr.Button("Écarter", elem_id="review-dismiss")
    review_md = gr.Markdown(elem_id="review-msg")

    gr.Markdown("### Lacunes : questions sans bonne réponse, groupées par sens")
    gaps_btn = gr.Button("Calculer les lacunes", size="sm")
    gaps = gr.Dataframe(headers=GAP_HEADERS, interactive=False, wrap=True, elem_id="gaps")

    gr.Markdown("### Ressources à revoir : anciennes, à réviser, remplacées")
    fresh_btn = gr.Button("Afficher les ressources à revoir", size="sm")
    fresh = gr.Dataframe(headers=FRESHNESS_HEADERS, interactive=False, wrap=True)
    with gr.Row():
        which = gr.Dropdown(label="Ressource", choices=[], filterable=True)
        status = gr.Radio(
            choices=[(label, key) for key, label in STATUS_LABELS.items()],
            label="Statut",
            value="current",
        )
        successor = gr.Textbox(label="Remplacée par (id)", max_lines=1)
    status_btn = gr.Button("Changer le statut et mettre l'index à jour")
    status_md = gr.Markdown()

    queue_btn.click(h.queue_view, None, [queue, picked], api_name="admin_review", **private)
    for button, fn, inputs in (
        (label_btn, h.label, [number, picked, out_of_scope, fact]),
        (dismiss_btn, h.dismiss, [number]),
    ):
        button.click(fn, inputs, [review_md], **private).success(
            h.queue_view, None, [queue, picked], api_visibility="private"
        )
    gaps_btn.click(h.gaps_view, None, [gaps], api_name="admin_gaps", **private)
    fresh_btn.click(h.freshness_view, None, [fresh, which], **private)
    status_btn.click(h.change_status, [which, status, successor], [status_md], **private).success(
        h.freshness_view, None, [fresh, which], api_visibility="private"
    )
