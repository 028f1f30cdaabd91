"""Retrieval evaluation: `ess-assistant eval FILE.jsonl [--method lexical|dense|hybrid|all]`.

One JSON object per line: `question`, `expected` (resource ids or title fragments),
`out_of_scope` (bool), optional `history` (earlier questions), `category`, `fact` (a string a
correct answer must contain). Metrics are at resource level: recall@1/3/5, MRR (first relevant
resource within the top 10), nDCG@5 (binary relevance), abstention precision and recall (an
abstention is right when the question is out of scope), and for fact questions the share of
composed answers that contain the fact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.compose import compose_answer
from assistant.retrieval import METHODS, RetrievalParams, contextual_query, retrieve
from corpus.errors import ConfigurationError
from corpus.models import Resource

if TYPE_CHECKING:
    from assistant.service import Assistant

RANK_DEPTH = 10


@dataclass(frozen=True)
class EvalQuestion:
    id: str
    question: str
    expected: tuple[str, ...]
    out_of_scope: bool
    category: str = ""
    fact: str | None = None
    history: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuestionResult:
    question: EvalQuestion
    ranking: tuple[str, ...]  # resource ids, best first
    relevant: frozenset[str]
    abstained: bool
    fact_found: bool | None = None

    @property
    def rank(self) -> int | None:
        """1-based rank of the first relevant resource, or None."""
        for i, rid in enumerate(self.ranking, 1):
            if rid in self.relevant:
                return i
        return None


@dataclass(frozen=True)
class Metrics:
    questions: int
    in_scope: int
    out_of_scope: int
    recall_at_1: float
    recall_at_3: float
    recall_at_5: float
    mrr: float
    ndcg_at_5: float
    abstention_precision: float
    abstention_recall: float
    in_scope_abstention_rate: float
    facts: int
    facts_found: int


def load_questions(path: Path) -> list[EvalQuestion]:
    """Read an evaluation JSONL file; a malformed line is an error naming its number."""
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"impossible de lire {path} : {exc}") from exc
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(
                EvalQuestion(
                    id=str(d.get("id", f"l{no}")),
                    question=d["question"],
                    expected=tuple(d.get("expected", ())),
                    out_of_scope=bool(d.get("out_of_scope", False)),
                    category=d.get("category", ""),
                    fact=d.get("fact"),
                    history=tuple(d.get("history", ())),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigurationError(f"{path}, ligne {no} : question invalide ({exc})") from exc
    return out


def resolve_expected(expected: Sequence[str], resources: dict[str, Resource]) -> frozenset[str]:
    """Resource ids named by `expected`: an exact id, or a fragment of exactly the title."""
    ids = set()
    for item in expected:
        if item in resources:
            ids.add(item)
            continue
        matches = [rid for rid, r in resources.items() if item in r.title]
        if not matches:
            raise ConfigurationError(f"aucune ressource ne correspond à « {item} »")
        ids.update(matches)
    return frozenset(ids)


def ndcg(ranking: Sequence[str], relevant: frozenset[str], k: int = 5) -> float:
    dcg = sum(1 / math.log2(i + 2) for i, rid in enumerate(ranking[:k]) if rid in relevant)
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def compute_metrics(results: Sequence[QuestionResult]) -> Metrics:
    """Aggregate metrics; retrieval metrics are over in-scope questions only."""
    ins = [r for r in results if not r.question.out_of_scope]
    oos = [r for r in results if r.question.out_of_scope]

    def recall(k: int) -> float:
        return sum(1 for r in ins if r.rank is not None and r.rank <= k) / len(ins) if ins else 0.0

    abstained = [r for r in results if r.abstained]
    facts = [r for r in ins if r.fact_found is not None]
    return Metrics(
        questions=len(results),
        in_scope=len(ins),
        out_of_scope=len(oos),
        recall_at_1=recall(1),
        recall_at_3=recall(3),
        recall_at_5=recall(5),
        mrr=sum(1 / r.rank for r in ins if r.rank) / len(ins) if ins else 0.0,
        ndcg_at_5=sum(ndcg(r.ranking, r.relevant) for r in ins) / len(ins) if ins else 0.0,
        abstention_precision=(
            sum(1 for r in abstained if r.question.out_of_scope) / len(abstained)
            if abstained
            else 1.0
        ),
        abstention_recall=sum(1 for r in oos if r.abstained) / len(oos) if oos else 1.0,
        in_scope_abstention_rate=sum(1 for r in ins if r.abstained) / len(ins) if ins else 0.0,
        facts=len(facts),
        facts_found=sum(1 for r in facts if r.fact_found),
    )


def evaluate(
    assistant: Assistant, questions: Sequence[EvalQuestion], methods: Sequence[str]
) -> dict[str, list[QuestionResult]]:
    """Run every question through each method; the query is embedded once per question."""
    index = assistant.index()
    public = {rid: r for rid, r in index.resources.items() if not r.private}
    results: dict[str, list[QuestionResult]] = {m: [] for m in methods}
    for q in questions:
        relevant = resolve_expected(q.expected, public) if q.expected else frozenset()
        query = contextual_query(q.question, q.history)
        vector = assistant.embedder.embed_query(query) if set(methods) - {"lexical"} else None
        for method in methods:
            params = replace(assistant.params, method=method)
            retrieval = retrieve(
                index,
                assistant.embedder,
                q.question,
                history=q.history,
                max_resources=RANK_DEPTH,
                params=params,
                query_vector=vector,
            )
            fact_found = None
            if q.fact and method == "hybrid":
                top = replace(
                    retrieval, resources=retrieval.resources[: assistant.settings.max_sources]
                )
                answer = compose_answer(q.question, top)
                fact_found = q.fact.casefold() in answer.text.casefold()
            results[method].append(
                QuestionResult(
                    question=q,
                    ranking=tuple(g.resource.id for g in retrieval.resources),
                    relevant=relevant,
                    abstained=retrieval.abstain,
                    fact_found=fact_found,
                )
            )
    return results


def format_report(results: dict[str, list[QuestionResult]], *, details: bool) -> str:
    """The per-question table (when `details`) and the metrics, methods side by side."""
    lines: list[str] = []
    methods = list(results)
    if details:
        head = (
            f"{'id':<6} {'catégorie':<13} "
            + " ".join(f"{m[:7]:>9}" for m in methods)
            + "  question"
        )
        lines += [head, "-" * len(head)]
        for i, row in enumerate(results[methods[0]]):
            cells = []
            for m in methods:
                r = results[m][i]
                rank = "hors" if r.question.out_of_scope else (str(r.rank) if r.rank else "—")
                cells.append(f"{rank + ('/abst' if r.abstained else ''):>9}")
            q = row.question
            lines.append(
                f"{q.id:<6} {q.category[:13]:<13} " + " ".join(cells) + f"  {q.question[:70]}"
            )
        lines.append("")
    metrics = {m: compute_metrics(rs) for m, rs in results.items()}
    rows = [
        ("recall@1", "recall_at_1"),
        ("recall@3", "recall_at_3"),
        ("recall@5", "recall_at_5"),
        ("MRR", "mrr"),
        ("nDCG@5", "ndcg_at_5"),
        ("abstention précision", "abstention_precision"),
        ("abstention rappel", "abstention_recall"),
        ("abstention hors-sujet à tort", "in_scope_abstention_rate"),
    ]
    counts = metrics[methods[0]]
    lines.append(
        f"{counts.questions} questions ({counts.in_scope} dans le périmètre, "
        f"{counts.out_of_scope} hors périmètre)"
    )
    lines.append(f"{'métrique':<30}" + "".join(f"{m:>10}" for m in methods))
    for label, attr in rows:
        lines.append(
            f"{label:<30}" + "".join(f"{getattr(metrics[m], attr):>10.3f}" for m in methods)
        )
    if "hybrid" in metrics and metrics["hybrid"].facts:
        h = metrics["hybrid"]
        lines.append(f"faits trouvés dans la réponse (hybride) : {h.facts_found}/{h.facts}")
    return "\n".join(lines)


def run_eval_command(assistant: Assistant, path: Path, *, method: str, details: bool) -> str:
    methods = list(METHODS) if method == "all" else [method]
    if any(m not in METHODS for m in methods):
        raise ConfigurationError(f"méthode inconnue « {method} »")
    questions = load_questions(path)
    return format_report(evaluate(assistant, questions, methods), details=details)


__all__ = [
    "EvalQuestion",
    "Metrics",
    "QuestionResult",
    "RetrievalParams",
    "compute_metrics",
    "evaluate",
    "format_report",
    "load_questions",
    "ndcg",
    "resolve_expected",
    "run_eval_command",
]
