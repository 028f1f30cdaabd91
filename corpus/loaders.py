"""Read corpus files (Markdown, text, HTML, PDF) into `Resource` records.

`load_file` reads one file and raises `InvalidResourceError`; `load_corpus` reads a whole
folder, keeps going past bad files and lists them in `CorpusLoad.errors`.

`load_corpus(folder, cache=path)` keeps the parsed resources in a folder of JSON shards keyed
by each file's path, size, modification and change times and inode, and by a fingerprint of the
loaders' source: an unchanged file is not parsed again (a 33 000-file base is read in about a
second instead of ten), an edited, moved or replaced file is, and so is every file after an
update of the loaders. Files in error are never cached, so they are reported on every build.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import logging
import os
import sys
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from corpus import enrich
from corpus.errors import CorpusNotFoundError, InvalidResourceError
from corpus.html_loader import load_html
from corpus.limits import MAX_TEXT_FILE_BYTES, check_resource
from corpus.markdown_io import resource_from_markdown
from corpus.models import Resource, resource_from_dict, resource_to_dict
from corpus.pdf_loader import load_pdf
from corpus.text import normalize_newlines

logger = logging.getLogger(__name__)

SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".md", ".markdown", ".txt", ".html", ".htm", ".pdf"}
)
_SKIPPED_NAMES = frozenset({"readme.md"})
CACHE_FORMAT = 1
# The modules whose code decides what a file parses into (see `loader_fingerprint`).
_PARSING_MODULES = (
    "corpus.loaders", "corpus.markdown_io", "corpus.html_loader", "corpus.pdf_loader",
    "corpus.limits", "corpus.text", "corpus.enrich", "corpus.models",
)  # fmt: skip


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


def _is_candidate(relative: tuple[str, ...]) -> bool:
    if any(part.startswith(".") for part in relative):
        return False
    name = relative[-1]
    if name.lower() in _SKIPPED_NAMES:
        return False
    if os.path.splitext(name)[1].lower() not in SUPPORTED_EXTENSIONS:
        logger.debug("ignored (unsupported extension): %s", os.path.join(*relative))
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
    # os.walk lists names without a stat per file (33 000 files: 0.2 s instead of 1.5 s with
    # Path.rglob); symbolic links to files are followed as rglob did, to folders not.
    found: list[tuple[str, ...]] = []
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder).parts
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            relative = (*base, name)
            if _is_candidate(relative) and os.path.isfile(os.path.join(root, name)):
                found.append(relative)
    found.sort()
    return [folder.joinpath(*relative) for relative in found]


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for a bulk load or a build: they create
    hundreds of thousands of acyclic objects, and the collector's full passes over them cost
    ~40 % of reading a 33 000-file base or loading a 100 000-chunk index (bench_rebuild.py).
    Reference counting still frees everything; the collector resumes afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def load_corpus(folder: Path, *, cache: Path | None = None) -> CorpusLoad:
    """Load every supported file below `folder`; a bad file is reported, the others load.

    A duplicate id is an error on the second file (in sorted path order). Raises
    `CorpusNotFoundError` when `folder` is not a directory. With `cache` (a folder of JSON
    shards, created if needed), files unchanged since the last call are not parsed again.
    """
    with paused_gc():
        return _load_corpus(Path(folder), cache)


def _load_corpus(folder: Path, cache: Path | None) -> CorpusLoad:
    parsed = _ParseCache(cache, folder)
    resources: list[Resource] = []
    errors: list[FileError] = []
    seen: dict[str, str] = {}
    for path in corpus_files(folder):
        try:
            resource = parsed.get(path)
            if resource is None:
                resource = load_file(path)
                parsed.put(path, resource)
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
    parsed.save()
    logger.info(
        "loaded %d resources (%d errors, %d parsed) from %s",
        len(resources), len(errors), parsed.parsed_files, folder,
    )  # fmt: skip
    return CorpusLoad(tuple(resources), tuple(errors))


def loader_fingerprint() -> str:
    """A digest of the loaders' source: cached parses are dropped when the code changes."""
    digest = hashlib.sha256(str(CACHE_FORMAT).encode())
    for name in _PARSING_MODULES:
        module = sys.modules.get(name)
        if module is not None and module.__file__:
            digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


def _file_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


class _ParseCache:
    """Parsed resources by path (see the module docstring); a no-op without a folder.

    The cache is a folder of `CACHE_SHARDS` JSON files, each path in the shard its hash
    picks: after an edit, only the shards that changed are written again (a 33 000-file base
    has a 90 MB cache; one edit rewrites about 1.4 MB of it)."""

    def __init__(self, folder: Path | None, corpus: Path) -> None:
        self.dir = folder
        self.corpus = str(corpus.resolve())
        self.fingerprint = loader_fingerprint() if folder is not None else ""
        self.old: dict[str, Any] = {}
        self.new: dict[str, Any] = {}
        self.parsed: set[str] = set()
        self.parsed_count = 0
        if folder is None or not folder.is_dir():
            return
        for shard in folder.glob("shard-*.json"):
            try:
                data = json.loads(shard.read_text(encoding="utf-8"))
                if (
                    data.get("fingerprint") == self.fingerprint
                    and data.get("folder") == self.corpus
                ):
                    self.old.update(data["files"])
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                logger.warning("ignored the unreadable corpus cache %s (%s)", shard, exc)

    @property
    def parsed_files(self) -> int:
        return self.parsed_count

    def get(self, path: Path) -> Resource | None:
        entry = self.old.get(str(path))
        if self.dir is None or entry is None:
            return None
        try:
            if entry["key"] != _file_key(path):
                return None
            resource = resource_from_dict(entry["resource"])
        except (OSError, TypeError, KeyError, ValueError):
            return None
        self.new[str(path)] = entry
        return resource

    def put(self, path: Path, resource: Resource) -> None:
        self.parsed_count += 1
        if self.dir is not None:
            with contextlib.suppress(OSError):
                key = _file_key(path)
                self.new[str(path)] = {"key": key, "resource": resource_to_dict(resource)}
                self.parsed.add(str(path))

    def save(self) -> None:
        """Write the shards that changed (each atomically; a failure only costs a parse)."""
        if self.dir is None:
            return
        gone = self.old.keys() - self.new.keys()
        dirty = {_shard(p) for p in (*self.parsed, *gone)}
        if not dirty:
            return
        shards: dict[int, dict[str, Any]] = {i: {} for i in dirty}
        for path, entry in self.new.items():
            index = _shard(path)
            if index in shards:
                shards[index][path] = entry
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            logger.warning("could not write the corpus cache %s (%s)", self.dir, exc)
            return
        for index, files in shards.items():
            data = {"fingerprint": self.fingerprint, "folder": self.corpus, "files": files}
            target = self.dir / f"shard-{index:02d}.json"
            tmp = self.dir / f".shard-{index:02d}.{uuid.uuid4().hex[:8]}"
            try:
                tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
                os.replace(tmp, target)
            except OSError as exc:
                logger.warning("could not write the corpus cache %s (%s)", target, exc)
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)


CACHE_SHARDS = 64


def _shard(path: str) -> int:
    return zlib.crc32(path.encode("utf-8", "surrogatepass")) % CACHE_SHARDS
