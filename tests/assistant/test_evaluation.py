"""The eval command: answer-level metrics on hand-computed examples, the question format, the
sealed split, and the production path on the fake embedder."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from assistant.eval_data import EvalQuestion, assign_splits, load_questions, select
from assistant.evaluation import (
    QuestionResult,
    compute_metrics,
    evaluate,
    format_report,
    metrics_json,
    ndcg,
    resolve_grades,
    run_eval_command,
)
from assistant.retrieval import RetrievalParams
from assistant.service import Assistant
from corpus.errors import ConfigurationError
from corpus.models import Resource

OPEN = RetrievalParams()  # fake cosines: never abstain


def _r(
    qid: str,
    ranking: list[str],
    grades: dict[str, int],
    *,
    cited: list[str] | None = None,
    outcome: str = "answered",
    oos: str = "",
    expect: str | None = None,
    answer: str = "",
    style: str = "naive",
) -> QuestionResult:
    q = EvalQuestion(
        id=qid, question=qid, style=style, relevant=grades, out_of_scope=oos, expect=expect
    )
    cited_ids = tuple(ranking[:3] if cited is None else cited)
    return QuestionResult(q, grades, tuple(ranking), cited_ids, outcome, answer)


def test_metrics_hand_computed() -> None:
    results = [
        _r("a", ["x", "y", "z"], {"x": 2}),  # rank 1, cited
        _r("b", ["y", "z", "x"], {"x": 2, "y": 1}, cited=["y"]),  # rank 3, cites only grade 1
        _r("c", ["y", "z", "w", "v", "u", "x"], {"x": 2}, outcome="abstained"),  # rank 6
        _r("d", ["x"], {"x": 1}, cited=["x"], outcome="low_confidence"),  # partial
        _r("e", ["x"], {}, oos="far", outcome="abstained"),
        _r("f", ["x"], {}, oos="near"),
        _r("g", ["x"], {}, oos="near", outcome="low_confidence"),
    ]
    m = compute_metrics(results)
    assert (m.answerable, m.partial, m.nothing, m.far, m.near) == (3, 1, 3, 1, 2)
    assert m.cited_answering == pytest.approx(1 / 3)  # a only
    assert m.cited_useful == pytest.approx(3 / 4)  # a, b (grade 1), d; not c (abstained)
    assert m.recall_at_1 == pytest.approx(1 / 3)
    assert m.recall_at_3 == pytest.approx(2 / 3)
    assert m.mrr == pytest.approx((1 + 1 / 3 + 1 / 6) / 3)
    assert m.answerable_abstained == pytest.approx(1 / 3)
    assert m.answerable_low_confidence == 0.0
    assert m.nothing_abstained == pytest.approx(1 / 3)
    assert m.far_abstained == 1.0
    assert m.near_abstained == 0.0  # low confidence is not an abstention


def test_facts_ignore_case_and_accents_and_fail_when_abstained() -> None:
    found = _r("a", ["x"], {"x": 2}, expect="Frédéric", answer="animé par FREDERIC Frenard [1]")
    missed = _r("b", ["x"], {"x": 2}, expect="170", answer="Un webinaire [1]")
    abstained = _r("c", ["x"], {"x": 2}, expect="170", answer="170", outcome="abstained")
    m = compute_metrics([found, missed, abstained])
    assert (m.facts, m.facts_found) == (3, 1)
    assert found.fact_found and missed.fact_found is False and abstained.fact_found is False


def test_graded_ndcg() -> None:
    assert ndcg(["a", "b"], {"a": 2, "b": 1}) == pytest.approx(1.0)
    swapped = (1 + 3 / math.log2(3)) / (3 + 1 / math.log2(3))
    assert ndcg(["b", "a"], {"a": 2, "b": 1}) == pytest.approx(swapped)
    assert ndcg(["c"], {}) == 0.0


def test_grades_by_id_or_title_fragment() -> None:
    resources = {
        "a": Resource(id="a", title="Mode d'emploi ESS & ruralités", body="x"),
        "b": Resource(id="b", title="RepèrESS politique de la ville", body="x"),
    }
    q = EvalQuestion(id="q", question="?", relevant={"b": 1, "Mode d'emploi": 2})
    assert resolve_grades(q, resources) == {"a": 2, "b": 1}
    with pytest.raises(ConfigurationError, match="autre base"):
        resolve_grades(EvalQuestion(id="q", question="?", relevant={"inconnu": 2}), resources)


def test_both_formats_load(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    lines = [
        {"id": "n1", "question": "Qui ?", "style": "fact", "relevant": {"a": 2, "b": 0},
         "out_of_scope": None, "expect": "170", "history": ["Avant ?"], "split": "sealed"},
        {"id": "o1", "question": "Quoi ?", "expected": ["a", "b"], "out_of_scope": False,
         "category": "fact", "fact": "Lyon"},
        {"id": "o2", "question": "Météo ?", "expected": [], "out_of_scope": True},
        {"id": "n2", "question": "Crêpes ?", "relevant": {}, "out_of_scope": "far"},
    ]  # fmt: skip
    path.write_text("\n".join(json.dumps(x, ensure_ascii=False) for x in lines), "utf-8")
    n1, o1, o2, n2 = load_questions(path)
    assert n1.relevant == {"a": 2} and n1.expect == "170" and n1.history == ("Avant ?",)
    assert (o1.relevant, o1.style, o1.expect) == ({"a": 2, "b": 2}, "fact", "Lyon")
    assert o2.out_of_scope == "oos" and n2.out_of_scope == "far"
    assert [q.id for q in select([n1, o1], split="sealed")] == ["n1"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{pas du json}", "ligne 2"),
        ('{"question": "x", "relevant": {"a": 3}}', "note 3"),
        ('{"question": "x", "out_of_scope": "maybe"}', "out_of_scope"),
        ('{"id": "q1", "question": "again"}', "répété"),
        ('{"question": ""}', "non vide"),
    ],
)
def test_malformed_lines_name_their_number(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"id": "q1", "question": "ok"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        load_questions(path)


def test_sealed_split_is_fixed_and_balanced() -> None:
    questions = [
        EvalQuestion(id=f"{w}{i:03d}", question="?", style=s, writer=w)
        for w in "ab"
        for i, s in enumerate(["naive"] * 9 + ["fact"] * 6 + ["oos_far"] * 5)
    ]
    first = assign_splits(questions, seed="s1")
    assert first == assign_splits(list(reversed(questions)), seed="s1")[::-1]
    for w in "ab":
        mine = [q for q in first if q.writer == w]
        sealed = sum(q.split == "sealed" for q in mine)
        assert 0.4 <= sealed / len(mine) <= 0.6
        for style in ("naive", "fact", "oos_far"):
            assert {q.split for q in mine if q.style == style} == {"tuning", "sealed"}
    assert first != assign_splits(questions, seed="another seed")


def test_report_lists_methods_and_styles() -> None:
    rs = [_r("a", ["x"], {"x": 2}), _r("b", ["x"], {}, oos="far", style="oos_far")]
    text = format_report({"lexical": rs, "dense": rs, "hybrid": rs}, details=True)
    assert "lexical" in text and "hybrid" in text and "MRR (=2)" in text
    assert "par style (hybrid)" in text and "oos_far" in text
    assert metrics_json({"hybrid": rs})["hybrid"]["styles"]["naive"]["cited_answering"] == 1.0


def test_evaluate_scores_the_answer_the_user_sees(fake_assistant: Assistant) -> None:
    """On the production path: what is cited is what the answer cites, and an abstention
    is scored as such (the fake embedder: the exact words of a resource are found)."""
    index = fake_assistant.index()
    gare = next(r for r in index.resources.values() if "GARE" in r.title)
    q_in = EvalQuestion(
        id="in", question="collectif GARE gare tiers-lieu", style="keywords", relevant={gare.id: 2}
    )
    q_out = EvalQuestion(id="out", question="zorglub", style="oos_far", out_of_scope="far")
    fake_assistant.params = OPEN
    results = evaluate(fake_assistant, [q_in, q_out], ["lexical", "hybrid"])
    for method in ("lexical", "hybrid"):
        r_in, r_out = results[method]
        answer, _ = fake_assistant.answer(q_in.question, params=replace(OPEN, method=method))
        assert r_in.ranking[0] == gare.id
        assert r_in.outcome == answer.outcome == "answered"
        assert r_in.cited == tuple(c.resource_id for c in answer.citations)
        assert r_in.cited[0] == gare.id and r_in.cited_at(2)
        assert r_out.kind == "far"
    lexical_out, hybrid_out = results["lexical"][1], results["hybrid"][1]
    assert lexical_out.outcome == "abstained" and lexical_out.cited == ()  # no word known
    assert hybrid_out.outcome == "answered"  # OPEN never abstains: scored as a failure
    assert compute_metrics(results["hybrid"]).far_abstained == 0.0


def test_eval_command_writes_per_question_results(
    fake_assistant: Assistant, tmp_path: Path
) -> None:
    gare = next(r for r in fake_assistant.index().resources.values() if "GARE" in r.title)
    path = tmp_path / "set.jsonl"
    rows = [
        {"id": "t1", "question": "collectif GARE", "relevant": {gare.id: 2}, "split": "tuning"},
        {"id": "s1", "question": "gare collectif", "relevant": {gare.id: 2}, "split": "sealed"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    text = run_eval_command(
        fake_assistant, path, method="lexical", details=True, split="sealed", output=out
    )
    assert "s1" in text and "t1" not in text
    written = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [w["id"] for w in written] == ["s1"] and written[0]["method"] == "lexical"
    with pytest.raises(ConfigurationError, match="méthode inconnue"):
        run_eval_command(fake_assistant, path, method="magic", details=False)
