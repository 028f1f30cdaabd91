"""One frozen `Settings` object, built from environment variables and CLI options.

Nothing is read at import time: `Settings.from_env()` is called by the CLI (or a test) and the
result is passed explicitly to whoever needs it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from corpus.chunking import ChunkingSettings
from corpus.errors import ConfigurationError
from corpus.site import DEFAULT_USER_AGENT
from embeddings.base import DEFAULT_MODEL_NAME

DEFAULT_MODEL = DEFAULT_MODEL_NAME

# Environment variable → (field name, converter)
_ENV: dict[str, tuple[str, Any]] = {
    "ESS_ASSISTANT_DATA_DIR": ("data_dir", Path),
    "ESS_ASSISTANT_INDEX_DIR": ("index_dir", Path),
    "ESS_ASSISTANT_CORPUS_DIR": ("corpus_dir", Path),
    "ESS_ASSISTANT_MODEL": ("model", str),
    "ESS_ASSISTANT_PRECISION": ("precision", str),
    "ESS_ASSISTANT_MODEL_CACHE": ("model_cache", Path),
    "ESS_ASSISTANT_CHUNK_SIZE": ("chunk_size", int),
    "ESS_ASSISTANT_CHUNK_OVERLAP": ("chunk_overlap", int),
    "ESS_ASSISTANT_MAX_SOURCES": ("max_sources", int),
    "ESS_ASSISTANT_MAX_QUESTION_CHARS": ("max_question_chars", int),
    "ESS_ASSISTANT_HOST": ("host", str),
    "ESS_ASSISTANT_PORT": ("port", int),
    "ESS_ASSISTANT_SERVE_THREADS": ("serve_threads", int),
    "ESS_ASSISTANT_BUILD_NICE": ("build_nice", int),
    "ESS_ASSISTANT_ADMIN_PASSWORD": ("admin_password", str),
    "ESS_ASSISTANT_MAX_UPLOAD_MB": ("max_upload_mb", float),
    "ESS_ASSISTANT_CALIBRATION": ("calibration", Path),
    "ESS_ASSISTANT_STALE_YEARS": ("stale_years", int),
    "ESS_ASSISTANT_LOG_DAYS": ("log_days", int),
    "ESS_ASSISTANT_SITE_URL": ("site_url", str),
    "ESS_ASSISTANT_SYNC_DELAY": ("sync_delay", float),
    "ESS_ASSISTANT_SYNC_CONCURRENCY": ("sync_concurrency", int),
    "ESS_ASSISTANT_USER_AGENT": ("user_agent", str),
    "ESS_ASSISTANT_LLM_URL": ("llm_url", str),
    "ESS_ASSISTANT_LLM_MODEL": ("llm_model", str),
    "ESS_ASSISTANT_LLM_API_KEY": ("llm_api_key", str),
    "ESS_ASSISTANT_LLM_TIMEOUT": ("llm_timeout", float),
}


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ess-assistant"


@dataclass(frozen=True)
class Settings:
    """Every tunable of the assistant. Paths left as None derive from `data_dir`."""

    data_dir: Path = Path()
    index_dir: Path | None = None
    corpus_dir: Path | None = None  # None: the bundled default corpus
    model: str = DEFAULT_MODEL
    # inference of the default model by ONNX Runtime: "fp32" (the default) or "int8" (dynamic
    # int8: questions 2× faster, builds 2×, but the sealed evaluation moves by more than 0.01,
    # bench/RESULTS.md); recorded in the index manifest, a change rebuilds the index
    precision: str = "fp32"
    model_cache: Path | None = None  # None: <data dir>/cache (the rebuilt model, its ONNX export)
    chunk_size: int = ChunkingSettings().size
    chunk_overlap: int = ChunkingSettings().overlap
    max_sources: int = 3
    max_question_chars: int = 2000
    host: str = "127.0.0.1"
    port: int = 7860
    # threads of one question while serving: one question per thread is robust when several
    # users or a rebuild share the 2 cores (bench/RESULTS.md: 7× faster than 2 threads under load)
    serve_threads: int = 1
    # CPU priority of `build` and `sync` (the `nice` increment, 0–19): a rebuild is batch work
    # and yields the cores to a chat answering on the same machine (bench/RESULTS.md)
    build_nice: int = 10
    calibration: Path | None = None  # None: <index dir>/calibration.json, else the default
    stale_years: int = 5  # a cited source older than this carries a notice
    log_days: int = 365  # questions kept in the log (then purged)
    site_url: str | None = None  # the network's sitemap (or page listing) for `sync`
    sync_delay: float = 1.0  # seconds between two requests to the site
    sync_concurrency: int = 2
    user_agent: str = DEFAULT_USER_AGENT
    admin_password: str | None = None
    max_upload_mb: float = 20.0
    llm_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_api_key: str | None = None
    llm_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.chunk_size < 100 or self.chunk_overlap < 0 or self.chunk_overlap >= self.chunk_size:
            raise ConfigurationError(
                f"invalid chunking: size={self.chunk_size}, overlap={self.chunk_overlap} "
                "(size must be ≥ 100 and overlap between 0 and size)"
            )
        if not 1 <= self.max_sources <= 20:
            raise ConfigurationError("max_sources must be between 1 and 20")
        if self.precision not in ("fp32", "int8"):
            raise ConfigurationError(
                f"precision must be fp32 or int8 (ESS_ASSISTANT_PRECISION), not {self.precision!r}"
            )
        if not 0 <= self.build_nice <= 19:
            raise ConfigurationError("build_nice must be between 0 and 19")
        if self.serve_threads < 1:
            raise ConfigurationError("serve_threads must be at least 1")
        if self.sync_delay < 0 or self.sync_concurrency < 1:
            raise ConfigurationError("sync_delay must be ≥ 0 and sync_concurrency ≥ 1")
        if self.max_question_chars < 50:
            raise ConfigurationError("max_question_chars must be at least 50")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from `ESS_ASSISTANT_*` variables, then `overrides` (CLI options; None ignored)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {"data_dir": _default_data_dir()}
        for var, (name, convert) in _ENV.items():
            raw = env.get(var)
            if raw is None or raw == "":
                continue
            try:
                values[name] = convert(raw)
            except ValueError as exc:
                raise ConfigurationError(f"{var}={raw!r} is not a valid value: {exc}") from exc
        known = {f.name for f in fields(cls)}
        for name, value in overrides.items():
            if name not in known:
                raise ConfigurationError(f"unknown setting {name!r}")
            if value is not None:
                values[name] = Path(value) if name.endswith("_dir") else value
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @property
    def resolved_index_dir(self) -> Path:
        return self.index_dir or self.data_dir / "index"

    @property
    def index_precision(self) -> str:
        """The precision of the vectors: the setting for the default model, fp32 for another
        model (run by sentence-transformers, see `embeddings.loading.load_embedder`)."""
        return self.precision if self.model == DEFAULT_MODEL else "fp32"

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache or self.data_dir / "cache"

    @property
    def feedback_db(self) -> Path:
        return self.data_dir / "feedback.sqlite3"
