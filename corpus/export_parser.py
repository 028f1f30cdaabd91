"""Parse the network's page export (one text file, many resources) into `Resource` records.

Layout of the export::

    <site name>
    <title>
    <body…>
    [Catégorie [<value>]]
    Type de ressource
    <value>
    Ressource privée
    Oui|Non
    Résumé
    <summary: the body's opening again, sometimes slightly reworded>
    <next title>
    …

Nothing marks where a summary ends and the next title starts. The summary is aligned, in
order, with the paragraphs of the body it repeats; the first paragraph that matches no
upcoming body paragraph and looks like a title (one short line) starts the next resource.
The last summary runs to the end of the file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from difflib import SequenceMatcher

from corpus import enrich
from corpus.errors import InvalidResourceError
from corpus.models import Resource
from corpus.text import normalize_newlines

logger = logging.getLogger(__name__)

_LABELS = ("Catégorie", "Type de ressource", "Ressource privée", "Résumé")
_TITLE_MAX_CHARS = 180
_MATCH_RATIO = 0.8
_LOOKAHEAD = 3  # body paragraphs a summary paragraph may skip over


@dataclass(frozen=True)
class _Meta:
    start: int  # index of the block's first line
    end: int  # index of the line after «Résumé»
    type: str
    private: bool


def parse_export(text: str, *, source: str = "") -> list[Resource]:
    """Parse the page export `text` into resources, in file order.

    `source` names the file in error messages and becomes each resource's `source_path`.
    Raises `InvalidResourceError` when the text is empty or holds no metadata block.
    """
    where = source or "<export>"
    text = normalize_newlines(text)
    if not text.strip():
        raise InvalidResourceError(where, "l'export est vide")
    lines = text.split("\n")
    metas = _find_metadata_blocks(lines)
    if not metas:
        raise InvalidResourceError(
            where,
            "aucun bloc de métadonnées («Type de ressource» … «Résumé») : "
            "est-ce bien l'export des pages du site ?",
        )
    first_content = _first_non_blank(lines, 0)
    # The first non-blank line is the site name; the first title follows it.
    head_start = _first_non_blank(lines, first_content + 1)
    if head_start >= metas[0].start:
        raise InvalidResourceError(where, "pas de titre avant le premier bloc de métadonnées")
    head = lines[head_start : metas[0].start]

    resources: list[Resource] = []
    seen: set[str] = set()
    for index, meta in enumerate(metas):
        title, body = head[0].strip(), _clean_block(head[1:])
        tail_end = metas[index + 1].start if index + 1 < len(metas) else len(lines)
        tail = lines[meta.end : tail_end]
        is_last = index + 1 == len(metas)
        summary_lines, head = (tail, []) if is_last else _split_summary(tail, body)
        if not is_last and not head:
            raise InvalidResourceError(
                where, f"impossible de trouver le titre qui suit la ressource «{title}»"
            )
        resource = _build(title, body, _clean_block(summary_lines), meta, source)
        resource = _unique_id(resource, seen)
        seen.add(resource.id)
        resources.append(resource)
    logger.info("parsed %d resources from %s", len(resources), where)
    return resources


def _first_non_blank(lines: list[str], start: int) -> int:
    for i in range(start, len(lines)):
        if lines[i].strip():
            return i
    return len(lines)


def _find_metadata_blocks(lines: list[str]) -> list[_Meta]:
    """Locate each «Type de ressource … Résumé» block (with its optional «Catégorie»)."""
    metas: list[_Meta] = []
    stripped = [line.strip() for line in lines]
    for i, line in enumerate(stripped):
        if line != "Type de ressource":
            continue
        fields: dict[str, str] = {}
        label, j = "Type de ressource", i + 1
        while j < len(lines) and label != "Résumé":
            value = stripped[j]
            if value in _LABELS:
                label = value
            elif value:
                fields[label] = value
            j += 1
        if label != "Résumé" or "Type de ressource" not in fields:
            continue
        start = i
        prev = _previous_non_blank(stripped, i)
        if prev is not None and stripped[prev] == "Catégorie":
            start = prev
        elif prev is not None:
            before = _previous_non_blank(stripped, prev)
            if before is not None and stripped[before] == "Catégorie":
                start = before  # «Catégorie» followed by its value
        private = fields.get("Ressource privée", "Non").lower() in ("oui", "yes", "true")
        metas.append(_Meta(start, j, fields["Type de ressource"], private))
    return metas


def _previous_non_blank(stripped: list[str], index: int) -> int | None:
    for i in range(index - 1, -1, -1):
        if stripped[i]:
            return i
    return None


def _clean_block(lines: list[str]) -> str:
    """Join lines: whitespace-only lines become blank, runs of blank lines collapse to one."""
    text = "\n".join("" if not line.strip() else line for line in lines)
    text = re.sub(r"\n{3,}", "\n\n", text).strip("\n")
    return text.rstrip() + "\n" if text.strip() else ""


def _paragraphs(lines: list[str]) -> list[tuple[int, list[str]]]:
    """Blank-line separated paragraphs, each with the index of its first line."""
    paragraphs: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 0
    for i, line in enumerate(lines):
        if line.strip():
            if not current:
                start = i
            current.append(line)
        elif current:
            paragraphs.append((start, current))
            current = []
    if current:
        paragraphs.append((start, current))
    return paragraphs


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def _similar(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    if len(short) >= 40 and long_.startswith(short):
        return True
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return matcher.quick_ratio() >= _MATCH_RATIO and matcher.ratio() >= _MATCH_RATIO


def _split_summary(tail: list[str], body: str) -> tuple[list[str], list[str]]:
    """Split the lines after «Résumé» into (summary lines, next title + body lines)."""
    body_paragraphs = [_norm("\n".join(p)) for _, p in _paragraphs(body.split("\n"))]
    cursor = 0
    for start, paragraph in _paragraphs(tail):
        normalized = _norm("\n".join(paragraph))
        window = body_paragraphs[cursor : cursor + _LOOKAHEAD]
        hit = next((k for k, bp in enumerate(window) if _similar(normalized, bp)), None)
        if hit is not None:
            cursor += hit + 1
        elif _looks_like_title(paragraph[0]):
            return tail[:start], tail[start:]
        else:
            cursor += 1  # a reworded summary paragraph
    return tail, []


def _looks_like_title(line: str) -> bool:
    stripped = line.strip()
    return 0 < len(stripped) <= _TITLE_MAX_CHARS and not stripped.startswith(("•", "-", ">"))


def _clean_title(line: str) -> str:
    title = line.strip().strip("\u00a0 ")
    if len(title) > 2 and title[0] == title[-1] == '"':
        title = title[1:-1].strip()
    return title


def _build(title_line: str, body: str, summary: str, meta: _Meta, source: str) -> Resource:
    title = _clean_title(title_line)
    downloads = enrich.extract_downloads(body)
    keywords, keyword_date = enrich.extract_keywords(body)
    download_date = next((enrich.parse_french_date(d.date) for d in downloads if d.date), None)
    date = download_date or keyword_date or enrich.first_full_date(body)
    return Resource(
        id=enrich.slugify(title),
        title=title,
        body=body,
        type=meta.type,
        kind=enrich.infer_kind(title, body),
        summary=summary.strip(),
        themes=enrich.tag_themes(title, body),
        keywords=keywords,
        date=date,
        zone=enrich.extract_zone(body),
        url=enrich.extract_url(body),
        private=meta.private,
        downloads=downloads,
        source_path=source,
    )


def _unique_id(resource: Resource, seen: set[str]) -> Resource:
    if resource.id not in seen:
        return resource
    from dataclasses import replace

    n = 2
    while f"{resource.id}-{n}" in seen:
        n += 1
    logger.warning("duplicate title %r: id suffixed with -%d", resource.title, n)
    return replace(resource, id=f"{resource.id}-{n}")
