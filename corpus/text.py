"""Small text helpers shared by every stage (the lowest package that needs them)."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"})


_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


# French month names, January first (dates shown to users, dates parsed from text).
FRENCH_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def normalize_newlines(text: str) -> str:
    """Drop a UTF-8 BOM and turn CRLF / CR line endings into LF."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def clean_text(text: str) -> str:
    """`text` safe for every later stage: lone surrogates (undecodable bytes decoded with
    `surrogateescape`) become U+FFFD, control characters other than tab and line breaks go."""
    return _CONTROLS.sub("", _SURROGATES.sub("\ufffd", text))


def strip_accents(text: str) -> str:
    """Remove accents and expand ligatures: « Œuvré » → « OEuvre » (case is kept)."""
    decomposed = unicodedata.normalize("NFD", text.translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Case- and accent-insensitive form for comparisons: « Économie » → « economie »."""
    return strip_accents(text.casefold()).strip()


@dataclass(frozen=True)
class Sentence:
    start: int  # offset of the sentence in the text given to `split_sentences` (+ its base)
    end: int
    text: str


# A sentence ends at ., !, ?, … followed by a space and an upper-case letter, a quote, a
# parenthesis or a digit — citation markers right after the full stop («… rurale. [1] Elle »)
# stay with their sentence; a line break always ends a sentence (lists, headings).
_SENTENCE_END = re.compile(
    r"(?<=[.!?…])(?P<markers>(?:[ \t\u00a0]*\[[\d ,;]+\])*)[\s\u00a0]+(?=[«\"“(A-ZÀ-ÖØ-Þ0-9])"
    r"|(?P<markers2>)\n+"
)
_BULLETS = " \t\u00a0•·-–"


def split_sentences(text: str, base: int = 0) -> list[Sentence]:
    """Split `text` into sentences with offsets (relative to `base`), dropping empty pieces
    and list bullets; `text[s.start - base : s.end - base] == s.text`."""
    out: list[Sentence] = []
    pos = 0
    for match in [*_SENTENCE_END.finditer(text), None]:
        if match is None:
            end = len(text)
        else:
            end = match.end("markers") if match.group("markers") is not None else match.start()
        piece = text[pos:end]
        stripped = piece.strip(_BULLETS)
        if stripped:
            lead = piece.index(stripped)
            out.append(Sentence(base + pos + lead, base + pos + lead + len(stripped), stripped))
        if match is not None:
            pos = match.end()
    return out
