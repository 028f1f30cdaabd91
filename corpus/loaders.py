"""Read corpus files (Markdown, text, HTML, PDF) into `Resource` records.

`load_file` reads one file and raises `InvalidResourceError`; `load_corpus` reads a whole
folder, keeps going past bad files and lists them in `CorpusLoad.errors`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from corpus import enrich
from corpus.errors import CorpusNotFoundError, InvalidResourceError
from corpus.html_loader import load_html
from corpus.limits import MAX_TEXT_FILE_BYTES, check_resource
from corpus.markdown_io import resource_from_markdown
from corpus.models import Resource
from corpus.pdf_loader import load_pdf
from corpus.text import normalize_newlines

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"}
)
_SKIPPED_NAMES = frozenset({"readme.md"})


@dataclass(frozen=True)
class FileError:
    """A corpus file that could not be loaded, and why (in French, for the staff)."""

    path: str
    reason: str


@dataclass(frozen=True)
class CorpusLoad:
    """The outcome of reading a corpus folder: the resources and the per-file errors."""

    resources: tuple[Resource, ...]
    errors: tuple[FileError, ...]


def read_text(path: Path) -> str:
    """Read a UTF-8 file (BOM accepted) with LF line endings; undecodable bytes and files over
    `MAX_TEXT_FILE_BYTES` are an error."""
    try:
        size = path.stat().st_size
        if size > MAX_TEXT_FILE_BYTES:
            raise InvalidResourceError(
                str(path),
                f"fichier trop volumineux ({size / 1e6:.1f} Mo, maximum "
                f"{MAX_TEXT_FILE_BYTES / 1e6:.0f} Mo pour un fichier texte)",
            )
        raw = path.read_bytes()
    except OSError as exc:
        reason = f"lecture impossible : {exc.strerror or exc}"
        raise InvalidResourceError(str(path), reason) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidResourceError(
            str(path),
            f"le fichier n'est pas en UTF-8 (octet {exc.start}) : réenregistrez-le en UTF-8",
        ) from exc
    return normalize_newlines(text)


def load_file(path: Path) -> Resource:
    """Read one corpus file into a resource with `source_path` and `content_hash` set.

    Raises `InvalidResourceError` (unsupported extension, unreadable file, bad front matter,
    PDF without text layer, empty body…).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".md", ".markdown"):
        resource = resource_from_markdown(read_text(path), path)
    elif suffix == ".txt":
        resource = _load_txt(path)
    elif suffix in (".html", ".htm"):
        resource = load_html(read_text(path), path)
    elif suffix == ".pdf":
        resource = load_pdf(path)
    else:
        raise InvalidResourceError(str(path), f"extension non prise en charge : «{suffix}»")
    if not resource.body.strip():
        raise InvalidResourceError(str(path), "le texte de la ressource est vide")
    check_resource(resource, str(path))
    return replace(resource, source_path=str(path)).with_hash()


def _load_txt(path: Path) -> Resource:
    text = read_text(path)
    lines = text.split("\n")
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        raise InvalidResourceError(str(path), "fichier vide")
    body = "\n".join(lines[first + 1 :]).lstrip("\n")
    return Resource(
        id=enrich.slugify(path.stem),
        title=lines[first].strip(),
        body=body,
        source_path=str(path),
    )


def _is_candidate(path: Path, folder: Path) -> bool:
    relative = path.relative_to(folder)
    if any(part.startswith(".") for part in relative.parts):
        return False
    if path.name.lower() in _SKIPPED_NAMES or not path.is_file():
        return False
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        logger.debug("ignored (unsupported extension): %s", path)
        return False
    return True


def corpus_files(folder: Path) -> list[Path]:
    """The supported files below `folder`, recursively, sorted, hidden files and README skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CorpusNotFoundError(
            f"Dossier du corpus introuvable : {folder}. "
            "Vérifiez le chemin ou créez le dossier et déposez-y les ressources."
        )
    return sorted(p for p in folder.rglob("*") if _is_candidate(p, folder))


def load_corpus(folder: Path) -> CorpusLoad:
    """Load every supported file below `folder`; a bad file is reported, the others load.

    A duplicate id is an error on the second file (in sorted path order). Raises
    `CorpusNotFoundError` when `folder` is not a directory.
    """
    resources: list[Resource] = []
    errors: list[FileError] = []
    seen: dict[str, str] = {}
    for path in corpus_files(Path(folder)):
        try:
            resource = load_file(path)
        except InvalidResourceError as exc:
            logger.warning("skipped %s: %s", path, exc.reason)
            errors.append(FileError(str(path), exc.reason))
            continue
        if resource.id in seen:
            reason = f"identifiant «{resource.id}» déjà utilisé par {seen[resource.id]}"
            logger.warning("skipped %s: %s", path, reason)
            errors.append(FileError(str(path), reason))
            continue
        seen[resource.id] = str(path)
        resources.append(resource)
    logger.info("loaded %d resources (%d errors) from %s", len(resources), len(errors), folder)
    return CorpusLoad(tuple(resources), tuple(errors))
