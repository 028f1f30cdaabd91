"""A local website for the sync tests: CMS-like pages (header, menu, breadcrumbs, sidebar,
cookie banner, share buttons, footer), a sitemap with `lastmod`, robots.txt, ETag and
Last-Modified validators, and pages that fail in every way. It counts requests per path."""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.corpus.pdf_factory import make_pdf

NAVIGATION = (
    "Accueil", "Nos ressources", "Agenda du réseau", "Adhérer au réseau",
    "Mentions légales", "Plan du site", "Partager sur Facebook", "Partager sur LinkedIn",
    "Nous utilisons des cookies pour mesurer l'audience", "Derniers articles publiés",
)  # fmt: skip

LAST_MODIFIED = "Mon, 01 Jan 2024 10:00:00 GMT"


def cms_page(title: str, paragraphs: list[str], date: str = "2024-03-12", extra: str = "") -> str:
    body = "\n".join(f"<p>{p}</p>" for p in paragraphs)
    return f"""<!DOCTYPE html>
<html lang="fr"><head><meta charset="utf-8"><title>{title} | Réseau ESS</title>
<meta property="og:title" content="{title}">
<meta property="article:published_time" content="{date}">
</head><body>
<div class="cookie-banner" id="cookies">Nous utilisons des cookies pour mesurer l'audience.
 <button>Accepter</button></div>
<header class="site-header"><a href="/">Réseau ESS</a>
<nav class="main-menu"><ul><li><a href="/">Accueil</a></li><li><a href="/ressources/">Nos
 ressources</a></li><li><a href="/agenda/">Agenda du réseau</a></li><li><a href="/adherer/">Adhérer
 au réseau</a></li></ul></nav></header>
<nav class="breadcrumb"><a href="/">Accueil</a> › <a href="/ressources/">Nos ressources</a> › {title}</nav>
<main><article class="node node--type-ressource">
<h1>{title}</h1>
<div class="meta">Publié le <time datetime="{date}">{date}</time></div>
<div class="field--name-body">{body}</div>
{extra}
<div class="share">Partager sur Facebook · Partager sur LinkedIn</div>
</article></main>
<aside class="sidebar"><h2>Derniers articles publiés</h2><ul><li><a href="/ressources/x">Une
 autre actualité</a></li><li><a href="/ressources/y">Encore une autre</a></li></ul></aside>
<footer><a href="/mentions">Mentions légales</a> · <a href="/plan">Plan du site</a> ·
 © Réseau ESS</footer>
</body></html>"""


@dataclass
class Site:
    """What the server serves; tests edit it between two syncs."""

    pages: dict[str, str] = field(default_factory=dict)  # path → HTML
    lastmod: dict[str, str | None] = field(default_factory=dict)  # path → sitemap lastmod
    status: dict[str, int] = field(default_factory=dict)  # path → forced status
    slow: set[str] = field(default_factory=set)  # paths that answer after `sleep` seconds
    redirects: dict[str, str] = field(default_factory=dict)
    unlisted: set[str] = field(default_factory=set)  # pages served but not in the sitemap
    binary: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # path → (body, type)
    sleep: float = 2.0
    requests: Counter[str] = field(default_factory=Counter)
    conditional_hits: Counter[str] = field(default_factory=Counter)
    base: str = ""

    def sitemap(self) -> str:
        urls = []
        for path in [*self.pages, *self.redirects]:
            if path in self.unlisted:
                continue
            mod = self.lastmod.get(path)
            lastmod = f"<lastmod>{mod}</lastmod>" if mod else ""
            urls.append(f"<url><loc>{self.base}{path}</loc>{lastmod}</url>")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            + "".join(urls)
            + "</urlset>"
        )


def default_site() -> Site:
    site = Site()
    site.pages = {
        "/ressources/scic-rurales": cms_page(
            "Les SCIC en milieu rural",
            [
                "Une société coopérative d'intérêt collectif associe salariés, usagers et "
                "collectivités autour d'un même projet de territoire.",
                "La commune de Saint-Zorglub est entrée au capital de la SCIC du vieux moulin "
                "en 2021, avec 5 000 euros de parts sociales.",
            ],
        ),
        "/ressources/tiers-lieux": cms_page(
            "Soutenir un tiers-lieu",
            [
                "Un tiers-lieu rassemble coworking, ateliers partagés et activités culturelles.",
                "Les collectivités peuvent mettre à disposition un bâtiment vacant.",
            ],
        ),
        "/ressources/epicerie": cms_page(
            "Une épicerie solidaire intercommunale",
            ["L'épicerie solidaire de Tartempion accueille 120 familles orientées par le CCAS."],
        ),
        "/ressources/disparue": cms_page(
            "Une page qui disparaîtra",
            ["Ce texte sera retiré du site après la première synchronisation."],
        ),
        "/ressources/redirigee": cms_page(
            "Une ressource déplacée",
            ["Le guide des achats responsables a changé d'adresse sur le site du réseau."],
        ),
        "/ressources/erreur": cms_page("Erreur", ["jamais servie"]),
        "/ressources/lente": cms_page("Lente", ["jamais servie à temps"]),
        "/prive/notes-internes": cms_page("Notes internes", ["à ne pas indexer"]),
    }
    site.lastmod = {
        "/ressources/scic-rurales": "2024-01-05",
        "/ressources/tiers-lieux": "2024-01-05",
        "/ressources/epicerie": "2024-01-05",
    }
    site.status = {"/ressources/erreur": 500}
    site.slow = {"/ressources/lente"}
    site.redirects = {"/ancienne-adresse": "/ressources/redirigee"}
    site.unlisted = {"/ressources/redirigee"}  # reachable through the redirect only
    return site


def pdf_bytes() -> bytes:
    return make_pdf(
        ["Guide des groupements d'employeurs", "Partager un salarié entre plusieurs associations."],
        title="Guide des groupements d'employeurs",
    )


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:  # quiet
            return

        def handle(self) -> None:
            # the client may give up (the timeout tests): nothing to answer then
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                super().handle()

        def _send(self, status: int, body: bytes, ctype: str, etag: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if etag:
                self.send_header("ETag", etag)
                self.send_header("Last-Modified", LAST_MODIFIED)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            site.requests[path] += 1
            if path == "/robots.txt":
                return self._send(200, b"User-agent: *\nDisallow: /prive/\n", "text/plain")
            if path == "/sitemap.xml":
                return self._send(200, site.sitemap().encode(), "application/xml")
            if path in site.redirects:
                self.send_response(301)
                self.send_header("Location", site.redirects[path])
                self.end_headers()
                return None
            if path in site.slow:
                time.sleep(site.sleep)
            if path in site.status:
                return self._send(site.status[path], b"erreur", "text/html")
            content = site.binary.get(path)
            if content is None and path in site.pages:
                content = (site.pages[path].encode("utf-8"), "text/html; charset=utf-8")
            if content is None:
                return self._send(404, b"introuvable", "text/html")
            body, ctype = content
            etag = '"' + hashlib.sha1(body).hexdigest()[:12] + '"'
            if self.headers.get("If-None-Match") == etag:
                site.conditional_hits[path] += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return None
            return self._send(200, body, ctype, etag)

    return Handler


@contextmanager
def serve_site(site: Site) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(site))
    server.daemon_threads = True
    site.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site.base
    finally:
        server.shutdown()
        server.server_close()
