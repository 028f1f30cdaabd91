"""The records that flow through the corpus stage: `Resource`, `Download` and `Chunk`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Download:
    """A downloadable document mentioned by a resource («Téléchargez le livret … (28 pages - septembre 2020)»)."""

    label: str
    pages: int | None = None
    date: str | None = None  # as written, e.g. "septembre 2020"


@dataclass(frozen=True)
class Resource:
    """One resource of the base (guide, technical sheet, webinar report, initiative sheet…).

    `body` is the text that chunks and citation offsets refer to. `date` is ISO-like:
    "2020-09-29", "2020-09" or "2020".
    """

    id: str
    title: str
    body: str
    type: str = ""  # "Type de ressource" of the export, e.g. "Ressources RTES", "Autres"
    kind: str = ""  # what the document is: "Guide", "Fiche technique", "Webinaire"…
    summary: str = ""
    themes: tuple[str, ...] = ()
    keywords: tuple[str, ...] = ()
    date: str | None = None
    zone: str | None = None  # «Zone d'action»
    url: str | None = None
    private: bool = False
    downloads: tuple[Download, ...] = ()
    # Freshness: "current", "archived" (never cited) or "superseded" (by `superseded_by`);
    # `review_by`: the date after which staff should check it is still right.
    status: str = "current"
    superseded_by: str | None = None
    review_by: str | None = None
    source_path: str = ""
    content_hash: str = field(default="", compare=False)

    def with_hash(self) -> Resource:
        """Return a copy whose `content_hash` covers every indexed field."""
        from dataclasses import replace

        return replace(self, content_hash=resource_hash(self))


def resource_to_dict(resource: Resource) -> dict[str, Any]:
    """`dataclasses.asdict(resource)` without its deep copies (6× faster on a large base);
    `id` comes first."""
    row = {f.name: getattr(resource, f.name) for f in fields(Resource)}
    row["downloads"] = [vars(d) for d in resource.downloads]
    return row


def resource_from_dict(data: dict[str, Any]) -> Resource:
    """The resource that `dataclasses.asdict` turned into `data` (JSON lists back to tuples)."""
    data = dict(data)
    data["downloads"] = tuple(Download(**x) for x in data.get("downloads", ()))
    data["themes"] = tuple(data.get("themes", ()))
    data["keywords"] = tuple(data.get("keywords", ()))
    return Resource(**data)


def resource_hash(resource: Resource) -> str:
    """A stable hash of everything that influences chunks, vectors, filters and citations."""
    parts = [
        resource.id,
        resource.title,
        resource.body,
        resource.type,
        resource.kind,
        resource.summary,
        "|".join(resource.themes),
        "|".join(resource.keywords),
        resource.date or "",
        resource.zone or "",
        resource.url or "",
        str(resource.private),
        "|".join(f"{d.label}/{d.pages}/{d.date}" for d in resource.downloads),
    ]
    if (resource.status, resource.superseded_by, resource.review_by) != ("current", None, None):
        parts += [resource.status, resource.superseded_by or "", resource.review_by or ""]
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
    return digest[:32]


@dataclass(frozen=True)
class Chunk:
    """A passage of a resource body: `resource.body[start:end] == text`."""

    resource_id: str
    position: int  # 0-based order of the chunk inside its resource
    start: int
    end: int
    text: str
    title: str = ""  # the resource title, prepended when embedding for context

    @property
    def id(self) -> str:
        return f"{self.resource_id}#{self.position}"

    def embedding_text(self) -> str:
        """The text given to the embedder: the title gives each passage its context."""
        return f"{self.title}\n{self.text}" if self.title else self.text
