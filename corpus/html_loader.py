"""Read an HTML page into a `Resource`: visible text only, scripts and styles dropped."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from bs4 import BeautifulSoup, Tag

from corpus import enrich
from corpus.errors import InvalidResourceError
from corpus.models import Resource

logger = logging.getLogger(__name__)

_DROPPED = (
    "script",
    "style",
    "noscript",
    "template",
    "iframe",
    "object",
    "embed",
    "svg",
    "canvas",
    "head",
    "nav",
    "form",
    "button",
)
_BLOCKS = (
    "p",
    "div",
    "section",
    "article",
    "main",
    "header",
    "footer",
    "aside",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "ul",
    "ol",
    "table",
    "tr",
    "blockquote",
    "pre",
    "figure",
    "figcaption",
    "dl",
    "dt",
    "dd",
    "address",
    "hr",
)
_DATE_META = (
    "date",
    "dc.date",
    "dc.date.issued",
    "dcterms.date",
    "dcterms.issued",
    "article:published_time",
    "citation_publication_date",
    "pubdate",
)


def _meta(soup: BeautifulSoup, names: tuple[str, ...]) -> str | None:
    for tag in soup.find_all("meta"):
        if not isinstance(tag, Tag):
            continue
        key = str(tag.get("name") or tag.get("property") or "").strip().lower()
        content = tag.get("content")
        if key in names and isinstance(content, str) and content.strip():
            return content.strip()
    return None


def html_to_text(soup: BeautifulSoup | Tag) -> str:
    """Visible text of `soup` with paragraph breaks; list items start with «- »."""
    for br in soup.find_all("br"):
        br.replace_with("\n")
    for li in soup.find_all("li"):
        li.insert(0, "- ")
        li.insert_before("\n")
        li.insert_after("\n")
    for block in soup.find_all(_BLOCKS):
        block.insert_before("\n\n")
        block.insert_after("\n\n")
    text = soup.get_text()
    # Collapse ordinary whitespace runs inside lines; non-breaking spaces are kept.
    lines = [re.sub(r"[ \t\r\f\v]+", " ", line).strip(" \t") for line in text.split("\n")]
    return enrich.collapse_blank_lines("\n".join(lines))


def load_html(text: str, path: Path) -> Resource:
    """Parse HTML `text`: title from <title> or <h1>, meta description as summary."""
    where = str(path)
    soup = BeautifulSoup(text, "html.parser")
    title_tag = soup.find("title")
    h1 = soup.find("h1")
    title = title_tag.get_text(" ", strip=True) if isinstance(title_tag, Tag) else ""
    if not title and isinstance(h1, Tag):
        title = h1.get_text(" ", strip=True)
    summary = _meta(soup, ("description", "og:description")) or ""
    raw_date = _meta(soup, _DATE_META)
    keywords = _meta(soup, ("keywords",))
    for tag in soup.find_all(_DROPPED):
        if isinstance(tag, Tag):
            tag.decompose()
    root = soup.find("body") or soup
    body = html_to_text(root)
    if not title:
        title = next((line for line in body.split("\n") if line.strip()), "").strip()
    if not title:
        raise InvalidResourceError(where, "page HTML sans texte ni titre")
    return Resource(
        id=enrich.slugify(Path(where).stem),
        title=title,
        body=body + "\n" if body else "",
        summary=summary,
        keywords=tuple(k.strip() for k in keywords.split(",") if k.strip()) if keywords else (),
        date=enrich.normalize_date(raw_date) if raw_date else None,
        source_path=where,
    )
