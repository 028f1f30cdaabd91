"""Where the bundled default corpus (the seed resources, one Markdown file each) lives."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def bundled_corpus_dir() -> Path:
    """The folder of the default corpus shipped as package data (`corpus/resources/*.md`)."""
    return Path(str(files("corpus").joinpath("resources")))
