"""Answer-level evaluation: `ess-assistant eval FILE.jsonl [--method …] [--split …]`.

Every question goes through the production path (`Assistant.answer`: question checks,
retrieval with its follow-up handling, abstention, the extractive answer) once per method, and
is scored on what a user sees as well as on the ranking:

- `cited@3 ≥1` / `cited@3 =2`: the answer's first three citations include a resource graded
  ≥ 1 (useful) / 2 (answers it);
- `MRR` (grade 2, ranking depth 10), `recall@1/3` (grade 2) and graded `nDCG@5`;
- the outcome (`answered`, `low_confidence`, `abstained`): answerable questions abstained, and
  questions that nothing in the base answers (no resource graded ≥ 1) abstained, split into
  far (everyday life) and near (ESS questions the base does not cover);
- `fact`: the question's `expect` string is in the answer (case and accents ignored).

The question format is documented in `tests/data/README.md` (`assistant.eval_data`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.eval_data import EvalQuestion, load_questions, select
from assistant.retrieval import METHODS, RANK_DEPTH
from corpus.errors import ConfigurationError
from corpus.text import fold

if TYPE_CHECKING:
    from assistant.service import Assistant

CITED_DEPTH = 3


@dataclass(frozen=True)
class QuestionResult:
    """What one method did with one question."""

    question: EvalQuestion
    grades: Mapping[str, int]  # resolved against the index: resource id → 0/1/2
    ranking: tuple[str, ...]  # resource ids, best first (up to RANK_DEPTH)
    cited: tuple[str, ...]  # resource ids of the answer's citations, in marker order
    outcome: str
    answer: str = ""

    @property
    def kind(self) -> str:
        """`answerable` (a grade-2 resource), `partial` (only grade 1), else the question's
        out-of-scope label (`far`, `near`) or `none`."""
        if any(g >= 2 for g in self.grades.values()):
            return "answerable"
        if any(g >= 1 for g in self.grades.values()):
            return "partial"
        return self.question.out_of_scope or "none"

    @property
    def rank(self) -> int | None:
        """1-based rank of the first grade-2 resource in the ranking, or None."""
        for i, rid in enumerate(self.ranking, 1):
            if self.grades.get(rid, 0) >= 2:
                return i
        return None

    def cited_at(self, grade: int, depth: int = CITED_DEPTH) -> bool:
        """The answer cites a resource of at least `grade` among its first `depth` citations."""
        if self.outcome == "abstained":
            return False
        return any(self.grades.get(rid, 0) >= grade for rid in self.cited[:depth])

    @property
    def fact_found(self) -> bool | None:
        expect = self.question.expect
        if not expect:
            return None
        return fold(expect) in fold(self.answer) if self.outcome != "abstained" else False

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.question.id,
            "style": self.question.style,
            "kind": self.kind,
            "outcome": self.outcome,
            "rank": self.rank,
            "cited": list(self.cited),
            "cited_useful": self.cited_at(1),
            "cited_answering": self.cited_at(2),
            "fact_found": self.fact_found,
            "ranking": list(self.ranking),
            "answer": self.answer,
        }


@dataclass(frozen=True)
class Metrics:
    """Aggregates over a list of results; rates are None when their population is empty."""

    questions: int
    answerable: int
    partial: int
    nothing: int  # no resource graded ≥ 1
    far: int
    near: int
    cited_useful: float | None  # over answerable + partial
    cited_answering: float | None  # over answerable
    recall_at_1: float | None
    recall_at_3: float | None
    mrr: float | None
    ndcg_at_5: float | None
    answerable_abstained: float | None
    answerable_low_confidence: float | None
    nothing_abstained: float | None
    far_abstained: float | None
    near_abstained: float | None
    facts: int
    facts_found: int

    @property
    def fact_rate(self) -> float | None:
        return self.facts_found / self.facts if self.facts else None


def _rate(items: Sequence[QuestionResult], test: Callable[[QuestionResult], bool]) -> float | None:
    return sum(1 for r in items if test(r)) / len(items) if items else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def ndcg(ranking: Sequence[str], grades: Mapping[str, int], k: int = 5) -> float:
    """Graded nDCG@k with gain 2^grade − 1."""
    dcg = sum((2 ** grades.get(rid, 0) - 1) / math.log2(i + 2) for i, rid in enumerate(ranking[:k]))
    ideal_gains = sorted((2**g - 1 for g in grades.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(ideal_gains))
    return dcg / ideal if ideal else 0.0


def compute_metrics(results: Sequence[QuestionResult]) -> Metrics:
    answerable = [r for r in results if r.kind == "answerable"]
    useful = [r for r in results if r.kind in ("answerable", "partial")]
    nothing = [r for r in results if r.kind not in ("answerable", "partial")]
    far = [r for r in nothing if r.kind == "far"]
    near = [r for r in nothing if r.kind == "near"]
    facts = [r for r in results if r.fact_found is not None and r.kind != "far"]
    abstained = lambda r: r.outcome == "abstained"  # noqa: E731
    return Metrics(
        questions=len(results),
        answerable=len(answerable),
        partial=len(useful) - len(answerable),
        nothing=len(nothing),
        far=len(far),
        near=len(near),
        cited_useful=_rate(useful, lambda r: r.cited_at(1)),
        cited_answering=_rate(answerable, lambda r: r.cited_at(2)),
        recall_at_1=_rate(answerable, lambda r: r.rank is not None and r.rank <= 1),
        recall_at_3=_rate(answerable, lambda r: r.rank is not None and r.rank <= 3),
        mrr=_mean([1 / r.rank if r.rank else 0.0 for r in answerable]),
        ndcg_at_5=_mean([ndcg(r.ranking, r.grades) for r in useful]),
        answerable_abstained=_rate(answerable, abstained),
        answerable_low_confidence=_rate(answerable, lambda r: r.outcome == "low_confidence"),
        nothing_abstained=_rate(nothing, abstained),
        far_abstained=_rate(far, abstained),
        near_abstained=_rate(near, abstained),
        facts=len(facts),
        facts_found=sum(1 for r in facts if r.fact_found),
    )


def resolve_grades(question: EvalQuestion, resources: Mapping[str, object]) -> dict[str, int]:
    """The question's grades keyed by resource id; title fragments (old format) resolved.

    A graded id that is not in the index is an error: the set was judged on another base.
    """
    grades: dict[str, int] = {}
    titles = {rid: getattr(r, "title", "") for rid, r in resources.items()}
    for key, grade in question.relevant.items():
        if key in resources:
            grades[key] = max(grades.get(key, 0), grade)
            continue
        matches = [rid for rid, title in titles.items() if key in title]
        if not matches:
            raise ConfigurationError(
                f"question {question.id} : aucune ressource de l'index ne correspond à « {key} » "
                "(jeu jugé sur une autre base ? voir --corpus/--index)"
            )
        for rid in matches:
            grades[rid] = max(grades.get(rid, 0), grade)
    return grades


def evaluate(
    assistant: Assistant,
    questions: Sequence[EvalQuestion],
    methods: Sequence[str],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, list[QuestionResult]]:
    """Run every question through the production path once per method."""
    index = assistant.index()
    public = {rid: r for rid, r in index.resources.items() if not r.private}
    results: dict[str, list[QuestionResult]] = {m: [] for m in methods}
    for i, q in enumerate(questions):
        grades = resolve_grades(q, public)
        for method in methods:
            params = replace(assistant.params, method=method)
            answer, retrieval = assistant.answer(q.question, history=q.history, params=params)
            results[method].append(
                QuestionResult(
                    question=q,
                    grades=grades,
                    ranking=tuple(g.resource.id for g in retrieval.resources[:RANK_DEPTH]),
                    cited=tuple(c.resource_id for c in answer.citations),
                    outcome=answer.outcome,
                    answer=answer.text,
                )
            )
        if progress is not None:
            progress(i + 1, len(questions))
    return results


def pool(
    assistant: Assistant, questions: Sequence[EvalQuestion], *, depth: int = 5
) -> dict[str, list[str]]:
    """For judging: per question, the union of each method's top `depth` resources (hybrid
    first, then dense, then lexical), whatever the abstention said."""
    out: dict[str, list[str]] = {}
    for q in questions:
        ids: list[str] = []
        for method in ("hybrid", "dense", "lexical"):
            params = replace(assistant.params, method=method)
            retrieval = assistant.retrieve(q.question, history=q.history, params=params)
            for group in retrieval.resources[:depth]:
                if group.resource.id not in ids:
                    ids.append(group.resource.id)
        out[q.id] = ids
    return out


# ---------------------------------------------------------------------------- report

_ROWS: tuple[tuple[str, str], ...] = (
    ("cite une ressource utile (≥1) dans ses 3 premières", "cited_useful"),
    ("cite une ressource qui répond (=2) dans ses 3 premières", "cited_answering"),
    ("recall@1 (=2)", "recall_at_1"),
    ("recall@3 (=2)", "recall_at_3"),
    ("MRR (=2)", "mrr"),
    ("nDCG@5 (gradué)", "ndcg_at_5"),
    ("questions qui ont une réponse : abstention", "answerable_abstained"),
    ("questions qui ont une réponse : faible confiance", "answerable_low_confidence"),
    ("rien dans la base : abstention", "nothing_abstained"),
    ("  hors sujet lointain : abstention", "far_abstained"),
    ("  hors périmètre proche : abstention", "near_abstained"),
    ("fait attendu dans la réponse", "fact_rate"),
)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def format_report(results: dict[str, list[QuestionResult]], *, details: bool) -> str:
    """Per-question table (when `details`), the metrics side by side, then per style."""
    methods = list(results)
    lines: list[str] = []
    if details:
        head = f"{'id':<8} {'style':<17} {'nature':<10} " + " ".join(
            f"{m[:9]:>13}" for m in methods
        )
        lines += [head + "  question", "-" * (len(head) + 10)]
        short = {"answered": "", "low_confidence": "/faible", "abstained": "/abst"}
        for i, row in enumerate(results[methods[0]]):
            cells = []
            for m in methods:
                r = results[m][i]
                rank = str(r.rank) if r.rank else "—"
                mark = "✓" if r.cited_at(2) else ("~" if r.cited_at(1) else "✗")
                if r.kind not in ("answerable", "partial"):
                    mark = "✓" if r.outcome == "abstained" else "✗"
                    rank = "·"
                fact = {True: "f+", False: "f-", None: ""}[r.fact_found]
                cells.append(f"{mark}{rank}{short[r.outcome]}{fact:>3}".rjust(13))
            q = row.question
            lines.append(
                f"{q.id:<8} {q.style[:17]:<17} {row.kind[:10]:<10} "
                + " ".join(cells)
                + f"  {q.question[:60]}"
            )
        lines += [
            "(✓ cite une ressource =2, ~ ≥1, ✗ non ; rang de la 1re ressource =2 ; "
            "hors périmètre : ✓ = abstention ; f+/f- fait trouvé ou non)",
            "",
        ]
    metrics = {m: compute_metrics(rs) for m, rs in results.items()}
    c = metrics[methods[0]]
    lines.append(
        f"{c.questions} questions : {c.answerable} avec une réponse (=2), {c.partial} partielles "
        f"(≥1 seulement), {c.nothing} sans rien dans la base ({c.far} lointaines, {c.near} "
        f"proches), {c.facts} faits attendus"
    )
    width = max(len(label) for label, _ in _ROWS) + 2
    lines.append(f"{'mesure':<{width}}" + "".join(f"{m:>10}" for m in methods))
    for label, attr in _ROWS:
        lines.append(
            f"{label:<{width}}" + "".join(f"{_fmt(getattr(metrics[m], attr)):>10}" for m in methods)
        )
    for m in methods:
        lines += ["", f"par style ({m}) :", _style_table(results[m])]
    return "\n".join(lines)


def _style_table(results: Sequence[QuestionResult]) -> str:
    head = f"{'style':<18}{'n':>4}{'cité≥1':>9}{'cité=2':>9}{'MRR':>8}{'abst.':>8}{'faits':>9}"
    lines = [head]
    styles = sorted({r.question.style or "—" for r in results})
    for style in styles:
        rs = [r for r in results if (r.question.style or "—") == style]
        m = compute_metrics(rs)
        abst = m.answerable_abstained if m.answerable else m.nothing_abstained
        facts = f"{m.facts_found}/{m.facts}" if m.facts else "—"
        lines.append(
            f"{style:<18}{len(rs):>4}{_fmt(m.cited_useful):>9}{_fmt(m.cited_answering):>9}"
            f"{_fmt(m.mrr):>8}{_fmt(abst):>8}{facts:>9}"
        )
    return "\n".join(lines)


def metrics_json(results: dict[str, list[QuestionResult]]) -> dict[str, object]:
    """Machine-readable metrics: per method, overall and per style."""
    out: dict[str, object] = {}
    for method, rs in results.items():
        styles = sorted({r.question.style or "—" for r in rs})
        out[method] = {
            "overall": asdict(compute_metrics(rs)),
            "styles": {
                s: asdict(compute_metrics([r for r in rs if (r.question.style or "—") == s]))
                for s in styles
            },
        }
    return out


def run_eval_command(
    assistant: Assistant,
    path: Path,
    *,
    method: str,
    details: bool,
    split: str | None = None,
    styles: Sequence[str] = (),
    output: Path | None = None,
) -> str:
    methods = list(METHODS) if method == "all" else [method]
    if any(m not in METHODS for m in methods):
        raise ConfigurationError(f"méthode inconnue « {method} »")
    questions = select(load_questions(path), split=split, styles=styles)
    if not questions:
        raise ConfigurationError(f"aucune question retenue dans {path} (split={split})")
    results = evaluate(assistant, questions, methods)
    if output is not None:
        with output.open("w", encoding="utf-8") as f:
            for m, rs in results.items():
                for r in rs:
                    f.write(json.dumps({"method": m, **r.to_json()}, ensure_ascii=False) + "\n")
    return format_report(results, details=details)


__all__ = [
    "EvalQuestion",
    "Metrics",
    "QuestionResult",
    "compute_metrics",
    "evaluate",
    "format_report",
    "load_questions",
    "metrics_json",
    "ndcg",
    "pool",
    "resolve_grades",
    "run_eval_command",
]
