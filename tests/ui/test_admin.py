"""The staff tab: password gate, refusals without login, uploads, rebuild, feedback."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import gradio as gr
import pytest

from assistant.feedback import FeedbackStore
from assistant.service import Assistant
from assistant.settings import Settings
from tests.fakes import FakeEmbedder
from ui.admin import ACCESS_DENIED, WRONG_PASSWORD, AdminHandlers, build_admin_tab

PASSWORD = "Sésame ouvre-toi ! 42"


@pytest.fixture
def admin_assistant(fake_settings: Settings, fake_embedder: FakeEmbedder) -> Assistant:
    assistant = Assistant(fake_settings.with_(admin_password=PASSWORD), embedder=fake_embedder)
    assistant.build()
    return assistant


@pytest.fixture
def feedback(tmp_path: Path) -> FeedbackStore:
    store = FeedbackStore(tmp_path / "feedback.sqlite3")
    store.add(
        question="Comment financer ?",
        answer_text="Ainsi [1].",
        citations=[{"n": 1, "title": "Guide"}],
        rating="down",
        comment="=trop court",
        abstained=False,
    )
    for q in ("Quel budget ?", "quel  budget ?", "Qui contacter ?"):
        store.log_question(q, abstained=True)
    return store


@pytest.fixture
def handlers(admin_assistant: Assistant, feedback: FeedbackStore) -> AdminHandlers:
    return AdminHandlers(admin_assistant, feedback)


def test_wrong_password_is_refused_and_shows_nothing(handlers: AdminHandlers) -> None:
    for wrong in ("", None, "sésame", PASSWORD + " ", PASSWORD.upper()):
        logged, message, login_box, panel = handlers.login(wrong)
        assert logged is False
        assert message == WRONG_PASSWORD
        assert panel["visible"] is False and login_box["visible"] is True


def test_right_password_opens_the_panel(handlers: AdminHandlers) -> None:
    logged, message, login_box, panel = handlers.login(PASSWORD)
    assert logged is True and message == ""
    assert panel["visible"] is True and login_box["visible"] is False
    status, table, dropdown, note, fb, unanswered = handlers.refresh(logged)
    assert "Ressources indexées** : 9" in status
    assert len(table) == 9 and all(row[4] == "indexée" for row in table)
    assert len(dropdown["choices"]) == 9
    assert "à jour" in note
    assert fb[0][1] == "Comment financer ?"
    assert unanswered[0][0].casefold() == "quel budget ?" and unanswered[0][1] == 2


def test_no_configured_password_refuses_everyone(fake_assistant: Assistant) -> None:
    h = AdminHandlers(fake_assistant, None)
    assert h.login("")[0] is False
    assert h.login("admin")[0] is False


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("status_markdown", ()),
        ("resources", ()),
        ("refresh", ()),
        ("upload", ([], False)),
        ("remove", ("mode-d-emploi-ess-ruralites-tressons", True)),
        ("rebuild", (False,)),
        ("feedback_tables", ()),
        ("export_csv", ()),
    ],
)
def test_every_admin_handler_refuses_without_login(
    handlers: AdminHandlers, method: str, args: tuple[object, ...]
) -> None:
    before = sorted(p.name for p in handlers.assistant.corpus_dir.iterdir())
    for state in (False, None, "True", 1):
        with pytest.raises(gr.Error, match="Accès refusé"):
            getattr(handlers, method)(state, *args)
    assert sorted(p.name for p in handlers.assistant.corpus_dir.iterdir()) == before


def test_refresh_after_failed_login_changes_nothing(handlers: AdminHandlers) -> None:
    out = handlers.refresh_if_logged(False)
    assert all(u == gr.skip() for u in out)


def test_upload_remove_rebuild_cycle(handlers: AdminHandlers, tmp_path: Path) -> None:
    good = tmp_path / "Fiche Épicerie solidaire.md"
    good.write_text(
        "# Épicerie solidaire\n\nLa zorglubette finance les épiceries.\n", encoding="utf-8"
    )
    bad = tmp_path / "cassé.md"
    bad.write_text("---\ntitle: [non fermé\n---\n\ncorps\n", encoding="utf-8")
    exe = tmp_path / "virus.exe"
    exe.write_bytes(b"MZ")
    message = handlers.upload(True, [str(good), str(bad), str(exe)], False)
    assert "✅ Fiche Épicerie solidaire.md" in message and "fiche-epicerie-solidaire.md" in message
    assert "❌ cassé.md : refusé" in message
    assert "❌ virus.exe : refusé — extension non prise en charge" in message

    _, _, note = handlers.resources(True)
    assert "1 ressource(s) à reconstruire" in note

    result = handlers.rebuild(True, False)
    assert "added 1, changed 0, removed 0, unchanged 9, errors 0" in result
    answer = handlers.assistant.retrieve("zorglubette")
    assert answer.resources[0].resource.title == "Épicerie solidaire"

    assert "Cochez" in handlers.remove(True, "fiche-epicerie-solidaire", False)
    assert "supprimé" in handlers.remove(True, "fiche-epicerie-solidaire", True)
    result = handlers.rebuild(True, False)
    assert "added 0, changed 0, removed 1, unchanged 9, errors 0" in result


def test_a_rebuild_that_would_empty_the_base_asks_for_the_box(handlers: AdminHandlers) -> None:
    handlers.rebuild(True, False)
    for path in handlers.assistant.corpus_dir.glob("*.md"):
        path.unlink()
    refused = handlers.rebuild(True, False)
    assert refused.startswith("❌ Reconstruction impossible") and "Autoriser" in refused
    assert len(handlers.assistant.index().resources) == 9  # still answering from the old index
    done = handlers.rebuild(True, False, allow_removals=True)
    assert "removed 9" in done


def test_upload_size_limit_from_settings(handlers: AdminHandlers, tmp_path: Path) -> None:
    handlers.assistant.settings = handlers.assistant.settings.with_(max_upload_mb=0.001)
    big = tmp_path / "gros.txt"
    big.write_text("Titre\n\n" + "mot " * 1000, encoding="utf-8")
    message = handlers.upload(True, [str(big)], False)
    assert "trop volumineux" in message
    assert not (handlers.assistant.corpus_dir / "gros.txt").exists()


def test_rebuild_reports_progress_and_file_errors(handlers: AdminHandlers) -> None:
    (handlers.assistant.corpus_dir / "illisible.pdf").write_bytes(b"%PDF-1.4 tronque")
    seen: list[tuple[object, str | None]] = []

    class Tracker:
        def __call__(self, progress: object, desc: str | None = None, **_: object) -> None:
            seen.append((progress, desc))

    result = handlers.rebuild(True, True, Tracker())  # type: ignore[arg-type]
    assert "errors 1" in result and "illisible.pdf" in result
    assert "reconstruction complète demandée" in result
    assert any(desc == "Calcul des vecteurs" for _, desc in seen)


def test_export_csv(handlers: AdminHandlers) -> None:
    path = handlers.export_csv(True)
    assert path is not None
    rows = list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))
    assert rows[0][:3] == ["id", "date", "question"]
    assert rows[1][5] == "'=trop court"  # formula-safe


def test_tab_without_feedback_has_no_feedback_outputs(admin_assistant: Assistant) -> None:
    h = AdminHandlers(admin_assistant, None)
    assert len(h.refresh(True)) == 4
    assert h.export_csv(True) is None


HAS_APP = (Path(__file__).resolve().parents[2] / "ui" / "app.py").exists()


@pytest.fixture(params=["tab", "app"])
def served(
    request: pytest.FixtureRequest, admin_assistant: Assistant, feedback: FeedbackStore
) -> Iterator[str]:
    """The tab alone in a Blocks, and the whole app of `ui/app.py` (when it exists)."""
    if request.param == "app":
        if not HAS_APP:
            pytest.skip("ui/app.py absent")
        from ui.app import build_app

        demo = build_app(admin_assistant, feedback=feedback)
    else:
        with gr.Blocks() as demo, gr.Tab("Espace équipe"):
            build_admin_tab(admin_assistant, feedback)
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    try:
        yield url
    finally:
        demo.close()


def test_api_endpoints_refuse_without_login(served: str) -> None:
    from gradio_client import Client

    client = Client(served, verbose=False)
    with pytest.raises(Exception, match="Accès refusé"):
        client.predict(False, False, api_name="/admin_rebuild")
    with pytest.raises(Exception, match="Accès refusé"):
        client.predict(api_name="/admin_export_csv")
    assert ACCESS_DENIED.startswith("Accès refusé")

    logged_out = client.predict("mauvais", api_name="/admin_login")
    assert WRONG_PASSWORD in str(logged_out)
    with pytest.raises(Exception, match="Accès refusé"):
        client.predict(False, False, api_name="/admin_rebuild")

    client.predict(PASSWORD, api_name="/admin_login")
    result = client.predict(False, False, api_name="/admin_rebuild")
    assert "unchanged 9" in str(result)


@pytest.mark.skipif(not HAS_APP, reason="ui/app.py absent")
def test_tab_absent_without_password_present_with_it(
    fake_assistant: Assistant, admin_assistant: Assistant
) -> None:
    from ui.app import build_app

    def tab_labels(assistant: Assistant) -> list[str]:
        app = build_app(assistant)
        return [b.label for b in app.blocks.values() if isinstance(b, gr.Tab)]

    assert "Espace équipe" not in tab_labels(fake_assistant)
    assert "Espace équipe" in tab_labels(admin_assistant)
