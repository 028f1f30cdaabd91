"""Small text helpers shared by every stage (the lowest package that needs them)."""

from __future__ import annotations

import unicodedata

_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"})


def strip_accents(text: str) -> str:
    """Remove accents and expand ligatures: « Œuvré » → « OEuvre » (case is kept)."""
    decomposed = unicodedata.normalize("NFD", text.translate(_LIGATURES))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> str:
    """Case- and accent-insensitive form for comparisons: « Économie » → « economie »."""
    return strip_accents(text.casefold()).strip()
