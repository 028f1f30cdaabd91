"""Staff access: password login with rate limits, a signed HTTP-only session cookie, logout,
the feedback CSV and uploads reserved to staff.

The login form posts to `/equipe/connexion` (a plain FastAPI route, outside Gradio): on the
right password it sets the `ess_staff` cookie — signed (itsdangerous), HTTP-only, SameSite
strict, with an expiry — which only the browser holds; every staff handler checks it on each
call (`StaffAuth.allowed`), so a Gradio session id copied to another client gets nothing.
Failed logins are delayed, limited per client and globally, and logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import PlainTextResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

log = logging.getLogger(__name__)

COOKIE = "ess_staff"
SESSION_SECONDS = 8 * 3600
FAIL_DELAY_SECONDS = 1.0  # every failed login waits this long before its answer
WINDOW_SECONDS = 15 * 60
MAX_FAILS_PER_CLIENT = 5  # within the window, then that client is locked out
MAX_FAILS_GLOBAL = 30  # within the window, then every login is locked out
LOGIN_PATH = "/equipe/connexion"
LOGOUT_PATH = "/equipe/deconnexion"
EXPORT_PATH = "/equipe/avis.csv"
REVIEW_PATH = "/equipe/revue.jsonl"
UPLOAD_PATH = "/gradio_api/upload"


@dataclass
class LoginGuard:
    """Failed-login bookkeeping: how long a client (or everyone) must wait before trying."""

    clock: Callable[[], float] = time.monotonic
    _by_client: dict[str, deque[float]] = field(default_factory=dict)
    _all: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _prune(self, times: deque[float], now: float) -> None:
        while times and now - times[0] > WINDOW_SECONDS:
            times.popleft()

    def wait_seconds(self, client: str) -> float:
        """0 when `client` may try now, else the seconds until it may."""
        now = self.clock()
        with self._lock:
            mine = self._by_client.get(client, deque())
            self._prune(mine, now)
            self._prune(self._all, now)
            waits = [0.0]
            if len(mine) >= MAX_FAILS_PER_CLIENT:
                waits.append(WINDOW_SECONDS - (now - mine[0]))
            if len(self._all) >= MAX_FAILS_GLOBAL:
                waits.append(WINDOW_SECONDS - (now - self._all[0]))
            return max(waits)

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            self._by_client.setdefault(client, deque()).append(now)
            self._all.append(now)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._by_client.pop(client, None)


class StaffAuth:
    """Checks the password, issues and checks the session cookie, remembers logouts."""

    def __init__(
        self,
        password: str | None,
        *,
        secret: str | None = None,
        max_age: int = SESSION_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._password = password or ""
        self._serializer = URLSafeTimedSerializer(secret or secrets.token_hex(32), salt=COOKIE)
        self.max_age = max_age
        self.guard = LoginGuard(clock=clock)
        self._revoked: set[str] = set()

    def check_password(self, given: object) -> bool:
        """Constant-time comparison with the configured password; no password → refuse."""
        if not self._password or not isinstance(given, str) or not given:
            return False
        return hmac.compare_digest(given.encode("utf-8"), self._password.encode("utf-8"))

    def issue(self) -> str:
        """A new signed session value (a random nonce, so that logout can revoke it)."""
        return str(self._serializer.dumps({"nonce": secrets.token_hex(16)}))

    def valid(self, value: str | None) -> bool:
        if not value:
            return False
        try:
            data = self._serializer.loads(value, max_age=self.max_age)
        except BadSignature:  # also expired (SignatureExpired is a BadSignature)
            return False
        return isinstance(data, dict) and data.get("nonce") not in self._revoked

    def revoke(self, value: str | None) -> None:
        if not value:
            return
        try:
            data = self._serializer.loads(value)
        except BadSignature:
            return
        if isinstance(data, dict) and isinstance(data.get("nonce"), str):
            self._revoked.add(data["nonce"])

    def allowed(self, request: Any) -> bool:
        """Whether the HTTP request (FastAPI's, or Gradio's `gr.Request`) carries a valid
        session cookie."""
        cookies = getattr(request, "cookies", None) or {}
        return self.valid(cookies.get(COOKIE))


def client_of(request: Any) -> str:
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "inconnu")


def add_staff_routes(
    app: Any,
    auth: StaffAuth,
    csv_text: Callable[[], str] | None,
    review_text: Callable[[], str] | None = None,
) -> None:
    """The login, logout, CSV and review-export routes, and the guard on Gradio's upload
    route."""

    def back(request: Request, state: str) -> RedirectResponse:
        root = request.scope.get("root_path", "") or ""
        return RedirectResponse(f"{root}/?equipe={state}", status_code=303)

    @app.post(LOGIN_PATH)
    async def login(request: Request) -> Response:
        client = client_of(request)
        if auth.guard.wait_seconds(client) > 0:
            log.warning("staff login refused for %s: too many failed attempts", client)
            return back(request, "bloque")
        form = await request.form()
        if not auth.check_password(form.get("password")):
            auth.guard.failed(client)
            log.warning("staff login refused for %s (wrong password)", client)
            await asyncio.sleep(FAIL_DELAY_SECONDS)
            return back(request, "erreur")
        auth.guard.succeeded(client)
        log.info("staff login from %s", client)
        response = back(request, "ok")
        response.set_cookie(
            COOKIE,
            auth.issue(),
            max_age=auth.max_age,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    @app.post(LOGOUT_PATH)
    async def logout(request: Request) -> Response:
        auth.revoke(request.cookies.get(COOKIE))
        response = back(request, "sortie")
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get(EXPORT_PATH)
    async def export(request: Request) -> Response:
        if not auth.allowed(request) or csv_text is None:
            return PlainTextResponse("Accès refusé", status_code=403)
        return Response(
            "\ufeff" + csv_text(),  # BOM: Excel reads the UTF-8
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="avis-assistant-ess.csv"'},
        )

    @app.get(REVIEW_PATH)
    async def review_export(request: Request) -> Response:
        if not auth.allowed(request) or review_text is None:
            return PlainTextResponse("Accès refusé", status_code=403)
        return Response(
            review_text(),
            media_type="application/x-ndjson; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="cas-revus.jsonl"'},
        )

    @app.middleware("http")
    async def staff_only_uploads(request: Request, call_next: Any) -> Response:
        # The public chat uploads nothing: only logged-in staff may send files to Gradio.
        if request.url.path.endswith(UPLOAD_PATH) and not auth.allowed(request):
            return PlainTextResponse("Accès refusé", status_code=403)
        response: Response = await call_next(request)
        return response
