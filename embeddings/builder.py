"""Building and incrementally updating a `ResourceIndex` from loaded resources.

Only new or changed resources (by content hash) are chunked and embedded again (their passages
and each passage's sentences, `embeddings.sentences`); the vectors of unchanged resources are
reused; a change of model or chunking settings forces a full rebuild. One build at a time per
index directory (file lock).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from filelock import FileLock, Timeout

from corpus.chunking import ChunkingSettings, split_resource
from corpus.errors import (
    AssistantError,
    BuildLockedError,
    BuildRefusedError,
    IndexNotFoundError,
    IndexNotWritableError,
)
from corpus.loaders import FileError, paused_gc
from corpus.models import Chunk, Resource
from embeddings.base import Embedder
from embeddings.lexical import LexicalIndex, Reuse
from embeddings.sentences import SentenceVectors
from embeddings.store import (
    DenseReuse,
    Manifest,
    ResourceIndex,
    index_type_name,
    make_faiss_index,
)

log = logging.getLogger(__name__)

# progress(done, total, stage) — stage is a short French label shown to staff
ProgressCallback = Callable[[int, int, str], None]
EMBED_BATCH = 32


@dataclass(frozen=True)
class BuildReport:
    """What a build did; `summary_line()` is what staff read."""

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()
    errors: tuple[FileError, ...] = ()
    full: bool = False
    reason: str = ""
    chunks_embedded: int = 0
    sentences_embedded: int = 0
    total_chunks: int = 0
    seconds: float = 0.0
    version: str = ""
    notes: tuple[str, ...] = field(default=())
    # seconds per stage (previous index, chunking, vectors, lexical, dense, save), for benchmarks
    timings: tuple[tuple[str, float], ...] = ()

    def summary_line(self) -> str:
        return (
            f"added {len(self.added)}, changed {len(self.changed)}, removed {len(self.removed)}, "
            f"unchanged {len(self.unchanged)}, errors {len(self.errors)}"
        )


def lock_for(index_dir: Path) -> FileLock:
    index_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(index_dir / "build.lock"), timeout=0)


def build_index(
    resources: Sequence[Resource],
    *,
    embedder: Embedder,
    index_dir: Path,
    chunking: ChunkingSettings,
    errors: Sequence[FileError] = (),
    full: bool = False,
    progress: ProgressCallback | None = None,
    allow_removals: bool = False,
) -> BuildReport:
    """Build or update the index in `index_dir` from `resources`; see the module docstring.

    Refuses (`BuildRefusedError`) a build that would remove more than half of the indexed
    resources or leave none, unless `allow_removals`; checks that `index_dir` is writable
    before any embedding work (`IndexNotWritableError`)."""
    check_writable(index_dir)
    lock = lock_for(index_dir)
    try:
        lock.acquire()
    except Timeout as exc:
        raise BuildLockedError(
            f"une reconstruction de l'index {index_dir} est déjà en cours ; "
            "attendez qu'elle se termine puis relancez `ess-assistant build`"
        ) from exc
    try:
        return _build_locked(
            resources,
            embedder=embedder,
            index_dir=index_dir,
            chunking=chunking,
            errors=errors,
            full=full,
            progress=progress,
            allow_removals=allow_removals,
        )
    finally:
        lock.release()


def check_writable(index_dir: Path) -> None:
    """Raise `IndexNotWritableError` unless a new version can be written in `index_dir`."""
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        probe = index_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise IndexNotWritableError(
            f"impossible d'écrire l'index dans {index_dir} ({exc.strerror or exc}) : choisissez "
            "un dossier accessible en écriture (--index ou ESS_ASSISTANT_INDEX_DIR)"
        ) from exc


def _previous(
    index_dir: Path, embedder: Embedder, chunking: ChunkingSettings, known: dict[str, Resource]
) -> tuple[ResourceIndex | None, str]:
    """The reusable previous index, or None with the reason for a full rebuild."""
    try:
        previous = ResourceIndex.load(index_dir, stale_lexical_ok=True, known=known)
    except IndexNotFoundError:
        return None, "premier index"
    except AssistantError as exc:
        return None, f"index précédent inutilisable ({exc})"
    m = previous.manifest
    if m.model != embedder.name or m.dimension != embedder.dimension:
        return None, f"le modèle a changé ({m.model} → {embedder.name}) : reconstruction complète"
    if m.precision != embedder.precision:
        return None, (
            f"la précision du modèle a changé ({m.precision} → {embedder.precision}) : "
            "reconstruction complète"
        )
    if m.chunking != chunking.as_dict():
        return None, (
            f"les réglages de découpage ont changé ({m.chunking} → {chunking.as_dict()}) : "
            "reconstruction complète"
        )
    return previous, ""


def _build_locked(
    resources: Sequence[Resource],
    *,
    embedder: Embedder,
    index_dir: Path,
    chunking: ChunkingSettings,
    errors: Sequence[FileError],
    full: bool,
    progress: ProgressCallback | None,
    allow_removals: bool = False,
) -> BuildReport:
    started = time.perf_counter()
    timings: list[tuple[str, float]] = []
    clock = [started]

    def lap(stage: str) -> None:
        now = time.perf_counter()
        timings.append((stage, now - clock[0]))
        clock[0] = now

    new_by_id = {r.id: r for r in resources}
    # The cyclic collector is paused around the bulk steps (see `paused_gc`), not while
    # the model embeds (hours for a large base, with the chat running in the same process).
    with paused_gc():
        previous, reason = (
            (None, "reconstruction complète demandée (--full)")
            if full
            else _previous(index_dir, embedder, chunking, new_by_id)
        )
        if reason:
            log.info("full build: %s", reason)
        lap("previous index")
        old_hashes = previous.manifest.resources if previous else {}

        added = tuple(rid for rid in new_by_id if rid not in old_hashes)
        changed = tuple(
            rid
            for rid in new_by_id
            if rid in old_hashes and old_hashes[rid] != new_by_id[rid].content_hash
        )
        removed = tuple(rid for rid in old_hashes if rid not in new_by_id)
        if (
            not allow_removals
            and old_hashes
            and (not new_by_id or len(removed) * 2 > len(old_hashes))
        ):
            raise BuildRefusedError(
                f"cette reconstruction retirerait {len(removed)} des {len(old_hashes)} ressources de "
                f"l'index ({len(errors)} fichier(s) en erreur, {len(new_by_id)} lisible(s)) : "
                "vérifiez le dossier du corpus ; pour retirer ces ressources quand même, relancez "
                "avec `--allow-empty` (ou cochez « Autoriser » dans l'Espace équipe)"
            )
        unchanged = tuple(
            rid
            for rid in new_by_id
            if rid in old_hashes and old_hashes[rid] == new_by_id[rid].content_hash
        )

        # Reuse chunks and vectors of unchanged resources; chunk and embed the others.
        kept_chunks: list[Chunk] = []
        kept_rows: list[int] = []
        if previous is not None:
            for rid in unchanged:
                rows = previous.rows_of(rid)
                kept_rows.extend(rows)
                kept_chunks.extend(previous.chunks[r] for r in rows)
        to_embed: list[Chunk] = []
        for rid in (*added, *changed):
            to_embed.extend(
                split_resource(
                    new_by_id[rid],
                    settings=chunking,
                    count_tokens=embedder.count_tokens,
                    max_tokens=embedder.max_tokens - 8,  # room for the "passage: " prefix
                )
            )

        lap("chunking")
    new_vectors = _embed_chunks(embedder, to_embed, progress)
    with paused_gc():
        lap("vectors")
        # Keep the chunks grouped in corpus order, so the index layout does not depend on history.
        order = {rid: i for i, rid in enumerate(new_by_id)}
        all_chunks = kept_chunks + to_embed
        perm = np.lexsort(
            (
                np.fromiter((c.position for c in all_chunks), np.int64, len(all_chunks)),
                np.fromiter((order[c.resource_id] for c in all_chunks), np.int64, len(all_chunks)),
            )
        )
        chunks = [all_chunks[i] for i in perm.tolist()]
        # old_of[row]: the previous row of a kept chunk, -1 for a new one; the vectors are put in
        # place in one pass (no intermediate copies of a base's vectors).
        kept = perm < len(kept_rows)
        old_of = np.full(len(chunks), -1, dtype=np.int64)
        old_of[kept] = np.asarray(kept_rows, dtype=np.int64)[perm[kept]]
        vectors = np.empty((len(chunks), embedder.dimension), dtype=np.float32)
        if previous is not None and kept.any():
            vectors[kept] = previous.vectors[old_of[kept]]
        vectors[~kept] = new_vectors[perm[~kept] - len(kept_rows)]
        # Sentence vectors: kept chunks keep theirs (shared with the previous version, not
        # copied), unless it has none (an index of format 2): then every chunk's sentences are
        # embedded once.
        has_sentences = previous is not None and previous.sentences is not None
        fresh_rows = np.flatnonzero(~kept) if has_sentences else np.arange(len(chunks))
        lap("arrange")
    fresh = SentenceVectors.embed(
        [chunks[r].text for r in fresh_rows.tolist()],
        lambda texts: _embed_texts(embedder, texts, progress, "Vecteurs des phrases"),
        embedder.dimension,
    )
    with paused_gc():
        sentences = SentenceVectors.arrange(
            old_of,
            previous.sentences if previous is not None else None,
            fresh,
            fresh_rows,
        )
        lap("sentences")

        if progress:
            progress(0, 1, "Index lexical")
        # Rows of unchanged resources keep their term counts (the costly analysis is not redone)
        # and their inverted list (no new assignment to the centroids).
        lexical = LexicalIndex.build(
            chunks,
            resources=new_by_id,
            reuse=Reuse(previous.lexical, old_of) if previous is not None and kept_rows else None,
        )
        lap("lexical")
        faiss_index = make_faiss_index(
            vectors, DenseReuse(previous.faiss_index, old_of) if previous is not None else None
        )
        lap("dense")
        index = ResourceIndex(
            manifest=Manifest(
                model=embedder.name,
                dimension=embedder.dimension,
                chunking=chunking.as_dict(),
                resources={rid: r.content_hash for rid, r in new_by_id.items()},
                chunk_count=len(chunks),
                index_type=index_type_name(faiss_index),
                precision=embedder.precision,
                errors=tuple(errors),
            ),
            resources=dict(new_by_id),
            chunks=chunks,
            vectors=vectors,
            lexical=lexical,
            faiss_index=faiss_index,
            sentences=sentences,
        )
        if progress:
            progress(0, 1, "Enregistrement")
        # A full build writes every sentence shard again (int8 vectors depend a little on
        # their batch: a --full build is the reference); an incremental one links unchanged ones.
        version = index.save(index_dir, link_unchanged=previous is not None)
        lap("save")
        if progress:
            progress(1, 1, "Terminé")
        report = BuildReport(
            added=added,
            changed=changed,
            removed=removed,
            unchanged=unchanged,
            errors=tuple(errors),
            full=previous is None,
            reason=reason,
            chunks_embedded=len(to_embed),
            sentences_embedded=len(fresh),
            total_chunks=len(chunks),
            seconds=time.perf_counter() - started,
            version=version,
            timings=tuple(timings),
        )
        log.info("build done: %s (%d chunks embedded)", report.summary_line(), len(to_embed))
        return report


def _embed_chunks(
    embedder: Embedder, chunks: Sequence[Chunk], progress: ProgressCallback | None
) -> np.ndarray:
    """Vectors of `chunks`, in their order (see `_embed_texts`)."""
    return _embed_texts(
        embedder, [c.embedding_text() for c in chunks], progress, "Calcul des vecteurs"
    )


def _embed_texts(
    embedder: Embedder, texts: Sequence[str], progress: ProgressCallback | None, label: str
) -> np.ndarray:
    """Document vectors of `texts`, in their order. Batches are cut from the texts sorted by
    length, so that each batch pads to similar lengths (sentence-transformers' own `encode`
    does the same within one call); the vectors are put back in text order."""
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    for start in range(0, len(order), EMBED_BATCH):
        if progress:
            progress(start, len(texts), label)
        batch = order[start : start + EMBED_BATCH]
        out[batch] = embedder.embed_documents([texts[i] for i in batch])
    if progress:
        progress(len(texts), len(texts), label)
    return out
