"""Read a PDF's text layer into a `Resource` (pypdf; no OCR)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from pypdf import PdfReader, apply_configuration
from pypdf.errors import LimitReachedError, PyPdfError

from corpus import enrich
from corpus.errors import InvalidResourceError
from corpus.limits import MAX_BODY_CHARS, MAX_PDF_PAGES, MAX_PDF_STREAM_BYTES
from corpus.models import Resource
from corpus.text import normalize_newlines

logger = logging.getLogger(__name__)


def load_pdf(path: Path) -> Resource:
    """Extract the text of every page; title from the PDF metadata, else the first line.

    A PDF without a text layer (a scan) is an error: it must go through OCR first.
    """
    where = str(path)
    try:
        with apply_configuration(
            zlib_maximum_output_length=MAX_PDF_STREAM_BYTES,
            lzw_maximum_output_length=MAX_PDF_STREAM_BYTES,
            run_length_maximum_output_length=MAX_PDF_STREAM_BYTES,
            brotli_maximum_output_length=MAX_PDF_STREAM_BYTES,
            stream_decoding_work_maximum_length=4 * MAX_PDF_STREAM_BYTES,
        ):
            reader = PdfReader(path)
            if reader.is_encrypted:
                reader.decrypt("")
            count = len(reader.pages)
            if count > MAX_PDF_PAGES:
                raise InvalidResourceError(
                    where,
                    f"PDF de {count} pages (maximum {MAX_PDF_PAGES}) : découpez-le en plusieurs "
                    "fichiers",
                )
            pages: list[str] = []
            total = 0
            for page in reader.pages:
                pages.append(page.extract_text() or "")
                total += len(pages[-1])
                if total > MAX_BODY_CHARS:
                    raise InvalidResourceError(
                        where,
                        f"texte du PDF trop long (plus de {MAX_BODY_CHARS:,} caractères) : "
                        "découpez-le en plusieurs fichiers".replace(",", " "),
                    )
            metadata = reader.metadata
    except InvalidResourceError:
        raise
    except LimitReachedError as exc:
        raise InvalidResourceError(
            where, f"PDF refusé : contenu compressé trop volumineux une fois décompressé ({exc})"
        ) from exc
    except (PyPdfError, OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
        raise InvalidResourceError(where, f"PDF illisible ou endommagé : {exc}") from exc
    text = enrich.collapse_blank_lines("\n\n".join(normalize_newlines(page) for page in pages))
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
