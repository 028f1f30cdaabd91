"""Tiny files that would blow up a build: refused with a clear reason, quickly, in bounded
memory, and the other files load."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest

from corpus.errors import InvalidResourceError
from corpus.limits import MAX_BODY_CHARS, MAX_LIST_ITEMS, MAX_PDF_PAGES
from corpus.loaders import load_corpus, load_file
from tests.corpus.pdf_factory import make_pdf

REPO = Path(__file__).resolve().parents[2]


def yaml_bomb() -> str:
    """The 449-byte front matter of the audit: nine levels of aliases → 9⁹ strings."""
    lines = ['a0: &a0 ["lol"]']
    for level in range(1, 9):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    return "---\ntitle: Bombe\n" + "\n".join(lines) + "\nthemes: [*a8]\n---\n\nCorps.\n"


def pdf_bomb() -> bytes:
    """A small PDF whose compressed text stream decompresses to ~50 MB of text."""
    return make_pdf(["Economie sociale et solidaire " * 10], repeat=150_000, compress=True)


def _refused(path: Path, match: str, *, seconds: float = 10.0, megabytes: float = 300.0) -> None:
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(InvalidResourceError, match=match):
            load_file(path)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.perf_counter() - started < seconds
    assert peak / 1e6 < megabytes


def test_yaml_aliases_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bombe.md"
    path.write_text(yaml_bomb(), encoding="utf-8")
    assert path.stat().st_size < 600
    _refused(path, "alias", seconds=1.0, megabytes=20)
    anchor = tmp_path / "ancre.md"
    anchor.write_text("---\ntitle: &t Titre\n---\n\nCorps.\n", encoding="utf-8")
    _refused(anchor, "ancres et alias", seconds=1.0, megabytes=20)


@pytest.mark.parametrize(
    ("front", "match"),
    [
        ("themes: [" + ", ".join(f"t{i}" for i in range(MAX_LIST_ITEMS + 1)) + "]", "themes"),
        ("keywords: [" + "x" * 300 + "]", "keywords"),
        ("summary: " + "résumé " * 4000, "résumé trop long"),
        ("zone: " + "z" * 600, "zone"),
    ],
)
def test_metadata_fields_are_capped(tmp_path: Path, front: str, match: str) -> None:
    path = tmp_path / "meta.md"
    path.write_text(f"---\ntitle: Titre\n{front}\n---\n\nCorps.\n", encoding="utf-8")
    _refused(path, match, seconds=1.0, megabytes=50)


def test_a_huge_text_body_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "long.txt"
    path.write_text("Titre\n" + "mot " * (MAX_BODY_CHARS // 4 + 10), encoding="utf-8")
    _refused(path, "texte trop long")


def test_compressed_pdf_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bombe.pdf"
    path.write_bytes(pdf_bomb())
    assert path.stat().st_size < 200_000
    _refused(path, "PDF refusé|texte du PDF trop long")


def test_too_many_pdf_pages_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pages.pdf"
    path.write_bytes(make_pdf(["Une ligne."], pages=MAX_PDF_PAGES + 1))
    _refused(path, f"maximum {MAX_PDF_PAGES}")


def test_the_other_files_still_load(tmp_path: Path) -> None:
    (tmp_path / "bombe.md").write_text(yaml_bomb(), encoding="utf-8")
    (tmp_path / "bombe.pdf").write_bytes(pdf_bomb())
    (tmp_path / "bon.md").write_text("---\ntitle: Bon\n---\n\nUn texte.\n", encoding="utf-8")
    loaded = load_corpus(tmp_path)
    assert [r.id for r in loaded.resources] == ["bon"]
    assert {Path(e.path).name for e in loaded.errors} == {"bombe.md", "bombe.pdf"}


@pytest.mark.skipif(sys.platform == "win32", reason="ulimit")
def test_a_build_with_bombs_finishes_fast_in_4_gb_and_lists_them(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "bombe.md").write_text(yaml_bomb(), encoding="utf-8")
    (corpus / "bombe.pdf").write_bytes(pdf_bomb())
    (corpus / "bon.md").write_text("---\ntitle: Bon\n---\n\nLes SCIC en milieu rural.\n", "utf-8")
    env = {**os.environ, "ESS_ASSISTANT_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"}
    command = (
        "ulimit -v 4000000 && "
        f"{sys.executable} -m tests.slow_build build --corpus {corpus} --model fake-bow-64"
    )
    started = time.perf_counter()
    proc = subprocess.run(
        ["bash", "-c", command], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert time.perf_counter() - started < 30
    assert "added 1, changed 0, removed 0, unchanged 0, errors 2" in proc.stdout, proc.stderr
    assert "bombe.md" in proc.stdout and "bombe.pdf" in proc.stdout
    assert proc.returncode == 6  # built, with files in error (README: exit codes)
