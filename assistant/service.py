"""`Assistant`: the one object the CLI and the UI talk to.

It owns the settings, the embedder (loaded once, lazily) and the current index, which it
reloads by itself when a build has switched the index to a new version (hot reload: a
running server never needs a restart, and questions asked during a build are answered from
the previous version).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from filelock import Timeout

from assistant.calibration import Calibration, base_fingerprint, load_calibration
from assistant.compose import compose_answer
from assistant.llm import generate_answer, stream_answer
from assistant.models import Answer, Filters, Retrieval
from assistant.retrieval import RANK_DEPTH, RetrievalParams, retrieve
from assistant.settings import Settings
from corpus.bundled import bundled_corpus_dir
from corpus.chunking import ChunkingSettings
from corpus.errors import (
    AssistantError,
    BuildLockedError,
    ConfigurationError,
    IndexNotFoundError,
    InvalidQuestionError,
)
from corpus.loaders import load_corpus
from corpus.site import SyncReport, SyncSettings, sync_site
from corpus.text import clean_text
from embeddings.base import Embedder
from embeddings.builder import BuildReport, ProgressCallback, build_index, check_writable, lock_for
from embeddings.loading import load_embedder
from embeddings.store import ResourceIndex, current_version

log = logging.getLogger(__name__)

CORPUS_CACHE = "corpus-cache"  # parsed corpus files (JSON shards), next to the index versions
NOT_TEXT = "La question doit être un texte."
EMPTY_QUESTION = (
    "Veuillez saisir une question, par exemple : « Comment financer l'ESS en milieu rural ? »"
)


@dataclass(frozen=True)
class Status:
    """What `ess-assistant status` and the staff page show."""

    index_dir: str
    corpus_dir: str
    version: str | None
    model: str | None
    resources: int
    chunks: int
    built_at: str | None
    index_type: str | None
    errors: tuple[tuple[str, str], ...]
    precision: str | None = None  # inference precision the vectors were computed in


class Assistant:
    """Answers questions from the current index; builds and hot-reloads it."""

    def __init__(
        self,
        settings: Settings,
        *,
        embedder: Embedder | None = None,
        params: RetrievalParams | None = None,
        query_threads: int | None = None,
    ) -> None:
        """`query_threads`: threads one question may use (the server passes its setting)."""
        self.settings = settings
        self._query_threads = query_threads
        self._params = params
        self._calibration: Calibration | None = None
        self._embedder = embedder
        self._index: ResourceIndex | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ components

    @property
    def calibration(self) -> Calibration:
        """The calibration in use (`assistant.calibration` says where it is looked for)."""
        if self._calibration is None:
            self._calibration = load_calibration(
                self.settings.calibration, self.index_dir, self.settings.index_precision
            )
            if self._calibration.model != self.settings.model:
                log.warning(
                    "calibration %s fitted for model %s, not %s",
                    self._calibration.source,
                    self._calibration.model,
                    self.settings.model,
                )
        return self._calibration

    @property
    def params(self) -> RetrievalParams:
        """Retrieval parameters: given explicitly (tests, evaluation) or from the calibration."""
        if self._params is None:
            self._params = RetrievalParams.from_calibration(self.calibration)
        return self._params

    @params.setter
    def params(self, value: RetrievalParams) -> None:
        self._params = value

    def calibration_warnings(self) -> list[str]:
        """Warnings when the calibration was fitted for another model or base."""
        fingerprint = None
        if current_version(self.index_dir) is not None:
            fingerprint = base_fingerprint(self.index().manifest.resources)
        return self.calibration.warnings(
            model=self.settings.model,
            fingerprint=fingerprint,
            precision=self.settings.index_precision,
        )

    @property
    def index_dir(self) -> Path:
        return self.settings.resolved_index_dir

    @property
    def corpus_dir(self) -> Path:
        return self.settings.corpus_dir or bundled_corpus_dir()

    @property
    def chunking(self) -> ChunkingSettings:
        return ChunkingSettings(size=self.settings.chunk_size, overlap=self.settings.chunk_overlap)

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._lock:
                if self._embedder is None:
                    self._embedder = load_embedder(
                        self.settings.model,
                        cache_dir=self.settings.model_cache_dir,
                        precision=self.settings.precision,
                        query_threads=self._query_threads,
                    )
        return self._embedder

    def index(self) -> ResourceIndex:
        """The current index, reloaded if a build switched versions since the last call."""
        current = self._index
        on_disk = current_version(self.index_dir)
        if current is not None and current.version == on_disk:
            return current
        with self._lock:
            current = self._index
            on_disk = current_version(self.index_dir)
            if current is None or current.version != on_disk:
                embedder = self.embedder if self._embedder is not None else None
                loaded = ResourceIndex.load(
                    self.index_dir,
                    model=self.settings.model,
                    dimension=embedder.dimension if embedder else None,
                    precision=embedder.precision if embedder else self.settings.index_precision,
                )
                if current is not None:
                    log.info("index reloaded: %s → %s", current.version, loaded.version)
                self._index = current = loaded
        return current

    def ensure_index(self, progress: ProgressCallback | None = None) -> ResourceIndex:
        """The current index; built from the configured corpus first if there is none."""
        try:
            return self.index()
        except IndexNotFoundError:
            log.info("no index in %s: building it from %s", self.index_dir, self.corpus_dir)
            self.build(progress=progress)
            return self.index()

    def warm_up_in_background(self) -> threading.Thread:
        """Load the embedder and run one query in a daemon thread, so that the first question
        after start-up does not wait for the model (it overlaps the web server's start)."""

        def run() -> None:
            try:
                self.embedder.embed_query("échauffement du modèle")
            except AssistantError as exc:  # the first question will raise it to the user
                log.warning("model warm-up failed: %s", exc)

        thread = threading.Thread(target=run, name="ess-warm-up", daemon=True)
        thread.start()
        return thread

    # ------------------------------------------------------------------ operations

    def build(
        self,
        *,
        full: bool = False,
        progress: ProgressCallback | None = None,
        allow_removals: bool = False,
    ) -> BuildReport:
        """Load the corpus folder and build (incrementally unless `full`) the index; a build
        that would remove most of the base is refused unless `allow_removals`."""
        # Unchanged files are not parsed again (a --full build parses everything).
        check_writable(self.index_dir)
        cache = None if full else self.index_dir / CORPUS_CACHE
        loaded = load_corpus(self.corpus_dir, cache=cache)
        return build_index(
            loaded.resources,
            embedder=self.embedder,
            index_dir=self.index_dir,
            chunking=self.chunking,
            errors=loaded.errors,
            full=full,
            progress=progress,
            allow_removals=allow_removals,
        )

    def sync(
        self,
        url: str | None = None,
        *,
        include: str | None = None,
        exclude: str | None = None,
        pdf: bool = False,
        dry_run: bool = False,
        progress: ProgressCallback | None = None,
    ) -> SyncReport:
        """Bring the corpus folder in step with the network's site (`corpus.site`). Holds the
        build lock meanwhile: a sync and a build never run at once."""
        address = url or self.settings.site_url
        if not address:
            raise ConfigurationError(
                "aucune adresse de site : donnez-la (`ess-assistant sync URL`) ou réglez "
                "ESS_ASSISTANT_SITE_URL"
            )
        settings = SyncSettings(
            url=address,
            include=include,
            exclude=exclude,
            delay=self.settings.sync_delay,
            concurrency=self.settings.sync_concurrency,
            user_agent=self.settings.user_agent,
            pdf=pdf,
            dry_run=dry_run,
        )
        check_writable(self.index_dir)
        lock = lock_for(self.index_dir)
        try:
            lock.acquire()
        except Timeout as exc:
            raise BuildLockedError(
                "une reconstruction ou une synchronisation est déjà en cours ; attendez "
                "qu'elle se termine puis relancez"
            ) from exc
        try:
            return sync_site(settings, self.corpus_dir, progress=progress)
        finally:
            lock.release()

    def prepare_question(self, question: str) -> tuple[str, tuple[str, ...]]:
        """Validate, clean and truncate a question; returns it with the notices to show.

        Whatever the channel (CLI argument, stdin, API, chat): a question that is not a text is
        refused; lone surrogates and undecodable bytes become U+FFFD; control characters other
        than line breaks and tabs are dropped."""
        if question is not None and not isinstance(question, str):
            raise InvalidQuestionError(NOT_TEXT)
        text = clean_text(question or "").strip()
        if not text:
            raise InvalidQuestionError(EMPTY_QUESTION)
        limit = self.settings.max_question_chars
        if len(text) > limit:
            cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
            notice = (
                f"Votre question était très longue ({len(text)} caractères) : seuls les "
                f"{len(cut)} premiers caractères ont été pris en compte."
            )
            return cut, (notice,)
        return text, ()

    def retrieve(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        filters: Filters | None = None,
        params: RetrievalParams | None = None,
    ) -> Retrieval:
        """Rank resources for a checked question: up to `RANK_DEPTH` (or `max_sources` if
        larger); the answer cites at most `max_sources` of them."""
        index = self.index()
        params = params or self.params
        return retrieve(
            index,
            self.embedder,  # every method: the signals and the domain gate use the vector
            question,
            history=history,
            filters=filters,
            max_resources=max(RANK_DEPTH, self.settings.max_sources),
            params=params,
        )

    def answer(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        filters: Filters | None = None,
        params: RetrievalParams | None = None,
    ) -> tuple[Answer, Retrieval]:
        """The production path without the language model: checked question → retrieval →
        extractive answer (with its notices). `eval` scores exactly this."""
        text, notices = self.prepare_question(question)
        retrieval = self.retrieve(text, history=history, filters=filters, params=params)
        answer = compose_answer(
            text,
            retrieval,
            notices=notices,
            max_sources=self.settings.max_sources,
            citation_ratio=(params or self.params).citation_ratio,
            stale_years=self.settings.stale_years,
        )
        return answer, retrieval

    def _extractive(self, question: str, history: Sequence[str], filters: Filters | None) -> Answer:
        return self.answer(question, history=history, filters=filters)[0]

    def ask(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        filters: Filters | None = None,
    ) -> Answer:
        """Answer `question` (earlier questions of the conversation in `history`).

        With `settings.llm_url`, the language model rewrites the extractive answer from the
        same sources (`mode="llm"`); on any failure the extractive answer is returned.
        """
        answer = self._extractive(question, history, filters)
        if self.settings.llm_url:
            answer = generate_answer(self.settings, answer, history=history)
        return answer

    def ask_stream(
        self,
        question: str,
        *,
        history: Sequence[str] = (),
        filters: Filters | None = None,
    ) -> Iterator[Answer]:
        """Like `ask`, as a stream: with `settings.llm_url`, partial answers (`mode="streaming"`)
        as the model's tokens arrive, then the final answer (validated `mode="llm"`, or the
        extractive fallback). Without it, exactly one answer, the extractive one.

        Question and index errors are raised when the first answer is requested.
        """
        answer = self._extractive(question, history, filters)
        if not self.settings.llm_url:
            yield answer
            return
        yield from stream_answer(self.settings, answer, history=history)

    def status(self) -> Status:
        version = current_version(self.index_dir)
        if version is None:
            return Status(
                str(self.index_dir), str(self.corpus_dir), None, None, 0, 0, None, None, ()
            )
        index = self.index()
        m = index.manifest
        return Status(
            index_dir=str(self.index_dir),
            corpus_dir=str(self.corpus_dir),
            version=index.version,
            model=m.model,
            resources=len(m.resources),
            chunks=m.chunk_count,
            built_at=m.created_at,
            index_type=m.index_type,
            errors=tuple((e.path, e.reason) for e in m.errors),
            precision=m.precision,
        )
