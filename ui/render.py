"""Pure HTML rendering of answers, citations and resources for the Gradio app.

Every piece of text coming from a question, an answer or a resource is HTML-escaped *before*
it is wrapped in tags, so a resource or a question holding `<script>`, `onerror=` attributes,
`javascript:` links or Markdown tricks is displayed as inert text. Gradio's own sanitizing is
a second line of defence, not the first.
"""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

from assistant.compose import LOW_CONFIDENCE
from assistant.models import Answer, Citation
from corpus.models import Resource
from corpus.text import FRENCH_MONTHS, normalize_newlines

Span = tuple[int, int]
# A layer of spans to wrap: (spans, opening tag, closing tag). Earlier layers wrap outside.
Layer = tuple[Sequence[Span], str, str]

MONTHS = FRENCH_MONTHS  # for dates shown to users
_MARKER = re.compile(r"\[(\d{1,3})\]")
PASSAGE_ANCHOR = "passage-cite"


def esc(text: object) -> str:
    """HTML-escape any value (quotes included); None becomes the empty string."""
    return html.escape("" if text is None else str(text), quote=True)


def _text_html(text: str) -> str:
    """Escaped text with line breaks turned into `<br>` (CRLF counted once)."""
    return esc(normalize_newlines(text)).replace("\n", "<br>")


def spans_html(text: str, layers: Sequence[Layer]) -> str:
    """Escape `text` and wrap the character spans of each layer in that layer's tags.

    Spans may overlap or nest across layers; the output is always well nested (a segment
    covered by several layers is wrapped by each, in layer order). Out-of-range spans are
    clipped; empty ones are ignored.
    """
    n = len(text)
    clipped: list[list[Span]] = []
    cuts = {0, n}
    for spans, _, _ in layers:
        kept = []
        for start, end in spans:
            start, end = max(0, min(int(start), n)), max(0, min(int(end), n))
            if start < end:
                kept.append((start, end))
                cuts.update((start, end))
        clipped.append(kept)
    bounds = sorted(cuts)
    out: list[str] = []
    for a, b in itertools.pairwise(bounds):
        raw = text[a:b]
        if raw.endswith("\r") and text[b : b + 1] == "\n":
            raw = raw[:-1]  # a CRLF cut by a span boundary is one line break, not two
        if not raw:
            continue
        piece = _text_html(raw)
        for (_, open_tag, close_tag), spans in reversed(list(zip(layers, clipped, strict=True))):
            if any(s <= a and b <= e for s, e in spans):
                piece = f"{open_tag}{piece}{close_tag}"
        out.append(piece)
    return "".join(out)


def safe_url(url: str | None) -> str | None:
    """`url` when it is a plain http(s) address, else None (no `javascript:`, `data:`…)."""
    if not url:
        return None
    url = url.strip()
    if any(c.isspace() or ord(c) < 32 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url


def french_date(date: str | None) -> str:
    """«2020-09-10» → «10 septembre 2020», «2020-09» → «septembre 2020»; else as given."""
    if not date:
        return ""
    match = re.fullmatch(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?", date.strip())
    if not match:
        return date
    year, month, day = match.groups()
    if not month or not 1 <= int(month) <= 12:
        return year
    text = f"{MONTHS[int(month) - 1]} {year}"
    if day and 1 <= int(day) <= 31:
        text = f"{'1er' if int(day) == 1 else int(day)} {text}"
    return text


def _link(url: str | None) -> str:
    safe = safe_url(url)
    if safe is None:
        return ""
    return (
        f'<a class="original-link" href="{esc(safe)}" rel="noopener noreferrer" '
        f'target="_blank">Lien vers l\'original</a>'
    )


def citation_type(citation: Citation) -> str:
    """What the cited document is («Guide»), or its export type when the kind is unknown."""
    return citation.kind or citation.type


def answer_html(answer: Answer) -> str:
    """The answer text, escaped, with `[n]` markers as superscript badges pointing to the
    sources panel; notices (e.g. a truncated question) are shown above."""
    parts = []
    for notice in answer.notices:
        if notice == LOW_CONFIDENCE:  # the middle outcome: shown as such, not as a remark
            parts.append(
                '<div class="notice low-confidence" role="note">'
                f"<strong>Réponse incertaine :</strong> {esc(notice)}</div>"
            )
        else:
            parts.append(f'<div class="notice"><strong>Remarque :</strong> {esc(notice)}</div>')
    titles = {c.n: c.title for c in answer.citations}

    def badge(match: re.Match[str]) -> str:
        n = int(match.group(1))
        if n not in titles:
            return match.group(0)
        # The chat's sanitizer drops aria-* attributes: the visible «[n]» comes from CSS
        # (`.cite-n{n}::before`, with an empty alternative text) and the link's own text,
        # visually hidden, is its accessible name: « source n : titre ».
        return (
            f'<sup class="cite-badge"><a href="#source-{n}" title="{esc(titles[n])}" '
            f'class="cite-n{n}"><span class="visually-hidden">source {n} : '
            f"{esc(titles[n])}</span></a></sup>"
        )

    body = _MARKER.sub(badge, _text_html(answer.text))
    css = {"abstained": "answer abstained", "low_confidence": "answer low-confidence"}.get(
        answer.outcome, "answer"
    )
    parts.append(f'<div class="{css}">{body}</div>')
    return "".join(parts)


def passage_html(citation: Citation) -> str:
    """The cited passage with question words in `<mark>` and the quoted sentences in bold."""
    return spans_html(
        citation.passage,
        [
            (citation.used, '<strong class="used">', "</strong>"),
            (citation.highlights, "<mark>", "</mark>"),
        ],
    )


def relevance_html(score: float) -> str:
    """The relevance of a source as a small bar and a percentage."""
    pct = round(max(0.0, min(1.0, float(score))) * 100)
    return (
        f'<span class="relevance" title="Pertinence : {pct} %">'
        f'<span class="relevance-bar"><span style="width:{pct}%"></span></span> '
        f"Pertinence : {pct}\u00a0%</span>"
    )


def citation_html(citation: Citation) -> str:
    """One source card: number, title, type, date, link, relevance and passage."""
    meta = [esc(x) for x in (citation_type(citation), french_date(citation.date)) if x]
    link = _link(citation.url)
    if link:
        meta.append(link)
    return (
        f'<div class="source" id="source-{citation.n}">'
        f'<div class="source-head"><span class="source-n">[{citation.n}]</span> '
        f'<span class="source-title">{esc(citation.title)}</span></div>'
        f'<div class="source-meta">{" · ".join(meta)}</div>'
        f"{relevance_html(citation.score)}"
        f'<blockquote class="passage">{passage_html(citation)}</blockquote>'
        "</div>"
    )


def citations_html(answer: Answer | None) -> str:
    """The sources panel for `answer`."""
    if answer is None:
        return '<p class="no-sources">Les sources de la réponse s\'afficheront ici.</p>'
    if not answer.citations:
        return '<p class="no-sources">Aucune source citée pour cette réponse.</p>'
    cards = "".join(citation_html(c) for c in answer.citations)
    return f'<div class="sources">{cards}</div>'


def _passage_span(resource: Resource, citation: Citation | None) -> Span | None:
    """Where the cited passage sits in `resource.body`, checked against the passage text."""
    if citation is None or citation.resource_id != resource.id:
        return None
    body = resource.body
    in_range = 0 <= citation.start < citation.end <= len(body)
    same = not citation.passage or body[citation.start : citation.end] == citation.passage
    if in_range and same:
        return citation.start, citation.end
    found = body.find(citation.passage) if citation.passage else -1
    if found >= 0:  # the index is older than the resource: fall back to the text itself
        return found, found + len(citation.passage)
    return None


def resource_html(resource: Resource, citation: Citation | None = None) -> str:
    """The whole resource (title, metadata, summary, body) with the cited passage
    highlighted in place and anchored (`#passage-cite`) so it can be scrolled into view."""
    rows: list[tuple[str, str]] = []
    kind = resource.kind or resource.type
    if kind:
        rows.append(("Type", esc(kind)))
    if resource.type and resource.kind:
        rows.append(("Catégorie", esc(resource.type)))
    if resource.date:
        rows.append(("Date", esc(french_date(resource.date))))
    if resource.zone:
        rows.append(("Zone", esc(resource.zone)))
    if resource.themes:
        rows.append(("Thèmes", esc(", ".join(resource.themes))))
    if resource.keywords:
        rows.append(("Mots-clés", esc(", ".join(resource.keywords))))
    link = _link(resource.url)
    if link:
        rows.append(("Source", link))
    meta = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)

    span = _passage_span(resource, citation)
    layers: list[Layer] = []
    if span is not None:
        start = span[0]
        layers.append(([span], f'<mark class="cited" id="{PASSAGE_ANCHOR}">', "</mark>"))
        assert citation is not None
        used = [(start + a, start + b) for a, b in citation.used]
        layers.append((used, '<strong class="used">', "</strong>"))
    # The anchor id must appear once: only the first segment of the cited span keeps it.
    body = spans_html(resource.body, layers)
    if span is not None:
        opening = f'<mark class="cited" id="{PASSAGE_ANCHOR}">'
        head, _, tail = body.partition(opening)
        body = head + opening + tail.replace(opening, '<mark class="cited">')

    parts = [
        '<article class="resource">',
        f'<h3 class="resource-title">{esc(resource.title)}</h3>',
        f'<dl class="resource-meta">{meta}</dl>' if meta else "",
        f'<p class="resource-summary">{_text_html(resource.summary)}</p>'
        if resource.summary
        else "",
        f'<div class="resource-body">{body}</div>',
        "</article>",
    ]
    return "".join(parts)
