"""Corpus administration for the staff page: safe uploads, removals, and the resource list.

No Gradio here: `ui/admin.py` only formats what these functions return. Every refusal raises
`InvalidResourceError` with a French reason the staff can act on; nothing is written when a
file is refused.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from corpus.errors import AssistantError, InvalidResourceError
from corpus.loaders import SUPPORTED_EXTENSIONS, load_corpus, load_file
from corpus.models import Resource
from embeddings.store import ResourceIndex, read_manifest

if TYPE_CHECKING:
    from assistant.service import Assistant

log = logging.getLogger(__name__)

MAX_NAME_CHARS = 120  # length cap of a sanitized file name, extension included
_MB = 1024 * 1024
_RESERVED_NAMES = frozenset({"readme.md"})  # skipped by the corpus loader

STATUS_INDEXED = "indexée"
STATUS_CHANGED = "modifiée — à reconstruire"
STATUS_NEW = "nouvelle — à reconstruire"
STATUS_REMOVED = "supprimée — à reconstruire"
STATUS_ERROR = "erreur : "


@dataclass(frozen=True)
class ResourceRow:
    """One line of the staff's resource table."""

    id: str
    title: str
    kind: str
    date: str
    file: str  # relative to the corpus folder when inside it
    status: str

    def as_list(self) -> list[str]:
        """The row as shown in the table: titre, type, date, fichier, état."""
        return [self.title, self.kind, self.date, self.file, self.status]


def sanitize_filename(filename: str) -> str:
    """A safe file name for `filename`: basename only, ASCII `[a-z0-9._-]`, no leading dot.

    Raises `InvalidResourceError` for an unsupported extension, an empty name or a name the
    corpus loader would ignore.
    """
    raw = (filename or "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    original = raw or filename or ""
    suffix = Path(raw).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        allowed = ", ".join(sorted(SUPPORTED_EXTENSIONS))
        shown = suffix or "aucune"
        raise InvalidResourceError(
            original, f"extension non prise en charge ({shown}) : formats acceptés {allowed}"
        )
    stem = raw[: -len(suffix)]
    # Accents dropped (é → e); any other non-ASCII character (’, —, °) becomes a separator.
    decomposed = unicodedata.normalize("NFKD", stem)
    ascii_stem = "".join(
        c if c.isascii() else "-" for c in decomposed if not unicodedata.combining(c)
    )
    clean = re.sub(r"[^a-z0-9._-]+", "-", ascii_stem.lower())
    clean = re.sub(r"-{2,}", "-", clean).strip(".-_ ")
    clean = clean[: MAX_NAME_CHARS - len(suffix)].rstrip(".-_")
    if not clean:
        raise InvalidResourceError(
            original, "nom de fichier vide après nettoyage : renommez-le (lettres, chiffres)"
        )
    name = clean + suffix
    if name in _RESERVED_NAMES:
        raise InvalidResourceError(original, f"le nom « {name} » est réservé : renommez le fichier")
    return name


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def save_upload(
    corpus_dir: Path,
    filename: str,
    data: bytes,
    *,
    max_bytes: int,
    overwrite: bool = False,
) -> Path:
    """Validate an uploaded file and write it into `corpus_dir`; returns the written path.

    The name is sanitized (`sanitize_filename`), the size checked against `max_bytes`, and
    the file is parsed with `load_file` from a temporary copy before being moved into place,
    so a broken file is refused with its reason and nothing is written. An existing file of
    the same name, or another file holding the same resource id, is refused unless
    `overwrite` (same name only). Raises `InvalidResourceError`.
    """
    corpus_dir = Path(corpus_dir)
    name = sanitize_filename(filename)
    if len(data) > max_bytes:
        raise InvalidResourceError(
            name,
            f"fichier trop volumineux ({len(data) / _MB:.1f} Mo, maximum {max_bytes / _MB:.1f} Mo)",
        )
    if not data.strip():
        raise InvalidResourceError(name, "fichier vide")
    if not corpus_dir.is_dir():
        raise InvalidResourceError(name, f"dossier du corpus introuvable : {corpus_dir}")
    target = corpus_dir / name
    if not _inside(target, corpus_dir) or target.is_symlink():
        raise InvalidResourceError(name, "chemin de destination hors du dossier du corpus")
    if target.exists() and not overwrite:
        raise InvalidResourceError(
            name, "un fichier porte déjà ce nom : cochez « remplacer » ou renommez le fichier"
        )

    tmp_dir = Path(tempfile.mkdtemp(prefix=".upload-", dir=corpus_dir))  # hidden: never loaded
    try:
        tmp = tmp_dir / name
        tmp.write_bytes(data)
        try:
            resource = load_file(tmp)
        except InvalidResourceError as exc:
            raise InvalidResourceError(name, exc.reason) from exc
        _check_id_free(corpus_dir, resource.id, name, target)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # fails if the name appeared meanwhile
            except FileExistsError as exc:
                raise InvalidResourceError(name, "un fichier porte déjà ce nom") from exc
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    log.info("uploaded %s (resource %s) into %s", name, resource.id, corpus_dir)
    return target


def _check_id_free(corpus_dir: Path, resource_id: str, name: str, target: Path) -> None:
    """Refuse a resource id already held by another file (the loader would drop one of them)."""
    loaded = load_corpus(corpus_dir)
    for other in loaded.resources:
        if other.id == resource_id and Path(other.source_path).resolve() != target.resolve():
            raise InvalidResourceError(
                name,
                f"l'identifiant « {resource_id} » est déjà utilisé par "
                f"{Path(other.source_path).name} : modifiez ce fichier-là ou changez l'id",
            )


def remove_resource(corpus_dir: Path, resource_id: str, index: ResourceIndex | None) -> Path:
    """Delete the source file of `resource_id` from `corpus_dir`; returns the deleted path.

    The file is found through the index metadata, or by reading the corpus folder for a
    resource not indexed yet. Only a file inside `corpus_dir` is ever deleted. The resource
    stays answerable until the next rebuild. Raises `InvalidResourceError`.
    """
    corpus_dir = Path(corpus_dir)
    path: Path | None = None
    if index is not None and resource_id in index.resources:
        source = index.resources[resource_id].source_path
        if source and Path(source).is_file():
            path = Path(source)
    if path is None:
        for resource in load_corpus(corpus_dir).resources:
            if resource.id == resource_id:
                path = Path(resource.source_path)
                break
    if path is None or not path.is_file():
        raise InvalidResourceError(resource_id, "ressource introuvable dans le dossier du corpus")
    if not _inside(path, corpus_dir):
        raise InvalidResourceError(
            resource_id, f"le fichier {path} est hors du dossier du corpus : suppression refusée"
        )
    path.unlink()
    log.info("removed %s (resource %s)", path, resource_id)
    return path


def _relative(path: str, corpus_dir: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(corpus_dir.resolve()))
    except ValueError:
        return path


def list_resources(assistant: Assistant) -> list[ResourceRow]:
    """Every resource of the corpus folder with its state against the current index.

    States: « indexée », « modifiée — à reconstruire », « nouvelle — à reconstruire »,
    « supprimée — à reconstruire » (indexed, file gone) and « erreur : … » (unreadable file).
    """
    corpus_dir = Path(assistant.corpus_dir)
    loaded = load_corpus(corpus_dir)
    try:
        indexed = read_manifest(assistant.index_dir).resources
    except AssistantError:
        indexed = {}
    rows: list[ResourceRow] = []
    for r in loaded.resources:
        if r.id not in indexed:
            status = STATUS_NEW
        elif indexed[r.id] != r.content_hash:
            status = STATUS_CHANGED
        else:
            status = STATUS_INDEXED
        rows.append(
            ResourceRow(
                r.id,
                r.title,
                r.kind or r.type,
                r.date or "",
                _relative(r.source_path, corpus_dir),
                status,
            )
        )
    loaded_ids = {r.id for r in loaded.resources}
    gone = [rid for rid in indexed if rid not in loaded_ids]
    previous = _indexed_resources(assistant) if gone else {}
    gone_by_path = {
        str(Path(previous[rid].source_path).resolve()): rid
        for rid in gone
        if rid in previous and previous[rid].source_path
    }
    in_error: set[str] = set()
    for err in loaded.errors:
        # A previously indexed file that became unreadable: one row, with its old title.
        rid = gone_by_path.pop(str(Path(err.path).resolve()), "")
        in_error.add(rid)
        old = previous.get(rid)
        rows.append(
            ResourceRow(
                rid,
                old.title if old else "",
                (old.kind or old.type) if old else "",
                (old.date or "") if old else "",
                _relative(err.path, corpus_dir),
                STATUS_ERROR + err.reason,
            )
        )
    for rid in gone:
        if rid in in_error:
            continue
        old = previous.get(rid)
        rows.append(
            ResourceRow(
                rid,
                old.title if old else rid,
                (old.kind or old.type) if old else "",
                (old.date or "") if old else "",
                _relative(old.source_path, corpus_dir) if old else "",
                STATUS_REMOVED,
            )
        )
    return rows


def _indexed_resources(assistant: Assistant) -> dict[str, Resource]:
    try:
        return dict(assistant.index().resources)
    except AssistantError:
        return {}
