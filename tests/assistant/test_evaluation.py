"""The eval command's metrics on a tiny hand-computed example."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from assistant.evaluation import (
    EvalQuestion,
    QuestionResult,
    compute_metrics,
    format_report,
    load_questions,
    ndcg,
    resolve_expected,
)
from corpus.errors import ConfigurationError
from corpus.models import Resource


def _r(
    qid: str, ranking: list[str], relevant: set[str], abstained: bool = False, oos: bool = False
) -> QuestionResult:
    q = EvalQuestion(id=qid, question=qid, expected=tuple(relevant), out_of_scope=oos)
    return QuestionResult(q, tuple(ranking), frozenset(relevant), abstained)


def test_metrics_hand_computed() -> None:
    results = [
        _r("a", ["x", "y", "z"], {"x"}),  # rank 1
        _r("b", ["y", "z", "x"], {"x"}),  # rank 3
        _r("c", ["y", "z", "w", "v", "u", "x"], {"x"}, abstained=True),  # rank 6
        _r("d", ["x"], set(), abstained=True, oos=True),
        _r("e", ["x"], set(), abstained=False, oos=True),
    ]
    m = compute_metrics(results)
    assert (m.in_scope, m.out_of_scope) == (3, 2)
    assert m.recall_at_1 == pytest.approx(1 / 3)
    assert m.recall_at_3 == pytest.approx(2 / 3)
    assert m.recall_at_5 == pytest.approx(2 / 3)
    assert m.mrr == pytest.approx((1 + 1 / 3 + 1 / 6) / 3)
    assert m.ndcg_at_5 == pytest.approx((1 + 1 / math.log2(4) + 0) / 3)
    assert m.abstention_precision == pytest.approx(1 / 2)  # d right, c wrong
    assert m.abstention_recall == pytest.approx(1 / 2)  # d abstained, e did not
    assert m.in_scope_abstention_rate == pytest.approx(1 / 3)


def test_ndcg_with_two_relevant() -> None:
    assert ndcg(["a", "b"], frozenset({"a", "b"})) == pytest.approx(1.0)
    assert ndcg(["c", "a"], frozenset({"a", "b"})) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    )


def test_expected_by_id_or_title_fragment() -> None:
    resources = {
        "a": Resource(id="a", title="Mode d'emploi ESS & ruralités", body="x"),
        "b": Resource(id="b", title="RepèrESS politique de la ville", body="x"),
    }
    assert resolve_expected(["b", "Mode d'emploi"], resources) == {"a", "b"}
    with pytest.raises(ConfigurationError, match="aucune ressource"):
        resolve_expected(["inconnu"], resources)


def test_malformed_line_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "ok", "expected": []}\n{pas du json}\n', encoding="utf-8")
    with pytest.raises(ConfigurationError, match="ligne 2"):
        load_questions(path)


def test_report_prints_methods_side_by_side() -> None:
    rs = [_r("a", ["x"], {"x"})]
    text = format_report({"lexical": rs, "dense": rs, "hybrid": rs}, details=True)
    assert "lexical" in text and "dense" in text and "hybrid" in text and "MRR" in text


def test_committed_sets_are_well_formed() -> None:
    data = Path(__file__).resolve().parent.parent / "data"
    for name, minimum in (("eval_questions.jsonl", 60), ("eval_heldout.jsonl", 40)):
        questions = load_questions(data / name)
        assert len(questions) >= minimum
        assert sum(q.out_of_scope for q in questions) >= 10
        assert len({q.id for q in questions}) == len(questions)
