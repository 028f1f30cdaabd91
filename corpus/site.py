"""Keep the corpus in step with the network's website: `sync_site(url, corpus_dir, …)`.

The URL is a sitemap (or a sitemap index; parsed with ultimate-sitemap-parser) or a page
listing (its same-site links). Each page is fetched politely — robots.txt respected, one
request at a time per `delay` across at most `concurrency` workers, a timeout, a clear
User-Agent, retries with back-off on 5xx and 429 — and conditionally (ETag /
Last-Modified), after skipping pages whose sitemap `lastmod` has not moved since the last
sync. Main content, title and date come from trafilatura and htmldate. Each page becomes a
Markdown resource written atomically, with `source: site` and the validators in its front
matter; a page that leaves the sitemap or answers 404/410 removes the resource it created —
never a hand-made file. A page that fails keeps its previous version and is listed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import threading
import time
import urllib.robotparser
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from corpus import enrich
from corpus.errors import AssistantError, ConfigurationError
from corpus.limits import MAX_BODY_CHARS
from corpus.markdown_io import resource_to_markdown, split_front_matter
from corpus.models import Resource
from corpus.text import normalize_newlines

log = logging.getLogger(__name__)

SOURCE = "site"
SITE_FOLDER = "site"  # synced pages are written in <corpus>/site/
DEFAULT_USER_AGENT = (
    "ess-assistant-sync/1.0 (+ESS resource assistant of the network; polite crawler)"
)
MAX_SITEMAP_DEPTH = 3
MAX_PAGE_BYTES = 5_000_000
GONE = (404, 410)

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class SyncSettings:
    url: str
    include: str | None = None  # regex a page URL must match
    exclude: str | None = None  # regex a page URL must not match
    delay: float = 1.0  # seconds between two requests to the site
    concurrency: int = 2
    timeout: float = 20.0
    user_agent: str = DEFAULT_USER_AGENT
    pdf: bool = False  # also fetch the PDFs a page links to, on the same site
    dry_run: bool = False
    backoff: float = 1.0  # first retry wait (doubles each time)
    retries: int = 3  # on 5xx, 429, timeouts and network errors


@dataclass(frozen=True)
class SyncError:
    url: str
    reason: str


@dataclass(frozen=True)
class SyncReport:
    pages: int = 0
    new: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    errors: tuple[SyncError, ...] = ()
    skipped: tuple[str, ...] = ()  # disallowed by robots.txt or filtered out

    def summary_line(self) -> str:
        return (
            f"pages {self.pages}: new {len(self.new)}, changed {len(self.changed)}, "
            f"removed {len(self.removed)}, unchanged {len(self.unchanged)}, "
            f"errors {len(self.errors)}"
        )


@dataclass(frozen=True)
class _Known:
    """A resource written by an earlier sync (read back from its front matter)."""

    path: Path
    url: str
    etag: str | None
    last_modified: str | None
    lastmod: str | None
    digest: str


@dataclass(frozen=True)
class _Page:
    url: str
    lastmod: str | None = None
    parent: str | None = None  # for a PDF: the page that links to it


# ---------------------------------------------------------------------------- HTTP


@dataclass
class PoliteClient:
    """httpx with a User-Agent, a minimum delay between requests, retries and robots.txt."""

    settings: SyncSettings
    _client: httpx.Client = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next: float = 0.0
    _robots: dict[str, urllib.robotparser.RobotFileParser] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._client = httpx.Client(
            headers={"User-Agent": self.settings.user_agent},
            timeout=self.settings.timeout,
            follow_redirects=True,
            max_redirects=5,
        )

    def close(self) -> None:
        self._client.close()

    def _wait_turn(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.settings.delay
        if start > now:
            time.sleep(start - now)

    def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        root = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            robots = self._robots.get(root)
        if robots is None:
            robots = urllib.robotparser.RobotFileParser()
            try:
                response = self.get(f"{root}/robots.txt", retries=1, check_robots=False)
                robots.parse(response.text.splitlines() if response.status_code == 200 else [])
            except httpx.HTTPError:
                robots.parse([])
            with self._lock:
                self._robots[root] = robots
        return robots.can_fetch(self.settings.user_agent, url)

    def get(
        self,
        url: str,
        *,
        headers: dict[str, str] | None = None,
        retries: int | None = None,
        check_robots: bool = True,
    ) -> httpx.Response:
        """GET with retries on 5xx, 429 and network errors (waiting `Retry-After` when given,
        else an exponential back-off); raises `httpx.HTTPError` when retries are exhausted."""
        if check_robots and not self.allowed(url):
            raise PermissionError(f"interdit par robots.txt : {url}")
        retries = self.settings.retries if retries is None else retries
        wait = self.settings.backoff
        for attempt in range(retries + 1):
            self._wait_turn()
            try:
                response = self._client.get(url, headers=headers or {})
            except httpx.TransportError:
                if attempt == retries:
                    raise
            else:
                if response.status_code < 500 and response.status_code != 429:
                    return response
                if attempt == retries:
                    response.raise_for_status()
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    wait = max(wait, min(float(retry_after), 60.0))
            time.sleep(wait * (1 + random.random() / 4))
            wait *= 2
        raise httpx.HTTPError(f"échec après {retries + 1} tentatives : {url}")  # not reached


# ---------------------------------------------------------------------------- discovery


def discover(client: PoliteClient, url: str) -> list[_Page]:
    """The pages listed by a sitemap, a sitemap index (recursively) or an HTML listing."""
    from usp.objects.sitemap import IndexXMLSitemap, InvalidSitemap
    from usp.tree import sitemap_from_str

    pages: dict[str, _Page] = {}

    def visit(address: str, depth: int) -> None:
        response = client.get(address)
        response.raise_for_status()
        text = response.text
        if "html" in response.headers.get("content-type", "") and "<urlset" not in text:
            for link in _links(text, str(response.url)):
                pages.setdefault(link, _Page(link))
            return
        sitemap = sitemap_from_str(text)
        if isinstance(sitemap, InvalidSitemap):
            raise ValueError(f"plan de site illisible : {address}")
        if isinstance(sitemap, IndexXMLSitemap):
            if depth >= MAX_SITEMAP_DEPTH:
                return
            for sub in sitemap.sub_sitemaps:
                visit(sub.url, depth + 1)
            return
        for page in sitemap.all_pages():
            lastmod = page.last_modified.isoformat() if page.last_modified else None
            pages[page.url] = _Page(page.url, lastmod)

    visit(url, 0)
    return list(pages.values())


def _links(html: str, base: str) -> list[str]:
    from bs4 import BeautifulSoup

    host = urlsplit(base).netloc
    out = []
    for a in BeautifulSoup(html, "html.parser").find_all("a", href=True):
        link = _canonical(urljoin(base, str(a["href"])))
        if urlsplit(link).netloc == host and link not in out and link != _canonical(base):
            out.append(link)
    return out


def _canonical(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


# ---------------------------------------------------------------------------- extraction


def resource_id_for(url: str) -> str:
    """A stable id from the URL: its path as a slug, plus a short hash of the whole URL."""
    parts = urlsplit(url)
    slug = enrich.slugify(f"{parts.path} {parts.query}".strip(), max_length=60) or "accueil"
    return f"site-{slug}-{hashlib.sha1(url.encode()).hexdigest()[:6]}"


def extract_page(html: str, url: str) -> tuple[str, str | None, str]:
    """(title, ISO date or None, main text) of a web page, without navigation, header,
    footer, cookie banners or share buttons (trafilatura, htmldate)."""
    import trafilatura
    from htmldate import find_date

    body = trafilatura.extract(
        html,
        url=url,
        output_format="markdown",
        include_comments=False,
        include_tables=True,
        include_links=False,
        include_images=False,
        favor_precision=True,
    )
    metadata = trafilatura.extract_metadata(html, default_url=url)
    title = (metadata.title if metadata is not None and metadata.title else "").strip()
    try:
        date = find_date(html, url=url, original_date=True, extensive_search=False)
    except (ValueError, TypeError):
        date = None
    return title, date, normalize_newlines(body or "").strip()


def _pdf_links(html: str, base: str) -> list[str]:
    return [link for link in _links(html, base) if urlsplit(link).path.lower().endswith(".pdf")]


# ---------------------------------------------------------------------------- sync


def read_known(folder: Path) -> dict[str, _Known]:
    """Resources written by earlier syncs (front matter `source: site`), by URL."""
    known: dict[str, _Known] = {}
    if not folder.is_dir():
        return known
    for path in sorted(folder.rglob("*.md")):
        try:
            text = normalize_newlines(path.read_text(encoding="utf-8"))
            front, _ = split_front_matter(text, str(path))
        except (OSError, UnicodeDecodeError, AssistantError):
            continue  # a broken file is for `build` to report
        if not front or front.get("source") != SOURCE or not front.get("url"):
            continue
        known[str(front["url"])] = _Known(
            path=path,
            url=str(front["url"]),
            etag=front.get("etag"),
            last_modified=front.get("last_modified"),
            lastmod=front.get("lastmod"),
            digest=str(front.get("content_sha256", "")),
        )
    return known


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def sync_site(
    settings: SyncSettings, corpus_dir: Path, *, progress: Progress | None = None
) -> SyncReport:
    """Bring `corpus_dir/site/` in step with the site; see the module docstring."""
    for name, pattern in (("--include", settings.include), ("--exclude", settings.exclude)):
        if pattern:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigurationError(
                    f"expression {name} invalide « {pattern} » : {exc}"
                ) from exc
    if urlsplit(settings.url).scheme not in ("http", "https"):
        raise ConfigurationError(f"adresse invalide « {settings.url} » : attendu http(s)://…")
    folder = Path(corpus_dir) / SITE_FOLDER
    known = read_known(folder)
    client = PoliteClient(settings)
    try:
        if progress:
            progress(0, 1, "Plan du site")
        try:
            listed = discover(client, settings.url)
        except (httpx.HTTPError, ValueError, PermissionError) as exc:
            raise ConfigurationError(f"plan du site illisible ({settings.url}) : {exc}") from exc
        pages, skipped = _select(listed, settings)
        allowed = [p for p in pages if client.allowed(p.url)]
        skipped += [p.url for p in pages if p not in allowed]  # robots.txt says no
        pages = allowed
        results: list[tuple[str, str, str | None, _Page]] = []  # (status, url, reason, page)
        done = [0]
        lock = threading.Lock()
        total = len(pages)

        def one(page: _Page) -> list[tuple[str, str, str | None, _Page]]:
            out = _sync_page(client, page, known, folder, settings)
            with lock:
                done[0] += 1
                if progress:
                    progress(done[0], total, "Pages du site")
            return out

        with ThreadPoolExecutor(max_workers=max(1, settings.concurrency)) as pool:
            for outcome in pool.map(one, pages):
                results.extend(outcome)
    finally:
        client.close()

    seen = {url for _, url, _, _ in results}
    gone = [url for status, url, _, _ in results if status == "gone"]
    listed_urls = {p.url for p in pages}
    removed: list[str] = []
    for url, item in known.items():
        left = url not in listed_urls and url not in seen and not _child_of(item, listed_urls)
        if url in gone or left:
            if not settings.dry_run:
                item.path.unlink(missing_ok=True)
            removed.append(url)
    by_status: dict[str, list[str]] = {}
    for status, url, _, _ in results:
        by_status.setdefault(status, []).append(url)
    return SyncReport(
        pages=len(pages),
        new=tuple(by_status.get("new", ())),
        changed=tuple(by_status.get("changed", ())),
        removed=tuple(sorted(removed)),
        unchanged=tuple(by_status.get("unchanged", ())),
        errors=tuple(
            SyncError(url, reason or "") for status, url, reason, _ in results if status == "error"
        ),
        skipped=tuple(skipped),
    )


def _child_of(item: _Known, listed: set[str]) -> bool:
    """A synced PDF stays while the page it came from stays (its parent is recorded)."""
    try:
        front, _ = split_front_matter(item.path.read_text(encoding="utf-8"), str(item.path))
    except (OSError, UnicodeDecodeError, AssistantError):
        return False
    return front is not None and str(front.get("parent")) in listed


def _select(pages: Iterable[_Page], settings: SyncSettings) -> tuple[list[_Page], list[str]]:
    keep, skipped = [], []
    for page in pages:
        if (settings.include and not re.search(settings.include, page.url)) or (
            settings.exclude and re.search(settings.exclude, page.url)
        ):
            skipped.append(page.url)
        else:
            keep.append(page)
    return keep, skipped


def _sync_page(
    client: PoliteClient,
    page: _Page,
    known: dict[str, _Known],
    folder: Path,
    settings: SyncSettings,
) -> list[tuple[str, str, str | None, _Page]]:
    """One page (and, with `pdf`, the PDFs it links to): new / changed / unchanged / gone /
    error, and the file written unless `dry_run`."""
    previous = known.get(page.url)
    if previous and page.lastmod and previous.lastmod and page.lastmod <= previous.lastmod:
        return [("unchanged", page.url, None, page)]  # the sitemap says nothing moved
    headers = {}
    if previous and previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous and previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    try:
        response = client.get(page.url, headers=headers)
    except PermissionError as exc:
        return [("error", page.url, str(exc), page)]
    except httpx.TimeoutException:
        return [("error", page.url, "délai dépassé : version précédente conservée", page)]
    except httpx.HTTPError as exc:
        return [("error", page.url, f"{_reason(exc)} : version précédente conservée", page)]
    if response.status_code in GONE:
        return [("gone", page.url, None, page)]
    if response.status_code == 304 and previous is not None:
        return [("unchanged", page.url, None, page)]
    if response.status_code != 200:
        return [("error", page.url, f"réponse HTTP {response.status_code}", page)]
    if len(response.content) > MAX_PAGE_BYTES:
        return [("error", page.url, "page trop volumineuse", page)]
    out: list[tuple[str, str, str | None, _Page]] = []
    if page.url.lower().endswith(".pdf") or "pdf" in response.headers.get("content-type", ""):
        pdf_status, reason = _store_pdf(response, page, previous, folder, settings)
        return [(pdf_status, page.url, reason, page)]
    title, date, body = extract_page(response.text, page.url)
    if not body.strip():
        return [("error", page.url, "contenu vide : version précédente conservée", page)]
    if len(body) > MAX_BODY_CHARS:
        return [("error", page.url, "texte trop long", page)]
    resource = Resource(
        id=resource_id_for(page.url),
        title=title or page.url,
        body=body + "\n",
        type="Site du réseau",
        date=enrich.normalize_date(date) if date else None,
        url=page.url,
        summary="",
    )
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    extra = {
        "source": SOURCE,
        "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
        "lastmod": page.lastmod,
        "content_sha256": digest,
        "synced_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    status = (
        "new" if previous is None else ("unchanged" if previous.digest == digest else "changed")
    )
    moved = status != "unchanged" or previous is None or _validators_moved(previous, extra)
    if moved and not settings.dry_run:
        path = previous.path if previous else folder / f"{resource.id}.md"
        _write_atomic(path, resource_to_markdown(resource, extra=extra))
    out.append((status, page.url, None, page))
    if settings.pdf:
        for link in _pdf_links(response.text, str(response.url)):
            child = _Page(link, parent=page.url)
            out.extend(_sync_page(client, child, known, folder, replace(settings, pdf=False)))
    return out


def _validators_moved(previous: _Known, extra: dict[str, Any]) -> bool:
    return (previous.etag, previous.last_modified, previous.lastmod) != (
        extra["etag"],
        extra["last_modified"],
        extra["lastmod"],
    )


def _store_pdf(
    response: httpx.Response,
    page: _Page,
    previous: _Known | None,
    folder: Path,
    settings: SyncSettings,
) -> tuple[str, str | None]:
    """A PDF (listed, or linked from a page with `pdf`): its text layer stored as a Markdown
    resource that names the page it came from (`parent`)."""
    from corpus.pdf_loader import load_pdf

    digest = hashlib.sha256(response.content).hexdigest()
    if previous is not None and previous.digest == digest:
        return "unchanged", None
    rid = resource_id_for(page.url)
    tmp = folder / f".{rid}.pdf.tmp"
    folder.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(response.content)
    try:
        pdf = load_pdf(tmp)
    except Exception as exc:
        tmp.unlink(missing_ok=True)
        return "error", f"PDF illisible : {getattr(exc, 'reason', exc)}"
    tmp.unlink(missing_ok=True)
    resource = replace(pdf, id=rid, url=page.url, type="Site du réseau", source_path="")
    extra = {
        "source": SOURCE,
        "parent": page.parent,
        "etag": response.headers.get("ETag"),
        "last_modified": response.headers.get("Last-Modified"),
        "lastmod": page.lastmod,
        "content_sha256": digest,
        "synced_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if not settings.dry_run:
        _write_atomic(folder / f"{rid}.md", resource_to_markdown(resource, extra=extra))
    return ("new" if previous is None else "changed"), None


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"réponse HTTP {exc.response.status_code}"
    return type(exc).__name__
