"""Fitting the calibration (`ess-assistant calibrate`): every number of `Calibration` comes from
here, cross-validated on the tuning questions, never set by hand.

Steps, in order (each uses the previous ones):

1. the domain gate: a logistic regression over question embeddings of the questions written
   for it (`assistant/data/domain_questions.jsonl`); its threshold refuses at most
   `MAX_DOMAIN_REFUSED` of the in-domain questions (out-of-fold) and of the tuning questions
   that the base answers;
2. the fusion weight of the lexical side: the grid value with the best mean MRR (grade 2);
   then, on the follow-up questions, the weight of the previous question's words the same way;
3. the abstention model: a logistic regression over `Signals`, fitted on questions the base
   answers (a grade-2 resource) against questions nothing in it answers (no resource graded
   ≥ 1); `abstain_below` keeps the out-of-fold abstention of answerable questions at
   `MAX_ANSWERABLE_ABSTAINED`, `low_below` gives a confident answer to at most
   `MAX_CONFIDENT_UNANSWERABLE` of the unanswerable ones;
4. the citation ratio: the grid value with the best F2 between cited and useful resources
   (recall weighs more: a right source dropped costs staff more than one more to check).

Each step reports k-fold cross-validated figures (parameters chosen on the other folds).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import resources as package_resources
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.calibration import Abstention, Calibration, DomainGate, base_fingerprint
from assistant.eval_data import EvalQuestion
from assistant.evaluation import resolve_grades
from assistant.models import Signals
from assistant.retrieval import RANK_DEPTH, RetrievalParams, contextual_query, embed_query, retrieve

if TYPE_CHECKING:
    from assistant.service import Assistant

log = logging.getLogger(__name__)

# The signals that keep their meaning when the base grows (`assistant.models.Signals`); the raw
# `dense` and `lexical` scores drift with the base's size and are left out (see the ablation).
# `sentence` is a raw cosine too, but over a bounded set (the sentences of the top passages),
# not the best of the whole base.
FEATURES = (
    "dense_rel",
    "sentence",
    "coverage",
    "resource_coverage",
    "key_terms",
    "missing",
    "agreement",
    "domain",
)
FOLDS = 5
SEED = 0
# Product targets the thresholds are fitted to (rates on out-of-fold predictions).
MAX_ANSWERABLE_ABSTAINED = 0.04  # the README's promise is ≤ 5 %, with a margin for new questions
MAX_CONFIDENT_UNANSWERABLE = 0.05
MAX_DOMAIN_REFUSED = 0.005  # a hard refusal: its false refusals must stay rare
GAP_QUANTILE = 0.99  # two different questions are rarely closer than this
FUSION_GRID = tuple(round(x, 2) for x in np.linspace(0.0, 1.0, 11))
CONTEXT_GRID = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
RATIO_GRID = tuple(round(x, 2) for x in np.linspace(0.0, 1.0, 21))

Progress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class Row:
    """One tuning question on one base: its grades, its retrieval per fusion weight (ranked
    resource ids with scores) and its signals at the chosen weight."""

    base: str
    question: EvalQuestion
    grades: dict[str, int]
    vector: np.ndarray | None
    rankings: dict[float, tuple[tuple[str, float], ...]]
    signals: Signals | None = None

    @property
    def kind(self) -> str:
        if any(g >= 2 for g in self.grades.values()):
            return "answerable"
        if any(g >= 1 for g in self.grades.values()):
            return "partial"
        return "nothing"


# ---------------------------------------------------------------------------- domain gate


def domain_questions() -> list[dict[str, Any]]:
    """The questions written for the domain gate (label 1 = ESS and local public action)."""
    path = package_resources.files("assistant") / "data" / "domain_questions.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def fit_domain_gate(
    assistant: Assistant, extra_in_domain: Sequence[np.ndarray] = ()
) -> tuple[DomainGate, dict[str, Any]]:
    """Fit the gate on the domain questions; `extra_in_domain` (embeddings of tuning questions
    the base answers) only bounds the threshold, it is not trained on."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict

    rows = domain_questions()
    texts = [r["question"] for r in rows]
    y = np.array([int(r["label"]) for r in rows])
    X = np.vstack(
        [assistant.embedder.embed_queries(texts[i : i + 64]) for i in range(0, len(texts), 64)]
    )
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    search = GridSearchCV(
        LogisticRegression(max_iter=5000), {"C": [0.3, 1, 3, 10, 30, 100]}, cv=folds
    )
    search.fit(X, y)
    best_c = float(search.best_params_["C"])
    model = LogisticRegression(C=best_c, max_iter=5000)
    oof = cross_val_predict(model, X, y, cv=folds, method="decision_function")
    model.fit(X, y)
    threshold = float(np.quantile(oof[y == 1], MAX_DOMAIN_REFUSED))
    if len(extra_in_domain):
        tuned = np.vstack(extra_in_domain) @ model.coef_[0] + model.intercept_[0]
        threshold = min(threshold, float(np.quantile(tuned, MAX_DOMAIN_REFUSED)))
    gate = DomainGate(
        weights=tuple(float(w) for w in model.coef_[0]),
        bias=float(model.intercept_[0]),
        threshold=threshold,
    )
    inside = X[y == 1]
    pairs = (inside @ inside.T)[np.triu_indices(len(inside), k=1)]
    cv = {
        "questions": len(y),
        "gap_similarity": round(float(np.quantile(pairs, GAP_QUANTILE)), 4),
        "C": best_c,
        "cv_accuracy": round(float(((oof > 0) == (y == 1)).mean()), 4),
        "in_domain_refused": round(float((oof[y == 1] < threshold).mean()), 4),
        "out_of_domain_refused": round(float((oof[y == 0] < threshold).mean()), 4),
    }
    return gate, cv


# ---------------------------------------------------------------------------- collection


def collect(
    assistant: Assistant,
    questions: Sequence[EvalQuestion],
    *,
    base: str,
    gate: DomainGate | None,
    progress: Progress | None = None,
) -> list[Row]:
    """Embed each question once and rank resources at every fusion weight of the grid."""
    index = assistant.index()
    public = {rid: r for rid, r in index.resources.items() if not r.private}
    rows = []
    for i, q in enumerate(questions):
        vector = embed_query(assistant.embedder, contextual_query(q.question, q.history))
        rankings = {
            weight: _ranking(
                assistant, q, vector, RetrievalParams(lexical_weight=weight, domain=gate)
            )
            for weight in FUSION_GRID
        }
        rows.append(Row(base, q, resolve_grades(q, public), vector, rankings))
        if progress is not None:
            progress(i + 1, len(questions), f"Questions ({base})")
    return rows


def _ranking(
    assistant: Assistant, q: EvalQuestion, vector: np.ndarray | None, params: RetrievalParams
) -> tuple[tuple[str, float], ...]:
    """(resource id, fused score) of the question's ranking with `params`."""
    r = retrieve(
        assistant.index(),
        assistant.embedder,
        q.question,
        history=q.history,
        max_resources=RANK_DEPTH,
        params=params,
        query_vector=vector,
    )
    return tuple((g.resource.id, g.score) for g in r.resources)


def with_signals(
    assistant: Assistant,
    rows: Sequence[Row],
    *,
    weight: float,
    gate: DomainGate | None,
    contexts: dict[str, float] | None = None,
) -> list[Row]:
    index = assistant.index()
    out = []
    default = RetrievalParams()
    contexts = contexts or {}
    for row in rows:
        params = RetrievalParams(
            lexical_weight=weight,
            context_weight=contexts.get("shift", default.context_weight),
            reference_weight=contexts.get("reference", default.reference_weight),
            domain=gate,
        )
        r = retrieve(
            index,
            assistant.embedder,
            row.question.question,
            history=row.question.history,
            params=params,
            query_vector=row.vector,
        )
        out.append(replace(row, signals=r.signals))
    return out


# ---------------------------------------------------------------------------- fusion, citations


def _mrr(row: Row, weight: float) -> float:
    for i, (rid, _) in enumerate(row.rankings[weight], 1):
        if row.grades.get(rid, 0) >= 2:
            return 1.0 / i
    return 0.0


def _folds(n: int) -> list[np.ndarray]:
    order = np.random.default_rng(SEED).permutation(n)
    return [order[i::FOLDS] for i in range(FOLDS)]


def _grid_cv(
    rows: Sequence[Row], grid: Sequence[float], score: Callable[[Row, float], float]
) -> tuple[float, float, dict[str, Any]]:
    """(best value on all rows, its mean score, cross-validated figures)."""
    table = np.array([[score(r, g) for g in grid] for r in rows])
    best = int(np.argmax(table.mean(axis=0)))
    held_out = []
    for test in _folds(len(rows)):
        train = np.setdiff1d(np.arange(len(rows)), test)
        pick = int(np.argmax(table[train].mean(axis=0)))
        held_out.extend(table[test, pick])
    return (
        float(grid[best]),
        float(table[:, best].mean()),
        {
            "cv_score": round(float(np.mean(held_out)), 4),
            "by_value": dict(
                zip(map(str, grid), np.round(table.mean(axis=0), 4).tolist(), strict=True)
            ),
        },
    )


def fit_fusion(rows: Sequence[Row]) -> tuple[float, dict[str, Any]]:
    answerable = [r for r in rows if r.kind == "answerable"]
    weight, score, cv = _grid_cv(answerable, FUSION_GRID, _mrr)
    return weight, {
        "metric": "MRR (grade 2)",
        "questions": len(answerable),
        "score": round(score, 4),
        **cv,
    }


CITATION_BETA = 2.0


def fit_context_weights(
    bases: Sequence[tuple[Assistant, Sequence[Row]]], *, weight: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """The weight of a follow-up's previous question, per kind of follow-up ("shift",
    "reference"), on the answerable follow-ups of that kind."""
    default = RetrievalParams()
    chosen = {"shift": default.context_weight, "reference": default.reference_weight}
    figures: dict[str, Any] = {}
    for kind in chosen:
        followups: list[Row] = []
        for assistant, rows in bases:
            for row in rows:
                q = row.question
                if row.kind != "answerable" or contextual_query(q.question, q.history).kind != kind:
                    continue
                rankings = {
                    context: _ranking(
                        assistant,
                        q,
                        row.vector,
                        RetrievalParams(
                            lexical_weight=weight, context_weight=context, reference_weight=context
                        ),
                    )
                    for context in CONTEXT_GRID
                }
                followups.append(replace(row, rankings=rankings))
        if len(followups) < FOLDS:
            figures[kind] = {"questions": len(followups)}
            continue
        chosen[kind], score, cv = _grid_cv(followups, CONTEXT_GRID, _mrr)
        figures[kind] = {
            "metric": "MRR (grade 2)",
            "questions": len(followups),
            "score": round(score, 4),
            **cv,
        }
    return chosen, figures


def _citation_f(row: Row, ratio: float, weight: float, max_sources: int) -> float:
    ranking = row.rankings[weight][:max_sources]
    if not ranking:
        return 0.0
    best = ranking[0][1]
    cited = [rid for i, (rid, s) in enumerate(ranking) if i == 0 or s >= ratio * best]
    useful = {rid for rid, g in row.grades.items() if g >= 1}
    hits = sum(1 for rid in cited if rid in useful)
    if not hits:
        return 0.0
    precision = hits / len(cited)
    recall = hits / min(len(useful), max_sources)
    b2 = CITATION_BETA**2
    return (1 + b2) * precision * recall / (b2 * precision + recall)


def fit_citation_ratio(
    rows: Sequence[Row], *, weight: float, max_sources: int
) -> tuple[float, dict[str, Any]]:
    useful = [r for r in rows if r.kind in ("answerable", "partial")]
    ratio, score, cv = _grid_cv(
        useful, RATIO_GRID, lambda r, x: _citation_f(r, x, weight, max_sources)
    )
    return ratio, {
        "metric": "F2 cited vs useful",
        "questions": len(useful),
        "score": round(score, 4),
        **cv,
    }


# ---------------------------------------------------------------------------- abstention


def _matrix(rows: Sequence[Row], features: Sequence[str]) -> np.ndarray:
    return np.array([[r.signals.values()[f] for f in features] for r in rows if r.signals])


def fit_abstention(
    rows: Sequence[Row], features: Sequence[str] = FEATURES
) -> tuple[Abstention, dict[str, Any]]:
    """Logistic regression on answerable (1) vs nothing-relevant (0) questions."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    used = [r for r in rows if r.kind in ("answerable", "nothing")]
    X = _matrix(used, features)
    y = np.array([1 if r.kind == "answerable" else 0 for r in used])
    bases = np.array([r.base for r in used])
    # Each base weighs the same in the fit, whatever its number of questions: the rule must
    # hold on a small base and on a large one alike.
    weight = np.array([len(used) / (len(set(bases)) * int((bases == b).sum())) for b in bases])
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=SEED)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    fit_params = {"logisticregression__sample_weight": weight}
    search = GridSearchCV(
        pipe, {"logisticregression__C": [0.01, 0.1, 1, 10]}, cv=folds, scoring="roc_auc"
    )
    search.fit(X, y, **fit_params)
    c = float(search.best_params_["logisticregression__C"])
    pipe.set_params(logisticregression__C=c)
    oof = cross_val_predict(pipe, X, y, cv=folds, method="predict_proba", params=fit_params)[:, 1]
    pipe.fit(X, y, **fit_params)
    scaler, model = pipe.named_steps["standardscaler"], pipe.named_steps["logisticregression"]
    # Abstention on answerable questions must stay low on every base: the strictest quantile.
    answerable = [oof[(y == 1) & (bases == b)] for b in sorted(set(bases))]
    unanswerable = [oof[(y == 0) & (bases == b)] for b in sorted(set(bases))]
    abstain_below = min(
        float(np.quantile(p, MAX_ANSWERABLE_ABSTAINED)) for p in answerable if len(p)
    )
    # A low-confidence answer is a softer failure than an abstention: pooled over the bases.
    low_below = max(abstain_below, float(np.quantile(oof[y == 0], 1 - MAX_CONFIDENT_UNANSWERABLE)))
    rule = Abstention(
        features=tuple(features),
        mean=tuple(float(x) for x in scaler.mean_),
        scale=tuple(float(x) for x in scaler.scale_),
        coef=tuple(float(x) for x in model.coef_[0]),
        intercept=float(model.intercept_[0]),
        abstain_below=abstain_below,
        low_below=low_below,
    )
    cv = {
        "questions": len(y),
        "answerable": int(y.sum()),
        "C": c,
        "cv_auc": round(float(roc_auc_score(y, oof)), 4),
        "cv_answerable_abstained": round(float((oof[y == 1] < abstain_below).mean()), 4),
        "cv_unanswerable_abstained": round(float((oof[y == 0] < abstain_below).mean()), 4),
        "cv_unanswerable_confident": round(float((oof[y == 0] >= low_below).mean()), 4),
        "per_base": {
            b: {
                "answerable_abstained": round(float((p < abstain_below).mean()), 4),
                "unanswerable_abstained": round(float((q < abstain_below).mean()), 4)
                if len(q)
                else None,
            }
            for b, p, q in zip(sorted(set(bases)), answerable, unanswerable, strict=True)
        },
    }
    return rule, cv


def ablation(rows: Sequence[Row]) -> dict[str, dict[str, Any]]:
    """The abstention fit without each feature in turn, with the raw scores added, and across
    bases (fitted on one base, applied to the other): cross-validated figures."""
    out = {"all": fit_abstention(rows)[1]}
    for feature in FEATURES:
        out[f"without {feature}"] = fit_abstention(rows, [f for f in FEATURES if f != feature])[1]
    out["with raw dense and lexical"] = fit_abstention(rows, [*FEATURES, "dense", "lexical"])[1]
    for train, test in _base_pairs(rows):
        out[f"fitted on {train}, applied to {test}"] = transfer(rows, train, test)
    return out


def _base_pairs(rows: Sequence[Row]) -> list[tuple[str, str]]:
    names = sorted({r.base for r in rows})
    return [(a, b) for a in names for b in names if a != b]


def transfer(
    rows: Sequence[Row], train: str, test: str, features: Sequence[str] = FEATURES
) -> dict[str, Any]:
    """Fit on one base's questions, apply (thresholds included) to another base's."""
    rule, _ = fit_abstention([r for r in rows if r.base == train], features)
    target = [r for r in rows if r.base == test and r.kind in ("answerable", "nothing")]
    probs = np.array([rule.probability(r.signals.values()) for r in target if r.signals])
    y = np.array([r.kind == "answerable" for r in target])
    return {
        "questions": len(target),
        "answerable_abstained": round(float((probs[y] < rule.abstain_below).mean()), 4),
        "unanswerable_abstained": round(float((probs[~y] < rule.abstain_below).mean()), 4),
    }


# ---------------------------------------------------------------------------- the whole fit


def data_hash(rows: Sequence[Row]) -> str:
    digest = hashlib.sha256()
    for r in rows:
        digest.update(json.dumps(r.question.to_json(), sort_keys=True, ensure_ascii=False).encode())
        digest.update(json.dumps(r.grades, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def calibrate(
    bases: Sequence[tuple[str, Assistant, Sequence[EvalQuestion]]],
    *,
    progress: Progress | None = None,
) -> Calibration:
    """Fit a calibration on one or more (name, assistant on that base, tuning questions)."""
    first = bases[0][1]
    answerable_vectors: list[np.ndarray] = []
    rows: list[Row] = []
    per_base: dict[str, tuple[Assistant, list[Row]]] = {}
    for name, assistant, questions in bases:
        collected = collect(assistant, questions, base=name, gate=None, progress=progress)
        per_base[name] = (assistant, collected)
        rows.extend(collected)
        answerable_vectors += [
            r.vector for r in collected if r.kind != "nothing" and r.vector is not None
        ]
    if progress is not None:
        progress(0, 1, "Filtre de domaine")
    gate, gate_cv = fit_domain_gate(first, answerable_vectors)
    weight, fusion_cv = fit_fusion(rows)
    contexts, context_cv = fit_context_weights(list(per_base.values()), weight=weight)
    rows = []
    for assistant, collected in per_base.values():
        rows.extend(with_signals(assistant, collected, weight=weight, contexts=contexts, gate=gate))
    abstention, abstention_cv = fit_abstention(rows)
    ratio, citation_cv = fit_citation_ratio(
        rows, weight=weight, max_sources=first.settings.max_sources
    )
    fitted_on = tuple(
        {
            "name": name,
            "fingerprint": base_fingerprint(assistant.index().manifest.resources),
            "resources": len(assistant.index().resources),
            "questions": len(questions),
        }
        for name, assistant, questions in bases
    )
    return Calibration(
        model=first.settings.model,
        precision=first.settings.index_precision,
        abstention=abstention,
        domain=gate,
        lexical_weight=weight,
        gap_similarity=gate_cv["gap_similarity"],
        context_weight=contexts["shift"],
        reference_weight=contexts["reference"],
        citation_ratio=ratio,
        fitted_on=fitted_on,
        data_hash=data_hash(rows),
        cv={
            "domain": gate_cv,
            "fusion": fusion_cv,
            "context": context_cv,
            "abstention": abstention_cv,
            "citations": citation_cv,
            "ablation": ablation(rows),
        },
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
