"""Read and write a resource as a Markdown file with a YAML front matter.

::

    ---
    id: fiche-deniche-pour-vous-n87-collectif-gare
    title: 'Fiche Déniché pour vous n°87 : Collectif GARE'
    type: Ressources RTES
    kind: Fiche initiative
    …
    summary: |-
      Le collectif GARE …
    ---

    <body>

`Resource.body` is exactly the text after the closing `---` line, leading newlines removed,
line endings normalized to LF; citation offsets refer to it, so nothing else is trimmed.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

import yaml

from corpus import enrich
from corpus.errors import InvalidResourceError
from corpus.limits import MAX_FRONT_MATTER_CHARS
from corpus.models import Download, Resource
from corpus.text import normalize_newlines

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"^(?:---|\.\.\.)[ \t]*$")


class _NoAliasLoader(yaml.SafeLoader):
    """The safe loader without anchors and aliases (`&a` / `*a`): a front matter never needs
    them, and nested aliases expand a few hundred bytes into gigabytes («billion laughs»)."""

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "ancres et alias YAML (& et *) refusés", event.start_mark
            )
        return super().compose_node(parent, index)


def _load_yaml(raw: str) -> Any:
    """Parse a front matter safely and without anchors or aliases. With libyaml (PyYAML's C
    binding, in its wheels) the events are checked then the document built in C, about 15×
    faster than the pure-Python loader, which is the fallback."""
    if not yaml.__with_libyaml__:
        return yaml.load(raw, Loader=_NoAliasLoader)
    for event in yaml.parse(raw, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise yaml.composer.ComposerError(
                None, None, "ancres et alias YAML (& et *) refusés", event.start_mark
            )
    return yaml.load(raw, Loader=yaml.CSafeLoader)


class _Dumper(yaml.SafeDumper):
    """Safe dumper writing multi-line strings as `|` block scalars."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _represent_str)


def resource_to_markdown(resource: Resource, *, extra: dict[str, Any] | None = None) -> str:
    """Render `resource` as front matter + body; `resource_from_markdown` reads it back.
    `extra` keys (e.g. a synced page's `source`, `etag`) are appended to the front matter."""
    # Trailing spaces on a line would force YAML to quote the summary: drop them there.
    summary = "\n".join(line.rstrip(" \t") for line in resource.summary.split("\n")).strip()
    front: dict[str, Any] = {
        "id": resource.id,
        "title": resource.title,
        "type": resource.type,
        "kind": resource.kind,
        "private": resource.private,
        "date": resource.date,
        "zone": resource.zone,
        "url": resource.url,
        "themes": list(resource.themes),
        "keywords": list(resource.keywords),
        "downloads": [
            {"label": d.label, "pages": d.pages, "date": d.date} for d in resource.downloads
        ],
        "summary": summary,
        **_freshness(resource),
        **(extra or {}),
    }
    return dump_front_matter(front) + resource.body


def dump_front_matter(front: dict[str, Any]) -> str:
    """`---`, the mapping as YAML (multi-line strings as blocks), `---` and a blank line."""
    header = yaml.dump(front, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=10_000)
    return f"---\n{header}---\n\n"


STATUSES = ("current", "archived", "superseded")


def _freshness(resource: Resource) -> dict[str, Any]:
    """The freshness keys, written only when they say something."""
    out: dict[str, Any] = {}
    if resource.status != "current":
        out["status"] = resource.status
    if resource.superseded_by:
        out["superseded_by"] = resource.superseded_by
    if resource.review_by:
        out["review_by"] = resource.review_by
    return out


def split_front_matter(text: str, path: str) -> tuple[dict[str, Any] | None, str]:
    """Return (front matter mapping or None, body) of a Markdown text (LF line endings)."""
    lines = text.split("\n")
    if not lines or lines[0].rstrip() != "---":
        return None, text
    for index in range(1, len(lines)):
        if _FENCE.match(lines[index]):
            break
    else:
        raise InvalidResourceError(path, "front matter YAML non fermé (ligne «---» manquante)")
    raw = "\n".join(lines[1:index])
    if len(raw) > MAX_FRONT_MATTER_CHARS:
        raise InvalidResourceError(
            path,
            f"front matter trop long ({len(raw)} caractères, maximum {MAX_FRONT_MATTER_CHARS})",
        )
    try:
        data = _load_yaml(raw) if raw.strip() else {}
    except yaml.YAMLError as exc:
        raise InvalidResourceError(path, f"front matter YAML invalide : {exc}") from exc
    if not isinstance(data, dict):
        raise InvalidResourceError(
            path, "le front matter YAML doit être une liste de clés «clé: valeur»"
        )
    body = "\n".join(lines[index + 1 :]).lstrip("\n")
    return data, body


def resource_from_markdown(text: str, path: str | Path) -> Resource:
    """Parse a Markdown resource; without front matter the title is the first `# heading`.

    Raises `InvalidResourceError` for a YAML error, a missing or empty title, or a field
    of the wrong shape.
    """
    where = str(path)
    text = normalize_newlines(text)
    front, body = split_front_matter(text, where)
    stem_id = enrich.slugify(Path(where).stem)
    if front is None:
        title, body = _title_from_text(body)
        if not title:
            raise InvalidResourceError(where, "fichier vide : pas de titre")
        return Resource(id=stem_id, title=title, body=body, source_path=where)
    return _resource_from_front(front, body, where, stem_id)


def _title_from_text(text: str) -> tuple[str, str]:
    """(title, body): the first `# heading` if it opens the text, else the first line."""
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return "", ""
    heading = re.match(r"^#\s+(.+?)\s*#*\s*$", lines[first])
    if heading:
        return heading.group(1), "\n".join(lines[first + 1 :]).lstrip("\n")
    for line in lines:
        match = re.match(r"^#\s+(.+?)\s*#*\s*$", line)
        if match:
            return match.group(1), text
    return lines[first].strip().lstrip("#").strip(), "\n".join(lines[first + 1 :]).lstrip("\n")


def _text(front: dict[str, Any], key: str, where: str) -> str | None:
    value = front.get(key)
    if value is None:
        return None
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()[:10]
    if isinstance(value, bool | dict | list):
        raise InvalidResourceError(where, f"la clé «{key}» doit être un texte")
    return str(value).strip()


def _strings(front: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = front.get(key)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [v for v in value.split(",")]
    if not isinstance(value, list):
        raise InvalidResourceError(where, f"la clé «{key}» doit être une liste")
    return tuple(str(v).strip() for v in value if v is not None and str(v).strip())


def _downloads(front: dict[str, Any], where: str) -> tuple[Download, ...]:
    value = front.get("downloads") or []
    if not isinstance(value, list):
        raise InvalidResourceError(where, "la clé «downloads» doit être une liste")
    downloads = []
    for item in value:
        if isinstance(item, str):
            downloads.append(Download(label=item))
            continue
        if not isinstance(item, dict) or not item.get("label"):
            raise InvalidResourceError(where, "chaque élément de «downloads» demande un «label»")
        pages = item.get("pages")
        try:
            pages = int(pages) if pages is not None else None
        except (TypeError, ValueError) as exc:
            raise InvalidResourceError(where, f"«pages» n'est pas un nombre : {pages!r}") from exc
        date = None if item.get("date") is None else str(item["date"])
        downloads.append(Download(label=str(item["label"]), pages=pages, date=date))
    return tuple(downloads)


def _resource_from_front(front: dict[str, Any], body: str, where: str, stem_id: str) -> Resource:
    title = _text(front, "title", where)
    if not title:
        raise InvalidResourceError(where, "le front matter n'a pas de «title»")
    date = _text(front, "date", where)
    private = front.get("private", False)
    if isinstance(private, str):
        private = private.strip().lower() in ("oui", "yes", "true", "1")
    return Resource(
        id=_text(front, "id", where) or stem_id,
        title=title,
        body=body,
        type=_text(front, "type", where) or "",
        kind=_text(front, "kind", where) or "",
        summary=_text(front, "summary", where) or "",
        themes=_strings(front, "themes", where),
        keywords=_strings(front, "keywords", where),
        date=enrich.normalize_date(date) if date else None,
        zone=_text(front, "zone", where) or None,
        url=_text(front, "url", where) or None,
        private=bool(private),
        downloads=_downloads(front, where),
        status=_status(front, where),
        superseded_by=_text(front, "superseded_by", where) or None,
        review_by=_review_by(front, where),
        source_path=where,
    )


def _status(front: dict[str, Any], where: str) -> str:
    status = (_text(front, "status", where) or "current").lower()
    if status not in STATUSES:
        raise InvalidResourceError(
            where, f"«status» inconnu « {status} » : current, archived ou superseded"
        )
    if status == "superseded" and not front.get("superseded_by"):
        raise InvalidResourceError(where, "«status: superseded» demande «superseded_by» (un id)")
    return status


def _review_by(front: dict[str, Any], where: str) -> str | None:
    raw = _text(front, "review_by", where)
    if not raw:
        return None
    date = enrich.normalize_date(raw)
    if date is None:
        raise InvalidResourceError(where, f"«review_by» n'est pas une date : « {raw} »")
    return date
