"""The staff tab: password gate, refusals without login, uploads, rebuild, feedback."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import httpx
import pytest

from assistant.feedback import FeedbackStore
from assistant.service import Assistant
from assistant.settings import Settings
from tests.fakes import FakeEmbedder
from tests.ui.server import run_server
from ui.admin import LOCKED_OUT, WRONG_PASSWORD, AdminHandlers
from ui.staff import (
    COOKIE,
    MAX_FAILS_GLOBAL,
    MAX_FAILS_PER_CLIENT,
    WINDOW_SECONDS,
    LoginGuard,
    StaffAuth,
)

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
def auth() -> StaffAuth:
    return StaffAuth(PASSWORD, secret="test-secret")


@dataclass
class FakeRequest:
    """What the handlers read of a request: its cookies and query parameters."""

    cookies: dict[str, str] = field(default_factory=dict)
    query_params: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def staff(auth: StaffAuth) -> FakeRequest:
    """A request from a logged-in browser."""
    return FakeRequest(cookies={COOKIE: auth.issue()})


@pytest.fixture
def handlers(admin_assistant: Assistant, feedback: FeedbackStore, auth: StaffAuth) -> AdminHandlers:
    return AdminHandlers(admin_assistant, feedback, auth)


def test_the_password_check_is_exact_and_needs_a_configured_password(auth: StaffAuth) -> None:
    assert auth.check_password(PASSWORD)
    for wrong in ("", None, 42, "sésame", PASSWORD + " ", PASSWORD.upper()):
        assert not auth.check_password(wrong)
    nobody = StaffAuth(None)
    assert not nobody.check_password("") and not nobody.check_password("admin")


def test_session_cookies_are_signed_expire_and_can_be_revoked() -> None:
    now = [1000.0]
    auth = StaffAuth(PASSWORD, secret="s", max_age=60)
    value = auth.issue()
    assert auth.valid(value)
    assert not auth.valid(value[:-2] + "xx")  # tampered
    assert not StaffAuth(PASSWORD, secret="other").valid(value)  # another server's secret
    assert not auth.valid(None) and not auth.valid("")
    auth.revoke(value)
    assert not auth.valid(value)
    assert auth.valid(auth.issue())  # a new login works
    del now


def test_expired_sessions_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import itsdangerous.timed

    auth = StaffAuth(PASSWORD, secret="s", max_age=60)
    value = auth.issue()
    later = time.time() + 61
    monkeypatch.setattr(itsdangerous.timed.time, "time", lambda: later)
    assert not auth.valid(value)


def test_failed_logins_are_limited_per_client_and_globally() -> None:
    now = [0.0]
    guard = LoginGuard(clock=lambda: now[0])
    for _ in range(MAX_FAILS_PER_CLIENT):
        assert guard.wait_seconds("1.2.3.4") == 0
        guard.failed("1.2.3.4")
    assert guard.wait_seconds("1.2.3.4") > 0  # locked out
    assert guard.wait_seconds("5.6.7.8") == 0  # others are not
    now[0] += WINDOW_SECONDS + 1
    assert guard.wait_seconds("1.2.3.4") == 0  # the window has passed
    for i in range(MAX_FAILS_GLOBAL):
        guard.failed(f"10.0.0.{i}")
    assert guard.wait_seconds("9.9.9.9") > 0  # a distributed attack locks every login


def test_page_load_shows_the_login_or_the_panel(
    handlers: AdminHandlers, staff: FakeRequest
) -> None:
    box, panel, message, _, *view = handlers.on_load(FakeRequest())  # type: ignore[arg-type]
    assert box["visible"] is True and panel["visible"] is False and message == ""
    assert all(v == gr.skip() for v in view)
    wrong = FakeRequest(query_params={"equipe": "erreur"})
    assert handlers.on_load(wrong)[2] == WRONG_PASSWORD  # type: ignore[arg-type]
    locked = FakeRequest(query_params={"equipe": "bloque"})
    assert handlers.on_load(locked)[2] == LOCKED_OUT  # type: ignore[arg-type]
    box, panel, message, _, status, table, dropdown, note, fb, unanswered = handlers.on_load(
        staff  # type: ignore[arg-type]
    )
    assert box["visible"] is False and panel["visible"] is True
    assert "Ressources indexées** : 9" in status
    assert len(table) == 9 and all(row[4] == "indexée" for row in table)
    assert len(dropdown["choices"]) == 9
    assert "à jour" in note
    assert fb[0][1] == "Comment financer ?"
    assert unanswered[0][0].casefold() == "quel budget ?" and unanswered[0][1] == 2


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
    ],
)
def test_every_admin_handler_refuses_without_a_valid_cookie(
    handlers: AdminHandlers, auth: StaffAuth, method: str, args: tuple[object, ...]
) -> None:
    before = sorted(p.name for p in handlers.assistant.corpus_dir.iterdir())
    revoked = auth.issue()
    auth.revoke(revoked)
    for request in (
        None,
        FakeRequest(),
        FakeRequest(cookies={COOKIE: "forged"}),
        FakeRequest(cookies={COOKIE: StaffAuth(PASSWORD, secret="x").issue()}),
        FakeRequest(cookies={COOKIE: revoked}),
    ):
        call_args = (*args, request) if method in ("upload", "remove", "rebuild") else (request,)
        with pytest.raises(gr.Error, match="Accès refusé"):
            getattr(handlers, method)(*call_args)
    assert sorted(p.name for p in handlers.assistant.corpus_dir.iterdir()) == before


def test_upload_remove_rebuild_cycle(
    handlers: AdminHandlers, staff: FakeRequest, tmp_path: Path
) -> None:
    good = tmp_path / "Fiche Épicerie solidaire.md"
    good.write_text(
        "# Épicerie solidaire\n\nLa zorglubette finance les épiceries.\n", encoding="utf-8"
    )
    bad = tmp_path / "cassé.md"
    bad.write_text("---\ntitle: [non fermé\n---\n\ncorps\n", encoding="utf-8")
    exe = tmp_path / "virus.exe"
    exe.write_bytes(b"MZ")
    message = handlers.upload([str(good), str(bad), str(exe)], False, staff)  # type: ignore[arg-type]
    assert "✅ Fiche Épicerie solidaire.md" in message and "fiche-epicerie-solidaire.md" in message
    assert "❌ cassé.md : refusé" in message
    assert "❌ virus.exe : refusé — extension non prise en charge" in message

    _, _, note = handlers.resources(staff)  # type: ignore[arg-type]
    assert "1 ressource(s) à reconstruire" in note

    result = handlers.rebuild(False, staff)  # type: ignore[arg-type]
    assert "added 1, changed 0, removed 0, unchanged 9, errors 0" in result
    answer = handlers.assistant.retrieve("zorglubette")
    assert answer.resources[0].resource.title == "Épicerie solidaire"

    assert "Cochez" in handlers.remove("fiche-epicerie-solidaire", False, staff)  # type: ignore[arg-type]
    assert "supprimé" in handlers.remove("fiche-epicerie-solidaire", True, staff)  # type: ignore[arg-type]
    result = handlers.rebuild(False, staff)  # type: ignore[arg-type]
    assert "added 0, changed 0, removed 1, unchanged 9, errors 0" in result


def test_a_rebuild_that_would_empty_the_base_asks_for_the_box(
    handlers: AdminHandlers, staff: FakeRequest
) -> None:
    handlers.rebuild(False, staff)  # type: ignore[arg-type]
    for path in handlers.assistant.corpus_dir.glob("*.md"):
        path.unlink()
    refused = handlers.rebuild(False, staff)  # type: ignore[arg-type]
    assert refused.startswith("❌ Reconstruction impossible") and "Autoriser" in refused
    assert len(handlers.assistant.index().resources) == 9  # still answering from the old index
    done = handlers.rebuild(False, staff, allow_removals=True)  # type: ignore[arg-type]
    assert "removed 9" in done


def test_upload_size_limit_from_settings(
    handlers: AdminHandlers, staff: FakeRequest, tmp_path: Path
) -> None:
    handlers.assistant.settings = handlers.assistant.settings.with_(max_upload_mb=0.001)
    big = tmp_path / "gros.txt"
    big.write_text("Titre\n\n" + "mot " * 1000, encoding="utf-8")
    message = handlers.upload([str(big)], False, staff)  # type: ignore[arg-type]
    assert "trop volumineux" in message
    assert not (handlers.assistant.corpus_dir / "gros.txt").exists()


def test_rebuild_reports_progress_and_file_errors(
    handlers: AdminHandlers, staff: FakeRequest
) -> None:
    (handlers.assistant.corpus_dir / "illisible.pdf").write_bytes(b"%PDF-1.4 tronque")
    seen: list[tuple[object, str | None]] = []

    class Tracker:
        def __call__(self, progress: object, desc: str | None = None, **_: object) -> None:
            seen.append((progress, desc))

    result = handlers.rebuild(True, staff, Tracker())  # type: ignore[arg-type]
    assert "errors 1" in result and "illisible.pdf" in result
    assert "reconstruction complète demandée" in result
    assert any(desc == "Calcul des vecteurs" for _, desc in seen)


def test_tab_without_feedback_has_no_feedback_outputs(
    admin_assistant: Assistant, auth: StaffAuth, staff: FakeRequest
) -> None:
    h = AdminHandlers(admin_assistant, None, auth)
    assert len(h.refresh(staff)) == 4  # type: ignore[arg-type]


HAS_APP = (Path(__file__).resolve().parents[2] / "ui" / "app.py").exists()


@pytest.fixture
def served(
    admin_assistant: Assistant, feedback: FeedbackStore, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The whole ASGI app `serve` runs (Gradio + staff routes), on a free local port."""
    import ui.staff
    from ui.app import make_server

    monkeypatch.setattr(ui.staff, "FAIL_DELAY_SECONDS", 0.0)
    with run_server(make_server(admin_assistant, feedback=feedback)) as url:
        yield url


def _login(url: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/equipe/connexion", data={"password": password}, timeout=10)


def test_login_sets_a_signed_http_only_cookie_and_logout_revokes_it(served: str) -> None:
    wrong = _login(served, "mauvais")
    assert wrong.status_code == 303 and wrong.headers["location"].endswith("/?equipe=erreur")
    assert COOKIE not in wrong.cookies
    right = _login(served, PASSWORD)
    assert right.status_code == 303 and right.headers["location"].endswith("/?equipe=ok")
    header = right.headers["set-cookie"].lower()
    assert "httponly" in header and "samesite=strict" in header and "max-age=28800" in header
    cookie = right.cookies[COOKIE]

    csv_ok = httpx.get(f"{served}/equipe/avis.csv", cookies={COOKIE: cookie})
    assert csv_ok.status_code == 200 and "attachment" in csv_ok.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(csv_ok.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "date", "question"] and rows[1][5] == "'=trop court"
    assert httpx.get(f"{served}/equipe/avis.csv").status_code == 403

    out = httpx.post(f"{served}/equipe/deconnexion", cookies={COOKIE: cookie})
    assert out.status_code == 303 and 'ess_staff=""' in out.headers["set-cookie"]
    assert httpx.get(f"{served}/equipe/avis.csv", cookies={COOKIE: cookie}).status_code == 403


def test_repeated_failures_lock_the_client_out(served: str) -> None:
    for _ in range(MAX_FAILS_PER_CLIENT):
        assert _login(served, "mauvais").headers["location"].endswith("equipe=erreur")
    locked = _login(served, PASSWORD)  # even the right password, until the window passes
    assert locked.headers["location"].endswith("equipe=bloque") and COOKIE not in locked.cookies


def test_api_endpoints_need_the_cookie_not_the_session(served: str) -> None:
    from gradio_client import Client

    anonymous = Client(served, verbose=False)
    with pytest.raises(Exception, match="Accès refusé"):
        anonymous.predict(False, False, api_name="/admin_rebuild")
    cookie = _login(served, PASSWORD).cookies[COOKIE]
    staff = Client(served, verbose=False, headers={"Cookie": f"{COOKIE}={cookie}"})
    assert "unchanged 9" in str(staff.predict(False, False, api_name="/admin_rebuild"))
    # The staff client's Gradio session id, used by a client without the cookie: refused.
    thief = Client(served, verbose=False)
    thief.session_hash = staff.session_hash
    with pytest.raises(Exception, match="Accès refusé"):
        thief.predict(False, False, api_name="/admin_rebuild")


def test_anonymous_uploads_are_refused(served: str) -> None:
    files = {"files": ("x.md", b"# Titre\n\ncorps\n", "text/markdown")}
    assert httpx.post(f"{served}/gradio_api/upload", files=files).status_code == 403
    cookie = _login(served, PASSWORD).cookies[COOKIE]
    ok = httpx.post(f"{served}/gradio_api/upload", files=files, cookies={COOKIE: cookie})
    assert ok.status_code == 200


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


def test_staff_can_synchronise_the_site(
    handlers: AdminHandlers, staff: FakeRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.corpus.site_server import default_site, serve_site

    handlers.assistant.settings = handlers.assistant.settings.with_(sync_delay=0.0)
    site = default_site()
    site.status.clear()
    site.slow.clear()
    with serve_site(site) as base:
        with pytest.raises(gr.Error, match="Accès refusé"):
            handlers.sync(f"{base}/sitemap.xml", False, FakeRequest())  # type: ignore[arg-type]
        done = handlers.sync(f"{base}/sitemap.xml", False, staff)  # type: ignore[arg-type]
    assert "✅ Site synchronisé : **pages 7: new 7" in done and "Reconstruire" in done
    result = handlers.rebuild(False, staff)  # type: ignore[arg-type]
    assert "added 7, changed 0, removed 0, unchanged 9" in result
    refused = handlers.sync("", False, staff)  # type: ignore[arg-type]
    assert refused.startswith("❌") and "ESS_ASSISTANT_SITE_URL" in refused


def test_review_section_handlers(
    handlers: AdminHandlers, feedback: FeedbackStore, staff: FakeRequest
) -> None:
    from ui.review_tab import ReviewHandlers

    h = ReviewHandlers(handlers)
    with pytest.raises(gr.Error, match="Accès refusé"):
        h.queue_view(FakeRequest())  # type: ignore[arg-type]
    rows, picker = h.queue_view(staff)  # type: ignore[arg-type]
    assert [r[3] for r in rows] == ["Quel budget ?", "quel  budget ?", "Qui contacter ?"]
    assert len(picker["choices"]) == 9
    gare = "fiche-deniche-pour-vous-n87-collectif-gare"
    first, second = rows[0][0], rows[2][0]
    assert "étiquetée" in h.label(first, [gare], False, "Vaillant", staff)  # type: ignore[arg-type]
    assert "hors du champ" in h.label(second, [], True, "", staff)  # type: ignore[arg-type]
    assert h.label(second, [gare], True, "", staff).startswith("❌")  # type: ignore[arg-type]
    assert "écartée" in h.dismiss(rows[1][0], staff)  # type: ignore[arg-type]
    assert h.queue_view(staff)[0] == []  # type: ignore[arg-type]
    table, which = h.freshness_view(staff)  # type: ignore[arg-type]
    assert table and all("plus de 5 ans" in r[2] for r in table)  # the bundled ones are old
    assert len(which["choices"]) == 9
    oldest = table[0][3]
    done = h.change_status(oldest, "archived", "", staff)  # type: ignore[arg-type]
    assert done.startswith("✅") and "archivée" in done
    assert handlers.assistant.index().resources[oldest].status == "archived"
    assert len(h.freshness_view(staff)[0]) == len(table) - 1  # type: ignore[arg-type]
