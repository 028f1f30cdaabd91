"""Limits on what one corpus file may hold, so that a small malicious or broken file cannot
take the memory or the time of a build (YAML alias bombs, compressed PDF text, endless
metadata). A file over a limit is refused with a French reason listed by `build` and the staff
page; the other files load as usual.
"""

from __future__ import annotations

from corpus.errors import InvalidResourceError
from corpus.models import Resource

MAX_TEXT_FILE_BYTES = 5_000_000  # .md, .txt, .html read from disk
MAX_FRONT_MATTER_CHARS = 64_000
MAX_BODY_CHARS = 400_000  # extracted text of one resource (≈ 130 pages; ≈ 600 passages)
MAX_PDF_PAGES = 400
MAX_PDF_STREAM_BYTES = 10_000_000  # decompressed bytes of one PDF stream
MAX_SHORT_FIELD_CHARS = 500  # id, title, type, kind, zone, url, date, download labels
MAX_SUMMARY_CHARS = 20_000
MAX_LIST_ITEMS = 50  # themes, keywords, downloads
MAX_LIST_ITEM_CHARS = 200


def check_resource(resource: Resource, where: str) -> None:
    """Raise `InvalidResourceError` when a field of `resource` is over its limit."""
    if len(resource.body) > MAX_BODY_CHARS:
        raise InvalidResourceError(
            where,
            f"texte trop long ({len(resource.body):,} caractères, maximum {MAX_BODY_CHARS:,}) : "
            "découpez le document en plusieurs ressources".replace(",", " "),
        )
    short = {
        "id": resource.id,
        "title": resource.title,
        "type": resource.type,
        "kind": resource.kind,
        "zone": resource.zone or "",
        "url": resource.url or "",
        "date": resource.date or "",
    }
    for name, value in short.items():
        if len(value) > MAX_SHORT_FIELD_CHARS:
            raise InvalidResourceError(
                where,
                f"champ «{name}» trop long ({len(value)} caractères, maximum {MAX_SHORT_FIELD_CHARS})",
            )
    if len(resource.summary) > MAX_SUMMARY_CHARS:
        raise InvalidResourceError(
            where,
            f"résumé trop long ({len(resource.summary)} caractères, maximum {MAX_SUMMARY_CHARS})",
        )
    lists = {
        "themes": resource.themes,
        "keywords": resource.keywords,
        "downloads": tuple(d.label for d in resource.downloads),
    }
    for name, items in lists.items():
        if len(items) > MAX_LIST_ITEMS:
            raise InvalidResourceError(
                where,
                f"liste «{name}» trop longue ({len(items)} éléments, maximum {MAX_LIST_ITEMS})",
            )
        longest = max((len(i) for i in items), default=0)
        if longest > MAX_LIST_ITEM_CHARS:
            raise InvalidResourceError(
                where,
                f"élément de «{name}» trop long ({longest} caractères, maximum {MAX_LIST_ITEM_CHARS})",
            )
