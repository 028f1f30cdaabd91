"""The « Espace équipe » tab: corpus status, uploads, removals, rebuild, feedback.

`build_admin_tab` is called by `ui/app.py` inside an open `gr.Tab`, only when an admin
password is configured. The login form posts to the staff routes of `ui.staff`, which set a
signed HTTP-only session cookie; the controls stay hidden without it, and every handler
checks the cookie of the request it serves (`StaffAuth.allowed`), so calling an endpoint
directly — or with a session id copied from a logged-in browser — is refused.

The rebuild runs in this process, in its own concurrency group: the chat keeps answering
from the previous index during the build and switches to the new one by itself afterwards
(`Assistant.index()` hot reload).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr

from assistant.corpus_admin import (
    STATUS_INDEXED,
    ResourceRow,
    list_resources,
    remove_resource,
    save_upload,
)
from corpus.errors import AssistantError
from corpus.loaders import SUPPORTED_EXTENSIONS
from ui.review_tab import build_review_section
from ui.staff import EXPORT_PATH, LOGIN_PATH, LOGOUT_PATH, StaffAuth

if TYPE_CHECKING:
    from assistant.feedback import FeedbackStore
    from assistant.service import Assistant

log = logging.getLogger(__name__)

WRONG_PASSWORD = "Mot de passe incorrect"
LOCKED_OUT = (
    "Trop de tentatives de connexion échouées : réessayez dans un quart d'heure "
    "(les tentatives sont enregistrées)."
)
LOGGED_OUT = "Vous êtes déconnecté de l'espace équipe."
LOGIN_MESSAGES = {"erreur": WRONG_PASSWORD, "bloque": LOCKED_OUT, "sortie": LOGGED_OUT}
ACCESS_DENIED = "Accès refusé : connectez-vous d'abord à l'espace équipe."
RESOURCE_HEADERS = ["Titre", "Type", "Date", "Fichier", "État"]
FEEDBACK_HEADERS = ["Date", "Question", "Avis", "Commentaire", "Sans réponse", "Sources"]
UNANSWERED_HEADERS = ["Question", "Nombre de fois"]
REBUILD_CONCURRENCY_ID = "ess-admin-rebuild"  # its own group: never queues behind the chat


@dataclass
class AdminHandlers:
    """The tab's handlers, as plain methods (tests call them directly with a request that has
    `cookies`)."""

    assistant: Assistant
    feedback: FeedbackStore | None = None
    auth: StaffAuth = field(default_factory=lambda: StaffAuth(None))

    # ------------------------------------------------------------------ access

    def require(self, request: Any) -> None:
        """Refuse the call unless its request carries a valid staff session cookie."""
        if request is None or not self.auth.allowed(request):
            raise gr.Error(ACCESS_DENIED)

    def on_load(self, request: gr.Request) -> tuple[Any, ...]:
        """At page load: (login box, panel, login message, the tab to show, *panel contents)."""
        state = str(getattr(request, "query_params", {}).get("equipe", "") or "")
        message = LOGIN_MESSAGES.get(state, "")
        tab = gr.Tabs(selected="equipe") if state else gr.skip()
        if not self.auth.allowed(request):
            empty = tuple(gr.skip() for _ in range(self.view_size))
            return (gr.update(visible=True), gr.update(visible=False), message, tab, *empty)
        return (gr.update(visible=False), gr.update(visible=True), "", tab, *self.refresh(request))

    @property
    def view_size(self) -> int:
        return 4 + (2 if self.feedback is not None else 0)

    # ------------------------------------------------------------------ views

    def status_markdown(self, request: gr.Request) -> str:
        """The corpus and index status, in French Markdown."""
        self.require(request)
        try:
            status = self.assistant.status()
        except AssistantError as exc:
            return f"**Index inutilisable** : {exc}"
        lines = [f"- **Dossier du corpus** : `{status.corpus_dir}`"]
        if status.version is None:
            lines.append("- **Index** : aucun — cliquez sur « Reconstruire l'index »")
            return "\n".join(lines)
        lines += [
            f"- **Ressources indexées** : {status.resources}",
            f"- **Passages** : {status.chunks}",
            f"- **Modèle** : {status.model} ({status.precision})",
            f"- **Dernière construction** : {status.built_at} (version `{status.version}`)",
            f"- **Fichiers en erreur au dernier build** : {len(status.errors)}",
        ]
        lines += [f"  - `{Path(path).name}` : {reason}" for path, reason in status.errors]
        return "\n".join(lines)

    def resources(self, request: gr.Request) -> tuple[list[list[str]], Any, str]:
        """(table rows, dropdown update of removable resources, pending-changes line)."""
        self.require(request)
        rows: list[ResourceRow] = list_resources(self.assistant)
        choices = [(f"{r.title or r.id} — {r.file}", r.id) for r in rows if r.id and r.file]
        pending = sum(1 for r in rows if r.status != STATUS_INDEXED)
        note = (
            f"{pending} ressource(s) à reconstruire ou en erreur : "
            "cliquez sur « Reconstruire l'index »."
            if pending
            else "L'index est à jour avec le dossier du corpus."
        )
        return [r.as_list() for r in rows], gr.update(choices=choices, value=None), note

    def refresh(self, request: gr.Request) -> tuple[Any, ...]:
        """Everything the panel shows (status, table, dropdown, note, feedback tables)."""
        self.require(request)
        table, dropdown, note = self.resources(request)
        return (
            self.status_markdown(request),
            table,
            dropdown,
            note,
            *self.feedback_tables(request),
        )

    # ------------------------------------------------------------------ corpus edits

    def upload(self, files: list[Any] | None, overwrite: bool, request: gr.Request) -> str:
        """Save each uploaded file into the corpus; one result line per file."""
        self.require(request)
        if not files:
            return "Aucun fichier sélectionné."
        max_bytes = int(self.assistant.settings.max_upload_mb * 1024 * 1024)
        lines = []
        for item in files:
            path = Path(item if isinstance(item, str) else getattr(item, "name", str(item)))
            name = _original_name(item, path)
            if path.stat().st_size > max_bytes:  # checked before reading it into memory
                mb = self.assistant.settings.max_upload_mb
                lines.append(f"❌ {name} : refusé — fichier trop volumineux (maximum {mb:g} Mo)")
                continue
            try:
                saved = save_upload(
                    self.assistant.corpus_dir,
                    name,
                    path.read_bytes(),
                    max_bytes=max_bytes,
                    overwrite=bool(overwrite),
                )
            except AssistantError as exc:
                lines.append(f"❌ {name} : refusé — {getattr(exc, 'reason', exc)}")
                continue
            lines.append(f"✅ {name} → ajouté au corpus sous le nom `{saved.name}`")
        lines.append("")
        lines.append("Cliquez sur « Reconstruire l'index » pour que l'assistant en tienne compte.")
        return "\n".join(lines)

    def remove(self, resource_id: str | None, confirmed: bool, request: gr.Request) -> str:
        """Delete the chosen resource's file (after confirmation)."""
        self.require(request)
        if not resource_id:
            return "Choisissez d'abord une ressource."
        if not confirmed:
            return "Cochez la case de confirmation pour supprimer le fichier."
        try:
            index = self.assistant.index()
        except AssistantError:
            index = None
        try:
            path = remove_resource(self.assistant.corpus_dir, resource_id, index)
        except AssistantError as exc:
            return f"❌ Suppression impossible : {getattr(exc, 'reason', exc)}"
        return (
            f"✅ Fichier `{path.name}` supprimé. Reconstruisez l'index pour que l'assistant "
            "cesse de citer cette ressource."
        )

    def rebuild(
        self,
        full: bool,
        request: gr.Request,
        progress: gr.Progress | None = None,
        *,
        allow_removals: bool = False,
    ) -> str:
        """Rebuild the index (incremental unless `full`); returns the summary in Markdown. A
        build that would remove most of the base asks for the « Autoriser » box first."""
        self.require(request)
        report_progress = _progress_callback(progress)
        try:
            report = self.assistant.build(
                full=bool(full), progress=report_progress, allow_removals=bool(allow_removals)
            )
            self.assistant.index()  # load the new version now, not on the next question
        except AssistantError as exc:
            return f"❌ Reconstruction impossible : {exc}"
        lines = [f"✅ Index reconstruit en {report.seconds:.1f} s : **{report.summary_line()}**"]
        if report.reason:
            lines.append(f"({report.reason})")
        lines.append(f"{report.chunks_embedded} passage(s) recalculé(s) sur {report.total_chunks}.")
        if report.errors:
            lines.append("")
            lines.append("Fichiers en erreur (non indexés) :")
            lines += [f"- `{Path(e.path).name}` : {e.reason}" for e in report.errors]
        return "\n".join(lines)

    def sync(
        self,
        url: str | None,
        pdf: bool,
        request: gr.Request,
        progress: gr.Progress | None = None,
    ) -> str:
        """Synchronise the corpus with the network's site; returns the summary in Markdown."""
        self.require(request)
        report_progress = _progress_callback(progress)
        try:
            report = self.assistant.sync(
                (url or "").strip() or None, pdf=bool(pdf), progress=report_progress
            )
        except AssistantError as exc:
            return f"❌ Synchronisation impossible : {exc}"
        lines = [f"✅ Site synchronisé : **{report.summary_line()}**"]
        if report.errors:
            lines += ["", "Pages en erreur (version précédente conservée) :"]
            lines += [f"- {e.url} : {e.reason}" for e in report.errors]
        if report.new or report.changed or report.removed:
            lines += [
                "",
                "Cliquez sur « Reconstruire l'index » pour que l'assistant en tienne compte.",
            ]
        return "\n".join(lines)

    # ------------------------------------------------------------------ feedback

    def feedback_tables(self, request: gr.Request) -> tuple[list[list[Any]], ...]:
        """(feedback rows, unanswered rows), or () without a feedback store."""
        self.require(request)
        if self.feedback is None:
            return ()
        entries = [
            [
                e.created_at,
                e.question,
                "👍" if e.rating == "up" else "👎",
                e.comment,
                "oui" if e.abstained else "non",
                "; ".join(str(c.get("title", "")) for c in e.citations if isinstance(c, dict)),
            ]
            for e in self.feedback.list()
        ]
        unanswered = [[q, n] for q, n in self.feedback.unanswered()]
        return entries, unanswered


def _progress_callback(progress: gr.Progress | None) -> Any:
    """A build/sync `ProgressCallback` drawing Gradio's progress bar."""

    def report(done: int, total: int, stage: str) -> None:
        if progress is not None:
            progress((done, total) if total > 0 else None, desc=stage)

    return report


def _original_name(item: Any, path: Path) -> str:
    """The name the user gave the file (Gradio keeps it as the temp file's basename)."""
    return getattr(item, "orig_name", None) or path.name


def login_form_html() -> str:
    """The login form: a plain HTML form posting to the staff route (not a Gradio event), so
    that the answer can set the HTTP-only cookie."""
    return (
        f'<form class="staff-login" method="post" action=".{LOGIN_PATH}">'
        '<label for="admin-password">Mot de passe</label> '
        '<input id="admin-password" name="password" type="password" required '
        'autocomplete="current-password"> '
        '<button id="admin-login" type="submit" class="lg primary">Se connecter</button>'
        "</form>"
    )


def session_bar_html(with_export: bool) -> str:
    """The logout button and, with a feedback store, the CSV export link."""
    export = (
        f'<a id="admin-export" href=".{EXPORT_PATH}" download>Exporter les avis en CSV</a> '
        if with_export
        else ""
    )
    return (
        f'<div class="staff-session">{export}'
        f'<form method="post" action=".{LOGOUT_PATH}" style="display:inline">'
        '<button id="admin-logout" type="submit" class="sm secondary">Se déconnecter</button>'
        "</form></div>"
    )


def build_admin_tab(
    assistant: Assistant,
    feedback: FeedbackStore | None,
    auth: StaffAuth,
    tabs: gr.Tabs | None = None,
    demo: gr.Blocks | None = None,
) -> AdminHandlers:
    """Lay out the staff tab inside the current `gr.Tab` context and wire its handlers; the
    panel is filled at page load when the request carries the staff cookie."""
    h = AdminHandlers(assistant, feedback, auth)
    private: dict[str, Any] = {"api_visibility": "undocumented"}

    with gr.Column(visible=True, elem_id="admin-login-box") as login_box:
        gr.Markdown("### Espace équipe\nAccès réservé à l'équipe du réseau.")
        gr.HTML(login_form_html())
        login_msg = gr.Markdown(elem_id="admin-login-msg")

    with gr.Column(visible=False, elem_id="admin-panel") as panel:
        gr.HTML(session_bar_html(feedback is not None))
        gr.Markdown("### État du corpus et de l'index")
        status_md = gr.Markdown(elem_id="admin-status")
        refresh_btn = gr.Button("Actualiser", size="sm")
        pending_md = gr.Markdown()
        table = gr.Dataframe(
            headers=RESOURCE_HEADERS, interactive=False, wrap=True, label="Ressources du corpus"
        )

        with gr.Accordion("Ajouter des ressources", open=False):
            files = gr.File(
                label=f"Fichiers ({', '.join(sorted(SUPPORTED_EXTENSIONS))})",
                file_count="multiple",
                type="filepath",
                file_types=sorted(SUPPORTED_EXTENSIONS),
            )
            overwrite = gr.Checkbox(label="Remplacer un fichier du même nom", value=False)
            upload_btn = gr.Button("Ajouter au corpus")
            upload_md = gr.Markdown()

        with gr.Accordion("Supprimer une ressource", open=False):
            choice = gr.Dropdown(label="Ressource", choices=[], value=None)
            confirm = gr.Checkbox(label="Je confirme la suppression du fichier source", value=False)
            remove_btn = gr.Button("Supprimer", variant="stop")
            remove_md = gr.Markdown()

        gr.Markdown("### Synchroniser le site du réseau")
        site_url = gr.Textbox(
            label="Plan du site (sitemap) ou page de liste",
            value=assistant.settings.site_url or "",
            placeholder="https://www.exemple.org/sitemap.xml",
            max_lines=1,
        )
        site_pdf = gr.Checkbox(label="Aussi les PDF liés (même site)", value=False)
        sync_btn = gr.Button("Synchroniser le site")
        sync_md = gr.Markdown()

        gr.Markdown("### Reconstruire l'index")
        full = gr.Checkbox(label="Tout recalculer (reconstruction complète)", value=False)
        allow = gr.Checkbox(
            label="Autoriser une reconstruction qui retire la plupart des ressources", value=False
        )
        rebuild_btn = gr.Button("Reconstruire l'index", variant="primary")
        rebuild_md = gr.Markdown()

        feedback_outputs: list[Any] = []
        if feedback is not None:
            gr.Markdown("### Avis des utilisateurs")
            feedback_table = gr.Dataframe(headers=FEEDBACK_HEADERS, interactive=False, wrap=True)
            gr.Markdown("### Questions sans réponse (les plus fréquentes d'abord)")
            unanswered_table = gr.Dataframe(
                headers=UNANSWERED_HEADERS, interactive=False, wrap=True
            )
            feedback_outputs = [feedback_table, unanswered_table]
            build_review_section(h, private)

    view = [status_md, table, choice, pending_md, *feedback_outputs]
    if demo is not None:
        tab_output = [tabs] if tabs is not None else []
        demo.load(
            _on_load_fn(h, with_tab=tabs is not None),
            None,
            [login_box, panel, login_msg, *tab_output, *view],
            api_visibility="private",
        )
    refresh_btn.click(h.refresh, None, view, api_name="admin_refresh", **private)
    upload_btn.click(
        h.upload, [files, overwrite], [upload_md], api_name="admin_upload", **private
    ).success(h.refresh, None, view, api_visibility="private")
    remove_btn.click(
        h.remove, [choice, confirm], [remove_md], api_name="admin_remove", **private
    ).success(h.refresh, None, view, api_visibility="private")
    for button, fn, inputs, output, name in (
        (sync_btn, _sync_fn(h), [site_url, site_pdf], sync_md, "admin_sync"),
        (rebuild_btn, _rebuild_fn(h), [full, allow], rebuild_md, "admin_rebuild"),
    ):  # long jobs: one at a time, in their own queue (the chat keeps answering)
        button.click(
            fn,
            inputs,
            [output],
            api_name=name,
            concurrency_limit=1,
            concurrency_id=REBUILD_CONCURRENCY_ID,
            **private,
        ).success(h.refresh, None, view, api_visibility="private")
    return h


def _on_load_fn(h: AdminHandlers, *, with_tab: bool) -> Any:
    def on_load(request: gr.Request) -> tuple[Any, ...]:
        box, panel, message, tab, *view = h.on_load(request)
        return (box, panel, message, *([tab] if with_tab else []), *view)

    return on_load


def _sync_fn(h: AdminHandlers) -> Any:
    def sync(
        url: str,
        pdf: bool,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> str:
        return h.sync(url, pdf, request, progress)

    return sync


def _rebuild_fn(h: AdminHandlers) -> Any:
    # Gradio injects a tracker for a parameter whose default is `gr.Progress()`.
    def rebuild(
        full: bool,
        allow: bool,
        request: gr.Request,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> str:
        return h.rebuild(full, request, progress, allow_removals=allow)

    return rebuild
