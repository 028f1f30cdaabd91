"""Split resource bodies into `Chunk`s whose offsets point back into `Resource.body`.

Invariant, relied on for highlighting: ``resource.body[chunk.start:chunk.end] == chunk.text``.
The splitting itself is langchain-text-splitters' `RecursiveCharacterTextSplitter`; the
offsets are recomputed here by searching each chunk forward from the previous one, so they
hold even with repeated passages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from langchain_text_splitters import RecursiveCharacterTextSplitter

from corpus.models import Chunk, Resource

logger = logging.getLogger(__name__)

# Paragraphs, lines, then French sentence ends (an ordinary space follows the mark; the
# non-breaking space before « ? » « ! » « : » « ; » stays inside the sentence), then words.
FRENCH_SEPARATORS: tuple[str, ...] = (
    "\n\n",
    "\n",
    ". ",
    "? ",
    "! ",
    "… ",
    "; ",
    ": ",
    ", ",
    " ",
    "",
)


@dataclass(frozen=True)
class ChunkingSettings:
    """How bodies are cut into passages (recorded in the index manifest).

    `size` and `overlap` are in characters. 800 characters of French is about 200 tokens at
    ~4 characters per token (still under 400 with a pessimistic 2 characters per token), far
    below the 512-token limit of the embedding models, even with the title prepended; it is
    a paragraph or two, small enough for a citation to point at a precise passage and large
    enough to keep a sentence with its context. 120 characters of overlap (about one clause)
    keeps a sentence cut at a boundary findable from either side.
    """

    size: int = 800
    overlap: int = 120
    separators: tuple[str, ...] = FRENCH_SEPARATORS

    def __post_init__(self) -> None:
        if self.size <= 0:
            raise ValueError(f"chunk size must be positive, got {self.size}")
        if not 0 <= self.overlap < self.size:
            raise ValueError(f"chunk overlap must be in [0, size), got {self.overlap}")

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready description, compared by the index manifest."""
        data = asdict(self)
        data["separators"] = list(self.separators)
        return data


def _splitter(
    size: int, overlap: int, separators: tuple[str, ...], length: Callable[[str], int] = len
) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        chunk_size=size,
        chunk_overlap=overlap,
        separators=list(separators),
        keep_separator="end",
        strip_whitespace=True,
        length_function=length,
    )


def _locate(text: str, pieces: Iterable[str], overlap: int) -> list[tuple[int, str]]:
    """Find each piece of `text` in order; returns (start, piece) pairs."""
    located: list[tuple[int, str]] = []
    prev_start, prev_end = -1, 0
    for piece in pieces:
        if not piece.strip():
            continue
        lower = max(prev_start + 1, prev_end - overlap, 0)
        start = text.find(piece, lower)
        if start < 0:  # e.g. a short chunk fully repeated as the next one's overlap
            start = text.find(piece, max(prev_start, 0))
        if start < 0:
            start = text.find(piece)
        if start < 0:  # pragma: no cover - the splitter only returns substrings
            raise RuntimeError(f"chunk not found in its text: {piece[:60]!r}")
        located.append((start, piece))
        prev_start, prev_end = start, start + len(piece)
    return located


def split_text(text: str, *, settings: ChunkingSettings) -> list[tuple[int, str]]:
    """Split `text` into (start offset, passage) pairs with `text[start:start+len] == passage`."""
    pieces = _splitter(settings.size, settings.overlap, settings.separators).split_text(text)
    return _locate(text, pieces, settings.overlap)


def _fit_tokens(
    start: int,
    piece: str,
    settings: ChunkingSettings,
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> list[tuple[int, str]]:
    if count_tokens(piece) <= max_tokens:
        return [(start, piece)]
    overlap = max_tokens // 8 if settings.overlap else 0
    splitter = _splitter(max_tokens, overlap, settings.separators, count_tokens)
    # Overlap is counted in tokens here: search from just after the previous start.
    parts = _locate(piece, splitter.split_text(piece), len(piece))
    logger.debug("chunk of %d tokens split into %d", count_tokens(piece), len(parts))
    return [(start + offset, part) for offset, part in parts]


def split_resource(
    resource: Resource,
    *,
    settings: ChunkingSettings | None = None,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = 512,
) -> list[Chunk]:
    """Cut `resource.body` into chunks; `body[chunk.start:chunk.end] == chunk.text` always.

    With `count_tokens`, a chunk longer than `max_tokens` tokens is split again, by tokens.
    """
    settings = settings or ChunkingSettings()
    located = split_text(resource.body, settings=settings)
    if count_tokens is not None:
        located = [
            part
            for start, piece in located
            for part in _fit_tokens(start, piece, settings, count_tokens, max_tokens)
        ]
    return [
        Chunk(
            resource_id=resource.id,
            position=position,
            start=start,
            end=start + len(piece),
            text=piece,
            title=resource.title,
        )
        for position, (start, piece) in enumerate(located)
    ]


def split_corpus(
    resources: Iterable[Resource],
    *,
    settings: ChunkingSettings | None = None,
    count_tokens: Callable[[str], int] | None = None,
    max_tokens: int = 512,
) -> list[Chunk]:
    """Chunks of every resource, in resource order."""
    chunks: list[Chunk] = []
    for resource in resources:
        chunks.extend(
            split_resource(
                resource, settings=settings, count_tokens=count_tokens, max_tokens=max_tokens
            )
        )
    return chunks
