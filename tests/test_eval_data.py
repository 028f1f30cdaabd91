"""The committed evaluation data: the grown base, the judged question sets, the sealed split."""

from __future__ import annotations

import filecmp
import json
from collections import Counter
from pathlib import Path

import pytest

from assistant.eval_data import load_questions
from corpus.bundled import bundled_corpus_dir
from corpus.loaders import load_corpus

DATA = Path(__file__).resolve().parent / "data"
GROWN = DATA / "grown_base"
STYLES = {
    "naive", "expert", "keywords", "typo", "narrative", "english", "followup_shift",
    "followup_pronoun", "fact", "oos_near", "oos_far",
}  # fmt: skip


@pytest.fixture(scope="module")
def grown_ids() -> set[str]:
    loaded = load_corpus(GROWN)
    assert not loaded.errors, loaded.errors
    return {r.id for r in loaded.resources}


def test_grown_base_loads_whole_and_is_large_enough(grown_ids: set[str]) -> None:
    assert len(grown_ids) >= 150 + 9
    sizes = [p.stat().st_size for p in GROWN.glob("*.md")]
    assert len(sizes) >= 150 and min(sizes) >= 1000 and max(sizes) <= 12_000


def test_grown_base_holds_the_bundled_resources_unchanged() -> None:
    bundled = sorted(p.name for p in bundled_corpus_dir().glob("*.md"))
    assert sorted(p.name for p in (GROWN / "bundled").glob("*.md")) == bundled
    _, mismatch, errors = filecmp.cmpfiles(
        bundled_corpus_dir(), GROWN / "bundled", bundled, shallow=False
    )
    assert not mismatch and not errors, (
        "copy corpus/resources/*.md to tests/data/grown_base/bundled/"
    )


@pytest.mark.parametrize("name", ["bundled", "grown"])
def test_sets_are_judged_split_and_varied(name: str, grown_ids: set[str]) -> None:
    questions = load_questions(DATA / "sets" / f"{name}.jsonl")
    known = grown_ids if name == "grown" else {p.stem for p in bundled_corpus_dir().glob("*.md")}
    assert {q.base for q in questions} == {name}
    for q in questions:
        assert set(q.relevant) <= known, q.id
        assert q.split in ("tuning", "sealed") and q.style in STYLES, q.id
        assert bool(q.history) == q.style.startswith("followup"), q.id
        assert (q.out_of_scope != "") == q.style.startswith("oos"), q.id
        if q.expect:
            assert q.style in ("fact", "followup_pronoun", "followup_shift"), q.id
    for writer, count in Counter(q.writer for q in questions).items():
        sealed = sum(1 for q in questions if q.writer == writer and q.split == "sealed")
        assert sealed / count >= 0.4, writer
    assert {q.style for q in questions} == STYLES


def test_enough_questions_overall() -> None:
    sets = [load_questions(DATA / "sets" / f"{n}.jsonl") for n in ("bundled", "grown")]
    questions = [q for s in sets for q in s]
    assert len(questions) >= 300
    assert sum(1 for q in questions if q.out_of_scope) >= 60
    assert len({q.writer for q in questions}) >= 3


def test_every_judged_pair_comes_from_a_pool() -> None:
    """The grades were given on the pooled candidates, and every candidate was graded."""
    for pool_path in sorted((DATA / "pools").glob("writer_*.jsonl")):
        pools = {
            row["id"]: set(row["candidates"])
            for row in map(json.loads, pool_path.read_text("utf-8").splitlines())
        }
        graded: dict[str, set[str]] = {}
        for judged in (DATA / "judgments").glob("*.jsonl"):
            for row in map(json.loads, judged.read_text("utf-8").splitlines()):
                if row["id"] in pools:
                    graded.setdefault(row["id"], set()).update(row["grades"])
        for qid, candidates in pools.items():
            assert graded.get(qid) == candidates, (pool_path.name, qid)
