"""`ResourceIndex`: the FAISS index, its chunk/resource metadata, the lexical index and the
manifest, with atomic save and checked load.

Layout of an index directory::

    index_dir/
      CURRENT                 name of the active version (replaced atomically)
      build.lock              held by a running build
      versions/<name>/        one complete, immutable index version
        manifest.json  vectors.npy  chunks.npy  resources.jsonl  lexical/  sentences/
        ivf-centroids.npy  ivf-lists.npy   (inverted file, above EXACT_SEARCH_MAX chunks)

Chunks are stored as (resource, position, start, end) rows: their text is the slice of the
resource body and their title the resource title (`chunk-extras.jsonl` keeps the rare chunk
that is not). The dense index is rebuilt at load from the vectors (exact search: a copy; the
inverted file: its centroids and each row's list, no new assignment), so nothing is written
twice. `sentences/` holds the vectors of each passage's sentences (`embeddings.sentences`).
A version of another format is refused with the rebuild hint, except that a build reuses a
format-2 version (no sentence vectors): it keeps its passage vectors and embeds the sentences.

A save writes a new version next to the current one and only then switches `CURRENT`; a
reader therefore always sees a complete version, and a build killed at any moment leaves the
previous version in place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from corpus.errors import IndexCorruptError, IndexNotFoundError, ModelMismatchError
from corpus.loaders import FileError, paused_gc
from corpus.models import Chunk, Resource, resource_from_dict, resource_to_dict
from embeddings.french import analyze
from embeddings.lexical import AnalyzerChangedError, LexicalIndex
from embeddings.sentences import SentenceVectors

log = logging.getLogger(__name__)

FORMAT_VERSION = 3
UPGRADABLE_FORMATS = (2,)  # read by the builder only, which adds what they lack
# Index type by size (bench/RESULTS.md): exact search up to EXACT_SEARCH_MAX chunks (~40 ms
# p95 at 100 k), an inverted file above. The inverted file's trained centroids are reused by
# incremental builds (one edit of a 100 k-chunk base re-adds the vectors to the same lists in
# well under a second, where an HNSW graph took 16 s to rebuild). Probing a fifth of the lists
# gives recall@10 0.997 at 100 k (IVF2500, nprobe 512, 2.9 ms p95; HNSW gave 0.995 in 3.4 ms);
# from IVF_LARGE on, a fixed 256 of 4096 lists (0.986 at 1 M, ~7 ms p95).
EXACT_SEARCH_MAX = 50_000
IVF_NLIST = 4096
IVF_ROWS_PER_LIST = 40
IVF_PROBE_SHARE = 0.2
IVF_LARGE = 500_000
IVF_NPROBE = 256
IVF_TRAIN_POINTS = 50 * IVF_NLIST
HNSW_EF_SEARCH = 1024  # indexes built before the inverted file replaced HNSW (until a --full)
KEEP_OLD_VERSIONS = 2
CHECKSUM_MAX_BYTES = 1_000_000  # files up to this size are checksummed in the manifest
TERMS_CACHE = 20_000  # resources whose analyzed terms are kept in memory

REBUILD_HINT = "lancez `ess-assistant build --full` pour reconstruire l'index"


@dataclass(frozen=True)
class Manifest:
    """What an index version was built from; checked at load time."""

    model: str
    dimension: int
    chunking: dict[str, Any]
    resources: dict[str, str]  # resource id → content hash
    chunk_count: int
    index_type: str
    precision: str = "fp32"  # inference precision of the model ("int8": quantized)
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    versions: dict[str, str] = field(default_factory=lambda: _library_versions())
    errors: tuple[FileError, ...] = ()
    format_version: int = FORMAT_VERSION
    # relative path → {"bytes": size, "sha256": digest (files up to CHECKSUM_MAX_BYTES)}
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> str:
        """One top-level field per line. Written with json's C encoder (an `indent` makes it
        use the pure-Python one: 0.27 s for the 33 000 resources of a 100 k-chunk base)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["errors"] = [asdict(e) for e in self.errors]
        lines = (f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in data.items())
        return "{\n" + ",\n".join(lines) + "\n}\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        data = json.loads(text)
        data["errors"] = tuple(FileError(**e) for e in data.get("errors", ()))
        return cls(**data)


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "faiss": faiss.__version__}
    for dist in ("ess-assistant", "sentence-transformers", "torch", "onnxruntime", "scipy"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class DenseReuse:
    """The previous dense index and, for each new row, its previous row (-1 for a new row):
    an inverted file of about the right size keeps its centroids and the kept rows their
    lists, so only new vectors are assigned."""

    previous: faiss.Index
    rows: np.ndarray


def ivf_lists(n: int) -> int:
    """Number of inverted lists for `n` vectors."""
    return min(IVF_NLIST, max(1, n // IVF_ROWS_PER_LIST))


def make_faiss_index(vectors: np.ndarray, reuse: DenseReuse | None = None) -> faiss.Index:
    """Exact inner-product search or an inverted file by the number of vectors (see the
    constants); with `reuse`, the previous inverted file's training is kept when its number
    of lists is within a factor 2 of the right one for this size."""
    n, dim = vectors.shape
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    if n <= EXACT_SEARCH_MAX:
        flat = faiss.IndexFlatIP(dim)
        if n:
            flat.add(data)
        return flat
    nlist = ivf_lists(n)
    previous = reuse.previous if reuse is not None else None
    if (
        reuse is not None
        and isinstance(previous, faiss.IndexIVFFlat)
        and previous.d == dim
        and nlist / 2 <= previous.nlist <= nlist * 2
        and len(reuse.rows) == n
    ):
        return _reuse_ivf(previous, data, np.asarray(reuse.rows, dtype=np.int64))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(0).choice(n, min(n, 50 * nlist), replace=False)
    ivf.train(data[np.sort(sample)])
    configure_search(ivf)
    ivf.add(data)
    return ivf


def _reuse_ivf(previous: faiss.IndexIVFFlat, data: np.ndarray, rows: np.ndarray) -> faiss.Index:
    old_lists = _list_of_rows(previous)
    lists = np.full(len(data), -1, dtype=np.int64)
    kept = (rows >= 0) & (rows < previous.ntotal)
    lists[kept] = old_lists[rows[kept]]
    fresh = np.flatnonzero(lists < 0)
    if len(fresh):
        _, nearest = previous.quantizer.search(data[fresh], 1)
        lists[fresh] = nearest[:, 0]
    return _ivf_from(previous.quantizer.reconstruct_n(0, previous.nlist), data, lists)


def _list_of_rows(index: faiss.IndexIVFFlat) -> np.ndarray:
    """The inverted list of every row of `index` (rows are its ids 0 … ntotal-1)."""
    out = np.full(index.ntotal, -1, dtype=np.int64)
    invlists = index.invlists
    assert invlists is not None  # an IndexIVFFlat always has its lists
    for lst in range(index.nlist):
        size = invlists.list_size(lst)
        if size:
            ids = faiss.rev_swig_ptr(invlists.get_ids(lst), size)
            out[np.asarray(ids, dtype=np.int64)] = lst
    return out


def _ivf_from(centroids: np.ndarray, data: np.ndarray, lists: np.ndarray) -> faiss.Index:
    """An inverted file with these centroids holding row i of `data` in list `lists[i]`."""
    dim = data.shape[1]
    quantizer = faiss.IndexFlatIP(dim)
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    ivf = faiss.IndexIVFFlat(quantizer, dim, len(centroids), faiss.METRIC_INNER_PRODUCT)
    ivf.is_trained = True
    configure_search(ivf)
    if len(data):
        lists = np.ascontiguousarray(lists, dtype=np.int64)
        ivf.add_core(len(data), faiss.swig_ptr(data), None, faiss.swig_ptr(lists))
    return ivf


def configure_search(index: faiss.Index) -> None:
    """Set the search-time knobs (also after loading an index from disk)."""
    if isinstance(index, faiss.IndexHNSWFlat):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    elif isinstance(index, faiss.IndexIVFFlat):
        if index.ntotal >= IVF_LARGE:
            index.nprobe = min(IVF_NPROBE, index.nlist)
        else:
            index.nprobe = max(1, min(index.nlist, round(index.nlist * IVF_PROBE_SHARE)))


def index_type_name(index: faiss.Index) -> str:
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    return "ivf" if isinstance(index, faiss.IndexIVFFlat) else "flat"


class ResourceIndex:
    """Owns the vectors, the FAISS index, the lexical index and the metadata of one version."""

    def __init__(
        self,
        *,
        manifest: Manifest,
        resources: dict[str, Resource],
        chunks: Sequence[Chunk],
        vectors: np.ndarray,
        lexical: LexicalIndex,
        faiss_index: faiss.Index | None = None,
        version: str = "",
        sentences: SentenceVectors | None = None,
    ) -> None:
        if len(chunks) != len(vectors) or (
            sentences is not None and not _sentences_fit(sentences, len(chunks), vectors)
        ):
            raise IndexCorruptError(
                f"index incohérent : {len(chunks)} passages pour {len(vectors)} vecteurs ; {REBUILD_HINT}"
            )
        self.manifest = manifest
        self.resources = resources
        self.chunks = list(chunks)
        self.vectors = vectors
        self.lexical = lexical
        self.faiss_index = faiss_index if faiss_index is not None else make_faiss_index(vectors)
        if self.faiss_index.ntotal != len(self.chunks):
            raise IndexCorruptError(
                f"index FAISS incohérent ({self.faiss_index.ntotal} vecteurs pour "
                f"{len(self.chunks)} passages) ; {REBUILD_HINT}"
            )
        self.version = version
        self.sentences = sentences
        self._terms: dict[str, frozenset[str]] = {}
        self._rows_by_resource: dict[str, list[int]] = {}
        for row, chunk in enumerate(self.chunks):
            self._rows_by_resource.setdefault(chunk.resource_id, []).append(row)

    def __len__(self) -> int:
        return len(self.chunks)

    def rows_of(self, resource_id: str) -> list[int]:
        return self._rows_by_resource.get(resource_id, [])

    def resource_terms(self, resource_id: str) -> frozenset[str]:
        """Analyzed terms of a whole resource (title, summary, body), cached per version."""
        terms = self._terms.get(resource_id)
        if terms is None:
            r = self.resources[resource_id]
            terms = frozenset(analyze(f"{r.title}\n{r.summary}\n{r.body}"))
            if len(self._terms) < TERMS_CACHE:
                self._terms[resource_id] = terms
        return terms

    @functools.cached_property
    def dense_mean(self) -> np.ndarray:
        """Mean of the passage vectors: a question's cosine with it is its background
        similarity to the base (computed once per loaded version)."""
        if not len(self.chunks):
            return np.zeros(self.vectors.shape[1] if self.vectors.ndim == 2 else 0, np.float32)
        return np.asarray(self.vectors.mean(axis=0), dtype=np.float32)

    @functools.cached_property
    def public_mask(self) -> np.ndarray | None:
        """Rows the public chat may cite — not private, not archived — or None when that is
        every row (computed once per loaded version)."""
        hidden = [rid for rid, r in self.resources.items() if not citable(r)]
        return ~self.mask_for(hidden) if hidden else None

    def mask_for(self, resource_ids: Iterable[str]) -> np.ndarray:
        """Boolean row mask selecting the chunks of the given resources."""
        mask = np.zeros(len(self.chunks), dtype=bool)
        for rid in resource_ids:
            mask[self.rows_of(rid)] = True
        return mask

    def search_dense(
        self, query: np.ndarray, k: int, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Best `k` rows by inner product with `query` (a normalized vector), restricted to `allowed`."""
        n = len(self.chunks)
        if n == 0 or k <= 0:
            return []
        q = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        params = None
        if allowed is not None:
            count = int(allowed.sum())
            if count == 0:
                return []
            if count < 20_000:  # small subsets: exact scores on the allowed rows only
                rows = np.flatnonzero(allowed)
                scores = self.vectors[rows] @ q[0]
                top = np.argsort(-scores)[:k]
                return [(int(rows[i]), float(scores[i])) for i in top]
            bitmap = np.packbits(allowed, bitorder="little")  # must outlive the search call
            selector = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
            if isinstance(self.faiss_index, faiss.IndexHNSWFlat):
                params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, k))  # type: ignore[attr-defined]  # missing from faiss stubs
            elif isinstance(self.faiss_index, faiss.IndexIVFFlat):
                params = faiss.SearchParametersIVF(sel=selector, nprobe=self.faiss_index.nprobe)  # type: ignore[call-arg]
            else:
                params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]
        scores, ids = self.faiss_index.search(q, min(k, n), params=params)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    # ------------------------------------------------------------------ persistence

    def save(self, index_dir: Path, *, link_unchanged: bool = True) -> str:
        """Write this index as a new version of `index_dir` and make it current; returns its
        name. With `link_unchanged`, the sentence-vector shards that the current version
        already holds for the same resources are linked, not written again."""
        previous = current_version(index_dir) if link_unchanged else None
        versions = index_dir / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        name = f"v{stamp}-{uuid.uuid4().hex[:8]}"
        tmp = index_dir / f".tmp-{name}"
        tmp.mkdir()
        try:
            np.save(tmp / "vectors.npy", self.vectors, allow_pickle=False)
            _save_dense(self.faiss_index, tmp)
            _save_chunks(self.chunks, self.resources, tmp)
            _write_jsonl(tmp / "resources.jsonl", map(resource_to_dict, self.resources.values()))
            self.lexical.save(tmp / "lexical")
            if self.sentences is not None:
                self.sentences.save(
                    tmp / "sentences",
                    resource_ids=[c.resource_id for c in self.chunks],
                    content=self.manifest.resources,
                    context={
                        "model": self.manifest.model,
                        "precision": self.manifest.precision,
                        "dimension": self.manifest.dimension,
                        "chunking": self.manifest.chunking,
                    },
                    link_from=versions / previous / "sentences" if previous else None,
                )
            manifest = replace(self.manifest, files=_describe_files(tmp))
            (tmp / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
            self.manifest = manifest
            _fsync_tree(tmp)
            os.replace(tmp, versions / name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _atomic_write(index_dir / "CURRENT", name + "\n")
        self.version = name
        _prune(index_dir, keep=name)
        log.info("saved index version %s (%d chunks)", name, len(self.chunks))
        return name

    @classmethod
    def load(
        cls,
        index_dir: Path,
        *,
        model: str | None = None,
        dimension: int | None = None,
        stale_lexical_ok: bool = False,
        known: Mapping[str, Resource] | None = None,
        precision: str | None = None,
    ) -> ResourceIndex:
        """Load the current version; raise a clear error if it is missing, corrupt or mismatched.

        `stale_lexical_ok` (the builder, which rebuilds the lexical index anyway) accepts a
        lexical index made by another analyzer version and leaves it empty, and a version of an
        upgradable format (`UPGRADABLE_FORMATS`: the builder adds the sentence vectors). `known` (the
        builder's freshly read resources) are taken as they are for the ids whose content
        hash the manifest records, instead of decoding them from the version."""
        with paused_gc():  # 105 000 chunk objects: 1.2 s → 0.5 s at 100 k chunks
            return cls._load_current(
                index_dir,
                model=model,
                dimension=dimension,
                stale_lexical_ok=stale_lexical_ok,
                known=known,
                precision=precision,
            )

    @classmethod
    def _load_current(
        cls,
        index_dir: Path,
        *,
        model: str | None,
        dimension: int | None,
        stale_lexical_ok: bool,
        known: Mapping[str, Resource] | None,
        precision: str | None,
    ) -> ResourceIndex:
        for _ in range(3):
            name = current_version(index_dir)
            try:
                return cls._load_version(
                    index_dir,
                    name,
                    model=model,
                    dimension=dimension,
                    stale_ok=stale_lexical_ok,
                    known=known,
                    precision=precision,
                )
            except IndexCorruptError:
                # A build may have switched versions (and pruned this one) while we read it.
                if current_version(index_dir) == name:
                    raise
        return cls._load_version(
            index_dir,
            current_version(index_dir),
            model=model,
            dimension=dimension,
            stale_ok=stale_lexical_ok,
            known=known,
            precision=precision,
        )

    @classmethod
    def _load_version(
        cls,
        index_dir: Path,
        name: str | None,
        *,
        model: str | None,
        dimension: int | None,
        stale_ok: bool = False,
        known: Mapping[str, Resource] | None = None,
        precision: str | None = None,
    ) -> ResourceIndex:
        if name is None:
            raise _not_found(index_dir)
        folder = index_dir / "versions" / name
        manifest = _manifest_at(folder)
        if manifest.format_version != FORMAT_VERSION and not (
            stale_ok and manifest.format_version in UPGRADABLE_FORMATS
        ):
            hint = (
                "lancez `ess-assistant build` pour le mettre à jour"
                if manifest.format_version in UPGRADABLE_FORMATS
                else REBUILD_HINT
            )
            raise IndexCorruptError(
                f"l'index {folder} est au format {manifest.format_version}, cette version de "
                f"l'assistant lit le format {FORMAT_VERSION} ; {hint}"
            )
        _check_files(folder, manifest)
        if model is not None and manifest.model != model:
            raise ModelMismatchError(
                f"l'index de {index_dir} a été construit avec le modèle « {manifest.model} », "
                f"mais le modèle configuré est « {model} » ; {REBUILD_HINT}"
            )
        if precision is not None and manifest.precision != precision:
            raise ModelMismatchError(
                f"l'index de {index_dir} a été construit en précision {manifest.precision}, "
                f"mais la précision configurée est {precision} (ESS_ASSISTANT_PRECISION) ; "
                "lancez `ess-assistant build` pour le reconstruire"
            )
        if dimension is not None and manifest.dimension != dimension:
            raise ModelMismatchError(
                f"l'index a des vecteurs de dimension {manifest.dimension}, le modèle configuré "
                f"en produit {dimension} ; {REBUILD_HINT}"
            )
        try:
            vectors = np.load(folder / "vectors.npy", allow_pickle=False)
            resources = _load_resources(folder, manifest, known or {})
            chunks = _load_chunks(folder, resources)
            faiss_index = _load_dense(folder, vectors)
            sentences = (
                SentenceVectors.load(folder / "sentences")
                if (folder / "sentences").is_dir()
                else None
            )
            try:
                lexical = LexicalIndex.load(folder / "lexical")
            except AnalyzerChangedError:
                if not stale_ok:
                    raise
                lexical = LexicalIndex.empty(len(chunks))
        except (OSError, EOFError, ValueError, TypeError, KeyError, RuntimeError) as exc:
            raise IndexCorruptError(
                f"l'index {folder} est illisible ou incomplet ({exc}) ; {REBUILD_HINT}"
            ) from exc
        if (
            vectors.ndim != 2
            or vectors.shape[1] != manifest.dimension
            or len(chunks) != manifest.chunk_count
            or set(resources) != set(manifest.resources)
            or any(c.resource_id not in resources for c in chunks)
            or (sentences is not None and not _sentences_fit(sentences, len(chunks), vectors))
        ):
            raise IndexCorruptError(
                f"l'index {folder} ne correspond pas à son manifeste ; {REBUILD_HINT}"
            )
        return cls(
            manifest=manifest,
            resources=resources,
            chunks=chunks,
            vectors=vectors,
            lexical=lexical,
            faiss_index=faiss_index,
            version=name,
            sentences=sentences,
        )


def _load_resources(
    folder: Path, manifest: Manifest, known: Mapping[str, Resource]
) -> dict[str, Resource]:
    """The resources of a version; a line whose id is in `known` with the content hash the
    manifest records is not decoded (only its id is)."""
    decoder = json.JSONDecoder()
    out: dict[str, Resource] = {}
    with (folder / "resources.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            ready = None
            if known and line.startswith(_ID_PREFIX):
                rid, _ = decoder.raw_decode(line, len(_ID_PREFIX))
                ready = known.get(rid)
                if ready is not None and ready.content_hash != manifest.resources.get(rid):
                    ready = None
            resource = ready if ready is not None else resource_from_dict(json.loads(line))
            out[resource.id] = resource
    return out


_ID_PREFIX = '{"id": '  # how `json.dumps(resource_to_dict(r))` starts every line


def _save_chunks(chunks: Sequence[Chunk], resources: Mapping[str, Resource], folder: Path) -> None:
    ordinal = {rid: i for i, rid in enumerate(resources)}
    table = np.empty((len(chunks), 4), dtype=np.int64)
    extras = []
    for row, c in enumerate(chunks):
        resource = resources.get(c.resource_id)
        table[row] = (ordinal.get(c.resource_id, -1), c.position, c.start, c.end)
        if (
            resource is None
            or c.title != resource.title
            or resource.body[c.start : c.end] != c.text
        ):
            extras.append(
                {"row": row, "resource_id": c.resource_id, "text": c.text, "title": c.title}
            )
    np.save(folder / "chunks.npy", table, allow_pickle=False)
    if extras:
        _write_jsonl(folder / "chunk-extras.jsonl", extras)


def _load_chunks(folder: Path, resources: Mapping[str, Resource]) -> list[Chunk]:
    table = np.load(folder / "chunks.npy", allow_pickle=False)
    if table.ndim != 2 or table.shape[1] != 4:
        raise ValueError(f"chunks.npy has shape {table.shape}")
    extras = {}
    if (folder / "chunk-extras.jsonl").is_file():
        extras = {int(d["row"]): d for d in _read_jsonl(folder / "chunk-extras.jsonl")}
    listed = list(resources.values())
    chunks = []
    for row, (ordinal, position, start, end) in enumerate(table.tolist()):
        extra = extras.get(row)
        if extra is not None:
            chunks.append(
                Chunk(extra["resource_id"], position, start, end, extra["text"], extra["title"])
            )
            continue
        if not 0 <= ordinal < len(listed) or not 0 <= start <= end <= len(listed[ordinal].body):
            raise ValueError(f"chunk row {row} points outside its resource")
        r = listed[ordinal]
        chunks.append(Chunk(r.id, position, start, end, r.body[start:end], r.title))
    return chunks


def _save_dense(index: faiss.Index, folder: Path) -> None:
    """What the dense index adds to the vectors: nothing for exact search; the centroids and
    each row's list for an inverted file; another index type is written whole."""
    if isinstance(index, faiss.IndexFlat):
        return
    if isinstance(index, faiss.IndexIVFFlat):
        np.save(folder / "ivf-centroids.npy", index.quantizer.reconstruct_n(0, index.nlist))
        np.save(folder / "ivf-lists.npy", _list_of_rows(index).astype(np.int32))
        return
    faiss.write_index(index, str(folder / "faiss.index"))


def _load_dense(folder: Path, vectors: np.ndarray) -> faiss.Index:
    data = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = data.shape[1] if data.ndim == 2 else 0
    index: faiss.Index
    if (folder / "faiss.index").is_file():
        index = faiss.read_index(str(folder / "faiss.index"))
    elif (folder / "ivf-centroids.npy").is_file():
        centroids = np.load(folder / "ivf-centroids.npy", allow_pickle=False)
        lists = np.load(folder / "ivf-lists.npy", allow_pickle=False).astype(np.int64)
        if centroids.shape[1:] != (dim,) or lists.shape != (len(data),):
            raise ValueError("the inverted file does not match the vectors")
        if len(lists) and not (lists.min() >= 0 and lists.max() < len(centroids)):
            raise ValueError("the inverted file lists are out of range")
        index = _ivf_from(np.ascontiguousarray(centroids, dtype=np.float32), data, lists)
    else:
        index = faiss.IndexFlatIP(dim)
        if len(data):
            index.add(data)
    configure_search(index)
    return index


def _sentences_fit(sentences: SentenceVectors, passages: int, vectors: np.ndarray) -> bool:
    return sentences.passages == passages and (
        len(sentences) == 0 or sentences.dimension == vectors.shape[1]
    )


def citable(resource: Resource) -> bool:
    """Whether the public chat may cite `resource` (not private, not archived)."""
    return not resource.private and resource.status != "archived"


def current_version(index_dir: Path) -> str | None:
    """Name of the current version, or None when no index was ever completed."""
    try:
        name = (index_dir / "CURRENT").read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise IndexCorruptError(
            f"index illisible dans {index_dir} ({exc.strerror or exc}) : vérifiez les droits "
            "du dossier (--index ou ESS_ASSISTANT_INDEX_DIR)"
        ) from exc
    return name or None


def _describe_files(folder: Path) -> dict[str, dict[str, Any]]:
    """Size of every file of a version (and the checksum of the small ones)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        size = path.stat().st_size
        entry: dict[str, Any] = {"bytes": size}
        if size <= CHECKSUM_MAX_BYTES:
            entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        out[path.relative_to(folder).as_posix()] = entry
    return out


def _check_files(folder: Path, manifest: Manifest) -> None:
    """Raise `IndexCorruptError` when a file of the version differs from the manifest."""
    for name, expected in manifest.files.items():
        path = folder / name
        try:
            size = path.stat().st_size
        except OSError:
            raise IndexCorruptError(
                f"fichier manquant dans l'index : {path} ; {REBUILD_HINT}"
            ) from None
        if size != expected.get("bytes"):
            raise IndexCorruptError(
                f"fichier modifié dans l'index : {path} ({size} octets au lieu de "
                f"{expected.get('bytes')}) ; {REBUILD_HINT}"
            )
        digest = expected.get("sha256")
        if digest and hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise IndexCorruptError(f"fichier modifié dans l'index : {path} ; {REBUILD_HINT}")


def read_manifest(index_dir: Path) -> Manifest:
    """The manifest of the current version (cheap: no vectors are read)."""
    name = current_version(index_dir)
    if name is None:
        raise _not_found(index_dir)
    return _manifest_at(index_dir / "versions" / name)


def _not_found(index_dir: Path) -> IndexNotFoundError:
    return IndexNotFoundError(
        f"aucun index dans {index_dir} : lancez `ess-assistant build` pour le construire"
    )


def _manifest_at(folder: Path) -> Manifest:
    path = folder / "manifest.json"
    try:
        return Manifest.from_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise IndexCorruptError(f"manifeste illisible {path} ({exc}) ; {REBUILD_HINT}") from exc


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(index_dir: Path, *, keep: str) -> None:
    """Drop leftovers of interrupted saves and all but the newest old versions."""
    for tmp in index_dir.glob(".tmp-*"):
        shutil.rmtree(tmp, ignore_errors=True)
    old = sorted(p for p in (index_dir / "versions").iterdir() if p.name != keep)
    for path in old[:-KEEP_OLD_VERSIONS] if KEEP_OLD_VERSIONS else old:
        shutil.rmtree(path, ignore_errors=True)
