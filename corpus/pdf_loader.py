"""Read a PDF's text layer into a `Resource` (pypdf; no OCR)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from corpus import enrich
from corpus.errors import InvalidResourceError
from corpus.models import Resource

logger = logging.getLogger(__name__)


def load_pdf(path: Path) -> Resource:
    """Extract the text of every page; title from the PDF metadata, else the first line.

    A PDF without a text layer (a scan) is an error: it must go through OCR first.
    """
    where = str(path)
    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            reader.decrypt("")
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata = reader.metadata
    except (PyPdfError, OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidResourceError(where, f"PDF illisible ou endommagé : {exc}") from exc
    text = enrich.collapse_blank_lines(
        "\n\n".join(page.replace("\r\n", "\n").replace("\r", "\n") for page in pages)
    )
    if not text.strip():
        raise InvalidResourceError(
            where, "pas de couche texte (PDF scanné ?) : passez-le d'abord à l'OCR"
        )
    title = ""
    date = None
    if metadata is not None:
        title = (metadata.title or "").strip()
        created = metadata.get("/CreationDate")
        if isinstance(created, str):
            match = re.match(r"D:(\d{4})(\d{2})(\d{2})", created)
            date = "-".join(match.groups()) if match else None
    lines = text.split("\n")
    if not title:
        title = lines[0].strip()
        text = "\n".join(lines[1:]).lstrip("\n")
    return Resource(
        id=enrich.slugify(Path(where).stem),
        title=title,
        body=text + "\n" if text else "",
        date=date,
        source_path=where,
    )
